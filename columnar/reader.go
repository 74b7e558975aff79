package columnar

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/tailor-metrics/tailor/storage"
)

// Segment is an opened segment: its key, size, header and footer. Opening reads only the
// head and the tail of the object, never the frames.
type Segment struct {
	Key    string
	Size   int64
	Header Header
	Footer Footer
}

// headProbe is how many bytes are read to find the header: the fixed part plus a topic
// of up to 249 bytes (Kafka's limit) and the checksum.
const headProbe = headerFixedSize + 256 + 4

// OpenSegment reads a segment's header, trailer and footer: three small ranged reads.
func OpenSegment(ctx context.Context, st storage.Store, key string, size int64) (*Segment, error) {
	if size < 0 {
		a, err := st.Stat(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("open segment: %w", err)
		}
		size = a.Size
	}
	return parseSegment(key, size, func(off, n int64) ([]byte, error) {
		b, err := storage.ReadRange(ctx, st, key, off, n, nil)
		if err != nil {
			return nil, fmt.Errorf("open segment: %w", err)
		}
		return b, nil
	})
}

// parseSegment opens a segment of size bytes through readAt(off, n).
func parseSegment(key string, size int64, readAt func(off, n int64) ([]byte, error)) (*Segment, error) {
	s := &Segment{Key: key, Size: size}
	if size < int64(TrailerSize+headerFixedSize+4) {
		return nil, corrupt(key, 0, "file of %d bytes is too small to be a segment (truncated?)", size)
	}
	head, err := readAt(0, min(size, headProbe))
	if err != nil {
		return nil, err
	}
	if _, err := s.Header.Unmarshal(head); err != nil {
		return nil, corrupt(key, 0, "bad %v", err)
	}
	tail, err := readAt(size-TrailerSize, TrailerSize)
	if err != nil {
		return nil, err
	}
	flen, sum, err := unmarshalTrailer(tail)
	if err != nil {
		return nil, corrupt(key, uint64(size-TrailerSize), "%v", err)
	}
	headerEnd := uint64(s.Header.headerSize())
	if flen > MaxFooterBytes || int64(flen) > size-TrailerSize-int64(headerEnd) {
		return nil, corrupt(key, uint64(size-TrailerSize), "bad footer: length %d does not fit in a %d-byte file", flen, size)
	}
	footerOff := size - TrailerSize - int64(flen)
	fb, err := readAt(footerOff, int64(flen))
	if err != nil {
		return nil, err
	}
	if got := crc(fb); got != sum {
		return nil, corrupt(key, uint64(footerOff), "bad footer: crc32c %08x, want %08x", got, sum)
	}
	if err := s.Footer.Unmarshal(fb, headerEnd, uint64(footerOff)); err != nil {
		return nil, corrupt(key, uint64(footerOff), "bad %v", err)
	}
	return s, nil
}

// DefaultSplitBytes is the default size of the byte range one reader takes.
const DefaultSplitBytes = 1 << 30

// Split is the byte range [From, To) of one segment and the planned frames that start
// inside it. A frame belongs to the split its first byte falls in, so however the file is
// cut, every frame is owned by exactly one split and read exactly once; a frame may run
// past To. Frames are in file order.
type Split struct {
	Seg      *Segment
	From, To uint64
	Frames   []FrameInfo
}

// Start and End bound the bytes of the split's frames.
func (s *Split) Start() uint64 { return s.Frames[0].Offset }
func (s *Split) End() uint64 {
	f := s.Frames[len(s.Frames)-1]
	return f.Offset + uint64(f.Length)
}

// Rows is the number of rows in the split's frames.
func (s *Split) Rows() (n uint64) {
	for _, f := range s.Frames {
		n += uint64(f.Rows)
	}
	return n
}

// TimeRange is a half-open ts range [From, To) in Unix ms. To == math.MaxInt64 means no
// upper bound (so that ts = MaxInt64 is still inside AllTime).
type TimeRange struct{ From, To int64 }

// AllTime is the window that holds every ts.
var AllTime = TimeRange{math.MinInt64, math.MaxInt64}

// Contains reports whether ts is in the window.
func (w TimeRange) Contains(ts int64) bool {
	return ts >= w.From && (ts < w.To || w.To == math.MaxInt64)
}

