package encoder

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// The zstd stage: bit 0x80 of an encoding byte (format v2) says the column's payload is a
// zstd frame whose content is the payload of the encoding in the low 7 bits. The writer
// uses it only when it makes the column smaller (see "Decision rule" in
// docs/format/series.md). It pays on byte-aligned data with skewed byte distributions,
// which is why decimal and raw values have byte-plane layouts.
const zstdFlag = 0x80

// zstdMinBytes: below this a column is not worth a zstd attempt; a frame costs about 9
// bytes of header and the entropy tables, so it cannot win on tiny payloads.
const zstdMinBytes = 48

// zstdGain: the zstd stage is kept only when it saves at least this fraction of the best
// plain encoding, because decompression costs more than decoding the plain payload.
const zstdGain = 0.03

const entropySample = 2048

var zstdCodecs = sync.OnceValues(func() (*zstd.Encoder, *zstd.Decoder) {
	// Default level: on these small, already reduced payloads it is about as fast as the
	// fastest level and noticeably smaller. No frame checksum: the block's crc32c covers
	// the payload. Single segment: the content size goes into the frame header.
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderCRC(false),
		zstd.WithSingleSegment(true),
		zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		panic("BUG: zstd encoder options: " + err.Error())
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(maxPayloadBytes(MaxBlockPoints)),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderLowmem(true),
	)
	if err != nil {
		panic("BUG: zstd decoder options: " + err.Error())
	}
	return enc, dec
})

// maxPayloadBytes bounds the decompressed payload of one column of a block of n points:
// the largest encoding is decimal with every value an exception (8 bytes, a position of at
// most 3 bytes, and a packed int of 8 bytes each) plus headers.
func maxPayloadBytes(n int) uint64 { return uint64(n)*20 + 64 }

// zstdCompress appends the zstd frame of src to dst.
func zstdCompress(dst, src []byte) []byte {
	enc, _ := zstdCodecs()
	return enc.EncodeAll(src, dst)
}

// zstdEncoders3 are the zstd stage of format v3 writers (v2 files keep the encoder they
// were pinned with): the default level, and the fastest for dictionary indices and small
// payloads (fastLevel). One encoder state per processor, so that the shards of a run that
// encode at once do not wait for each other.
var zstdEncoders3 = sync.OnceValues(func() (*zstd.Encoder, *zstd.Encoder) {
	mk := func(l zstd.EncoderLevel) *zstd.Encoder {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(l),
			zstd.WithEncoderCRC(false),
			zstd.WithSingleSegment(true),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithZeroFrames(true),
		)
		if err != nil {
			panic("BUG: zstd encoder options: " + err.Error())
		}
		return enc
	}
	return mk(zstd.SpeedDefault), mk(zstd.SpeedFastest)
})

// zstdCompress3 appends the zstd frame of src to dst, for format v3; fast picks the
// fastest level.
func zstdCompress3(dst, src []byte, fast bool) []byte {
	def, fastest := zstdEncoders3()
	if fast {
		return fastest.EncodeAll(src, dst)
	}
	return def.EncodeAll(src, dst)
}

// zstdDecompress decompresses src into *buf, refusing output beyond the bound for n
// points, so a hostile frame cannot make the reader allocate more than that. *buf keeps
// the largest capacity seen, so a reader settles on one buffer.
func zstdDecompress(buf *[]byte, src []byte, n int) ([]byte, error) {
	_, dec := zstdCodecs()
	limit := maxPayloadBytes(n)
	if uint64(cap(*buf)) < limit {
		*buf = make([]byte, 0, limit)
	}
	out, err := dec.DecodeAll(src, (*buf)[:0:limit])
	if err != nil {
		return nil, fmt.Errorf("zstd stage of %d bytes: %v: %w", len(src), err, ErrOutOfRange)
	}
	return out, nil
}

// entropyBytes estimates what an order-0 entropy coder (zstd's Huffman literals) makes of
// planes, the byte planes of planeLen bytes each at the end of a payload: the sum of each
// plane's order-0 entropy, plus a table's worth per plane. The writer skips the zstd
// attempt when this estimate cannot beat the best size it already has; zstd's matches can
// do better on long repeats, which the estimate ignores, so it errs towards skipping only
// payloads that look incompressible.
func entropyBytes(planes []byte, planeLen int) int {
	if planeLen <= 0 {
		return len(planes)
	}
	// A sample of at most entropySample bytes a plane is plenty for an estimate (the
	// plug-in entropy of 2,048 draws from 256 symbols is low by under 0.1 bit) and keeps
	// this cheap next to zstd itself; c*log2(c) comes from a table.
	stride := max(1, (planeLen+entropySample-1)/entropySample)
	xlog := xlog2xTable()
	total := 0.0
	for len(planes) >= planeLen {
		var hist [256]uint32
		p := planes[:planeLen]
		planes = planes[planeLen:]
		cnt := 0
		for i := 0; i < len(p); i += stride {
			hist[p[i]]++
			cnt++
		}
		bitsSum := xlog[cnt]
		for _, c := range hist {
			bitsSum -= xlog[c]
		}
		total += bitsSum*float64(planeLen)/float64(cnt)/8 + 16
	}
	return int(total) + len(planes)
}

