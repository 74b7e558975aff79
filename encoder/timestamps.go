package encoder

import (
	"encoding/binary"
	"fmt"
)

// TsEncoding tags how a block's timestamps are encoded: the first encoding byte of every
// block header. The low 7 bits name the encoding; bit 0x80 adds the zstd stage (v2). See
// docs/format/series.md, "Timestamp encodings". The first timestamp is always in the
// block header, so payloads describe ts[1:].
type TsEncoding uint8

// Timestamp encodings. Tags are part of the format: never renumber them.
const (
	TsInvalid TsEncoding = 0
	// TsDoD is Gorilla-style delta-of-delta with unary-prefixed buckets sized for
	// millisecond timestamps. Format v1 and later.
	TsDoD TsEncoding = 1
	// TsDeltaConst: every delta is the same, so the header's first timestamp, span and
	// count say it all; the payload is empty. Format v2.
	TsDeltaConst TsEncoding = 2
	// TsDeltaRLE: runs of equal deltas as (delta uvarint, run length uvarint) pairs, for
	// regular series with a few gaps. Format v2.
	TsDeltaRLE TsEncoding = 3
	// TsDeltaPacked: the deltas as packed integers (frame of reference, common divisor,
	// fixed width), for irregular series on a coarse grid. Format v2.
	TsDeltaPacked TsEncoding = 4
	// TsRaw: ts[1:] as 8-byte little-endian integers, the bound on the worst case.
	// Format v2.
	TsRaw TsEncoding = 5

	// TsZstd is the zstd stage flag, or-ed into another encoding. Format v2.
	TsZstd TsEncoding = zstdFlag
)

func (e TsEncoding) String() string {
	var s string
	switch e &^ TsZstd {
	case TsDoD:
		s = "dod"
	case TsDeltaConst:
		s = "delta-const"
	case TsDeltaRLE:
		s = "delta-rle"
	case TsDeltaPacked:
		s = "delta-packed"
	case TsRaw:
		s = "raw"
	default:
		return fmt.Sprintf("ts-encoding(%#x)", uint8(e))
	}
	if e&TsZstd != 0 {
		s += "+zstd"
	}
	return s
}

// IsValidTsEncoding reports whether format version v allows timestamp encoding e.
func IsValidTsEncoding(v uint16, e TsEncoding) bool {
	base := e &^ TsZstd
	if e&TsZstd != 0 && (v < Version2 || base == TsDeltaConst) {
		return false
	}
	switch base {
	case TsDoD:
		return v >= Version1
	case TsDeltaConst, TsDeltaRLE, TsDeltaPacked, TsRaw:
		return v >= Version2
	}
	return false
}

// dodBuckets are the payload widths of the delta-of-delta buckets, indexed by the number
// of leading one bits of the prefix: '0' is dod 0, '10' a 7-bit value, '110' 14 bits and
// so on, '11111' a full 64-bit value. 7 bits absorb millisecond jitter, 14 bits (±8 s)
// and 24 bits (±2.3 h) most scrape hiccups and gaps, 36 bits about ±400 days.
var dodBuckets = [...]uint{0, 7, 14, 24, 36, 64}

const dodMaxPrefix = len(dodBuckets) - 1

// fitsSigned reports whether x fits in an nb-bit two's complement field.
func fitsSigned(x int64, nb uint) bool {
	lim := int64(1) << (nb - 1)
	return x >= -lim && x < lim
}

// dodBits returns the size in bits of one delta-of-delta code.
func dodBits(dod int64) int {
	switch {
	case dod == 0:
		return 1
	case fitsSigned(dod, 7):
		return 2 + 7
	case fitsSigned(dod, 14):
		return 3 + 14
	case fitsSigned(dod, 24):
		return 4 + 24
	case fitsSigned(dod, 36):
		return 5 + 36
	}
	return 5 + 64
}