// Overlaps reports whether [lo, hi] (inclusive) overlaps the window.
func (w TimeRange) Overlaps(lo, hi int64) bool { return hi >= w.From && w.Contains(max(lo, w.From)) }

// covers reports whether [lo, hi] (inclusive) lies inside the window.
func (w TimeRange) covers(lo, hi int64) bool { return w.Contains(lo) && w.Contains(hi) }

// PlanSplits cuts every segment of segs into byte ranges [k·splitBytes, (k+1)·splitBytes)
// (splitBytes ≤ 0 means DefaultSplitBytes) and keeps, in each range, the frames of shard
// that start there and whose [MinTs, MaxTs] overlaps win. Only the footer is used: no
// frame is read to plan. Ranges without such frames are dropped.
func PlanSplits(segs []*Segment, shard string, win TimeRange, splitBytes int64) []Split {
	if splitBytes <= 0 {
		splitBytes = DefaultSplitBytes
	}
	step := uint64(splitBytes)
	var out []Split
	for _, s := range segs {
		si := s.Footer.shardIndex(shard)
		if si < 0 {
			continue
		}
		var cur *Split
		for _, f := range s.Footer.Frames {
			if f.Shard != uint32(si) || !win.Overlaps(f.MinTs, f.MaxTs) {
				continue
			}
			if cur == nil || f.Offset >= cur.To {
				from := f.Offset / step * step
				out = append(out, Split{Seg: s, From: from, To: min(from+step, uint64(s.Size))})
				if from+step < from { // a split size near 2^64 wraps: one split to the end
					out[len(out)-1].To = uint64(s.Size)
				}
				cur = &out[len(out)-1]
			}
			cur.Frames = append(cur.Frames, f)
		}
	}
	return out
}

// shardIndex returns the index of shard in f.Shards, or -1.
func (f *Footer) shardIndex(shard string) int {
	for i, name := range f.Shards {
		if name == shard {
			return i
		}
	}
	return -1
}

// Topics returns the sorted topic names of segs and each topic's id (its rank), which
// the reader stamps into the topic_id column.
func Topics(segs []*Segment) map[string]uint16 {
	var names []string
	seen := map[string]bool{}
	for _, s := range segs {
		if !seen[s.Header.Topic] {
			seen[s.Header.Topic] = true
			names = append(names, s.Header.Topic)
		}
	}
	sort.Strings(names)
	ids := make(map[string]uint16, len(names))
	for i, n := range names {
		ids[n] = uint16(i)
	}
	return ids
}

// FrameDecoder decompresses and decodes frames, reusing its buffers. Not safe for
// concurrent use: give each reader goroutine its own.
type FrameDecoder struct {
	zd     *zstd.Decoder
	raw    []byte
	sec    []byte    // a version-2 frame's ts and value sections, decoded from s2
	mem    *memMeter // counts raw's and sec's growth, when not nil
	groups groupScratch
}

// NewFrameDecoder returns a decoder with its own zstd state.
func NewFrameDecoder() *FrameDecoder {
	// zstd's own content checksum (xxhash64, if a writer added one) is not verified: the
	// frame's crc32c already covers every compressed byte, and hashing the decompressed
	// bytes again cost about 5% of decoding.
	//
	// WithDecodeAllCapLimit makes DecodeAll stop once the output would pass the capacity
	// it is given, the footer's raw length: a frame that expands past what its footer
	// claims fails after at most one zstd block (128 KiB) more, never after decompressing
	// in full.
	zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(MaxFrameBytes), zstd.IgnoreChecksum(true),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic(fmt.Sprintf("BUG: zstd decoder: %v", err))
	}
	return &FrameDecoder{zd: zd}
}

// Close releases the zstd decoder.
func (d *FrameDecoder) Close() { d.zd.Close() }