// rawPlanesEntropy is entropyBytes of the raw byte planes of vals (appendValueRaw),
// computed from the same sample of values without building the planes.
func rawPlanesEntropy(vals []float64) int {
	n := len(vals)
	stride := max(1, (n+entropySample-1)/entropySample)
	var hist [8][256]uint32
	h0, h1, h2, h3, h4, h5, h6, h7 := &hist[0], &hist[1], &hist[2], &hist[3], &hist[4], &hist[5], &hist[6], &hist[7]
	cnt := 0
	for i := 0; i < n; i += stride {
		// Unrolled: one increment a plane, no loop over the planes and no bounds checks.
		b := math.Float64bits(vals[i])
		h0[byte(b)]++
		h1[byte(b>>8)]++
		h2[byte(b>>16)]++
		h3[byte(b>>24)]++
		h4[byte(b>>32)]++
		h5[byte(b>>40)]++
		h6[byte(b>>48)]++
		h7[byte(b>>56)]++
		cnt++
	}
	return planesBytes(hist[:], cnt, n)
}

// planesBytes estimates what zstd's Huffman stage makes of byte planes of planeLen bytes
// whose sampled byte histograms (cnt samples each) are hist: each plane's order-0
// entropy, with the Miller-Madow correction ((distinct − 1) / 2·cnt nats a symbol) for
// the entropy a small sample hides (a plug-in estimate from 360 draws of 200 symbols is
// half a bit low), a table per plane and a frame. Format v3's writer uses it; v2's keeps
// entropyBytes, which its frozen files pin.
func planesBytes(hist [][256]uint32, cnt, planeLen int) int {
	xlog := (*[xlogSize]float64)(xlog2xTable())
	total := float64(zstdFrameBytes)
	for k := range hist {
		h := &hist[k]
		bitsSum := xlog[cnt&(xlogSize-1)]
		distinct := 0
		for i := 0; i < len(h); i += 4 {
			a, b, c, d := h[i], h[i+1], h[i+2], h[i+3]
			if a|b|c|d <= 1 {
				// Counts of 0 and 1 have c·log2(c) = 0, and subtracting +0 leaves the sum
				// as it is, bit for bit: the estimate of the loop over every count, in
				// a fraction of its time on sparse planes (a sample of a few hundred, or
				// the high planes of values of one magnitude).
				distinct += int(a + b + c + d)
				continue
			}
			// Counts are at most cnt <= entropySample < xlogSize: the mask only spares a
			// bounds check. The same order as a loop over every count.
			bitsSum -= xlog[a&(xlogSize-1)]
			bitsSum -= xlog[b&(xlogSize-1)]
			bitsSum -= xlog[c&(xlogSize-1)]
			bitsSum -= xlog[d&(xlogSize-1)]
			distinct += int(min(a, 1) + min(b, 1) + min(c, 1) + min(d, 1))
		}
		perSymbol := bitsSum/float64(cnt) + float64(distinct-1)/(2*float64(cnt)*math.Ln2)
		total += min(8, perSymbol)*float64(planeLen)/8 + 16
	}
	return int(total)
}

// planesBytesFloor is the least planesBytes returns for planes byte planes: the frame and
// a table a plane, as every plane's entropy is at least 0 (less a byte, for the rounding
// of a sum that is 0 in exact arithmetic).
func planesBytesFloor(planes int) int { return zstdFrameBytes + 16*planes - 1 }

// zstdFrameBytes is about what a zstd frame costs beyond its blocks' contents: the frame
// header with the content size, a block header and the literals section's header.
const zstdFrameBytes = 12

// xlogSize is the length of xlog2xTable: a power of two above entropySample, so that an
// index masked with xlogSize-1 needs no bounds check.
const xlogSize = 4096

// xlog2xTable holds c*log2(c) for c in 0..xlogSize-1.
var xlog2xTable = sync.OnceValue(func() []float64 {
	t := make([]float64, xlogSize)
	for c := 2; c < xlogSize; c++ {
		t[c] = float64(c) * math.Log2(float64(c))
	}
	return t
})

// indexDecoder decodes v3 index bodies, which may be larger than any block payload; the
// caller bounds each output by the capacity it passes (maxIndexRatio).
var indexDecoder = sync.OnceValue(func() *zstd.Decoder {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(1<<40),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderLowmem(true),
	)
	if err != nil {
		panic("BUG: zstd decoder options: " + err.Error())
	}
	return dec
})
