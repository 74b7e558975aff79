package encoder

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/tailor-metrics/tailor/columnar"
)

const (
	indexHeaderSize = 16 // series count u64, org range count u64
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
