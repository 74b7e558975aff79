package encoder

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Integer packing: frame of reference, common divisor and fixed width. Both the packed
// timestamp deltas and the decimal values use it. See docs/format/series.md, "Packed
// integers".
//
//	layout u8 | base varint | divisor uvarint | width u8 | data
//
// Value i is base + divisor*q_i, modulo 2^64, where q_i is the i-th width-bit unsigned
// field of data. Modular arithmetic makes the round trip exact for any int64 input.

// intLayout says how the width-bit fields are laid out in data.
type intLayout uint8

const (
	// intBitPacked packs the fields MSB-first, back to back: ceil(n*width/8) bytes.
	intBitPacked intLayout = 0
	// intBytePlanes stores ceil(width/8) planes of n bytes; plane k holds byte k (little
	// endian) of every field. It wastes up to 7 bits a value but keeps each byte of a
	// value in its own run, which the zstd stage entropy-codes far better than bit-packed
	// data (the byte-stream-split idea of Parquet).
	intBytePlanes intLayout = 1
)

// intStats are what packing needs to know about a sequence.
type intStats struct {
	base    int64
	divisor uint64
	width   uint
}

// analyzeInts finds the smallest value, the greatest common divisor of the offsets from
// it, and the bit width of the largest quotient.
func analyzeInts(xs []int64) intStats {
	if len(xs) == 0 {
		return intStats{divisor: 1}
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs[1:] {
		lo = min(lo, x)
		hi = max(hi, x)
	}
	return finishIntStats(xs, lo, hi)
}

// finishIntStats is analyzeInts given the minimum and maximum of xs.
func finishIntStats(xs []int64, lo, hi int64) intStats {
	maxOff := uint64(hi - lo)
	if maxOff == 0 {
		return intStats{base: lo, divisor: 1}
	}
	// Guess the divisor from a sample, then check every offset with a multiply and a
	// compare (exactDivider), shrinking the guess on the rare miss. Euclid on every
	// element cost more than the rest of the encoder on streams whose divisor stays
	// above 1, such as timestamp deltas on a grid.
	var g uint64
	step := max(1, len(xs)/divisorSamples)
	for i := 0; i < len(xs) && g != 1; i += step {
		g = gcd(g, uint64(xs[i]-lo))
	}
	if g == 0 {
		g = maxOff // the sample held only the minimum
	}
	if g > 1 {
		dv := newExactDivider(g)
		for _, x := range xs {
			if off := uint64(x - lo); !dv.divides(off) {
				if g = gcd(g, off); g == 1 {
					break
				}
				dv = newExactDivider(g)
			}
		}
	}
	return intStats{base: lo, divisor: g, width: uint(bits.Len64(maxOff / g))}
}

// divisorSamples offsets vote on the divisor before the full check.
const divisorSamples = 64

// exactDivider divides by g = d<<shift (d odd) values known to be multiples of g with a
// shift and a multiplication by d's inverse modulo 2^64, and tests divisibility the same
// way (Granlund and Montgomery): x is a multiple of d iff x*inv <= (2^64-1)/d.
type exactDivider struct {
	shift uint
	mask  uint64
	inv   uint64
	lim   uint64
}

func newExactDivider(g uint64) exactDivider {
	shift := uint(bits.TrailingZeros64(g))
	d := g >> shift
	inv := d // correct to 3 bits for odd d; each Newton step doubles that
	for range 5 {
		inv *= 2 - d*inv
	}
	return exactDivider{shift: shift, mask: 1<<shift - 1, inv: inv, lim: math.MaxUint64 / d}
}

func (v exactDivider) divides(x uint64) bool {
	return x&v.mask == 0 && (x>>v.shift)*v.inv <= v.lim
}

// div returns x/g for a multiple x of g.
func (v exactDivider) div(x uint64) uint64 { return (x >> v.shift) * v.inv }

// gcd is the binary (Stein's) greatest common divisor: shifts and subtractions, no
// division.
func gcd(a, b uint64) uint64 {
	if a == 0 {
		return b
	}
	if b == 0 {
		return a
	}
	shift := bits.TrailingZeros64(a | b)
	a >>= bits.TrailingZeros64(a)
	for b != 0 {
		b >>= bits.TrailingZeros64(b)
		if a > b {
			a, b = b, a
		}
		b -= a
	}
	return a << shift
}

// packedIntsSize is the encoded size of n values with stats s in layout l.
func packedIntsSize(n int, s intStats, l intLayout) int {
	hdr := 1 + varintLen(s.base) + uvarintLen(s.divisor) + 1
	if l == intBytePlanes {
		return hdr + n*int((s.width+7)/8)
	}
	return hdr + (n*int(s.width)+7)/8
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

func varintLen(x int64) int { return uvarintLen(uint64(x<<1) ^ uint64(x>>63)) }

// appendInts packs xs with stats s (from analyzeInts(xs)) in layout l.
func appendInts(dst []byte, xs []int64, s intStats, l intLayout) []byte {
	dst = append(dst, byte(l))
	dst = binary.AppendVarint(dst, s.base)
	dst = binary.AppendUvarint(dst, s.divisor)
	dst = append(dst, byte(s.width))
	w := s.width
	if w == 0 {
		return dst
	}
	dv := newExactDivider(s.divisor)
	switch l {
	case intBytePlanes:
		nb := int((w + 7) / 8)
		n := len(xs)
		start := len(dst)
		dst = append(dst, make([]byte, nb*n)...)
		planes := dst[start:]
		// One pass over the values, each quotient computed once: one and two planes
		// (most decimal and index streams) unrolled, wider ones a byte at a time.
		switch nb {
		case 1:
			p0 := planes[:n]
			for i, x := range xs {
				p0[i] = byte(dv.div(uint64(x - s.base)))
			}
		case 2:
			p0, p1 := planes[:n], planes[n:2*n]
			for i, x := range xs {
				q := dv.div(uint64(x - s.base))
				p0[i], p1[i] = byte(q), byte(q>>8)
			}
		default:
			for i, x := range xs {
				q := dv.div(uint64(x - s.base))
				for k := i; k < len(planes); k += n {
					planes[k] = byte(q)
					q >>= 8
				}
			}
		}
	default:
		var bw bitWriter
		bw.reset(dst)
		for _, x := range xs {
			bw.writeBits(dv.div(uint64(x-s.base)), w)
		}
		dst = bw.finish()
	}
	return dst
}

// decodeInts appends n packed values to dst and returns the bytes after them. n is at
// most MaxBlockPoints, checked by the caller, so dst grows by a bounded amount.
func decodeInts(dst []int64, src []byte, n int) ([]int64, []byte, error) {
	d := newDecbuf(src)
	l := intLayout(d.U8())
	base := d.Varint()
	div := d.Uvarint()
	w := uint(d.U8())
	if d.Err != nil {
		return dst, nil, fmt.Errorf("packed ints header: %w", d.Err)
	}
	if l > intBytePlanes || div == 0 || w > 64 {
		return dst, nil, fmt.Errorf("packed ints: layout %d, divisor %d, width %d: %w", l, div, w, ErrOutOfRange)
	}
	start := len(dst)
	dst = growInt64(dst, n)
	out := dst[start:]
	if w == 0 {
		for i := range out {
			out[i] = base
		}
		return dst, d.B, nil
	}
	var need int
	if l == intBytePlanes {
		need = n * int((w+7)/8)
	} else {
		need = (n*int(w) + 7) / 8
	}
	if len(d.B) < need {
		return dst[:start], nil, fmt.Errorf("packed ints: %d values of %d bits need %d bytes, have %d: %w", n, w, need, len(d.B), ErrTruncated)
	}
	data, rest := d.B[:need], d.B[need:]
	ubase := uint64(base)
	if l == intBytePlanes {
		// One and two planes (most decimal and delta streams) in a single pass; wider
		// values plane by plane, each pass streaming one plane.
		nb := int((w + 7) / 8)
		switch nb {
		case 1:
			p0 := data[:n]
			for i := range out {
				out[i] = int64(ubase + uint64(p0[i])*div)
			}
		case 2:
			p0, p1 := data[:n], data[n:2*n]
			for i := range out {
				out[i] = int64(ubase + (uint64(p0[i])|uint64(p1[i])<<8)*div)
			}
		default:
			p0 := data[:n]
			for i := range out {
				out[i] = int64(p0[i])
			}
			for k := 1; k < nb; k++ {
				pk := data[k*n : (k+1)*n]
				sh := uint(8 * k)
				for i := range out {
					out[i] |= int64(pk[i]) << sh
				}
			}
			for i := range out {
				out[i] = int64(ubase + uint64(out[i])*div)
			}
		}
		return dst, rest, nil
	}
	unpackBits(out, data, w, ubase, div)
	return dst, rest, nil
}

// decodeAllInts is decodeInts for packed integers that must end the payload: bytes after
// them are an error.
func decodeAllInts(dst []int64, src []byte, n int) ([]int64, error) {
	dst, rest, err := decodeInts(dst, src, n)
	if err != nil {
		return dst, err
	}
	if len(rest) != 0 {
		return dst, fmt.Errorf("%d bytes after the packed integers: %w", len(rest), ErrOutOfRange)
	}
	return dst, nil
}

// unpackBits decodes len(out) MSB-first fields of w bits (1..64) from data, which holds
// at least ceil(len(out)*w/8) bytes.
func unpackBits(out []int64, data []byte, w uint, base, div uint64) {
	i := 0
	if w <= 56 {
		// Fast path: one unaligned 8-byte load per value while 8 bytes remain.
		shift := 64 - w
		pos := uint(0)
		for ; i < len(out); i++ {
			byteOff := pos >> 3
			if int(byteOff)+8 > len(data) {
				break
			}
			v := binary.BigEndian.Uint64(data[byteOff:]) << (pos & 7) >> shift
			out[i] = int64(base + v*div)
			pos += w
		}
		if i == len(out) {
			return
		}
		data = data[(pos >> 3):]
		var br bitReader
		br.reset(data)
		br.readBits64(pos & 7)
		for ; i < len(out); i++ {
			out[i] = int64(base + br.readBits64(w)*div)
		}
		return
	}
	var br bitReader
	br.reset(data)
	for ; i < len(out); i++ {
		out[i] = int64(base + br.readBits64(w)*div)
	}
}

// growInt64 extends dst by n elements with append's amortized growth.
func growInt64(dst []int64, n int) []int64 {
	return slices.Grow(dst, n)[:len(dst)+n]
}

// growFloat64 extends dst by n elements with append's amortized growth.
func growFloat64(dst []float64, n int) []float64 {
	return slices.Grow(dst, n)[:len(dst)+n]
}