// decode validates the frame whose bytes (frame header included) are b against its footer
// entry and returns a view of its raw payload, valid until the next decode. version is
// the segment's: version 1 compresses the whole raw payload with zstd, version 2 all of
// it but the value section, which follows in its own codec. Either way the view is of
// the same raw payload.
func (d *FrameDecoder) decode(key string, version uint16, info FrameInfo, b []byte, t *ReadTimers) (frameView, error) {
	if len(b) != int(info.Length) {
		return frameView{}, corrupt(key, info.Offset, "frame: have %d bytes, footer says %d (truncated)", len(b), info.Length)
	}
	// Footer.Unmarshal checked the entry already; a caller's own FrameInfo gets the same
	// check before its raw length is allocated.
	if err := info.checkCounts(); err != nil {
		return frameView{}, corrupt(key, info.Offset, "frame: %v", err)
	}
	clen := binary.LittleEndian.Uint32(b)
	if clen != info.Length-FrameHeaderSize {
		return frameView{}, corrupt(key, info.Offset, "frame: bad length: length field %d, footer says %d", clen, info.Length-FrameHeaderSize)
	}
	body := b[FrameHeaderSize:]
	t0 := time.Now()
	sum := crc(body)
	t1 := time.Now()
	t.Verify += t1.Sub(t0)
	if want := binary.LittleEndian.Uint32(b[4:]); sum != want {
		return frameView{}, corrupt(key, info.Offset, "frame: bad crc32c %08x, want %08x", sum, want)
	}
	if cap(d.raw) < int(info.RawLength) {
		if d.mem != nil {
			d.mem.add(int64(info.RawLength) - int64(cap(d.raw)))
		}
		d.raw = make([]byte, 0, info.RawLength)
	}
	var raw []byte
	var err error
	switch version {
	case 1:
		raw, err = d.unzstd(key, info, body, int(info.RawLength))
	case 2:
		raw, err = d.unpackV2(key, info, body)
	default:
		err = corrupt(key, info.Offset, "frame: segment version %d has no frame layout", version)
	}
	t.Decompress += time.Since(t1)
	if err != nil {
		return frameView{}, err
	}
	v, err := parseFrame(raw)
	if err != nil {
		return v, corrupt(key, info.Offset, "%v", err)
	}
	if v.rows != int(info.Rows) || v.groups != int(info.Groups) {
		return v, corrupt(key, info.Offset, "frame: %d rows in %d groups, footer says %d in %d", v.rows, v.groups, info.Rows, info.Groups)
	}
	if err := v.checkIncreasing(); err != nil {
		return v, corrupt(key, info.Offset, "%v", err)
	}
	return v, nil
}

// unzstd decompresses comp into d.raw, which must hold want bytes, and fails unless it
// decompresses to exactly want bytes.
func (d *FrameDecoder) unzstd(key string, info FrameInfo, comp []byte, want int) ([]byte, error) {
	raw, err := d.zd.DecodeAll(comp, d.raw[:0:want])
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, corrupt(key, info.Offset, "frame: decompresses to more than the %d bytes the footer says", want)
	}
	if err != nil {
		return nil, corrupt(key, info.Offset, "frame: zstd: %v", err)
	}
	if len(raw) != want {
		return nil, corrupt(key, info.Offset, "frame: decompressed to %d bytes, footer says %d", len(raw), want)
	}
	d.raw = d.raw[:want] // raw is d.raw's prefix: the cap limit never lets DecodeAll grow it
	return d.raw, nil
}

// A version-2 frame's body starts with the zstd length Z, the length A of the s2 block
// of ts and value controls, the ts bytes' length T (u32 each) and how the value bytes are
// stored (u8).
const v2BodyHeader = 13

// How a version-2 frame stores its value bytes.
const (
	valuesStored byte = 0 // as they are
	valuesS2     byte = 1 // as one s2 block
)

