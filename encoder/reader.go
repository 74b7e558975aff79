package encoder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/tailor-metrics/tailor/columnar"
)

// tailReadSize is how much Open reads from the end of a file in its first read. Most
// indexes fit, so the trailer and the index come in one ranged read; a larger index costs
// exactly one more.
const tailReadSize = 64 << 10

// Reader reads a series file through an io.ReaderAt (a local file, or ranged GETs on an
// object). After Open it holds only the index. A Reader is safe for concurrent use as
// long as each goroutine uses its own Series and SeriesIterator values.
type Reader struct {
	r       io.ReaderAt
	name    string // for errors
	size    int64
	version uint16
	entries []IndexEntry
	orgs    []OrgRange
	v3      *index3 // format v3: blocks, refs and tags
}

// OpenOpt configures Open.
type OpenOpt func(*openCfg)

type openCfg struct {
	name string
	tail int64
}

// FileName names the file (a path or an object key) in every *CorruptFileError that Open and
// the Reader return, overriding the default of no name.
func FileName(name string) OpenOpt { return func(c *openCfg) { c.name = name } }

// TailRead sets how much Open reads from the end of the file first, overriding the
// default 64KiB: a larger index takes one more read. A reader after a few series of
// many small files (on a local disk, where a read costs no round trip) reads less with
// a small one; it is at least the trailer.
func TailRead(n int) OpenOpt { return func(c *openCfg) { c.tail = int64(n) } }

// Open reads and validates the trailer and the index: one ranged read for small indexes,
// two for large ones. Series records are read and checked only when asked for.
func Open(r io.ReaderAt, size int64, opts ...OpenOpt) (*Reader, error) {
	c := openCfg{tail: tailReadSize}
	for _, o := range opts {
		o(&c)
	}
	rd, err := open(r, size, max(c.tail, trailerSize))
	if err != nil {
		return nil, named(err, c.name)
	}
	rd.name = c.name
	return rd, nil
}

func open(r io.ReaderAt, size, tailRead int64) (*Reader, error) {
	const minSize = fileHeaderSize + minIndex3Size + trailerSize
	if size < minSize {
		return nil, corrupt(0, "file", ErrTruncated, "%d bytes, a series file has at least %d", size, minSize)
	}
	tailOff := max(0, size-tailRead)
	tail := make([]byte, size-tailOff)
	if err := readFull(r, tail, tailOff); err != nil {
		return nil, fmt.Errorf("read series file tail at %d: %w", tailOff, err)
	}
	var t trailer
	if err := t.Unmarshal(tail[len(tail)-trailerSize:], size); err != nil {
		return nil, err
	}
	if tailOff == 0 {
		// The whole file is in hand: check the header too, at no extra read. For larger
		// files the trailer's magic and version stand in for it.
		v, err := parseFileHeader(tail)
		if err != nil {
			return nil, err
		}
		if v != t.version {
			return nil, corrupt(4, "file header", ErrOutOfRange, "version %d, trailer says %d", v, t.version)
		}
	}
	var idx []byte
	if t.indexOff >= tailOff {
		idx = tail[t.indexOff-tailOff : t.indexOff-tailOff+t.indexLen]
	} else {
		idx = make([]byte, t.indexLen)
		if err := readFull(r, idx, t.indexOff); err != nil {
			return nil, fmt.Errorf("read series file index at %d: %w", t.indexOff, err)
		}
	}
	if got := checksum(idx); got != t.indexCRC {
		return nil, corrupt(t.indexOff, "index", ErrChecksum, "crc32c %#08x, trailer says %#08x", got, t.indexCRC)
	}
	if t.version >= Version3 {
		var zbuf []byte
		entries, x, err := parseIndex3(idx, t.indexOff, fileHeaderSize, &zbuf)
		if err != nil {
			return nil, err
		}
		return &Reader{r: r, size: size, version: t.version, entries: entries, orgs: buildOrgRanges(nil, entries), v3: x}, nil
	}
	entries, orgs, err := parseIndex(idx, t.indexOff, fileHeaderSize)
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, size: size, version: t.version, entries: entries, orgs: orgs}, nil
}

