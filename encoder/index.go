package encoder

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"github.com/tailor-metrics/tailor/columnar"
)

const (
	indexHeaderSize = 16 // series count u64, org range count u64
	minIndex3Size   = 4  // v3: no series, no blocks, a plain empty body
	indexEntrySize  = 60 // key 20, offset u64, length u64, points u64, minTs i64, maxTs i64
	orgRangeSize    = 20 // org u32, first u64, count u64
)

// IndexEntry locates one series in a file. Entries are in strictly increasing key order.
type IndexEntry struct {
	Key    columnar.SeriesKey
	Offset int64 // absolute file offset of the series record
	Length int64 // bytes of the series record (header and blocks)
	Points int64 // points in the series, > 0
	MinTs  int64 // first timestamp
	MaxTs  int64 // last timestamp
}

// OrgRange is the run of index entries that belong to one org: entries
// [First, First+Count) of Index().
type OrgRange struct {
	Org   uint32
	First int
	Count int
}

// appendIndex appends the index: a count header, the fixed-size entries (so a reader can
// binary-search them in place), then the org ranges.
func appendIndex(dst []byte, entries []IndexEntry, orgs []OrgRange) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(entries)))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(orgs)))
	for i := range entries {
		e := &entries[i]
		dst = appendKey(dst, e.Key)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.Offset))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.Length))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.Points))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.MinTs))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(e.MaxTs))
	}
	for _, o := range orgs {
		dst = binary.LittleEndian.AppendUint32(dst, o.Org)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(o.First))
		dst = binary.LittleEndian.AppendUint64(dst, uint64(o.Count))
	}
	return dst
}

// parseIndex decodes and validates an index that starts at absolute offset off. Series
// records must lie in [dataStart, off), in key order, without overlapping; org ranges
// must be exactly the runs of equal orgs in the entries. Sizes are checked against
// len(src) before anything is allocated.
func parseIndex(src []byte, off, dataStart int64) ([]IndexEntry, []OrgRange, error) {
	const what = "index"
	if len(src) < indexHeaderSize {
		return nil, nil, corrupt(off, what, ErrTruncated, "%d bytes, need %d", len(src), indexHeaderSize)
	}
	n := binary.LittleEndian.Uint64(src)
	m := binary.LittleEndian.Uint64(src[8:])
	body := uint64(len(src) - indexHeaderSize)
	if n > body/indexEntrySize || m > (body-n*indexEntrySize)/orgRangeSize ||
		n*indexEntrySize+m*orgRangeSize != body {
		return nil, nil, corrupt(off, what, ErrOutOfRange, "%d entries and %d org ranges do not fill %d bytes", n, m, body)
	}
	entries := make([]IndexEntry, n)
	b := src[indexHeaderSize:]
	prevEnd := dataStart
	for i := range entries {
		eoff := off + indexHeaderSize + int64(i)*indexEntrySize
		e := &entries[i]
		e.Key = parseKey(b)
		o := binary.LittleEndian.Uint64(b[20:])
		l := binary.LittleEndian.Uint64(b[28:])
		p := binary.LittleEndian.Uint64(b[36:])
		e.MinTs = int64(binary.LittleEndian.Uint64(b[44:]))
		e.MaxTs = int64(binary.LittleEndian.Uint64(b[52:]))
		b = b[indexEntrySize:]
		w := fmt.Sprintf("index entry %d", i)
		if i > 0 && !entries[i-1].Key.Less(e.Key) {
			return nil, nil, corrupt(eoff, w, ErrOutOfRange, "key %v does not follow %v", e.Key, entries[i-1].Key)
		}
		// Records are written back to back, so each must start where the previous ended
		// (or later) and end before the index.
		if o < uint64(prevEnd) || o > uint64(off) || l == 0 || l > uint64(off)-o {
			return nil, nil, corrupt(eoff, w, ErrOutOfRange, "record at %d length %d outside [%d, %d)", o, l, prevEnd, off)
		}
		if p == 0 || e.MinTs > e.MaxTs || (p == 1) != (e.MinTs == e.MaxTs) {
			return nil, nil, corrupt(eoff, w, ErrOutOfRange, "%d points in [%d, %d]", p, e.MinTs, e.MaxTs)
		}
		e.Offset, e.Length, e.Points = int64(o), int64(l), int64(p)
		prevEnd = int64(o + l)
	}
	orgs := make([]OrgRange, m)
	next := 0
	for i := range orgs {
		ooff := off + indexHeaderSize + int64(n)*indexEntrySize + int64(i)*orgRangeSize
		org := binary.LittleEndian.Uint32(b)
		first := binary.LittleEndian.Uint64(b[4:])
		count := binary.LittleEndian.Uint64(b[12:])
		b = b[orgRangeSize:]
		w := fmt.Sprintf("org range %d", i)
		if first != uint64(next) || count == 0 || count > n-first {
			return nil, nil, corrupt(ooff, w, ErrOutOfRange, "entries [%d, +%d) do not continue at %d of %d", first, count, next, n)
		}
		end := int(first + count)
		if entries[first].Key.Org != org || entries[end-1].Key.Org != org || (end < int(n) && entries[end].Key.Org == org) {
			return nil, nil, corrupt(ooff, w, ErrOutOfRange, "org %d does not match entries [%d, %d)", org, first, end)
		}
		orgs[i] = OrgRange{Org: org, First: int(first), Count: int(count)}
		next = end
	}
	if next != int(n) {
		return nil, nil, corrupt(off, what, ErrOutOfRange, "org ranges cover %d of %d entries", next, n)
	}
	return entries, orgs, nil
}

