package encoder

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// The alp-rd value encoding (format v3), after ALP's scheme for "real doubles" (Afroozeh
// and Boncz, SIGMOD 2024): values with 15 to 17 significant digits have no decimal
// structure, but their high bits (sign, exponent, leading mantissa bits) take few
// distinct values within a block. Each value's bit pattern is cut into a left part of
// 64 − r bits and a right part of r bits; the left parts come from a dictionary of at most
// 8 entries (an index of 0 to 3 bits a value), the rare left part outside it is an
// exception, and the right parts are bit-packed as they are. See docs/format/series.md,
// "alp-rd".
//
//	right width r u8 (48..63) | dictionary size d u8 (1..8) | d left parts u16 |
//	exception count k uvarint | k positions as uvarint gaps | k left parts u16 |
//	indices: count × bits.Len(d−1) bits | right parts: count × r bits

const (
	alprdMinRight = 48 // left parts of at most 16 bits
	alprdMaxDict  = 8
	alprdSamples  = 256
	alprdExcBits  = 28 // an exception: its position gap (about a byte) and its u16 left part
)

// alprdEncoder holds one block's split.
type alprdEncoder struct {
	right  uint
	dict   [alprdMaxDict]uint16
	dictN  int
	width  uint    // index bits
	codes  []uint8 // dictionary index of each value, or alprdMaxDict for an exception
	excN   int
	size   int
	sample []uint16
	tmp    []uint16
	runs   []alprdRun
	lookup *[1 << 16]uint8 // all zero between blocks (analyze)
}

type alprdRun struct {
	left  uint16
	count int
}

// analyze chooses the split and the dictionary on a sample of vals (the ALP way), then
// sizes the whole block exactly. It returns the payload size.
func (a *alprdEncoder) analyze(vals []float64) int {
	n := len(vals)
	step := max(1, n/alprdSamples)
	a.sample = a.sample[:0]
	for i := 0; i < n; i += step {
		a.sample = append(a.sample, uint16(math.Float64bits(vals[i])>>48))
	}
	m := len(a.sample)
	a.tmp = sortUint16s(a.sample, a.tmp)
	// The distinct top 16 bits with their counts, in increasing order; for each wider
	// right part, the runs of the shorter left parts merge adjacent ones, since the
	// sample stays sorted by any prefix of its top 16 bits.
	a.runs = a.runs[:0]
	for i := 0; i < m; {
		l := a.sample[i]
		j := i + 1
		for j < m && a.sample[j] == l {
			j++
		}
		a.runs = append(a.runs, alprdRun{left: l, count: j - i})
		i = j
	}
	bestCost := math.MaxInt
	var bestRuns [alprdMaxDict]alprdRun
	bestD := 0
	for r := uint(alprdMinRight); r <= 63; r++ {
		if r > alprdMinRight {
			a.runs = mergeRuns(a.runs)
		}
		// The most frequent left parts first, ties in increasing order: what a stable
		// sort by count would put first, but only the dictionary's worth of them.
		top := topRuns(a.runs)
		covered := 0
		for d := 1; d <= alprdMaxDict && d <= len(a.runs); d++ {
			covered += top[d-1].count
			if d&(d-1) != 0 && d != len(a.runs) {
				continue // a dictionary fills its index width
			}
			w := uint(bits.Len(uint(d - 1)))
			cost := m*int(r+w) + (m-covered)*alprdExcBits + d*16
			if cost < bestCost {
				bestCost, bestD = cost, d
				a.right = r
				bestRuns = top
			}
		}
	}
	a.dictN = bestD
	for i := range bestD {
		a.dict[i] = bestRuns[i].left
	}
	slices.Sort(a.dict[:bestD]) // a canonical order
	a.width = uint(bits.Len(uint(bestD - 1)))

	a.codes = slices.Grow(a.codes[:0], n)[:n]
	a.excN = 0
	r := a.right
	excSize := 0
	last := -1
	// The code of each left part from a table (1 + its index, 0 for none) instead of a
	// search of the dictionary: one load a value. Only the dictionary's entries are set,
	// and cleared again after the block.
	if a.lookup == nil {
		a.lookup = new([1 << 16]uint8)
	}
	lookup := a.lookup
	for j, l := range a.dict[:a.dictN] {
		lookup[l] = uint8(j + 1)
	}
	codes := a.codes[:len(vals)]
	excN := 0
	for i, v := range vals {
		c := lookup[uint16(math.Float64bits(v)>>r)] - 1
		if c >= alprdMaxDict { // 0 - 1 wraps to 255: not in the dictionary
			c = alprdMaxDict
			excN++
			excSize += uvarintLen(uint64(i-last-1)) + 2
			last = i
		}
		codes[i] = c
	}
	for _, l := range a.dict[:a.dictN] {
		lookup[l] = 0
	}
	a.excN = excN
	a.size = 2 + 2*a.dictN + uvarintLen(uint64(a.excN)) + excSize +
		(n*int(a.width)+7)/8 + (n*int(r)+7)/8
	return a.size
}

