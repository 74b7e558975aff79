package encoder

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// The dict value encoding (format v3): a block with few distinct values (counters that
// rarely change, capacities, states, quantized averages) stores each distinct bit pattern
// once, in increasing order, as a value column of its own, then one packed index a value.
// See docs/format/series.md, "dict".
//
//	distinct d uvarint | dictionary column: encoding u8, length uvarint, payload of the d
//	values | packed ints: count indices, each < d
//
// Measured on the real data (docs/format/series.md, "Decision rule"): a dictionary per
// block beat both a file-level dictionary (its larger indices cost more than the repeated
// entries saved) and one zstd window over all of a file's blocks (which found no repeats
// that a block's own dictionary had not).

// maxDictValues bounds the distinct values of a dictionary the writer builds. Past it,
// 13-bit indices and a 32 KiB dictionary lose to the other encodings on every block
// measured.
const maxDictValues = 4096

// valueSet collects the distinct bit patterns of a block: an open-addressing hash table
// reused from block to block, sized to the block (a Go map cost more than the rest of the
// block's encoding). A slot holds the pattern with its number, so a probe touches one
// cache line.
type valueSet struct {
	slots []valueSlot
	keys  []uint64 // the distinct patterns, first seen first
	mask  uint32
}

type valueSlot struct {
	key uint64
	id  uint32 // 1 + position in keys, 0 when empty
}

// reset prepares the set for a block of n values.
func (s *valueSet) reset(n int) {
	size := 16
	for size < 2*min(n, maxDictValues) {
		size <<= 1
	}
	if cap(s.slots) < size {
		s.slots = make([]valueSlot, size)
	} else {
		s.slots = s.slots[:size]
		clear(s.slots)
	}
	s.mask = uint32(size - 1)
	s.keys = s.keys[:0]
}

// id returns the first-seen number of pattern b, adding it when new, or -1 when the set
// already holds limit patterns.
func (s *valueSet) id(b uint64, limit int) int {
	i := uint32((b*0x9e3779b97f4a7c15)>>40) & s.mask
	for {
		sl := &s.slots[i]
		if sl.id == 0 {
			if len(s.keys) >= limit {
				return -1
			}
			s.keys = append(s.keys, b)
			sl.key, sl.id = b, uint32(len(s.keys))
			return len(s.keys) - 1
		}
		if sl.key == b {
			return int(sl.id - 1)
		}
		i = (i + 1) & s.mask
	}
}

// lookup returns the first-seen number of pattern b, which the set holds.
func (s *valueSet) lookup(b uint64) uint32 {
	i := uint32((b*0x9e3779b97f4a7c15)>>40) & s.mask
	for s.slots[i].key != b || s.slots[i].id == 0 {
		i = (i + 1) & s.mask
	}
	return s.slots[i].id - 1
}

// dictEncoder is one block's dictionary: the distinct values in increasing bit-pattern
// order and each value's index among them.
type dictEncoder struct {
	set    valueSet
	ids    []uint32 // first-seen number of each value
	count  []uint32 // values of each first-seen number
	sorted []uint64 // the distinct patterns in increasing order
	rank   []uint32 // first-seen number -> sorted position
	dict   []float64
	idx    []int64
	st     intStats
	runs   int // values that differ from the previous one, plus one
	// unique says analyze gave up because its first dictSampleValues values were
	// nearly all distinct: no dictionary, and few repeats for zstd's matches either.
	unique bool
}

// analyze builds the dictionary of vals, reporting false when it would hold more than
// limit values (then the encoding is out).
func (d *dictEncoder) analyze(vals []float64, limit int) bool {
	n := len(vals)
	d.set.reset(n)
	d.ids = slices.Grow(d.ids[:0], n)[:n]
	d.unique = false
	// Locals, not fields, in the loops: the compiler keeps them in registers, where it
	// reloads a field after every store that might alias it.
	ids := d.ids[:len(vals)]
	runs := 1
	prev := math.Float64bits(vals[0])
	prevID := uint32(0)
	for i, v := range vals {
		b := math.Float64bits(v)
		if b == prev && i > 0 {
			// A repeat of the previous value (the commonest case in blocks that take a
			// dictionary) has its number without a probe.
			ids[i] = prevID
		} else {
			if i > 0 {
				runs++
			}
			prev = b
			id := d.set.id(b, limit)
			if id < 0 {
				d.runs = runs
				return false
			}
			prevID = uint32(id)
			ids[i] = prevID
		}
		if i == dictSampleValues-1 && len(d.set.keys) > dictSampleValues*3/4 {
			d.runs = runs
			d.unique = true
			return false
		}
	}
	d.runs = runs
	keys := d.set.keys
	d.count = slices.Grow(d.count[:0], len(keys))[:len(keys)]
	count := d.count
	clear(count)
	for _, id := range ids {
		count[id]++
	}
	k := len(keys)
	// Sort the patterns themselves (a sort of plain integers, far faster than one through
	// a comparison of numbers), then find each one's number again in the set.
	d.sorted = append(d.sorted[:0], keys...)
	slices.Sort(d.sorted)
	d.rank = slices.Grow(d.rank[:0], k)[:k]
	d.dict = slices.Grow(d.dict[:0], k)[:k]
	for pos, b := range d.sorted {
		d.rank[d.set.lookup(b)] = uint32(pos)
		d.dict[pos] = math.Float64frombits(b)
	}
	d.idx = slices.Grow(d.idx[:0], n)[:n]
	idx, rank := d.idx[:len(ids)], d.rank
	for i, id := range ids {
		idx[i] = int64(rank[id])
	}
	d.st = intStats{divisor: 1, width: uint(bits.Len64(uint64(k - 1)))}
	return true
}