// buildOrgRanges computes the org ranges of key-sorted entries.
func buildOrgRanges(dst []OrgRange, entries []IndexEntry) []OrgRange {
	for i := 0; i < len(entries); {
		j := i + 1
		for j < len(entries) && entries[j].Key.Org == entries[i].Key.Org {
			j++
		}
		dst = append(dst, OrgRange{Org: entries[i].Key.Org, First: i, Count: j - i})
		i = j
	}
	return dst
}

// searchIndex returns the position of key in entries, or -1.
func searchIndex(entries []IndexEntry, key columnar.SeriesKey) int {
	i := sort.Search(len(entries), func(i int) bool { return !entries[i].Key.Less(key) })
	if i < len(entries) && entries[i].Key == key {
		return i
	}
	return -1
}

// The v3 index (docs/format/series.md, "Index (v3)"): a small header, then a body that is
// stored plain or as one zstd frame. The body lists the blocks (so a reader can fetch one
// without reading the others) and then each series: its key as deltas from the previous
// key, its tags, and the blocks that hold its points. A series' column in a block is not
// stored: columns are in key order, so it is the number of earlier series in the block.
//
//	series count uvarint | block count uvarint | body encoding u8 (0 or zstd) |
//	body length uvarint | body
const (
	// maxIndexRatio bounds how much the index body may expand when decompressed
	// (indexBodySlack more): a reader allocates no more than that for a hostile index,
	// and a writer stores the body plain when zstd would compress it further.
	maxIndexRatio  = 64
	indexBodySlack = 1 << 20
	// Every block entry takes at least 5 bytes (one per field) and every series entry 5
	// (key 3, tag count 1, ref count 1) plus one per ref, so claimed counts are checked
	// against the body before anything is sized by them.
	minBlockEntry  = 5
	minSeriesEntry = 6
	// minBlockBytes is the smallest v3 block: 6 header bytes, a column entry, a one-byte
	// payload and the checksum.
	minBlockBytes = 12
)

// blockEntry is one v3 block as the index describes it.
type blockEntry struct {
	off          int64
	length       int
	count        int
	minTs, maxTs int64
	cols         int
}

// index3 is what a v3 index adds to the entries: where each block is, which blocks
// (and which column in each) hold each series, and the series' tags.
type index3 struct {
	blocks   []blockEntry
	refs     []uint32 // block of each ref, series after series
	refCols  []uint32 // column of each ref in its block
	refStart []int    // series i's refs are refs[refStart[i]:refStart[i+1]]
	lastUse  []int    // the last series (in key order) with a column in each block
	tagStart []int    // series i's tags are body[tagStart[i]:...], a count then the tags
	body     []byte
}

