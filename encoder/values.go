package encoder

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// ValueEncoding tags how a block's values are encoded: the second encoding byte of every
// block header. The low 7 bits name the encoding; bit 0x80 adds the zstd stage (v2). See
// docs/format/series.md, "Value encodings".
type ValueEncoding uint8

// Value encodings. Tags are part of the format: never renumber them.
const (
	ValueInvalid ValueEncoding = 0
	// ValueGorilla is the Gorilla XOR encoding as in Prometheus' chunkenc XOR chunks.
	// Format v1 and later.
	ValueGorilla ValueEncoding = 1
	// ValueConst: every value has the same bit pattern, stored once. Format v2.
	ValueConst ValueEncoding = 2
	// ValueRaw: the 8 bytes of each value's bit pattern in byte planes (all first bytes,
	// then all second bytes, ...), the fallback and, with zstd, Parquet's
	// BYTE_STREAM_SPLIT. Format v2.
	ValueRaw ValueEncoding = 3
	// ValueDecimal: value = integer / 10^e, checked exactly per value, with the values
	// that do not round-trip stored apart as exceptions (the ALP idea); the integers are
	// packed, optionally as deltas. Integer-valued series are e = 0. Format v2.
	ValueDecimal ValueEncoding = 4
	// ValueDict: the block's distinct bit patterns once, in increasing order, as a value
	// column of their own, then a packed index per value. Format v3.
	ValueDict ValueEncoding = 5
	// ValueALPRD: each bit pattern split into a left part from a dictionary of at most 8
	// entries (or an exception) and bit-packed right bits, for full-precision doubles
	// (ALP's "real doubles"). Format v3.
	ValueALPRD ValueEncoding = 6
	// ValueBitsDelta: the differences of consecutive bit patterns, packed, for
	// full-precision values that move slowly. Format v3.
	ValueBitsDelta ValueEncoding = 7

	// ValueZstd is the zstd stage flag, or-ed into another encoding. Format v2.
	ValueZstd ValueEncoding = zstdFlag
)

func (e ValueEncoding) String() string {
	var s string
	switch e &^ ValueZstd {
	case ValueGorilla:
		s = "gorilla"
	case ValueConst:
		s = "const"
	case ValueRaw:
		s = "raw"
	case ValueDecimal:
		s = "decimal"
	case ValueDict:
		s = "dict"
	case ValueALPRD:
		s = "alp-rd"
	case ValueBitsDelta:
		s = "bits-delta"
	default:
		return fmt.Sprintf("value-encoding(%#x)", uint8(e))
	}
	if e&ValueZstd != 0 {
		s += "+zstd"
	}
	return s
}

