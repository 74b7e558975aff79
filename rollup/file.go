package rollup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
)

// File layout (docs/format/rollup.md):
//
//	header   magic "TRLP" | version u16 | reserved u16 | resolution ms i64      16 bytes
//	sections one complete series file per kind, back to back
//	table    count u8 | count × (kind u8 | offset u64 | length u64)
//	trailer  table offset u64 | crc32c(header, table) u32 | magic "TRLP"       16 bytes
//
// All integers little-endian. Every section holds the same series in the same order
// with one point per bucket (ts = bucket start), except Increase, which holds only the
// counters; tags are stored in the Count section only.
const (
	magic       = "TRLP"
	Version     = 1
	headerSize  = 16
	trailerSize = 16
	entrySize   = 17
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt wraps every error about a rollup file's bytes.
var ErrCorrupt = errors.New("corrupt rollup file")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Writer builds one rollup file in memory. Append series in strictly increasing key
// order, then Bytes. Not safe for concurrent use.
type Writer struct {
	res    int64
	bufs   [len(kindNames)]bytes.Buffer
	ws     [len(kindNames)]*encoder.Writer
	ts     []int64
	vals   []float64
	series int64
	points int64
	err    error
}

// NewWriter returns a Writer of a rollup file at resolution res (ms); opts go to each
// section's series writer.
func NewWriter(res int64, opts ...encoder.Opt) *Writer {
	w := &Writer{res: res}
	if res <= 0 {
		w.err = fmt.Errorf("rollup writer: resolution %d ms: want a positive value", res)
	}
	for _, k := range Kinds {
		w.ws[k] = encoder.NewWriter(&w.bufs[k], opts...)
	}
	return w
}

// Append adds the buckets of one series (Start strictly increasing, at least one);
// counter says whether its Increase is kept.
func (w *Writer) Append(key columnar.SeriesKey, tags []string, buckets []Bucket, counter bool) error {
	if w.err != nil {
		return w.err
	}
	if len(buckets) == 0 {
		return nil
	}
	w.ts = w.ts[:0]
	for i := range buckets {
		if BucketStart(buckets[i].Start, w.res) != buckets[i].Start {
			w.err = fmt.Errorf("rollup writer: series %v: bucket %d is not aligned to %d ms", key, buckets[i].Start, w.res)
			return w.err
		}
		w.ts = append(w.ts, buckets[i].Start)
	}
	for _, k := range Kinds {
		if k == Increase && !counter {
			continue
		}
		w.vals = w.vals[:0]
		for i := range buckets {
			w.vals = append(w.vals, buckets[i].value(k))
		}
		var t []string
		if k == Count {
			t = tags
		}
		if err := w.ws[k].Append(key, t, w.ts, w.vals); err != nil {
			w.err = fmt.Errorf("rollup writer: %s section: %w", k, err)
			return w.err
		}
	}
	w.series++
	w.points += int64(len(buckets))
	return nil
}

// Series and Buckets return what was appended.
func (w *Writer) Series() int64  { return w.series }
func (w *Writer) Buckets() int64 { return w.points }

// Bytes finishes the file and returns it.
func (w *Writer) Bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	out := make([]byte, headerSize, 1<<12)
	copy(out, magic)
	binary.LittleEndian.PutUint16(out[4:], Version)
	binary.LittleEndian.PutUint64(out[8:], uint64(w.res))
	type ent struct {
		k        Kind
		off, len uint64
	}
	var table []ent
	for _, k := range Kinds {
		if err := w.ws[k].Close(); err != nil {
			return nil, fmt.Errorf("rollup writer: %s section: %w", k, err)
		}
		if k == Increase && w.ws[k].Stats().Series == 0 {
			continue
		}
		table = append(table, ent{k, uint64(len(out)), uint64(w.bufs[k].Len())})
		out = append(out, w.bufs[k].Bytes()...)
	}
	tableOff := len(out)
	out = append(out, byte(len(table)))
	for _, e := range table {
		out = append(out, byte(e.k))
		out = binary.LittleEndian.AppendUint64(out, e.off)
		out = binary.LittleEndian.AppendUint64(out, e.len)
	}
	crc := crc32.Update(crc32.Checksum(out[:headerSize], castagnoli), castagnoli, out[tableOff:])
	out = binary.LittleEndian.AppendUint64(out, uint64(tableOff))
	out = binary.LittleEndian.AppendUint32(out, crc)
	out = append(out, magic...)
	return out, nil
}

