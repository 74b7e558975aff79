package encoder

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// The decimal value encoding (ALP idea): most metric values are short decimals, so
// value = integer / 10^e for a small e and an integer of few bits. Each value is checked
// exactly (bit patterns, so -0.0, NaN and inexact decimals fail) and those that fail are
// stored apart as exceptions. The integers are packed, as they are or as deltas.
//
//	e u8 | flags u8 | exception count uvarint | positions (uvarint gaps) | exception bit
//	patterns (8 bytes LE each) | [first integer varint, if flags&decimalDelta] | packed ints
//
// Division by the exact power of ten, not multiplication by an inexact 10^-e, is what
// makes integer/10^e the correctly rounded float64 nearest the decimal, i.e. exactly what
// strconv.ParseFloat gives for the decimal's text; so values that came from short decimal
// text round-trip without exceptions.

// pow10 holds 10^0..10^18, all exact in float64 (10^22 is the last exact one; 18 keeps
// the integers of values below about 9.2 in an int64).
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

const (
	maxDecimalExp = len(pow10) - 1
	decimalDelta  = 1 // flags bit: the integers are stored as deltas
	// decimalLimit bounds |value*10^e| so the conversion to int64 cannot overflow.
	decimalLimit = 1 << 62
	// expSamples values per block vote on the exponent.
	expSamples = 32
	// exceptionBits is the approximate cost of an exception: 8 bytes and a position.
	exceptionBits = 80
	// bitsPerDigit is log2(10): each extra decimal digit widens every integer by this.
	bitsPerDigit = 3.33
)

// decimalInt returns the integer x with x/10^e == v bit for bit, or false.
func decimalInt(v float64, e int) (int64, bool) {
	p := pow10[e]
	f := v * p
	if !(f > -decimalLimit && f < decimalLimit) { // also false for NaN
		return 0, false
	}
	x := int64(math.RoundToEven(f))
	return x, math.Float64bits(float64(x)/p) == math.Float64bits(v)
}

// divPow10 is r / 10^e, with p = 10^e; for e = 0 it is r itself.
func divPow10(r, p float64, e int) float64 {
	if e == 0 {
		return r
	}
	return r / p
}

// minDecimalExp is the smallest e that represents v exactly, or maxDecimalExp+1.
func minDecimalExp(v float64) int {
	for e := 0; e <= maxDecimalExp; e++ {
		f := v * pow10[e]
		if !(f > -decimalLimit && f < decimalLimit) {
			break
		}
		if _, ok := decimalInt(v, e); ok {
			return e
		}
	}
	return maxDecimalExp + 1
}

// chooseDecimalExp picks the exponent from a sample of the values: the e that minimizes
// (digits × bitsPerDigit) per value plus the expected exception cost. Bigger e turns
// fewer values into exceptions but widens every integer. It also returns whether more
// than half of the sample would be exceptions at that e, in which case the encoding is
// not worth a full pass.
func chooseDecimalExp(vals []float64) (int, bool) {
	var hist [maxDecimalExp + 2]int
	step := max(1, len(vals)/expSamples)
	cnt := 0
	for i := 0; i < len(vals); i += step {
		hist[minDecimalExp(vals[i])]++
		cnt++
	}
	best, bestCost, bestExc := 0, math.Inf(1), cnt
	exc := cnt // sampled values not representable at e
	for e := 0; e <= maxDecimalExp; e++ {
		exc -= hist[e]
		cost := float64(e)*bitsPerDigit*float64(cnt) + float64(exc*exceptionBits)
		if cost < bestCost {
			best, bestCost, bestExc = e, cost, exc
		}
		if exc == 0 {
			break // larger e only costs more
		}
	}
	return best, 2*bestExc <= cnt
}

// decimalEncoder holds one block's decimal analysis, reusing its buffers.
type decimalEncoder struct {
	exp      int
	ints     []int64 // one per value; exceptions hold a placeholder
	deltas   []int64
	excPos   []int
	excBits  []uint64
	excSize  int // bytes of the exception section
	useDelta bool
	st       intStats
}