// readFull reads len(p) bytes at off. io.ReaderAt may report io.EOF along with a full
// read at the end of the input, which is a success here.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return corrupt(off+int64(n), "read", ErrTruncated, "got %d of %d bytes", n, len(p))
	}
	return err
}

// Version returns the file's format version.
func (r *Reader) Version() uint16 { return r.version }

// Size returns the file size given to Open.
func (r *Reader) Size() int64 { return r.size }

// Index returns the index entries in key order. The slice is shared: do not modify it.
func (r *Reader) Index() []IndexEntry { return r.entries }

// OrgRanges returns one range of index entries per org, in org order. Shared, read-only.
func (r *Reader) OrgRanges() []OrgRange { return r.orgs }

// Find returns the index entry of key, or false.
func (r *Reader) Find(key columnar.SeriesKey) (IndexEntry, bool) {
	i := searchIndex(r.entries, key)
	if i < 0 {
		return IndexEntry{}, false
	}
	return r.entries[i], true
}

// OrgSeries returns the index entries of one org (empty if the file has none). Shared,
// read-only.
func (r *Reader) OrgSeries(org uint32) []IndexEntry {
	e, _ := r.orgSeries(org)
	return e
}

// orgSeries is OrgSeries with the position of the first entry.
func (r *Reader) orgSeries(org uint32) ([]IndexEntry, int) {
	i := sort.Search(len(r.orgs), func(i int) bool { return r.orgs[i].Org >= org })
	if i == len(r.orgs) || r.orgs[i].Org != org {
		return nil, 0
	}
	o := r.orgs[i]
	return r.entries[o.First : o.First+o.Count], o.First
}

// Series is one decoded series. Readers fill it in place, reusing its slices: the
// contents are valid until the next fill, so copy what you keep.
type Series struct {
	Key    columnar.SeriesKey
	Tags   []string
	Ts     []int64
	Values []float64

	raw    []byte       // the record bytes, reused
	dec    blockDecoder // scratch for decoding
	blocks blockCache   // format v3: the blocks read lately
}

// Reset empties s, keeping capacity.
func (s *Series) Reset() {
	s.Key = columnar.SeriesKey{}
	s.Tags = s.Tags[:0]
	s.Ts = s.Ts[:0]
	s.Values = s.Values[:0]
}

// ReadSeries reads and decodes the series of index entry e into dst: one ranged read
// (v3: one a block; dst keeps the shared blocks it read lately, so reading the series of
// a file in turn reads each block once).
func (r *Reader) ReadSeries(e IndexEntry, dst *Series) error {
	return r.ReadSeriesRange(e, math.MinInt64, math.MaxInt64, dst)
}

// ReadSeriesRange is ReadSeries restricted to the points with mint <= ts <= maxt. Blocks
// outside the range are not decoded (v1, v2: checksummed; v3: not even read). dst.Tags
// is always filled; dst.Ts may come back empty.
func (r *Reader) ReadSeriesRange(e IndexEntry, mint, maxt int64, dst *Series) error {
	return named(r.readSeriesRange(e, mint, maxt, dst), r.name)
}

func (r *Reader) readSeriesRange(e IndexEntry, mint, maxt int64, dst *Series) error {
	return r.readSeriesRecord(e, mint, maxt, false, dst)
}

// readSeriesRecord reads the series of e, decoding its values unless noValues.
func (r *Reader) readSeriesRecord(e IndexEntry, mint, maxt int64, noValues bool, dst *Series) error {
	if r.v3 != nil {
		i := searchIndex(r.entries, e.Key)
		if i < 0 {
			dst.Reset()
			return fmt.Errorf("read series %v: %w", e.Key, ErrNotFound)
		}
		return r.readSeries3(i, mint, maxt, noValues, dst)
	}
	dst.Reset()
	if e.Length <= 0 || e.Offset < 0 || e.Offset > r.size || e.Length > r.size-e.Offset {
		return corrupt(e.Offset, "series record", ErrOutOfRange, "length %d outside file of %d bytes", e.Length, r.size)
	}
	if cap(dst.raw) < int(e.Length) {
		dst.raw = make([]byte, e.Length)
	}
	dst.raw = dst.raw[:e.Length]
	if err := readFull(r.r, dst.raw, e.Offset); err != nil {
		return fmt.Errorf("read series %v at %d: %w", e.Key, e.Offset, err)
	}
	return decodeRecord(dst.raw, e, r.version, mint, maxt, noValues, dst)
}