// unpackV2 rebuilds a version-2 frame's raw payload in d.raw. body is the header (Z, A,
// T and the value bytes' encoding), Z bytes of zstd (the raw payload without its ts and
// value sections), an s2 block of A bytes holding the ts controls, T ts bytes and the
// value controls, then the value bytes, stored or as an s2 block. ts and values go back
// where version 1 has them.
func (d *FrameDecoder) unpackV2(key string, info FrameInfo, body []byte) ([]byte, error) {
	rows, groups := int(info.Rows), int(info.Groups)
	if len(body) < v2BodyHeader {
		return nil, corrupt(key, info.Offset, "frame: bad length: %d bytes hold no section lengths", len(body))
	}
	le := binary.LittleEndian
	z, a, tl, venc := uint64(le.Uint32(body)), uint64(le.Uint32(body[4:])), int(le.Uint32(body[8:])), body[12]
	if z+a > uint64(len(body)-v2BodyHeader) {
		return nil, corrupt(key, info.Offset, "frame: bad length: zstd length %d and s2 length %d past the frame's %d bytes", z, a, len(body)-v2BodyHeader)
	}
	if venc != valuesStored && venc != valuesS2 {
		return nil, corrupt(key, info.Offset, "frame: unknown value encoding %d", venc)
	}
	p := body[v2BodyHeader:]
	zs, block, vals := p[:z], p[z:z+a], p[z+a:]
	// Each s2 block says how large it decodes: check that against what the rows can
	// need before anything is allocated. The first holds two control sections and the
	// ts bytes exactly; value bytes are at most 8 a row.
	nctrl := nibbleBytes(rows)
	if tl > 8*rows {
		return nil, corrupt(key, info.Offset, "frame: bad length: %d ts bytes, more than 8 for each of %d rows", tl, rows)
	}
	head, err := s2.DecodedLen(block)
	if err == nil && head != 2*nctrl+tl {
		err = fmt.Errorf("block of %d bytes, %d rows with %d ts bytes need %d", head, rows, tl, 2*nctrl+tl)
	}
	nvals := len(vals)
	if err == nil && venc == valuesS2 {
		if nvals, err = s2.DecodedLen(vals); err == nil && nvals > 8*rows {
			err = fmt.Errorf("value block of %d bytes, more than 8 for each of %d rows", nvals, rows)
		}
	}
	if err != nil {
		return nil, corrupt(key, info.Offset, "frame: s2: %v", err)
	}
	need := head
	if venc == valuesS2 {
		need += nvals
	}
	if cap(d.sec) < need {
		if d.mem != nil {
			d.mem.add(int64(need) - int64(cap(d.sec)))
		}
		d.sec = make([]byte, 0, need)
	}
	sec, err := s2.Decode(d.sec[:head], block)
	if err == nil && venc == valuesS2 {
		vals, err = s2.Decode(d.sec[head:need], vals)
	}
	if err != nil {
		return nil, corrupt(key, info.Offset, "frame: s2: %v", err)
	}
	tctrl, tdata, vctrl := sec[:nctrl], sec[nctrl:nctrl+tl], sec[nctrl+tl:]
	// checkCounts made sure that RawLength holds 16 bytes a row besides the rest.
	rest := int(info.RawLength) - rowRawBytes*rows
	if _, err := d.unzstd(key, info, zs, rest); err != nil {
		return nil, err
	}
	raw := d.raw[:info.RawLength]
	if g, r := le.Uint32(raw), le.Uint32(raw[4:]); int(g) != groups || int(r) != rows {
		return nil, corrupt(key, info.Offset, "frame: %d rows in %d groups, footer says %d in %d", r, g, rows, groups)
	}
	at := frameRawHeader + 32*groups // where version 1 has the ts
	copy(raw[at+rowRawBytes*rows:], raw[at:rest])
	counts := raw[at+rowRawBytes*rows+4*groups:][:4*groups]
	if err := decodeTs(raw[at:at+8*rows], rows, counts, tctrl, tdata); err != nil {
		return nil, corrupt(key, info.Offset, "frame: %v", err)
	}
	if err := decodeXORs(raw[at+8*rows:at+16*rows], rows, vctrl, vals); err != nil {
		return nil, corrupt(key, info.Offset, "frame: %v", err)
	}
	d.raw = raw
	return raw, nil
}

// ReadSplitBytes fetches the bytes of a split's frames with one ranged read into dst.
func ReadSplitBytes(ctx context.Context, st storage.Store, sp *Split, dst []byte) ([]byte, error) {
	b, err := storage.ReadRange(ctx, st, sp.Seg.Key, int64(sp.Start()), int64(sp.End()-sp.Start()), dst)
	if err != nil {
		return b, fmt.Errorf("read split of %s: %w", sp.Seg.Key, err)
	}
	return b, nil
}