// mergeRuns turns the runs of left parts of one width, in increasing order, into those of
// left parts a bit shorter, in place.
func mergeRuns(runs []alprdRun) []alprdRun {
	out := runs[:0]
	for _, r := range runs {
		l := r.left >> 1
		if k := len(out); k > 0 && out[k-1].left == l {
			out[k-1].count += r.count
			continue
		}
		out = append(out, alprdRun{left: l, count: r.count})
	}
	return out
}

// topRuns returns the alprdMaxDict runs of largest count (fewer when there are fewer),
// largest first and, among equal counts, in their order in runs.
func topRuns(runs []alprdRun) [alprdMaxDict]alprdRun {
	var top [alprdMaxDict]alprdRun
	k := 0
	for _, r := range runs {
		if k == alprdMaxDict && r.count <= top[k-1].count {
			continue
		}
		i := min(k, alprdMaxDict-1)
		for i > 0 && top[i-1].count < r.count {
			top[i] = top[i-1]
			i--
		}
		top[i] = r
		k = min(k+1, alprdMaxDict)
	}
	return top
}

// sortUint16s sorts xs with two counting passes, one a byte, using tmp (returned for
// reuse) as scratch: a sample of a few hundred values sorts several times faster so than
// by comparisons.
func sortUint16s(xs, tmp []uint16) []uint16 {
	tmp = slices.Grow(tmp[:0], len(xs))[:len(xs)]
	var lo, hi [257]int
	for _, x := range xs {
		lo[int(byte(x))+1]++
		hi[int(x>>8)+1]++
	}
	for i := 1; i < 257; i++ {
		lo[i] += lo[i-1]
		hi[i] += hi[i-1]
	}
	for _, x := range xs {
		tmp[lo[byte(x)]] = x
		lo[byte(x)]++
	}
	for _, x := range tmp {
		xs[hi[x>>8]] = x
		hi[x>>8]++
	}
	return tmp
}

// appendTo writes the payload analyze sized.
func (a *alprdEncoder) appendTo(dst []byte, vals []float64) []byte {
	r := a.right
	dst = append(dst, byte(r), byte(a.dictN))
	for _, l := range a.dict[:a.dictN] {
		dst = binary.LittleEndian.AppendUint16(dst, l)
	}
	dst = binary.AppendUvarint(dst, uint64(a.excN))
	last := -1
	for i, c := range a.codes {
		if c == alprdMaxDict {
			dst = binary.AppendUvarint(dst, uint64(i-last-1))
			last = i
		}
	}
	for i, c := range a.codes {
		if c == alprdMaxDict {
			dst = binary.LittleEndian.AppendUint16(dst, uint16(math.Float64bits(vals[i])>>r))
		}
	}
	var bw bitWriter
	bw.reset(dst)
	if a.width > 0 {
		for _, c := range a.codes {
			bw.writeBits(uint64(c)&^alprdMaxDict, a.width) // exceptions write index 0
		}
		dst = bw.finish()
		bw.reset(dst)
	}
	mask := uint64(1)<<r - 1
	for _, v := range vals {
		bw.writeBits(math.Float64bits(v)&mask, r)
	}
	return bw.finish()
}