// seriesRefs returns the block refs of series i.
func (x *index3) seriesRefs(i int) ([]uint32, []uint32) {
	return x.refs[x.refStart[i]:x.refStart[i+1]], x.refCols[x.refStart[i]:x.refStart[i+1]]
}

// appendKeyDelta appends key k as a delta from prev: the org as a difference, the metric
// as a difference when the org repeats (else as it is), the context as a difference less
// one when org and metric repeat (else as it is). first says there is no prev.
func appendKeyDelta(dst []byte, prev, k columnar.SeriesKey, first bool) []byte {
	if first {
		prev = columnar.SeriesKey{}
	}
	dst = binary.AppendUvarint(dst, uint64(k.Org-prev.Org))
	if first || k.Org != prev.Org {
		dst = binary.AppendUvarint(dst, k.Metric)
		return binary.AppendUvarint(dst, k.Context)
	}
	dst = binary.AppendUvarint(dst, k.Metric-prev.Metric)
	if k.Metric != prev.Metric {
		return binary.AppendUvarint(dst, k.Context)
	}
	return binary.AppendUvarint(dst, k.Context-prev.Context-1)
}

// readKeyDelta is appendKeyDelta's inverse; it fails when the deltas do not give a key
// strictly above prev.
func readKeyDelta(d *decbuf, prev columnar.SeriesKey, first bool) (columnar.SeriesKey, error) {
	if first {
		prev = columnar.SeriesKey{}
	}
	do, m, c := d.Uvarint(), d.Uvarint(), d.Uvarint()
	if d.Err != nil {
		return columnar.SeriesKey{}, d.Err
	}
	if do > uint64(math.MaxUint32-prev.Org) {
		return columnar.SeriesKey{}, fmt.Errorf("org delta %d after org %d: %w", do, prev.Org, ErrOutOfRange)
	}
	k := columnar.SeriesKey{Org: prev.Org + uint32(do), Metric: m, Context: c}
	if first || do != 0 {
		return k, nil
	}
	if m > math.MaxUint64-prev.Metric {
		return k, fmt.Errorf("metric delta %d after metric %d: %w", m, prev.Metric, ErrOutOfRange)
	}
	k.Metric = prev.Metric + m
	if m != 0 {
		return k, nil
	}
	if prev.Context == math.MaxUint64 || c > math.MaxUint64-prev.Context-1 {
		return k, fmt.Errorf("context delta %d after context %d: %w", c, prev.Context, ErrOutOfRange)
	}
	k.Context = prev.Context + 1 + c
	return k, nil
}

// indexSeries3 is what the writer indexes of one v3 series: its encoded tags,
// tags[tagLo:tagHi], and its blocks, refs[refLo:refHi].
type indexSeries3 struct {
	tagLo, tagHi int
	refLo, refHi int
}

