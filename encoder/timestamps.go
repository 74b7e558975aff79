package encoder

import (
	"fmt"
)

// TsEncoding tags how a block's timestamps are encoded. The tag is the first encoding byte
// of every block header. See docs/format/series.md, "Timestamp encodings".
type TsEncoding uint8

// Timestamp encodings. Tags are part of the format: never renumber them.
const (
	TsInvalid TsEncoding = 0
	// TsDoD is Gorilla-style delta-of-delta with unary-prefixed buckets sized for
	// millisecond timestamps. Format v1 and later.
	TsDoD TsEncoding = 1
)

func (e TsEncoding) String() string {
	switch e {
	case TsDoD:
		return "dod"
	}
	return fmt.Sprintf("ts-encoding(%d)", uint8(e))
}

// IsValidTsEncoding reports whether format version v allows timestamp encoding e.
func IsValidTsEncoding(v uint16, e TsEncoding) bool {
	switch e {
	case TsDoD:
		return v >= 1
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

// appendTsDoD encodes ts[1:] as delta-of-delta bits. ts[0] is not written: it travels in
// the block header. All arithmetic wraps modulo 2^64, which the decoder mirrors, so every
// int64 sequence round-trips, even deltas that overflow int64.
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
	dst = append(dst, t0)
	var br bitReader
	br.reset(src)
	t, prevDelta := t0, int64(0)
	for i := 1; i < n; i++ {
		k := br.leadingOnes(dodMaxPrefix)
		if k > 0 {
			nb := dodBuckets[k]
			v := br.readBits64(nb)
			// Sign-extend the nb-bit field.
			prevDelta += int64(v<<(64-nb)) >> (64 - nb)
		}
		t += prevDelta
		dst = append(dst, t)
	}
	if br.over {
		return dst, fmt.Errorf("dod stream of %d bytes ends before %d timestamps: %w", len(src), n, ErrTruncated)
	}
	return dst, nil
}