// DecodeOptions says how DecodeFrame and DecodeFrameKeyed decode a frame. The zero
// value decodes every row of a frame of topic id 0 and fails on a corrupt frame.
type DecodeOptions struct {
	// Topic is the topic id stamped on every row (see Topics).
	Topic uint16
	// Window keeps only the rows whose ts is inside it (the zero TimeRange means AllTime).
	Window TimeRange
	// SkipCorrupt counts and skips a corrupt frame instead of failing.
	SkipCorrupt bool
	// Tags, when not nil, is called for every group that carries tags, with the group's
	// provenance; it must copy tags to keep them.
	Tags func(k SeriesKey, p Provenance, tags []string)

	// For DecodeFrameKeyed only: the layout of the keyed rows, the numbering of the
	// frame's groups, and where their points go. Groups and Points must be set.
	Layout KeyLayout
	Groups GroupFunc
	Points PointWriter
}

// window is the options' window, the zero one meaning AllTime.
func (o *DecodeOptions) window() TimeRange {
	if o.Window == (TimeRange{}) {
		return AllTime
	}
	return o.Window
}

// DecodeFrame decodes one frame of sp, whose bytes (frame header included) are b, and
// appends its rows inside opt.Window to c. A corrupt frame returns a *CorruptSegmentError naming
// the segment and offset; with opt.SkipCorrupt it is counted and skipped instead. After
// warm-up (c and the decoder's buffers large enough) it does not allocate.
func (d *FrameDecoder) DecodeFrame(sp *Split, f FrameInfo, b []byte, opt DecodeOptions, c *Columns, st *FrameStats) error {
	v, ok, err := d.open(sp, f, b, &opt, st)
	if !ok {
		return err
	}
	t := time.Now()
	defer func() { st.Timers.Decode += time.Since(t) }()
	start := c.Len()
	v.appendRows(c, opt.Topic, sp.Seg.Header.Partition)
	st.RowsIn += uint64(v.rows)
	win := opt.window()
	if win.covers(f.MinTs, f.MaxTs) {
		st.RowsOut += uint64(v.rows)
		return nil
	}
	kept := filterWindow(c, start, win)
	st.RowsOut += uint64(kept)
	st.OutOfWindow += uint64(v.rows - kept)
	return nil
}

// open counts and decodes a frame and hands its tags to opt.Tags. It returns ok = false
// when the frame is not to be read: with the error, or with nil for a corrupt frame
// skipped and counted under opt.SkipCorrupt.
func (d *FrameDecoder) open(sp *Split, f FrameInfo, b []byte, opt *DecodeOptions, st *FrameStats) (frameView, bool, error) {
	st.Frames++
	v, err := d.decode(sp.Seg.Key, sp.Seg.Header.Version, f, b, &st.Timers)
	if err == nil && opt.Tags != nil {
		if terr := v.groupTags(opt.Topic, sp.Seg.Header.Partition, opt.Tags); terr != nil {
			err = corrupt(sp.Seg.Key, f.Offset, "%v", terr)
		}
	}
	if err != nil {
		if opt.SkipCorrupt && errors.Is(err, ErrCorrupt) {
			st.CorruptFrames++
			st.Skipped = append(st.Skipped, FrameRef{Key: sp.Seg.Key, Offset: f.Offset})
			return v, false, nil
		}
		return v, false, err
	}
	return v, true, nil
}

// filterWindow drops rows [start:] of c whose ts is outside win and returns how many stayed.
func filterWindow(c *Columns, start int, win TimeRange) int {
	w := start
	for r := start; r < c.Len(); r++ {
		if !win.Contains(c.Ts[r]) {
			continue
		}
		if w != r {
			c.Org[w], c.Metric[w], c.Context[w] = c.Org[r], c.Metric[r], c.Context[r]
			c.Ts[w], c.Value[w], c.RecordTs[w] = c.Ts[r], c.Value[r], c.RecordTs[r]
			c.Topic[w], c.Partition[w], c.Offset[w] = c.Topic[r], c.Partition[r], c.Offset[r]
		}
		w++
	}
	c.Org, c.Metric, c.Context = c.Org[:w], c.Metric[:w], c.Context[:w]
	c.Ts, c.Value, c.RecordTs = c.Ts[:w], c.Value[:w], c.RecordTs[:w]
	c.Topic, c.Partition, c.Offset = c.Topic[:w], c.Partition[:w], c.Offset[:w]
	return w - start
}