// IsValidValueEncoding reports whether format version v allows value encoding e.
func IsValidValueEncoding(v uint16, e ValueEncoding) bool {
	base := e &^ ValueZstd
	if e&ValueZstd != 0 && (v < Version2 || base == ValueConst) {
		return false
	}
	switch base {
	case ValueGorilla:
		return v >= Version1
	case ValueConst, ValueRaw, ValueDecimal:
		return v >= Version2
	case ValueDict, ValueALPRD, ValueBitsDelta:
		return v >= Version3
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

// gorillaSize is len(appendGorilla(nil, vals)), counted without writing the bits: the
// writer sizes every candidate before it writes the one it keeps, and gorilla is kept
// rarely.
func gorillaSize(vals []float64) int {
	if len(vals) == 0 {
		return 0
	}
	nbits := 64
	prev := math.Float64bits(vals[0])
	leading, trailing := uint(0xff), uint(0)
	for _, f := range vals[1:] {
		cur := math.Float64bits(f)
		x := cur ^ prev
		prev = cur
		if x == 0 {
			nbits++
			continue
		}
		l := min(uint(bits.LeadingZeros64(x)), 31)
		t := uint(bits.TrailingZeros64(x))
		if leading != 0xff && l >= leading && t >= trailing {
			nbits += 2 + int(64-leading-trailing)
			continue
		}
		leading, trailing = l, t
		nbits += 2 + 5 + 6 + int(64-l-t)
	}
	return (nbits + 7) / 8
}

// decodeGorilla appends n values to dst.
func decodeGorilla(dst []float64, src []byte, n int) ([]float64, error) {
	if n == 0 {
		return dst, nil
	}
	start := len(dst)
	dst = growFloat64(dst, n)
	out := dst[start:]
	var br bitReader
	br.reset(src)
	prev := br.readBits64(64)
	out[0] = math.Float64frombits(prev)
	leading, trailing := uint(0xff), uint(0)
	for i := 1; i < n; i++ {
		if !br.readBit() {
			out[i] = math.Float64frombits(prev)
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
		prev ^= br.readBits64(64-leading-trailing) << trailing
		out[i] = math.Float64frombits(prev)
	}
	if br.over {
		return dst, fmt.Errorf("gorilla stream of %d bytes ends before %d values: %w", len(src), n, ErrTruncated)
	}
	return dst, nil
}

func decodeValueConst(dst []float64, src []byte, n int) ([]float64, error) {
	if len(src) != 8 {
		return dst, fmt.Errorf("const value of %d bytes: %w", len(src), ErrOutOfRange)
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(src))
	start := len(dst)
	dst = growFloat64(dst, n)
	for i := range dst[start:] {
		dst[start+i] = v
	}
	return dst, nil
}

// appendValueRaw writes the values' bit patterns in 8 byte planes.
func appendValueRaw(dst []byte, vals []float64) []byte {
	n := len(vals)
	start := len(dst)
	dst = slices.Grow(dst, 8*n)[:start+8*n]
	p := dst[start:]
	// One slice a plane, so the compiler drops the bounds checks of the hot loop.
	p0, p1, p2, p3 := p[:n], p[n:2*n], p[2*n:3*n], p[3*n:4*n]
	p4, p5, p6, p7 := p[4*n:5*n], p[5*n:6*n], p[6*n:7*n], p[7*n:8*n]
	for i, v := range vals {
		b := math.Float64bits(v)
		p0[i], p1[i], p2[i], p3[i] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
		p4[i], p5[i], p6[i], p7[i] = byte(b>>32), byte(b>>40), byte(b>>48), byte(b>>56)
	}
	return dst
}

func decodeValueRaw(dst []float64, src []byte, n int) ([]float64, error) {
	if len(src) != 8*n {
		return dst, fmt.Errorf("raw values: %d bytes for %d values: %w", len(src), n, ErrOutOfRange)
	}
	start := len(dst)
	dst = growFloat64(dst, n)
	out := dst[start:]
	p0, p1, p2, p3 := src[:n], src[n:2*n], src[2*n:3*n], src[3*n:4*n]
	p4, p5, p6, p7 := src[4*n:5*n], src[5*n:6*n], src[6*n:7*n], src[7*n:8*n]
	for i := range out {
		b := uint64(p0[i]) | uint64(p1[i])<<8 | uint64(p2[i])<<16 | uint64(p3[i])<<24 |
			uint64(p4[i])<<32 | uint64(p5[i])<<40 | uint64(p6[i])<<48 | uint64(p7[i])<<56
		out[i] = math.Float64frombits(b)
	}
	return dst, nil
}

// constantBits returns the bit pattern of vals when they all have the same.
func constantBits(vals []float64) (uint64, bool) {
	first := math.Float64bits(vals[0])
	for _, v := range vals[1:] {
		if math.Float64bits(v) != first {
			return 0, false
		}
	}
	return first, true
}

// gorillaTryBytes: above this many bytes a value for decimal, gorilla is worth a try.
const gorillaTryBytes = 4

// gorillaGain is the fraction of the best other encoding that gorilla must save.
const gorillaGain = 0.10

// appendValues chooses and writes the value encoding of one v2 block. The decision rule
// (docs/format/series.md, "Decision rule"):
//
//  1. all bit patterns equal: const;
//  2. otherwise the smallest of decimal (when at most half the values are exceptions),
//     raw, and gorilla (tried only when decimal is out or above gorillaTryBytes a
//     value);
//  3. when that is at least zstdMinBytes and the byte planes' entropy says it can win,
//     also decimal in byte planes through zstd (or raw through zstd when decimal does not
//     apply), kept if it saves zstdGain.
//
// Ties keep the earlier candidate.
func (e *blockEncoder) appendValues(dst []byte, vals []float64) (ValueEncoding, []byte) {
	n := len(vals)
	if b, ok := constantBits(vals); ok {
		return ValueConst, binary.LittleEndian.AppendUint64(dst, b)
	}

	best, bestSize := ValueRaw, 8*n
	dec := &e.dec
	decOK := dec.analyze(vals)
	if decOK {
		if s := dec.size(intBitPacked); s <= bestSize {
			best, bestSize = ValueDecimal, s
		}
	}
	// Gorilla costs as much time as everything else together and loses to decimal on
	// decimal data (on the NAB files it never wins a block where decimal applies), so it
	// is tried only when decimal is out or costs more than gorillaTryBytes a value.
	if !decOK || bestSize > gorillaTryBytes*n {
		e.gorilla = appendGorilla(e.gorilla[:0], vals)
		// Gorilla decodes several times slower than the others (a bit at a time), so it
		// must save gorillaGain to be chosen.
		if s := len(e.gorilla); float64(s) < float64(bestSize)*(1-gorillaGain) {
			best, bestSize = ValueGorilla, s
		}
	}
	if bestSize >= zstdMinBytes {
		var planeLen, nb int
		if decOK {
			e.scratch = dec.appendTo(e.scratch[:0], intBytePlanes)
			planeLen, nb = dec.packedLen(), int(dec.st.width+7)/8
		} else {
			e.scratch = appendValueRaw(e.scratch[:0], vals)
			planeLen, nb = n, 8
		}
		hdr := len(e.scratch) - planeLen*nb
		if hdr+entropyBytes(e.scratch[hdr:], planeLen) >= bestSize {
			goto plain
		}
		start := len(dst)
		dst = zstdCompress(dst, e.scratch)
		if float64(len(dst)-start) <= float64(bestSize)*(1-zstdGain) {
			if decOK {
				return ValueDecimal | ValueZstd, dst
			}
			return ValueRaw | ValueZstd, dst
		}
		dst = dst[:start]
	}
plain:
	switch best {
	case ValueGorilla:
		dst = append(dst, e.gorilla...)
	case ValueDecimal:
		dst = dec.appendTo(dst, intBitPacked)
	default:
		dst = appendValueRaw(dst, vals)
	}
	return best, dst
}