// Reader reads one rollup file.
type Reader struct {
	res      int64
	sections [len(kindNames)]*encoder.Reader
}

// Open checks a rollup file's header, table and trailer and opens its sections.
func Open(r io.ReaderAt, size int64) (*Reader, error) {
	if size < headerSize+1+trailerSize {
		return nil, corrupt("%d bytes, shorter than an empty file", size)
	}
	var hdr [headerSize]byte
	var tr [trailerSize]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, fmt.Errorf("read rollup header: %w", err)
	}
	if _, err := r.ReadAt(tr[:], size-trailerSize); err != nil {
		return nil, fmt.Errorf("read rollup trailer: %w", err)
	}
	if string(hdr[:4]) != magic || string(tr[12:]) != magic {
		return nil, corrupt("bad magic (not a rollup file, or its end is damaged)")
	}
	if v := binary.LittleEndian.Uint16(hdr[4:]); v != Version {
		return nil, corrupt("version %d: this reader knows version %d", v, Version)
	}
	res := int64(binary.LittleEndian.Uint64(hdr[8:]))
	if res <= 0 {
		return nil, corrupt("resolution %d ms at offset 8", res)
	}
	tableOff := int64(binary.LittleEndian.Uint64(tr[:8]))
	if tableOff < headerSize || tableOff >= size-trailerSize {
		return nil, corrupt("table offset %d outside [%d, %d)", tableOff, headerSize, size-trailerSize)
	}
	table := make([]byte, size-trailerSize-tableOff)
	if _, err := r.ReadAt(table, tableOff); err != nil {
		return nil, fmt.Errorf("read rollup table: %w", err)
	}
	if crc := crc32.Update(crc32.Checksum(hdr[:], castagnoli), castagnoli, table); crc != binary.LittleEndian.Uint32(tr[8:]) {
		return nil, corrupt("header and table checksum %08x, trailer says %08x", crc, binary.LittleEndian.Uint32(tr[8:]))
	}
	n := int(table[0])
	if len(table) != 1+n*entrySize {
		return nil, corrupt("table of %d bytes at offset %d holds %d entries of %d bytes", len(table), tableOff, n, entrySize)
	}
	rd := &Reader{res: res}
	end := int64(headerSize)
	for i := 0; i < n; i++ {
		e := table[1+i*entrySize:]
		k := Kind(e[0])
		off, ln := int64(binary.LittleEndian.Uint64(e[1:])), int64(binary.LittleEndian.Uint64(e[9:]))
		switch {
		case !k.IsValid():
			return nil, corrupt("table entry %d: unknown section kind %d", i, e[0])
		case rd.sections[k] != nil:
			return nil, corrupt("table entry %d: section %s twice", i, k)
		case off != end || ln <= 0 || ln > tableOff-off:
			return nil, corrupt("table entry %d: section %s at [%d, +%d) is not the next section in [%d, %d)", i, k, off, ln, end, tableOff)
		}
		s, err := encoder.Open(io.NewSectionReader(r, off, ln), ln)
		if err != nil {
			return nil, fmt.Errorf("%w: %s section at offset %d: %w", ErrCorrupt, k, off, err)
		}
		rd.sections[k] = s
		end = off + ln
	}
	if end != tableOff {
		return nil, corrupt("sections end at %d, the table starts at %d", end, tableOff)
	}
	for _, k := range Kinds[:6] {
		if rd.sections[k] == nil {
			return nil, corrupt("no %s section", k)
		}
		if len(rd.sections[k].Index()) != len(rd.sections[Count].Index()) {
			return nil, corrupt("%s section holds %d series, count section %d", k, len(rd.sections[k].Index()), len(rd.sections[Count].Index()))
		}
	}
	return rd, nil
}

