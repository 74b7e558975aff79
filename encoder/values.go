package encoder

import (
	"fmt"
	"math"
	"math/bits"
)

// ValueEncoding tags how a block's values are encoded. The tag is the second encoding
// byte of every block header. See docs/format/series.md, "Value encodings".
type ValueEncoding uint8

// Value encodings. Tags are part of the format: never renumber them.
const (
	ValueInvalid ValueEncoding = 0
	// ValueGorilla is the Gorilla XOR encoding as in Prometheus' chunkenc XOR chunks.
	// Format v1 and later.
	ValueGorilla ValueEncoding = 1
)

func (e ValueEncoding) String() string {
	switch e {
	case ValueGorilla:
		return "gorilla"
	}
	return fmt.Sprintf("value-encoding(%d)", uint8(e))
}

// IsValidValueEncoding reports whether format version v allows value encoding e.
func IsValidValueEncoding(v uint16, e ValueEncoding) bool {
	switch e {
	case ValueGorilla:
		return v >= 1
	}
	return false
}

// appendGorilla encodes values with Gorilla XOR: the first value as 64 raw bits, then per
// value '0' when equal to the previous one, '10' + the meaningful bits when they fit in
// the previous leading/trailing window, else '11' + 5 bits leading zeros + 6 bits length
// (0 means 64) + the meaningful bits. XOR works on the bit patterns, so NaN payloads,
// -0.0 and subnormals round-trip exactly.
func appendGorilla(dst []byte, vals []float64) []byte {
	var bw bitWriter
	bw.reset(dst)
	if len(vals) == 0 {
		return bw.finish()
	}
	prev := math.Float64bits(vals[0])
	bw.writeBits(prev, 64)
	leading, trailing := uint(0xff), uint(0)
	for _, f := range vals[1:] {
		cur := math.Float64bits(f)
		x := cur ^ prev
		prev = cur
		if x == 0 {
			bw.writeBits(0, 1)
			continue
		}
		l := uint(bits.LeadingZeros64(x))
		t := uint(bits.TrailingZeros64(x))
		if l >= 32 {
			l = 31 // 5 bits hold 0..31
		}
		if leading != 0xff && l >= leading && t >= trailing {
			sig := 64 - leading - trailing
			bw.writeBits(0b10, 2)
			bw.writeBits(x>>trailing, sig)
			continue
		}
		leading, trailing = l, t
		sig := 64 - l - t
		bw.writeBits(0b11<<11|uint64(l)<<6|uint64(sig&63), 2+5+6)
		bw.writeBits(x>>t, sig)
	}
	return bw.finish()
}

// decodeGorilla appends n values to dst.
func decodeGorilla(dst []float64, src []byte, n int) ([]float64, error) {
	if n == 0 {
		return dst, nil
	}
	var br bitReader
	br.reset(src)
	prev := br.readBits64(64)
	dst = append(dst, math.Float64frombits(prev))
	leading, trailing := uint(0xff), uint(0)
	for i := 1; i < n; i++ {
		if !br.readBit() {
			dst = append(dst, math.Float64frombits(prev))
			continue
		}
		if br.readBit() {
			hdr := br.readBits(11)
			l := uint(hdr >> 6)
			sig := uint(hdr & 63)
			if sig == 0 {
				sig = 64
			}
			if l+sig > 64 {
				return dst, fmt.Errorf("gorilla value %d: %d leading + %d significant bits exceed 64: %w", i, l, sig, ErrOutOfRange)
			}
			leading, trailing = l, 64-l-sig
		} else if leading == 0xff {
			return dst, fmt.Errorf("gorilla value %d reuses a window before one was set: %w", i, ErrOutOfRange)
		}
		x := br.readBits64(64-leading-trailing) << trailing
		prev ^= x
		dst = append(dst, math.Float64frombits(prev))
	}
	if br.over {
		return dst, fmt.Errorf("gorilla stream of %d bytes ends before %d values: %w", len(src), n, ErrTruncated)
	}
	return dst, nil
}