// analyze maps vals to integers and chooses plain or delta integers by packed size. It
// returns false when more than half the values would be exceptions: then the encoding
// cannot win.
func (d *decimalEncoder) analyze(vals []float64) bool {
	n := len(vals)
	exp, ok := chooseDecimalExp(vals)
	if !ok {
		return false
	}
	d.exp = exp
	d.ints = d.ints[:0]
	d.excPos = d.excPos[:0]
	d.excBits = d.excBits[:0]
	p := pow10[d.exp]
	// The first pass maps the values, the second finds the ranges of the integers and
	// of their deltas: apart, each loop's variables fit in registers (together they
	// spilled on every value). A value with the bit pattern of the previous valid one
	// (repeats are common) takes its integer without the conversion. An exception keeps
	// the previous integer as a placeholder (the first valid one, for those before it):
	// a zero delta, and no wider range.
	var last int64
	firstValid := -1
	d.ints = slices.Grow(d.ints, n)[:n]
	// A local slice, not the field, in the loop: the compiler keeps it in registers,
	// where it reloads a field after every store that might alias it.
	ints := d.ints[:len(vals)]
	lastBits := uint64(0)
	for i, v := range vals {
		b := math.Float64bits(v)
		if b == lastBits && firstValid >= 0 {
			ints[i] = last
			continue
		}
		f := v * p
		if f > -decimalLimit && f < decimalLimit {
			x := int64(math.RoundToEven(f))
			// x / 10^0 is x: integer-valued series, the commonest, skip the division.
			if math.Float64bits(divPow10(float64(x), p, d.exp)) == b {
				ints[i] = x
				if firstValid < 0 {
					firstValid = i
				}
				last, lastBits = x, b
				continue
			}
		}
		d.excPos = append(d.excPos, i)
		d.excBits = append(d.excBits, b)
		ints[i] = last
		if len(d.excPos) > n/2 {
			return false
		}
	}
	for i := 0; i < firstValid; i++ {
		ints[i] = ints[firstValid]
	}
	// |integers| < 2^62 (decimalLimit), so no delta overflows.
	lo, hi := ints[0], ints[0]
	dlo, dhi := int64(math.MaxInt64), int64(math.MinInt64)
	prev := ints[0]
	for _, x := range ints[1:] {
		lo, hi = min(lo, x), max(hi, x)
		dx := x - prev
		dlo, dhi = min(dlo, dx), max(dhi, dx)
		prev = x
	}
	d.excSize = uvarintLen(uint64(len(d.excPos))) + 8*len(d.excPos)
	lastPos := -1
	for _, pos := range d.excPos {
		d.excSize += uvarintLen(uint64(pos - lastPos - 1))
		lastPos = pos
	}

	stFOR := finishIntStats(ints, lo, hi)
	sizeFOR := packedIntsSize(n, stFOR, intBitPacked)
	d.useDelta = false
	d.st = stFOR
	if n > 1 && uint64(dhi-dlo) < uint64(hi-lo) {
		d.deltas = slices.Grow(d.deltas[:0], n-1)[:n-1]
		deltas := d.deltas
		for i := range deltas {
			deltas[i] = ints[i+1] - ints[i]
		}
		stDelta := finishIntStats(d.deltas, dlo, dhi)
		if varintLen(ints[0])+packedIntsSize(n-1, stDelta, intBitPacked) < sizeFOR {
			d.useDelta, d.st = true, stDelta
		}
	}
	return true
}

// planesEntropy estimates what zstd makes of the payload in byte planes: the bytes
// before the planes plus the planes' order-0 entropy (entropyBytes), from a sample of the
// integers, without writing the planes.
func (d *decimalEncoder) planesEntropy() int {
	xs, nb, total := d.planesHead()
	if nb == 0 || len(xs) == 0 {
		return total
	}
	stride := max(1, (len(xs)+entropySample-1)/entropySample)
	var hist [8][256]uint32
	dv := newExactDivider(d.st.divisor)
	cnt := 0
	base := d.st.base
	switch nb {
	case 1: // most decimal and delta streams: one or two planes, unrolled
		h0 := &hist[0]
		for i := 0; i < len(xs); i += stride {
			h0[byte(dv.div(uint64(xs[i]-base)))]++
			cnt++
		}
	case 2:
		h0, h1 := &hist[0], &hist[1]
		for i := 0; i < len(xs); i += stride {
			q := dv.div(uint64(xs[i] - base))
			h0[byte(q)]++
			h1[byte(q>>8)]++
			cnt++
		}
	default:
		// Every plane, unrolled as in rawPlanesEntropy: q has nb bytes, so the planes past
		// nb only count zeros, and are not passed on.
		h0, h1, h2, h3, h4, h5, h6, h7 := &hist[0], &hist[1], &hist[2], &hist[3], &hist[4], &hist[5], &hist[6], &hist[7]
		for i := 0; i < len(xs); i += stride {
			q := dv.div(uint64(xs[i] - base))
			h0[byte(q)]++
			h1[byte(q>>8)]++
			h2[byte(q>>16)]++
			h3[byte(q>>24)]++
			h4[byte(q>>32)]++
			h5[byte(q>>40)]++
			h6[byte(q>>48)]++
			h7[byte(q>>56)]++
			cnt++
		}
	}
	return total + planesBytes(hist[:nb], cnt, len(xs))
}