// Resolution is the file's resolution in ms.
func (r *Reader) Resolution() int64 { return r.res }

// Series returns the number of series.
func (r *Reader) Series() int { return len(r.sections[Count].Index()) }

// Index is the count section's index: every series, with its bucket count and range.
func (r *Reader) Index() []encoder.IndexEntry { return r.sections[Count].Index() }

// Series is one rolled-up series.
type Series struct {
	Key     columnar.SeriesKey
	Tags    []string
	Counter bool
	Buckets []Bucket
}

// Iterator walks the file's series in key order.
type Iterator struct {
	its  [len(kindNames)]*encoder.SeriesIterator
	inc  bool // the increase iterator is at a series not yet taken
	done bool
	cur  Series
	err  error
}

// Iterator returns an iterator over every series, checking that the sections agree.
func (r *Reader) Iterator() *Iterator {
	it := &Iterator{}
	for _, k := range Kinds {
		if s := r.sections[k]; s != nil {
			it.its[k] = s.Iterator(nil)
		}
	}
	if it.its[Increase] != nil {
		it.inc = it.its[Increase].Next()
		it.err = it.its[Increase].Err()
	}
	return it
}

// Next moves to the next series.
func (it *Iterator) Next() bool {
	if it.err != nil || it.done {
		return false
	}
	if !it.its[Count].Next() {
		it.err = it.its[Count].Err()
		it.done = true
		if it.err == nil && it.inc {
			it.err = corrupt("increase section holds series %v that the count section does not", it.its[Increase].At().Key)
		}
		return false
	}
	c := it.its[Count].At()
	it.cur.Key, it.cur.Tags = c.Key, append(it.cur.Tags[:0], c.Tags...)
	it.cur.Buckets = it.cur.Buckets[:0]
	for i, ts := range c.Ts {
		it.cur.Buckets = append(it.cur.Buckets, Bucket{Start: ts, Count: uint64(c.Values[i])})
		if c.Values[i] < 1 || c.Values[i] != math.Trunc(c.Values[i]) {
			it.err = corrupt("series %v bucket %d: count %v", c.Key, ts, c.Values[i])
			return false
		}
	}
	for _, k := range Kinds[1:6] {
		if !it.fill(k, true) {
			return false
		}
	}
	it.cur.Counter = it.inc && it.its[Increase].At().Key == c.Key
	if it.cur.Counter {
		if !it.fill(Increase, false) {
			return false
		}
		it.inc = it.its[Increase].Next()
		if it.err = it.its[Increase].Err(); it.err != nil {
			return false
		}
	}
	return true
}

// fill sets kind k's value of every bucket from its section, which must be at the same
// series with the same buckets; advance moves that section first.
func (it *Iterator) fill(k Kind, advance bool) bool {
	s := it.its[k]
	if advance && !s.Next() {
		it.err = s.Err()
		if it.err == nil {
			it.err = corrupt("%s section ends before series %v", k, it.cur.Key)
		}
		return false
	}
	x := s.At()
	if x.Key != it.cur.Key || len(x.Ts) != len(it.cur.Buckets) {
		it.err = corrupt("%s section is at series %v with %d buckets, count section at %v with %d", k, x.Key, len(x.Ts), it.cur.Key, len(it.cur.Buckets))
		return false
	}
	for i, ts := range x.Ts {
		if ts != it.cur.Buckets[i].Start {
			it.err = corrupt("%s section: series %v bucket %d at %d, count section at %d", k, x.Key, i, ts, it.cur.Buckets[i].Start)
			return false
		}
		it.cur.Buckets[i].set(k, x.Values[i])
	}
	return true
}

// At returns the current series, valid until the next call to Next.
func (it *Iterator) At() *Series { return &it.cur }

// Err returns the error that stopped the iterator.
func (it *Iterator) Err() error { return it.err }