// appendTsDoD encodes ts[1:] as delta-of-delta bits. All arithmetic wraps modulo 2^64,
// which the decoder mirrors, so every int64 sequence round-trips, even deltas that
// overflow int64.
func appendTsDoD(dst []byte, ts []int64) []byte {
	var bw bitWriter
	bw.reset(dst)
	var prevDelta int64
	for i := 1; i < len(ts); i++ {
		delta := ts[i] - ts[i-1]
		dod := delta - prevDelta
		prevDelta = delta
		switch {
		case dod == 0:
			bw.writeBits(0, 1)
		case fitsSigned(dod, 7):
			bw.writeBits(0b10<<7|uint64(dod)&(1<<7-1), 2+7)
		case fitsSigned(dod, 14):
			bw.writeBits(0b110<<14|uint64(dod)&(1<<14-1), 3+14)
		case fitsSigned(dod, 24):
			bw.writeBits(0b1110<<24|uint64(dod)&(1<<24-1), 4+24)
		case fitsSigned(dod, 36):
			bw.writeBits(0b11110, 5)
			bw.writeBits(uint64(dod)&(1<<36-1), 36)
		default:
			bw.writeBits(0b11111, 5)
			bw.writeBits(uint64(dod), 64)
		}
	}
	return bw.finish()
}

// decodeTsDoD appends n timestamps starting at t0 to dst.
func decodeTsDoD(dst []int64, src []byte, n int, t0 int64) ([]int64, error) {
	start := len(dst)
	dst = growInt64(dst, n)
	out := dst[start:]
	out[0] = t0
	var br bitReader
	br.reset(src)
	t, prevDelta := t0, int64(0)
	for i := 1; i < n; i++ {
		if k := br.leadingOnes(dodMaxPrefix); k > 0 {
			nb := dodBuckets[k]
			v := br.readBits64(nb)
			// Sign-extend the nb-bit field.
			prevDelta += int64(v<<(64-nb)) >> (64 - nb)
		}
		t += prevDelta
		out[i] = t
	}
	if br.over {
		return dst, fmt.Errorf("dod stream of %d bytes ends before %d timestamps: %w", len(src), n, ErrTruncated)
	}
	return dst, nil
}

// appendTsRLE encodes the deltas of ts as (delta, run) pairs.
func appendTsRLE(dst []byte, deltas []int64) []byte {
	for i := 0; i < len(deltas); {
		j := i + 1
		for j < len(deltas) && deltas[j] == deltas[i] {
			j++
		}
		dst = binary.AppendUvarint(dst, uint64(deltas[i]))
		dst = binary.AppendUvarint(dst, uint64(j-i))
		i = j
	}
	return dst
}

// tsRLESize is len(appendTsRLE(nil, deltas)) without encoding.
func tsRLESize(deltas []int64) int {
	size := 0
	for i := 0; i < len(deltas); {
		j := i + 1
		for j < len(deltas) && deltas[j] == deltas[i] {
			j++
		}
		size += uvarintLen(uint64(deltas[i])) + uvarintLen(uint64(j-i))
		i = j
	}
	return size
}

func decodeTsRLE(dst []int64, src []byte, n int, t0 int64) ([]int64, error) {
	start := len(dst)
	dst = growInt64(dst, n)
	out := dst[start:]
	out[0] = t0
	d := newDecbuf(src)
	t := t0
	for i := 1; i < n; {
		delta := d.Uvarint()
		run := d.Uvarint()
		if d.Err != nil {
			return dst, fmt.Errorf("delta-rle run at timestamp %d: %w", i, d.Err)
		}
		if run == 0 || run > uint64(n-i) {
			return dst, fmt.Errorf("delta-rle run of %d at timestamp %d of %d: %w", run, i, n, ErrOutOfRange)
		}
		for range run {
			t += int64(delta)
			out[i] = t
			i++
		}
	}
	if len(d.B) != 0 {
		return dst, fmt.Errorf("delta-rle: %d bytes after the last run: %w", len(d.B), ErrOutOfRange)
	}
	return dst, nil
}

func decodeTsDeltaConst(dst []int64, src []byte, h *blockHeader) ([]int64, error) {
	n := h.count
	if len(src) != 0 {
		return dst, fmt.Errorf("delta-const with a %d-byte payload: %w", len(src), ErrOutOfRange)
	}
	start := len(dst)
	dst = growInt64(dst, n)
	out := dst[start:]
	out[0] = h.minTs
	if n == 1 {
		return dst, nil
	}
	span := uint64(h.maxTs - h.minTs)
	step := span / uint64(n-1)
	if step*uint64(n-1) != span {
		return dst, fmt.Errorf("delta-const: span %d is not a multiple of %d steps: %w", span, n-1, ErrOutOfRange)
	}
	t := h.minTs
	for i := 1; i < n; i++ {
		t += int64(step)
		out[i] = t
	}
	return dst, nil
}