// planesFloor is the least planesEntropy returns, without the histograms.
func (d *decimalEncoder) planesFloor() int {
	xs, nb, total := d.planesHead()
	if nb == 0 || len(xs) == 0 {
		return total
	}
	return total + planesBytesFloor(nb)
}

// planesHead returns the integers that go into byte planes, the planes, and the bytes of
// the payload before them.
func (d *decimalEncoder) planesHead() (xs []int64, planes, head int) {
	xs = d.ints
	if d.useDelta {
		xs = d.deltas
	}
	planes = int(d.st.width+7) / 8
	return xs, planes, d.size(intBytePlanes) - len(xs)*planes
}

// packedLen is how many integers the packed section holds.
func (d *decimalEncoder) packedLen() int {
	if d.useDelta {
		return len(d.deltas)
	}
	return len(d.ints)
}

// size is the payload size in layout l.
func (d *decimalEncoder) size(l intLayout) int {
	s := 2 + d.excSize
	if d.useDelta {
		return s + varintLen(d.ints[0]) + packedIntsSize(len(d.deltas), d.st, l)
	}
	return s + packedIntsSize(len(d.ints), d.st, l)
}

func (d *decimalEncoder) appendTo(dst []byte, l intLayout) []byte {
	flags := byte(0)
	if d.useDelta {
		flags |= decimalDelta
	}
	dst = append(dst, byte(d.exp), flags)
	dst = binary.AppendUvarint(dst, uint64(len(d.excPos)))
	prev := -1
	for _, p := range d.excPos {
		dst = binary.AppendUvarint(dst, uint64(p-prev-1))
		prev = p
	}
	for _, b := range d.excBits {
		dst = binary.LittleEndian.AppendUint64(dst, b)
	}
	if d.useDelta {
		dst = binary.AppendVarint(dst, d.ints[0])
		return appendInts(dst, d.deltas, d.st, l)
	}
	return appendInts(dst, d.ints, d.st, l)
}

// decodeDecimal appends n values to dst; ints is scratch space.
func decodeDecimal(dst []float64, src []byte, n int, ints *[]int64) ([]float64, error) {
	d := newDecbuf(src)
	e := int(d.U8())
	flags := d.U8()
	k := d.Uvarint()
	if d.Err != nil {
		return dst, fmt.Errorf("decimal header: %w", d.Err)
	}
	if e > maxDecimalExp || flags&^decimalDelta != 0 || k > uint64(n) {
		return dst, fmt.Errorf("decimal: exponent %d, flags %#x, %d exceptions of %d values: %w", e, flags, k, n, ErrOutOfRange)
	}
	positions, err := readPositions(&d, k, n)
	if err != nil {
		return dst, fmt.Errorf("decimal: %w", err)
	}
	excVals := d.Bytes64(8 * k)
	var first int64
	if flags&decimalDelta != 0 {
		first = d.Varint()
	}
	if d.Err != nil {
		return dst, fmt.Errorf("decimal exceptions: %w", d.Err)
	}

	xs := (*ints)[:0]
	if flags&decimalDelta != 0 {
		xs = append(xs, first)
		if xs, err = decodeAllInts(xs, d.B, n-1); err != nil {
			return dst, fmt.Errorf("decimal: %w", err)
		}
		for i := 1; i < n; i++ {
			xs[i] += xs[i-1]
		}
	} else if xs, err = decodeAllInts(xs, d.B, n); err != nil {
		return dst, fmt.Errorf("decimal: %w", err)
	}
	*ints = xs

	start := len(dst)
	dst = growFloat64(dst, n)
	out := dst[start:]
	if e == 0 {
		for i, x := range xs {
			out[i] = float64(x)
		}
	} else {
		p := pow10[e]
		for i, x := range xs {
			out[i] = float64(x) / p
		}
	}
	// Patch the exceptions; their positions were validated above.
	for j := range int(k) {
		out[positions.next()] = math.Float64frombits(binary.LittleEndian.Uint64(excVals[8*j:]))
	}
	return dst, nil
}

// positions walks exception positions stored as uvarint gaps (pos_j − pos_{j−1} − 1,
// pos_{−1} = −1), already checked by readPositions.
type positions struct {
	d   decbuf
	pos int
}

func (p *positions) next() int {
	p.pos += int(p.d.Uvarint()) + 1
	return p.pos
}

// readPositions reads k exception positions of a block of n values from d, checking that
// each is below n, and returns a walk over them.
func readPositions(d *decbuf, k uint64, n int) (positions, error) {
	p := positions{d: newDecbuf(d.B), pos: -1}
	pos := -1
	for range k {
		pos += int(min(d.Uvarint(), uint64(n))) + 1
		if pos >= n {
			return p, fmt.Errorf("exception position %d of %d values: %w", pos, n, ErrOutOfRange)
		}
	}
	return p, nil
}