// appendIndex3 appends a v3 index. The body goes through zstd when that makes it smaller
// without expanding it more than maxIndexRatio; scratch holds the plain body.
func appendIndex3(dst []byte, entries []IndexEntry, series []indexSeries3, tags []byte, refs []uint32, blocks []blockEntry, scratch *[]byte) []byte {
	body := (*scratch)[:0]
	var prevTs int64
	for _, b := range blocks {
		body = binary.AppendUvarint(body, uint64(b.length))
		body = binary.AppendUvarint(body, uint64(b.count))
		body = binary.AppendVarint(body, b.minTs-prevTs)
		body = binary.AppendUvarint(body, uint64(b.maxTs-b.minTs))
		body = binary.AppendUvarint(body, uint64(b.cols))
		prevTs = b.minTs
	}
	prevRef := int64(-1)
	for i := range entries {
		var prev columnar.SeriesKey
		if i > 0 {
			prev = entries[i-1].Key
		}
		is := series[i]
		body = appendKeyDelta(body, prev, entries[i].Key, i == 0)
		body = append(body, tags[is.tagLo:is.tagHi]...)
		body = binary.AppendUvarint(body, uint64(is.refHi-is.refLo))
		for _, r := range refs[is.refLo:is.refHi] {
			body = binary.AppendVarint(body, int64(r)-prevRef)
			prevRef = int64(r)
		}
	}
	*scratch = body
	dst = binary.AppendUvarint(dst, uint64(len(entries)))
	dst = binary.AppendUvarint(dst, uint64(len(blocks)))
	if len(body) >= zstdMinBytes {
		hdr := len(dst)
		dst = append(dst, zstdFlag)
		dst = binary.AppendUvarint(dst, uint64(len(body)))
		start := len(dst)
		dst = zstdCompress(dst, body)
		if z := len(dst) - start; z < len(body) && len(body) <= maxIndexRatio*z+indexBodySlack {
			return dst
		}
		dst = dst[:hdr]
	}
	dst = append(dst, 0)
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// parseIndex3 decodes and validates a v3 index that starts at absolute offset off; the
// blocks fill [dataStart, off) exactly. Every claimed count and length is checked against
// the bytes before it sizes an allocation.
func parseIndex3(src []byte, off, dataStart int64, zbuf *[]byte) ([]IndexEntry, *index3, error) {
	const what = "index"
	d := newDecbuf(src)
	n := d.Uvarint()
	nb := d.Uvarint()
	enc := d.U8()
	l := d.Uvarint()
	if d.Err != nil {
		return nil, nil, corrupt(off, what, ErrTruncated, "header: %v", d.Err)
	}
	hoff := off + int64(len(src)-len(d.B))
	stored := uint64(len(d.B))
	var body []byte
	switch enc {
	case 0:
		if l != stored {
			return nil, nil, corrupt(off, what, ErrOutOfRange, "plain body of %d bytes in %d", l, stored)
		}
		body = d.B
	case zstdFlag:
		if l > maxIndexRatio*stored+indexBodySlack {
			return nil, nil, corrupt(off, what, ErrOutOfRange, "body of %d bytes from %d compressed, more than %dx", l, stored, maxIndexRatio)
		}
		if uint64(cap(*zbuf)) < l {
			*zbuf = make([]byte, 0, l)
		}
		out, err := indexDecoder().DecodeAll(d.B, (*zbuf)[:0:l])
		if err != nil || uint64(len(out)) != l {
			return nil, nil, corrupt(hoff, what, ErrOutOfRange, "zstd body of %d bytes does not decode to %d: %d bytes, %v", stored, l, len(out), err)
		}
		body = out
	default:
		return nil, nil, corrupt(hoff-int64(uvarintLen(l))-1, what, ErrOutOfRange, "body encoding %#x", enc)
	}
	blen := uint64(len(body))
	if nb > blen/minBlockEntry || n > blen/minSeriesEntry || nb > uint64(off-dataStart)/minBlockBytes || (n == 0) != (nb == 0) {
		return nil, nil, corrupt(off, what, ErrOutOfRange, "%d series and %d blocks in a body of %d bytes and %d bytes of blocks", n, nb, blen, off-dataStart)
	}
	x := &index3{blocks: make([]blockEntry, nb), body: body}
	bd := newDecbuf(body)
	at := func() int { return len(body) - len(bd.B) }
	pos := dataStart
	var prevTs int64
	for i := range x.blocks {
		b := &x.blocks[i]
		ln, cnt, dts, span, cols := bd.Uvarint(), bd.Uvarint(), bd.Varint(), bd.Uvarint(), bd.Uvarint()
		if bd.Err != nil {
			return nil, nil, corrupt(off, fmt.Sprintf("index block %d", i), ErrTruncated, "%v", bd.Err)
		}
		b.minTs = prevTs + dts
		prevTs = b.minTs
		if err := checkCountSpan(cnt, b.minTs, span); err != nil {
			return nil, nil, &CorruptFileError{Offset: off, What: fmt.Sprintf("index block %d", i), Err: err}
		}
		if ln < minBlockBytes || ln > uint64(off-pos) || cols == 0 || cols > MaxBlockColumns || cols > ln/2 {
			return nil, nil, corrupt(off, fmt.Sprintf("index block %d", i), ErrOutOfRange, "block at %d of %d bytes with %d columns outside [%d, %d)", pos, ln, cols, pos, off)
		}
		b.off, b.length, b.count, b.maxTs, b.cols = pos, int(ln), int(cnt), b.minTs+int64(span), int(cols)
		pos += int64(ln)
	}
	if pos != off {
		return nil, nil, corrupt(off, what, ErrOutOfRange, "blocks end at %d, the index starts at %d", pos, off)
	}
	// Every column belongs to exactly one series and every series has one at least, so
	// the series are at most the columns, which the blocks' bytes bound: the entries are
	// sized by bytes the file has, not by the claim alone.
	cols := uint64(0)
	for _, b := range x.blocks {
		cols += uint64(b.cols)
	}
	if n > cols {
		return nil, nil, corrupt(off, what, ErrOutOfRange, "%d series in %d block columns", n, cols)
	}
	entries := make([]IndexEntry, n)
	x.refStart = make([]int, n+1)
	x.tagStart = make([]int, n)
	used := make([]uint32, nb) // columns of each block given out so far
	x.lastUse = make([]int, nb)
	prevRef := int64(-1)
	for i := range entries {
		w := func() string { return fmt.Sprintf("index series %d", i) }
		e := &entries[i]
		var prev columnar.SeriesKey
		if i > 0 {
			prev = entries[i-1].Key
		}
		k, err := readKeyDelta(&bd, prev, i == 0)
		if err != nil {
			return nil, nil, corrupt(off, w(), ErrOutOfRange, "key: %v", err)
		}
		e.Key = k
		x.tagStart[i] = at()
		nt := bd.Uvarint()
		if bd.Err == nil && nt > uint64(len(bd.B)) {
			return nil, nil, corrupt(off, w(), ErrOutOfRange, "%d tags in %d bytes", nt, len(bd.B))
		}
		for range nt {
			bd.Bytes64(bd.Uvarint())
		}
		nr := bd.Uvarint()
		if bd.Err != nil {
			return nil, nil, corrupt(off, w(), ErrTruncated, "%v", bd.Err)
		}
		if nr == 0 || nr > uint64(len(bd.B)) {
			return nil, nil, corrupt(off, w(), ErrOutOfRange, "%d blocks in %d bytes", nr, len(bd.B))
		}
		x.refStart[i] = len(x.refs)
		var last *blockEntry
		lo, hi := int64(math.MaxInt64), int64(0)
		for range nr {
			id := prevRef + bd.Varint()
			if bd.Err != nil {
				return nil, nil, corrupt(off, w(), ErrTruncated, "%v", bd.Err)
			}
			if id < 0 || id >= int64(nb) {
				return nil, nil, corrupt(off, w(), ErrOutOfRange, "block %d of %d", id, nb)
			}
			prevRef = id
			b := &x.blocks[id]
			if used[id] == uint32(b.cols) {
				return nil, nil, corrupt(off, w(), ErrOutOfRange, "block %d has only %d columns", id, b.cols)
			}
			if last != nil && b.minTs <= last.maxTs {
				return nil, nil, corrupt(off, w(), ErrOutOfRange, "block %d starts at %d, not after %d", id, b.minTs, last.maxTs)
			}
			x.refs = append(x.refs, uint32(id))
			x.refCols = append(x.refCols, used[id])
			used[id]++
			x.lastUse[id] = i
			e.Points += int64(b.count)
			lo, hi = min(lo, b.off), max(hi, b.off+int64(b.length))
			if last == nil {
				e.MinTs = b.minTs
			}
			last = b
		}
		e.MaxTs = last.maxTs
		e.Offset, e.Length = lo, hi-lo
	}
	x.refStart[n] = len(x.refs)
	if len(bd.B) != 0 {
		return nil, nil, corrupt(off, what, ErrOutOfRange, "%d bytes after the last series", len(bd.B))
	}
	for i, u := range used {
		if int(u) != x.blocks[i].cols {
			return nil, nil, corrupt(off, fmt.Sprintf("index block %d", i), ErrOutOfRange, "%d columns, %d series use it", x.blocks[i].cols, u)
		}
	}
	return entries, x, nil
}
