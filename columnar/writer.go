package columnar

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// DefaultFrameRows caps a frame's rows. 64Ki rows is about 1 MiB of raw columns: large
// enough that zstd and per-frame overhead are amortized, small enough that a reader's
// memory (readers × largest frame) stays small.
const DefaultFrameRows = 1 << 16

// zstdEncoder is shared: EncodeAll is safe for concurrent use. SpeedFastest (level 1):
// when zstd still compressed the value XORs (version 1), it was half of the sink's CPU,
// and SpeedDefault (level 3) took 15-25% more time for 2% fewer bytes, while a reader
// decompresses either at the same speed. No zstd content checksum: the frame's
// crc32c covers the compressed bytes, and readers would skip it anyway.
var zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false))

// SegmentWriter accumulates the payloads of one (topic, partition) offset range and
// writes them as one segment, frames grouped by shard.
//
// Payloads are compressed into frames as they arrive, so a writer holds about the
// compressed size of its segment plus one open frame per shard. Not safe for concurrent use.
type SegmentWriter struct {
	hdr       Header
	shards    *ShardMap
	frameRows int

	shardIdx map[string]uint32
	shardOf  map[uint32]uint32 // org → shard index, for orgs without dedicated parts
	names    []string
	open     []*frameBuilder
	sealed   [][]sealedFrame // per shard index

	lastOffset int64
	records    uint64
	rejected   uint64
	collapsed  uint64
	rows       uint64
	bytes      int64

	sortBuf []int
	hdrErr  error // why the header cannot be stored, if it cannot
}

type sealedFrame struct {
	info FrameInfo
	data []byte // frame header + compressed payload
}

// NewSegmentWriter starts a segment. frameRows <= 0 means DefaultFrameRows, and more
// than MaxFrameRows means MaxFrameRows. A header that a segment cannot hold (a topic that
// CheckTopic refuses, a negative partition, which the key could not be parsed back from)
// makes every Add and Skip fail.
func NewSegmentWriter(h Header, shards *ShardMap, frameRows int) *SegmentWriter {
	if frameRows <= 0 {
		frameRows = DefaultFrameRows
	}
	frameRows = min(frameRows, MaxFrameRows)
	h.Version = SegmentVersion
	h.ShardMapVersion = shards.Version
	w := &SegmentWriter{
		hdr: h, shards: shards, frameRows: frameRows,
		shardIdx: map[string]uint32{}, shardOf: map[uint32]uint32{},
		lastOffset: h.StartOffset - 1,
	}
	if err := CheckTopic(h.Topic); err != nil {
		w.hdrErr = fmt.Errorf("segment writer: %w", err)
	} else if h.Partition < 0 {
		w.hdrErr = fmt.Errorf("segment writer: partition %d is negative", h.Partition)
	}
	return w
}

// Header returns the segment header.
func (w *SegmentWriter) Header() Header { return w.hdr }

// Records is the number of records (payloads and rejects) covered so far.
func (w *SegmentWriter) Records() uint64 { return w.records }

// Rows is the number of points added so far.
func (w *SegmentWriter) Rows() uint64 { return w.rows }

// Bytes is the approximate size of the segment so far: its sealed frames, and the raw
// size of its open ones (points, groups and tags alike, so that payloads with many tags
// count for what they hold).
func (w *SegmentWriter) Bytes() int64 { return w.bytes }

// EndOffset is one past the last offset covered so far.
func (w *SegmentWriter) EndOffset() int64 { return w.lastOffset + 1 }

func (w *SegmentWriter) cover(offset int64) error {
	if w.hdrErr != nil {
		return w.hdrErr
	}
	if offset <= w.lastOffset {
		return fmt.Errorf("segment %s-%d: offset %d is not after %d", w.hdr.Topic, w.hdr.Partition, offset, w.lastOffset)
	}
	w.lastOffset = offset
	return nil
}

// Skip records that the record at offset carried nothing to store (rejected or empty),
// so the segment still covers its offset.
func (w *SegmentWriter) Skip(offset int64, rejected bool) error {
	if err := w.cover(offset); err != nil {
		return err
	}
	w.records++
	if rejected {
		w.rejected++
	}
	return nil
}

