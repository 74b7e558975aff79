package encoder

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tailor-metrics/tailor/columnar"
)

// Shared blocks (format v3). Series that carry the same timestamps, as the series of one
// scrape target or one agent do, share blocks: one timestamp column and a value column
// each, and one header and checksum for all of them. The writer groups blocks by the
// bytes of their encoded timestamp column, which are equal exactly when the timestamps
// are (the encoding is deterministic), whatever the series' keys; so a node's series share
// blocks even when their keys put other nodes' series between them.
//
// Series are first encoded into loose records, block by block, each column ready but no
// block placed yet. Writer.Append makes one and hands it on at once; Spool keeps them and
// hands them on in key order; both feed the same grouping, so both paths write the same
// bytes.
//
//	loose record: tag count uvarint | (tag length uvarint | tag bytes)* | block count
//	uvarint | per block: points uvarint | min ts varint | span uvarint | ts encoding u8 |
//	ts length uvarint | ts payload | value encoding u8 | value length uvarint | value payload

const (
	// shareWindow: a block takes columns only from fewer than this many series after its
	// first, so that a reader going through the file in key order needs only
	// the blocks of a window of series at a time (see Reader's block cache).
	shareWindow = 4096
	// shareColumns and shareBytes bound a shared block, so that a reader of one series
	// reads (and checksums) at most about shareBytes for it.
	shareColumns = 1024
	shareBytes   = 256 << 10
)

// appendLoose appends the loose record of one validated series and returns its index
// entry (Offset left to the caller).
func (e *blockEncoder) appendLoose(dst []byte, blockPoints int, key columnar.SeriesKey, tags []string, ts []int64, values []float64) ([]byte, IndexEntry) {
	start := len(dst)
	dst = appendTags(dst, tags)
	dst = binary.AppendUvarint(dst, uint64((len(ts)+blockPoints-1)/blockPoints))
	for i := 0; i < len(ts); i += blockPoints {
		j := min(i+blockPoints, len(ts))
		bts, bvals := ts[i:j], values[i:j]
		tsEnc, tsPayload := e.tsColumn(bts)
		var valEnc ValueEncoding
		valEnc, e.valBuf = e.col.appendColumn(e.valBuf[:0], bvals, true)
		dst = binary.AppendUvarint(dst, uint64(len(bts)))
		dst = binary.AppendVarint(dst, bts[0])
		dst = binary.AppendUvarint(dst, uint64(bts[len(bts)-1]-bts[0]))
		dst = append(dst, byte(tsEnc))
		dst = binary.AppendUvarint(dst, uint64(len(tsPayload)))
		dst = append(dst, tsPayload...)
		dst = append(dst, byte(valEnc))
		dst = binary.AppendUvarint(dst, uint64(len(e.valBuf)))
		dst = append(dst, e.valBuf...)
	}
	return dst, IndexEntry{Key: key, Length: int64(len(dst) - start), Points: int64(len(ts)), MinTs: ts[0], MaxTs: ts[len(ts)-1]}
}

// tsCacheSize is how many recent timestamp columns the encoder remembers: series that
// share timestamps (one scrape target's) come close together but not necessarily in a
// row in key order, and encoding their common column once saves most of the time spent
// on timestamps.
const tsCacheSize = 32

// cachedTs is one remembered timestamp column.
type cachedTs struct {
	ts      []int64
	enc     TsEncoding
	payload []byte
}

// tsColumn encodes the timestamps of one block, or returns the encoding of an equal
// column encoded lately. The encoding is a function of the timestamps alone, so either
// way the bytes are the same.
func (e *blockEncoder) tsColumn(ts []int64) (TsEncoding, []byte) {
	n := len(ts)
	for i := range e.tsCache {
		c := &e.tsCache[i]
		if len(c.ts) == n && c.ts[0] == ts[0] && c.ts[n-1] == ts[n-1] && slices.Equal(c.ts, ts) {
			return c.enc, c.payload
		}
	}
	c := &e.tsCache[e.tsNext]
	e.tsNext = (e.tsNext + 1) % tsCacheSize
	c.enc, c.payload = e.appendTs(c.payload[:0], ts)
	c.ts = append(c.ts[:0], ts...)
	return c.enc, c.payload
}