func decodeTsPacked(dst []int64, src []byte, n int, t0 int64) ([]int64, error) {
	start := len(dst)
	dst, err := decodeAllInts(dst, src, n-1)
	if err != nil {
		return dst, fmt.Errorf("delta-packed: %w", err)
	}
	// Turn the n-1 deltas into n timestamps in place, from the back.
	dst = growInt64(dst, 1)
	out := dst[start:]
	copy(out[1:], out[:n-1])
	out[0] = t0
	for i := 1; i < n; i++ {
		out[i] += out[i-1]
	}
	return dst, nil
}

func appendTsRaw(dst []byte, ts []int64) []byte {
	for _, t := range ts[1:] {
		dst = binary.LittleEndian.AppendUint64(dst, uint64(t))
	}
	return dst
}

func decodeTsRaw(dst []int64, src []byte, n int, t0 int64) ([]int64, error) {
	if len(src) != 8*(n-1) {
		return dst, fmt.Errorf("raw timestamps: %d bytes for %d values: %w", len(src), n-1, ErrOutOfRange)
	}
	start := len(dst)
	dst = growInt64(dst, n)
	out := dst[start:]
	out[0] = t0
	for i := 1; i < n; i++ {
		out[i] = int64(binary.LittleEndian.Uint64(src[8*(i-1):]))
	}
	return dst, nil
}

// appendTs chooses and writes the timestamp encoding of one v2 block: the smallest of
// delta-const, delta-rle, dod, delta-packed and raw, computed exactly without encoding
// the losers; then, when the result is large enough to matter, delta-packed in byte
// planes through zstd, kept only if smaller. Ties go to the earlier, cheaper to decode,
// encoding in that list.
func (e *blockEncoder) appendTs(dst []byte, ts []int64) (TsEncoding, []byte) {
	n := len(ts)
	if n == 1 {
		return TsDeltaConst, dst
	}
	deltas := e.deltas[:0]
	constant := true
	for i := 1; i < n; i++ {
		d := ts[i] - ts[i-1]
		deltas = append(deltas, d)
		constant = constant && d == deltas[0]
	}
	e.deltas = deltas
	if constant {
		return TsDeltaConst, dst
	}
	best, bestSize := TsDeltaRLE, tsRLESize(deltas)
	// Every other encoding spends at least a bit per delta: when the runs take less,
	// they win and the other sizes need not be computed.
	if bestSize <= len(deltas)/8 {
		return TsDeltaRLE, appendTsRLE(dst, deltas)
	}
	{
		bitsDoD := 0
		prev := int64(0)
		for _, d := range deltas {
			bitsDoD += dodBits(d - prev)
			prev = d
		}
		if s := (bitsDoD + 7) / 8; s < bestSize {
			best, bestSize = TsDoD, s
		}
	}
	st := analyzeInts(deltas)
	if s := packedIntsSize(len(deltas), st, intBitPacked); s < bestSize {
		best, bestSize = TsDeltaPacked, s
	}
	if s := 8 * len(deltas); s < bestSize {
		best, bestSize = TsRaw, s
	}
	if bestSize >= zstdMinBytes && st.width > 0 {
		e.scratch = appendInts(e.scratch[:0], deltas, st, intBytePlanes)
		nb := int(st.width+7) / 8
		hdr := len(e.scratch) - nb*len(deltas)
		if hdr+entropyBytes(e.scratch[hdr:], len(deltas)) >= bestSize {
			goto plain
		}
		start := len(dst)
		dst = zstdCompress(dst, e.scratch)
		if float64(len(dst)-start) <= float64(bestSize)*(1-zstdGain) {
			return TsDeltaPacked | TsZstd, dst
		}
		dst = dst[:start]
	}
plain:
	switch best {
	case TsDeltaRLE:
		dst = appendTsRLE(dst, deltas)
	case TsDoD:
		dst = appendTsDoD(dst, ts)
	case TsDeltaPacked:
		dst = appendInts(dst, deltas, st, intBitPacked)
	default:
		dst = appendTsRaw(dst, ts)
	}
	return best, dst
}