// runMatchBytes is about what zstd spends on each run of one repeated index beyond the
// index itself: a sequence of a literal length, a match length and a repeated offset.
const runMatchBytes = 1.5

// zstdEstimate estimates what zstd makes of the payload with the indices in byte planes,
// given the dictionary column's size: that column, then for the indices the smaller of
// their order-0 entropy (zstd's Huffman literals) and a runs model (each run of equal
// values costs an index and runMatchBytes), and a frame's tables.
func (d *dictEncoder) zstdEstimate(dictBytes int) int {
	// h = Σ c·log2(n/c) bits = n·log2(n) − Σ c·log2(c), with c·log2(c) from a table.
	n := float64(len(d.idx))
	xlog := xlog2xTable()
	h := n * math.Log2(n)
	for _, c := range d.count {
		if int(c) < len(xlog) {
			h -= xlog[c]
		} else {
			h -= float64(c) * math.Log2(float64(c))
		}
	}
	idx := min(h/8, float64(d.runs)*(h/n/8+runMatchBytes))
	return dictBytes + int(idx) + 32
}

// appendDictHeader appends the count and the encoded dictionary column.
func appendDictHeader(dst []byte, enc ValueEncoding, dict []byte, distinct int) []byte {
	dst = binary.AppendUvarint(dst, uint64(distinct))
	dst = append(dst, byte(enc))
	dst = binary.AppendUvarint(dst, uint64(len(dict)))
	return append(dst, dict...)
}

// decodeDict appends n values to dst, decoding the dictionary column with the rules of
// format version v.
func (bd *blockDecoder) decodeDict(dst []float64, src []byte, n int, v uint16) ([]float64, error) {
	d := newDecbuf(src)
	k := d.Uvarint()
	enc := ValueEncoding(d.U8())
	l := d.Uvarint()
	if d.Err != nil {
		return dst, fmt.Errorf("dict header: %w", d.Err)
	}
	// A dictionary of k values holds k distinct values of the block, and every encoding
	// takes at least a byte for every 8 values, so k is bounded by n and by the bytes.
	if k == 0 || k > uint64(n) || l > uint64(len(d.B)) {
		return dst, fmt.Errorf("dict: %d values (block of %d), column of %d bytes in %d: %w", k, n, l, len(d.B), ErrOutOfRange)
	}
	// The dictionary column takes no zstd stage of its own (the dict payload's covers it)
	// and no dictionary.
	if enc&ValueZstd != 0 || enc == ValueDict || !IsValidValueEncoding(v, enc) {
		return dst, fmt.Errorf("dict: dictionary encoded as %s: %w", enc, ErrOutOfRange)
	}
	col := d.Bytes64(l)
	var err error
	if bd.dict, err = bd.decodeColumn(bd.dict[:0], enc, col, int(k), v); err != nil {
		return dst, fmt.Errorf("dict: dictionary: %w", err)
	}
	for i := 1; i < len(bd.dict); i++ {
		if math.Float64bits(bd.dict[i]) <= math.Float64bits(bd.dict[i-1]) {
			return dst, fmt.Errorf("dict: entry %d does not follow entry %d in bit order: %w", i, i-1, ErrOutOfRange)
		}
	}
	xs, err := decodeAllInts(bd.ints[:0], d.B, n)
	bd.ints = xs
	if err != nil {
		return dst, fmt.Errorf("dict indices: %w", err)
	}
	start := len(dst)
	dst = growFloat64(dst, n)
	out := dst[start:]
	dict := bd.dict
	for i, x := range xs {
		if uint64(x) >= k {
			return dst[:start], fmt.Errorf("dict: index %d of value %d, %d entries: %w", x, i, k, ErrOutOfRange)
		}
		out[i] = dict[x]
	}
	return dst, nil
}