// appendTags appends a tag count and the tags.
func appendTags(dst []byte, tags []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(tags)))
	for _, t := range tags {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	return dst
}

// openBlock is a shared block still taking columns.
type openBlock struct {
	num   int // creation number
	first int // number of its first series
	sig   string
	h     blockHeader
	ts    []byte
	vals  []byte
	done  bool
}

// estimate is the block's size when written.
func (b *openBlock) estimate() int {
	return 24 + 3*len(b.h.cols) + len(b.ts) + len(b.vals)
}

// sharer groups a v3 Writer's loose records into shared blocks.
type sharer struct {
	open      map[string]*openBlock // by timestamp column
	fifo      []*openBlock          // open blocks in creation order; written ones stay until passed
	head      int
	created   int
	ids       []uint32 // block id of each creation number, once written
	blocks    []blockEntry
	series    []indexSeries3
	tags      []byte   // every series' encoded tags
	refs      []uint32 // every series' blocks: creation numbers, block ids at Close
	openBytes int
	freeTs    [][]byte // buffers of written blocks, for new ones
	freeVals  [][]byte
	freeCols  [][]column
	index     []byte
}

// addLoose adds the loose record rec of the next series; blocks that fill up or fall out
// of the window are written to w.buf.
func (w *Writer) addLoose(e IndexEntry, rec []byte) error {
	s := &w.share
	if s.open == nil {
		s.open = map[string]*openBlock{}
	}
	num := len(s.series)
	for s.head < len(s.fifo) {
		b := s.fifo[s.head]
		if !b.done {
			if num-b.first < shareWindow {
				break
			}
			w.writeBlock(b)
		}
		s.fifo[s.head] = nil
		s.head++
	}
	if s.head > 1024 && s.head > len(s.fifo)/2 {
		s.fifo = append(s.fifo[:0], s.fifo[s.head:]...)
		s.head = 0
	}

	bad := func(format string, args ...any) error {
		return fmt.Errorf("append record of series %v: %s", e.Key, fmt.Sprintf(format, args...))
	}
	d := newDecbuf(rec)
	nt := d.Uvarint()
	for i := uint64(0); i < nt && d.Err == nil; i++ {
		d.Bytes64(d.Uvarint())
	}
	tagEnd := len(rec) - len(d.B)
	nb := d.Uvarint()
	if d.Err != nil || nb == 0 || nb > uint64(len(d.B)) {
		return bad("malformed loose record: %d blocks, %v", nb, d.Err)
	}
	is := indexSeries3{tagLo: len(s.tags), refLo: len(s.refs)}
	s.tags = append(s.tags, rec[:tagEnd]...)
	is.tagHi = len(s.tags)
	var points int64
	for range nb {
		sigStart := len(rec) - len(d.B)
		count, minTs, span := d.Uvarint(), d.Varint(), d.Uvarint()
		tsEnc := TsEncoding(d.U8())
		ts := d.Bytes64(d.Uvarint())
		sigEnd := len(rec) - len(d.B)
		valEnc := ValueEncoding(d.U8())
		vals := d.Bytes64(d.Uvarint())
		if d.Err != nil {
			return bad("malformed loose record: %v", d.Err)
		}
		if err := checkCountSpan(count, minTs, span); err != nil {
			return bad("%v", err)
		}
		if !IsValidTsEncoding(w.cfg.version, tsEnc) || !IsValidValueEncoding(w.cfg.version, valEnc) {
			return bad("encodings %s/%s in a version %d file", tsEnc, valEnc, w.cfg.version)
		}
		points += int64(count)
		b := s.open[string(rec[sigStart:sigEnd])]
		if b == nil {
			b = s.newBlock(num)
			b.sig = string(rec[sigStart:sigEnd])
			b.h = blockHeader{count: int(count), minTs: minTs, maxTs: minTs + int64(span), tsEnc: tsEnc, tsLen: len(ts), cols: b.h.cols[:0]}
			b.ts = append(b.ts[:0], ts...)
			s.open[b.sig] = b
			s.fifo = append(s.fifo, b)
			s.openBytes += b.estimate()
		}
		s.openBytes -= b.estimate()
		b.h.cols = append(b.h.cols, column{enc: valEnc, off: len(b.vals), len: len(vals)})
		b.vals = append(b.vals, vals...)
		s.openBytes += b.estimate()
		s.refs = append(s.refs, uint32(b.num))
		if len(b.h.cols) >= shareColumns || len(b.vals) >= shareBytes {
			w.writeBlock(b)
		}
	}
	if len(d.B) != 0 || points != e.Points {
		return bad("loose record of %d points with %d bytes left, entry says %d points", points, len(d.B), e.Points)
	}
	is.refHi = len(s.refs)
	s.series = append(s.series, is)
	return nil
}

