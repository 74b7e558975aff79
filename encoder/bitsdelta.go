package encoder

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The bits-delta value encoding (format v3): the differences of consecutive values' bit
// patterns, read as 64-bit integers, packed. A full-precision series that moves slowly
// (a memory or network utilization averaged over a cluster) keeps its sign, exponent and
// leading mantissa bits from one value to the next, so the differences need far fewer
// than 64 bits; unlike Gorilla's XOR they stay small across a carry, and they pack at a
// fixed width that decodes without a bit-by-bit loop. See docs/format/series.md,
// "bits-delta".
//
//	first bit pattern u64 | packed ints: the count − 1 differences, modulo 2^64

// bitsDeltaEncoder holds one block's differences.
type bitsDeltaEncoder struct {
	deltas []int64
	st     intStats
}

// analyze computes the differences and returns the payload size.
func (b *bitsDeltaEncoder) analyze(vals []float64) int {
	n := len(vals)
	b.deltas = b.deltas[:0]
	prev := math.Float64bits(vals[0])
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, v := range vals[1:] {
		x := math.Float64bits(v)
		d := int64(x - prev)
		prev = x
		lo, hi = min(lo, d), max(hi, d)
		b.deltas = append(b.deltas, d)
	}
	if n == 1 {
		lo, hi = 0, 0
	}
	b.st = finishIntStats(b.deltas, lo, hi)
	return 8 + packedIntsSize(n-1, b.st, intBitPacked)
}

func (b *bitsDeltaEncoder) appendTo(dst []byte, vals []float64) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(vals[0]))
	return appendInts(dst, b.deltas, b.st, intBitPacked)
}

// decodeBitsDelta appends n values to dst; ints is scratch.
func decodeBitsDelta(dst []float64, src []byte, n int, ints *[]int64) ([]float64, error) {
	if len(src) < 8 {
		return dst, fmt.Errorf("bits-delta: %d bytes, need 8 for the first value: %w", len(src), ErrTruncated)
	}
	first := binary.LittleEndian.Uint64(src)
	xs, err := decodeAllInts((*ints)[:0], src[8:], n-1)
	*ints = xs
	if err != nil {
		return dst, fmt.Errorf("bits-delta differences: %w", err)
	}
	start := len(dst)
	dst = growFloat64(dst, n)
	out := dst[start:]
	x := first
	out[0] = math.Float64frombits(x)
	for i, d := range xs {
		x += uint64(d)
		out[i+1] = math.Float64frombits(x)
	}
	return dst, nil
}