// decodeRecord decodes one series record (its bytes in rec, its index entry e) into dst,
// keeping the points in [mint, maxt], and their values unless noValues. It checks the
// record against the index: same key, blocks in time order, the point count and the
// time range.
func decodeRecord(rec []byte, e IndexEntry, version uint16, mint, maxt int64, noValues bool, dst *Series) error {
	key, tags, rest, err := parseSeriesHeader(rec, e.Offset, dst.Tags[:0])
	dst.Tags = tags
	if err != nil {
		return err
	}
	if key != e.Key {
		return corrupt(e.Offset, "series header", ErrOutOfRange, "key %v, index says %v", key, e.Key)
	}
	dst.Key = key
	var (
		points int64
		prevTs int64
		h      blockHeader
	)
	for blk := 0; len(rest) > 0; blk++ {
		boff := e.Offset + int64(len(rec)-len(rest))
		payload, err := h.Unmarshal(rest, version)
		if err != nil {
			return &CorruptFileError{Offset: boff, What: blockWhat(e.Key, blk), Err: err}
		}
		hlen := len(rest) - len(payload)
		blen := hlen + h.tsLen + h.valLen
		if got, want := checksum(rest[:blen]), binary.LittleEndian.Uint32(rest[blen:]); got != want {
			return corrupt(boff, blockWhat(e.Key, blk), ErrChecksum, "crc32c %#08x, stored %#08x", got, want)
		}
		if (blk == 0 && h.minTs != e.MinTs) || (blk > 0 && h.minTs <= prevTs) {
			return corrupt(boff, blockWhat(e.Key, blk), ErrOutOfRange, "starts at %d, after %d (index min %d)", h.minTs, prevTs, e.MinTs)
		}
		points += int64(h.count)
		if points > e.Points {
			return corrupt(boff, blockWhat(e.Key, blk), ErrOutOfRange, "more points than the index's %d", e.Points)
		}
		prevTs = h.maxTs
		rest = rest[blen+4:]

		if h.maxTs < mint || h.minTs > maxt {
			continue // outside the range: skip without decoding
		}
		n0 := len(dst.Ts)
		tsSrc := payload[:h.tsLen]
		valSrc := payload[h.tsLen : h.tsLen+h.valLen]
		if dst.Ts, err = dst.dec.decodeTs(dst.Ts, &h, tsSrc); err != nil {
			return &CorruptFileError{Offset: boff + int64(hlen), What: blockWhat(e.Key, blk), Err: err}
		}
		if !noValues {
			if dst.Values, err = dst.dec.decodeValues(dst.Values, &h, valSrc); err != nil {
				return &CorruptFileError{Offset: boff + int64(hlen+h.tsLen), What: blockWhat(e.Key, blk), Err: err}
			}
		}
		if h.minTs < mint || h.maxTs > maxt {
			trimRange(dst, n0, mint, maxt)
		}
	}
	if points != e.Points || prevTs != e.MaxTs {
		return corrupt(e.Offset, "series record", ErrOutOfRange, "%d points ending at %d, index says %d ending at %d", points, prevTs, e.Points, e.MaxTs)
	}
	return nil
}

// blockWhat names a block in errors. Built only on the error path: formatting it for
// every block cost more than decoding small blocks.
func blockWhat(k columnar.SeriesKey, blk int) string {
	return fmt.Sprintf("series %v block %d", k, blk)
}