// newBlock returns an empty open block, reusing the buffers of a written one.
func (s *sharer) newBlock(first int) *openBlock {
	b := &openBlock{num: s.created, first: first}
	if n := len(s.freeTs); n > 0 {
		b.ts, b.vals, b.h.cols = s.freeTs[n-1], s.freeVals[n-1], s.freeCols[n-1]
		s.freeTs, s.freeVals, s.freeCols = s.freeTs[:n-1], s.freeVals[:n-1], s.freeCols[:n-1]
	}
	s.created++
	s.ids = append(s.ids, 0)
	return b
}

// writeBlock appends open block b to w.buf and closes it.
func (w *Writer) writeBlock(b *openBlock) {
	s := &w.share
	if s.open[b.sig] == b {
		delete(s.open, b.sig)
	}
	s.openBytes -= b.estimate()
	id := len(s.blocks)
	s.ids[b.num] = uint32(id)
	off := w.written + int64(len(w.buf))
	start := len(w.buf)
	w.buf = b.h.marshal3(w.buf)
	w.buf = append(w.buf, b.ts...)
	w.buf = append(w.buf, b.vals...)
	w.buf = binary.LittleEndian.AppendUint32(w.buf, checksum(w.buf[start:]))
	s.blocks = append(s.blocks, blockEntry{off: off, length: len(w.buf) - start, count: b.h.count, minTs: b.h.minTs, maxTs: b.h.maxTs, cols: len(b.h.cols)})
	b.done = true
	if cap(b.vals) <= 2*shareBytes && len(s.freeTs) < 64 {
		s.freeTs = append(s.freeTs, b.ts[:0])
		s.freeVals = append(s.freeVals, b.vals[:0])
		s.freeCols = append(s.freeCols, b.h.cols[:0])
	}
	b.sig, b.ts, b.vals, b.h.cols = "", nil, nil, nil
}

// writeOpenBlocks writes the blocks still open, in the order they were opened. A file of
// fewer than shareWindow series keeps all its blocks open until now, so the buffer is
// flushed as it fills rather than grown to the whole file.
func (w *Writer) writeOpenBlocks() error {
	s := &w.share
	for _, b := range s.fifo[s.head:] {
		if b != nil && !b.done {
			w.writeBlock(b)
			if len(w.buf) >= w.cfg.flushBytes {
				if err := w.flush(); err != nil {
					return err
				}
			}
		}
	}
	s.fifo, s.head, s.open = nil, 0, nil
	return nil
}

// appendIndex appends the index of the series entries, once every block is written.
func (s *sharer) appendIndex(dst []byte, entries []IndexEntry) []byte {
	for i, num := range s.refs {
		s.refs[i] = s.ids[num]
	}
	return appendIndex3(dst, entries, s.series, s.tags, s.refs, s.blocks, &s.index)
}