// Add appends the payloads decoded from the record at src.Offset. Offsets must increase.
// A payload whose timestamps are not strictly increasing is sorted by ts (stable) and
// keeps only the last point of each repeated ts. Payloads with no points are skipped.
//
// A payload that the format cannot hold (tags past CheckTags' limits: a *LimitError) or
// that has more timestamps than values fails the whole record before anything of it is
// added, so the caller can still Skip its offset as rejected.
func (w *SegmentWriter) Add(src Source, payloads []Payload) error {
	for i := range payloads {
		p := &payloads[i]
		if len(p.Timestamps) != len(p.Values) {
			return fmt.Errorf("segment %s-%d offset %d: payload %d: %d timestamps but %d values", w.hdr.Topic, w.hdr.Partition, src.Offset, i, len(p.Timestamps), len(p.Values))
		}
		if err := checkTags(p.Tags); err != nil {
			return fmt.Errorf("segment %s-%d offset %d: payload %d: %w", w.hdr.Topic, w.hdr.Partition, src.Offset, i, err)
		}
	}
	if err := w.cover(src.Offset); err != nil {
		return err
	}
	w.records++
	for i := range payloads {
		p := &payloads[i]
		ts, vals := w.normalize(p.Timestamps, p.Values)
		if len(ts) == 0 {
			continue
		}
		si := w.shardIndex(p.Org, p.Metric)
		tb := tagBytes(p.Tags)
		// Split very large payloads across frames; the parts keep the same provenance
		// (and tags). A frame also seals before its raw size would pass maxFrameRaw.
		for len(ts) > 0 {
			b := w.open[si]
			room := min(w.frameRows-b.rows(), (maxFrameRaw-b.rawSize()-groupRawBytes-tb)/rowRawBytes)
			if room <= 0 {
				if b.groups() == 0 {
					return fmt.Errorf("BUG: a group with %d tag bytes does not fit an empty frame", tb)
				}
				if err := w.seal(si); err != nil {
					return err
				}
				continue
			}
			n := min(len(ts), room)
			before := b.rawSize()
			b.add(p.SeriesKey, src, p.Tags, ts[:n], vals[:n])
			w.rows += uint64(n)
			w.bytes += int64(b.rawSize() - before)
			ts, vals = ts[n:], vals[n:]
			if b.rows() >= w.frameRows {
				if err := w.seal(si); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// normalize returns ts/vals sorted by ts with repeated ts collapsed to their last point.
// The fast path, already strictly increasing, returns the inputs unchanged.
func (w *SegmentWriter) normalize(ts []int64, vals []float64) ([]int64, []float64) {
	sorted := true
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			sorted = false
			break
		}
	}
	if sorted {
		return ts, vals
	}
	idx := w.sortBuf[:0]
	for i := range ts {
		idx = append(idx, i)
	}
	sort.SliceStable(idx, func(a, b int) bool { return ts[idx[a]] < ts[idx[b]] })
	w.sortBuf = idx
	nts := make([]int64, 0, len(ts))
	nvals := make([]float64, 0, len(ts))
	for _, i := range idx {
		if n := len(nts); n > 0 && nts[n-1] == ts[i] {
			nvals[n-1] = vals[i] // later point of the same record wins
			w.collapsed++
			continue
		}
		nts = append(nts, ts[i])
		nvals = append(nvals, vals[i])
	}
	return nts, nvals
}

func (w *SegmentWriter) shardIndex(org uint32, metric uint64) uint32 {
	if si, ok := w.shardOf[org]; ok {
		return si
	}
	name := w.shards.Shard(org, metric)
	si, ok := w.shardIdx[name]
	if !ok {
		si = uint32(len(w.names))
		w.shardIdx[name] = si
		w.names = append(w.names, name)
		w.open = append(w.open, &frameBuilder{})
		w.sealed = append(w.sealed, nil)
	}
	if d, split := w.shards.Dedicated[org]; !split || d.Parts <= 1 {
		w.shardOf[org] = si // the shard does not depend on the metric: cache it
	}
	return si
}

func (w *SegmentWriter) seal(si uint32) error {
	b := w.open[si]
	if b.groups() == 0 {
		return nil
	}
	raw := rawScratch.Get().(*[]byte)
	info, data, err := b.encode(raw)
	rawScratch.Put(raw)
	if err != nil {
		return err
	}
	info.Shard = si
	w.sealed[si] = append(w.sealed[si], sealedFrame{info: info, data: data})
	w.bytes += int64(len(data)) - int64(b.rawSize()-frameRawHeader)
	b.reset()
	return nil
}

// rawScratch, zstdScratch and sectionScratch hold the buffers that a frame is marshalled,
// compressed and coded in: every writer shares them, since a writer needs them only while
// it seals a frame.
var rawScratch, zstdScratch, sectionScratch = sync.Pool{New: func() any { return new([]byte) }}, sync.Pool{New: func() any { return new([]byte) }}, sync.Pool{New: func() any { return new([]byte) }}

// encode builds the builder's groups into a version-2 frame (frame header included) and
// returns its footer entry, without Offset and Shard. *raw is scratch space, reused.
//
// The frame's body (docs/format/segment.md, "Version 2") is zstd over the raw payload
// without its ts and value sections, then the ts and the values in codecs of their own
// (framecodec.go): an s2 block of the ts and of the value controls, and the value bytes,
// in an s2 block of their own only where that pays. The ts deltas and value XORs were
// nearly all of zstd's work in version 1; the codecs take a few ns a point, and s2 finds
// what repeats in their output (regular series, repeated values) at little more.
func (b *frameBuilder) encode(raw *[]byte) (FrameInfo, []byte, error) {
	*raw = b.marshal((*raw)[:0])
	rows := b.rows()
	rawLen := len(*raw) + rowRawBytes*rows
	if rawLen > MaxFrameBytes {
		return FrameInfo{}, nil, fmt.Errorf("BUG: frame of %d raw bytes exceeds %d", rawLen, MaxFrameBytes)
	}
	sp := sectionScratch.Get().(*[]byte)
	defer sectionScratch.Put(sp)
	n := nibbleBytes(rows)
	sec := slices.Grow((*sp)[:0], sectionBytes(rows)+nibbleSlack)[:n]
	ts := tsEncoder{nibbleEncoder: nibbleEncoder{ctrl: sec, data: sec[n:n:cap(sec)]}, counts: b.count}
	clear(ts.ctrl)
	for _, c := range b.chunks {
		ts.add(c.ts)
	}
	at := n + len(ts.data)
	sec = sec[:at+n]
	vals := xorEncoder{nibbleEncoder{ctrl: sec[at:], data: sec[at+n : at+n : cap(sec)]}}
	clear(vals.ctrl) // after the ts: their 8-byte writes reach past their bytes
	for _, c := range b.chunks {
		vals.add(c.vals)
	}
	*sp = sec[:at+n+len(vals.data)]
	head, vdata := sec[:at+n], vals.data

	// Build the frame in scratch space and keep an exact copy: a sealed frame stays in
	// memory until its segment is stored, and the scratch holds s2's worst case.
	out := zstdScratch.Get().(*[]byte)
	defer zstdScratch.Put(out)
	const bodyAt = FrameHeaderSize + v2BodyHeader
	frame := zstdEncoder.EncodeAll(*raw, append((*out)[:0], make([]byte, bodyAt)...))
	z := len(frame) - bodyAt
	frame = appendS2(frame, head)
	a := len(frame) - bodyAt - z
	venc := valuesStored
	if s2Pays(vdata) {
		venc = valuesS2
		frame = appendS2(frame, vdata)
	} else {
		frame = append(frame, vdata...)
	}
	*out = frame
	if len(frame) > MaxFrameBytes {
		return FrameInfo{}, nil, fmt.Errorf("BUG: frame of %d raw bytes encoded to %d, more than %d", rawLen, len(frame), MaxFrameBytes)
	}
	le := binary.LittleEndian
	body := frame[FrameHeaderSize:]
	le.PutUint32(body, uint32(z))
	le.PutUint32(body[4:], uint32(a))
	le.PutUint32(body[8:], uint32(len(ts.data)))
	body[12] = venc
	le.PutUint32(frame, uint32(len(body)))
	le.PutUint32(frame[4:], crc(body))
	data := make([]byte, len(frame)) // exact: it is held until the segment is stored
	copy(data, frame)
	return FrameInfo{
		Length: uint32(len(data)), RawLength: uint32(rawLen),
		Rows: uint32(rows), Groups: uint32(b.groups()),
		MinTs: b.minTs, MaxTs: b.maxTs, MinOffset: b.minOffset, MaxOffset: b.maxOffset,
		MinRecordTs: b.minRecordTs, MaxRecordTs: b.maxRecordTs,
	}, data, nil
}

// appendS2 appends src to dst as one s2 block, encoded in dst's spare capacity.
func appendS2(dst, src []byte) []byte {
	dst = slices.Grow(dst, s2.MaxEncodedLen(len(src)))
	enc := s2.Encode(dst[len(dst):], src)
	return dst[:len(dst)+len(enc)]
}

// s2Probe is how much of a frame's value bytes s2Pays compresses to decide.
const s2Probe = 8 << 10

// s2Pays says whether the value bytes are worth an s2 block: whether their first s2Probe
// bytes compress by an eighth or more. s2 spends up to 15 ns a point on value bytes that
// hardly compress (noisy gauges, full-precision floats), and halves those of series
// whose values repeat (bitbrains' 3.06 bytes a point became 1.57); the probe costs a
// tenth of a ns a point of a full frame. It depends only on the bytes, so the same
// payloads still give the same segment.
func s2Pays(vdata []byte) bool {
	if len(vdata) < 64 {
		return false
	}
	probe := vdata[:min(len(vdata), s2Probe)]
	var buf [s2Probe + s2Probe/6 + 64]byte
	return len(s2.Encode(buf[:0], probe)) <= len(probe)-len(probe)/8
}

// Key is the segment's object key.
func (w *SegmentWriter) Key() string {
	return SegmentKey(w.hdr.Topic, w.hdr.Partition, w.hdr.StartOffset, w.hdr.StartTimestamp)
}

// WriteTo seals the open frames and writes the whole segment: header, frames in shard
// name order, footer, trailer. It may be called again and writes the same bytes (the
// sink retries a failed upload this way); nothing may be added after the first call.
func (w *SegmentWriter) WriteTo(out io.Writer) (int64, error) {
	for si, b := range w.open {
		if err := w.seal(uint32(si)); err != nil {
			return 0, err
		}
		// Nothing is added after WriteTo: the next segment's frames can have the chunks.
		b.release()
	}
	// Shards in name order, so the same payloads always give the same bytes.
	order := make([]uint32, len(w.names))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int {
		switch {
		case w.names[a] < w.names[b]:
			return -1
		case w.names[a] > w.names[b]:
			return 1
		}
		return 0
	})
	ss, err := newSegmentStream(out, &w.hdr)
	if err != nil {
		return ss.off, err
	}
	for newIdx, si := range order {
		ss.ft.Shards = append(ss.ft.Shards, w.names[si])
		for _, f := range w.sealed[si] {
			f.info.Shard = uint32(newIdx)
			if err := ss.frame(f.info, f.data); err != nil {
				return ss.off, err
			}
		}
	}
	ss.ft.EndOffset, ss.ft.Records, ss.ft.Rejected = w.EndOffset(), w.records, w.rejected
	ss.ft.Collapsed, ss.ft.Rows = w.collapsed, w.rows
	return ss.finish()
}

// segmentStream writes a segment front to back (header, frames, footer, trailer) and
// keeps only the footer index in memory, so a segment of any size streams through it.
// Offsets are 64-bit throughout: a segment may be far larger than 4 GiB.
type segmentStream struct {
	out io.Writer
	off int64
	ft  Footer
}

func newSegmentStream(out io.Writer, h *Header) (*segmentStream, error) {
	s := &segmentStream{out: out}
	n, err := out.Write(h.Marshal(nil))
	s.off = int64(n)
	if err != nil {
		return s, fmt.Errorf("write segment header: %w", err)
	}
	return s, nil
}

// frame writes data (frame header included) at the current offset and indexes it;
// info.Offset is set here. Frames of one shard must be written together.
func (s *segmentStream) frame(info FrameInfo, data []byte) error {
	info.Offset = uint64(s.off)
	s.ft.Frames = append(s.ft.Frames, info)
	n, err := s.out.Write(data)
	s.off += int64(n)
	if err != nil {
		return fmt.Errorf("write segment frame at %d: %w", info.Offset, err)
	}
	return nil
}

// finish writes the footer and the trailer and returns the segment's size.
func (s *segmentStream) finish() (int64, error) {
	footer := s.ft.Marshal(nil)
	if len(footer) > MaxFooterBytes {
		return s.off, fmt.Errorf("segment footer of %d bytes is larger than max allowed %d; flush segments earlier", len(footer), MaxFooterBytes)
	}
	footer = marshalTrailer(footer, uint32(len(footer)), crc(footer))
	n, err := s.out.Write(footer)
	s.off += int64(n)
	if err != nil {
		return s.off, fmt.Errorf("write segment footer: %w", err)
	}
	return s.off, nil
}