// decodeALPRD appends n values to dst. pad is scratch for the bit streams.
func decodeALPRD(dst []float64, src []byte, n int, pad *[]byte) ([]float64, error) {
	d := newDecbuf(src)
	r := uint(d.U8())
	k := int(d.U8())
	if d.Err != nil {
		return dst, fmt.Errorf("alp-rd header: %w", d.Err)
	}
	if r < alprdMinRight || r > 63 || k < 1 || k > alprdMaxDict {
		return dst, fmt.Errorf("alp-rd: right width %d, %d dictionary entries: %w", r, k, ErrOutOfRange)
	}
	var dict [alprdMaxDict]uint64
	for i := range k {
		dict[i] = uint64(d.U16())
	}
	left := 64 - r
	exc := d.Uvarint()
	if d.Err == nil && exc > uint64(n) {
		return dst, fmt.Errorf("alp-rd: %d exceptions in %d values: %w", exc, n, ErrOutOfRange)
	}
	positions, err := readPositions(&d, exc, n)
	if err != nil {
		return dst, fmt.Errorf("alp-rd: %w", err)
	}
	excLefts := d.Bytes64(2 * exc)
	if d.Err != nil {
		return dst, fmt.Errorf("alp-rd exceptions: %w", d.Err)
	}
	for i := range k {
		if dict[i]>>left != 0 {
			return dst, fmt.Errorf("alp-rd: dictionary entry %#x wider than %d bits: %w", dict[i], left, ErrOutOfRange)
		}
	}
	w := uint(bits.Len(uint(k - 1)))
	idxLen, rightLen := (n*int(w)+7)/8, (n*int(r)+7)/8
	if len(d.B) != idxLen+rightLen {
		return dst, fmt.Errorf("alp-rd: %d bytes of bit streams, %d values need %d: %w", len(d.B), n, idxLen+rightLen, ErrOutOfRange)
	}
	// Copy the streams with 16 bytes of zero padding, so every field is read with
	// unaligned 8-byte loads and no end-of-input checks.
	buf := append(append((*pad)[:0], d.B...), make([]byte, 16)...)
	*pad = buf
	idx, rights := buf, buf[idxLen:]

	start := len(dst)
	dst = growFloat64(dst, n)
	out := dst[start:]
	var ip, rp uint
	for i := range out {
		var c uint64
		if w > 0 {
			c = fieldAt(idx, ip, w)
			ip += w
			if c >= uint64(k) {
				return dst[:start], fmt.Errorf("alp-rd: index %d of value %d, %d entries: %w", c, i, k, ErrOutOfRange)
			}
		}
		out[i] = math.Float64frombits(dict[c]<<r | fieldAt(rights, rp, r))
		rp += r
	}
	for j := range int(exc) {
		pos := positions.next()
		l := uint64(binary.LittleEndian.Uint16(excLefts[2*j:]))
		if l>>left != 0 {
			return dst[:start], fmt.Errorf("alp-rd: exception left part %#x wider than %d bits: %w", l, left, ErrOutOfRange)
		}
		out[pos] = math.Float64frombits(l<<r | math.Float64bits(out[pos])&(1<<r-1))
	}
	return dst, nil
}

// fieldAt returns the w-bit field (1..64 bits) at bit offset pos of an MSB-first stream
// padded with at least 9 bytes past the field.
func fieldAt(b []byte, pos, w uint) uint64 {
	o, sh := pos>>3, pos&7
	v := binary.BigEndian.Uint64(b[o:]) << sh
	if sh+w > 64 {
		v |= uint64(b[o+8]) >> (8 - sh)
	}
	return v >> (64 - w)
}