// trimRange drops the points from index n0 on that fall outside [mint, maxt]. Values
// are trimmed alongside when they were decoded.
func trimRange(s *Series, n0 int, mint, maxt int64) {
	ts := s.Ts[n0:]
	lo := sort.Search(len(ts), func(i int) bool { return ts[i] >= mint })
	hi := sort.Search(len(ts), func(i int) bool { return ts[i] > maxt })
	n := copy(s.Ts[n0:], ts[lo:hi])
	s.Ts = s.Ts[:n0+n]
	if len(s.Values) > n0 {
		copy(s.Values[n0:], s.Values[n0+lo:n0+hi])
		s.Values = s.Values[:n0+n]
	}
}

// IterOpt narrows a SeriesIterator or a RecordReader.
type IterOpt func(*iterCfg)

type iterCfg struct {
	org        uint32
	hasOrg     bool
	mint, maxt int64
	// first, end bound the positions in Index() iterated; end < 0 means all.
	first, end int
	keep       func(IndexEntry) bool
	noValues   bool
}

// IterOrg restricts iteration to the series of one org, found through the org ranges.
func IterOrg(org uint32) IterOpt {
	return func(c *iterCfg) { c.org, c.hasOrg = org, true }
}

// IterTimeRange restricts iteration to the points with mint <= ts <= maxt. Series with
// no point in the range are skipped; blocks outside it are not decoded.
func IterTimeRange(mint, maxt int64) IterOpt {
	return func(c *iterCfg) { c.mint, c.maxt = mint, maxt }
}

// IterIndexRange restricts iteration to the entries [first, end) of Index(), so that
// several goroutines can each decode a slice of one file (a Reader is safe for that).
// Positions outside the index are clamped to it.
func IterIndexRange(first, end int) IterOpt {
	return func(c *iterCfg) { c.first, c.end = first, end }
}

// IterFilter restricts iteration to the series whose index entry keep accepts. Series
// it rejects are not read: what a reader of a few keys of a file uses to skip the rest.
func IterFilter(keep func(IndexEntry) bool) IterOpt {
	return func(c *iterCfg) { c.keep = keep }
}

// IterNoValues decodes timestamps only: At().Values stays empty. For a query that uses
// no value (count(*), min(ts)), the value columns are not even decompressed.
func IterNoValues() IterOpt {
	return func(c *iterCfg) { c.noValues = true }
}

// SeriesIterator walks series in key order. Use it as
//
//	it := r.Iterator(nil)
//	for it.Next() {
//		s := it.At()
//	}
//	if err := it.Err(); err != nil { ... }
//
// The Series returned by At is reused by the next call to Next.
type SeriesIterator struct {
	r          *Reader
	entries    []IndexEntry
	first      int // position of entries[0] in the file's index
	i          int
	mint, maxt int64
	keep       func(IndexEntry) bool
	noValues   bool
	cur        Series
	err        error
}

// Iterator returns an iterator over the file's series, reusing its buffers when it is
// not nil (the chunkenc habit).
func (r *Reader) Iterator(it *SeriesIterator, opts ...IterOpt) *SeriesIterator {
	c := iterCfg{mint: math.MinInt64, maxt: math.MaxInt64, end: -1}
	for _, o := range opts {
		o(&c)
	}
	if it == nil {
		it = &SeriesIterator{}
	}
	it.r = r
	it.entries, it.first = r.entries, 0
	if c.hasOrg {
		it.entries, it.first = r.orgSeries(c.org)
	}
	if c.end >= 0 || c.first > 0 {
		// Intersect [c.first, c.end) with the positions it.entries covers.
		lo, hi := it.first, it.first+len(it.entries)
		if c.end >= 0 {
			hi = min(hi, c.end)
		}
		lo = max(lo, c.first)
		if hi < lo {
			hi = lo
		}
		it.entries = it.entries[lo-it.first : hi-it.first]
		it.first = lo
	}
	it.i = 0
	it.mint, it.maxt = c.mint, c.maxt
	it.keep, it.noValues = c.keep, c.noValues
	it.err = nil
	it.cur.Reset()
	return it
}

// Next decodes the next series; it returns false at the end or on error.
func (it *SeriesIterator) Next() bool {
	for it.err == nil && it.i < len(it.entries) {
		e := it.entries[it.i]
		it.i++
		if e.MaxTs < it.mint || e.MinTs > it.maxt || (it.keep != nil && !it.keep(e)) {
			continue
		}
		if it.r.v3 != nil {
			it.err = named(it.r.readSeries3(it.first+it.i-1, it.mint, it.maxt, it.noValues, &it.cur), it.r.name)
		} else {
			it.err = named(it.r.readSeriesRecord(e, it.mint, it.maxt, it.noValues, &it.cur), it.r.name)
		}
		if it.err != nil {
			return false
		}
		if len(it.cur.Ts) > 0 {
			return true
		}
	}
	return false
}

// At returns the current series. It is valid until the next call to Next.
func (it *SeriesIterator) At() *Series { return &it.cur }

// Err returns the error that stopped the iteration, if any.
func (it *SeriesIterator) Err() error { return it.err }

// BlockInfo describes one stored block without decoding it.
type BlockInfo struct {
	Offset        int64 // absolute file offset of the block
	Length        int   // bytes, header and checksum included
	Points        int
	MinTs, MaxTs  int64
	TsEncoding    TsEncoding
	ValueEncoding ValueEncoding
	TsBytes       int // timestamp payload bytes
	ValueBytes    int // value payload bytes
	// Columns is how many series share the block (format v3; 1 before), Column this
	// series' place among them. The timestamp payload is shared: count it once a block.
	Columns, Column int
}

// BlockInfo reads the record of index entry e and lists its blocks, checking their
// headers and checksums but decoding nothing: what a time-range reader would skip, and
// which encodings the writer chose.
func (r *Reader) BlockInfo(e IndexEntry) ([]BlockInfo, error) {
	bi, err := r.blockInfo(e)
	return bi, named(err, r.name)
}

func (r *Reader) blockInfo(e IndexEntry) ([]BlockInfo, error) {
	if r.v3 != nil {
		i := searchIndex(r.entries, e.Key)
		if i < 0 {
			return nil, fmt.Errorf("block info of series %v: %w", e.Key, ErrNotFound)
		}
		return r.blockInfo3(i)
	}
	if e.Length <= 0 || e.Offset < 0 || e.Offset > r.size || e.Length > r.size-e.Offset {
		return nil, corrupt(e.Offset, "series record", ErrOutOfRange, "length %d outside file of %d bytes", e.Length, r.size)
	}
	rec := make([]byte, e.Length)
	if err := readFull(r.r, rec, e.Offset); err != nil {
		return nil, fmt.Errorf("read series %v at %d: %w", e.Key, e.Offset, err)
	}
	_, _, rest, err := parseSeriesHeader(rec, e.Offset, nil)
	if err != nil {
		return nil, err
	}
	var out []BlockInfo
	var h blockHeader
	for blk := 0; len(rest) > 0; blk++ {
		boff := e.Offset + int64(len(rec)-len(rest))
		payload, err := h.Unmarshal(rest, r.version)
		if err != nil {
			return out, &CorruptFileError{Offset: boff, What: blockWhat(e.Key, blk), Err: err}
		}
		blen := len(rest) - len(payload) + h.tsLen + h.valLen
		if got, want := checksum(rest[:blen]), binary.LittleEndian.Uint32(rest[blen:]); got != want {
			return out, corrupt(boff, blockWhat(e.Key, blk), ErrChecksum, "crc32c %#08x, stored %#08x", got, want)
		}
		out = append(out, BlockInfo{
			Offset: boff, Length: blen + 4, Points: h.count, MinTs: h.minTs, MaxTs: h.maxTs,
			TsEncoding: h.tsEnc, ValueEncoding: h.valEnc, TsBytes: h.tsLen, ValueBytes: h.valLen,
			Columns: 1,
		})
		rest = rest[blen+4:]
	}
	return out, nil
}
