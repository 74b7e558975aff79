package encoder

import (
	"encoding/binary"
	"fmt"
)

// blockEncoder encodes blocks, reusing its scratch buffers between calls.
type blockEncoder struct {
	version uint16
	tsBuf   []byte
	valBuf  []byte
	deltas  []int64
	scratch []byte
	gorilla []byte
	dec     decimalEncoder
	col     columnEncoder // format v3 values
	tsCache [tsCacheSize]cachedTs
	tsNext  int
}

// appendBlock appends one block: header, timestamp payload, value payload, crc32c of all
// three. ts is strictly increasing and 1..MaxBlockPoints long, len(vals) == len(ts).
func (e *blockEncoder) appendBlock(dst []byte, ts []int64, vals []float64) []byte {
	h := blockHeader{
		count: len(ts),
		minTs: ts[0],
		maxTs: ts[len(ts)-1],
	}
	if e.version == Version1 {
		// Format v1 has one encoding per column.
		h.tsEnc, h.valEnc = TsDoD, ValueGorilla
		e.tsBuf = appendTsDoD(e.tsBuf[:0], ts)
		e.valBuf = appendGorilla(e.valBuf[:0], vals)
	} else {
		h.tsEnc, e.tsBuf = e.appendTs(e.tsBuf[:0], ts)
		h.valEnc, e.valBuf = e.appendValues(e.valBuf[:0], vals)
	}
	h.tsLen, h.valLen = len(e.tsBuf), len(e.valBuf)

	start := len(dst)
	dst = h.Marshal(dst)
	dst = append(dst, e.tsBuf...)
	dst = append(dst, e.valBuf...)
	return binary.LittleEndian.AppendUint32(dst, checksum(dst[start:]))
}

// blockDecoder holds a reader's scratch space for decoding blocks.
type blockDecoder struct {
	zbuf []byte    // decompressed zstd stage
	ints []int64   // decimal integers, dictionary indices
	dict []float64 // a dictionary's values
	pad  []byte    // padded bit streams
}

// decodeTs appends the block's timestamps to dst and checks that they strictly increase
// from h.minTs to h.maxTs, so a block with a valid checksum but wrong content cannot hand
// unsorted points to a caller.
func (d *blockDecoder) decodeTs(dst []int64, h *blockHeader, src []byte) ([]int64, error) {
	start := len(dst)
	var err error
	enc := h.tsEnc
	if enc&TsZstd != 0 {
		if src, err = zstdDecompress(&d.zbuf, src, h.count); err != nil {
			return dst, fmt.Errorf("decode %s timestamps: %w", h.tsEnc, err)
		}
		enc &^= TsZstd
	}
	switch enc {
	case TsDoD:
		dst, err = decodeTsDoD(dst, src, h.count, h.minTs)
	case TsDeltaConst:
		dst, err = decodeTsDeltaConst(dst, src, h)
	case TsDeltaRLE:
		dst, err = decodeTsRLE(dst, src, h.count, h.minTs)
	case TsDeltaPacked:
		dst, err = decodeTsPacked(dst, src, h.count, h.minTs)
	case TsRaw:
		dst, err = decodeTsRaw(dst, src, h.count, h.minTs)
	default:
		return dst, fmt.Errorf("BUG: timestamp encoding %s passed header validation", h.tsEnc)
	}
	if err != nil {
		return dst[:start], fmt.Errorf("decode %s timestamps: %w", h.tsEnc, err)
	}
	out := dst[start:]
	if len(out) != h.count {
		return dst[:start], fmt.Errorf("decoded %d timestamps, header says %d: %w", len(out), h.count, ErrOutOfRange)
	}
	for i := 1; i < len(out); i++ {
		if out[i] <= out[i-1] {
			return dst[:start], fmt.Errorf("timestamp %d at %d does not follow %d: %w", out[i], i, out[i-1], ErrOutOfRange)
		}
	}
	if out[len(out)-1] != h.maxTs {
		return dst[:start], fmt.Errorf("last timestamp %d, header says %d: %w", out[len(out)-1], h.maxTs, ErrOutOfRange)
	}
	return dst, nil
}

// decodeValues appends the block's values to dst.
func (d *blockDecoder) decodeValues(dst []float64, h *blockHeader, src []byte) ([]float64, error) {
	return d.decodeColumn(dst, h.valEnc, src, h.count, h.version)
}

// decodeColumn appends the n values of a column encoded as enc (already checked against
// format version v) to dst.
func (d *blockDecoder) decodeColumn(dst []float64, enc ValueEncoding, src []byte, n int, v uint16) ([]float64, error) {
	start := len(dst)
	var err error
	base := enc &^ ValueZstd
	if enc&ValueZstd != 0 {
		if src, err = zstdDecompress(&d.zbuf, src, n); err != nil {
			return dst, fmt.Errorf("decode %s values: %w", enc, err)
		}
	}
	switch base {
	case ValueGorilla:
		dst, err = decodeGorilla(dst, src, n)
	case ValueConst:
		dst, err = decodeValueConst(dst, src, n)
	case ValueRaw:
		dst, err = decodeValueRaw(dst, src, n)
	case ValueDecimal:
		dst, err = decodeDecimal(dst, src, n, &d.ints)
	case ValueDict:
		dst, err = d.decodeDict(dst, src, n, v)
	case ValueALPRD:
		dst, err = decodeALPRD(dst, src, n, &d.pad)
	case ValueBitsDelta:
		dst, err = decodeBitsDelta(dst, src, n, &d.ints)
	default:
		return dst, fmt.Errorf("BUG: value encoding %s passed header validation", enc)
	}
	if err != nil {
		return dst[:start], fmt.Errorf("decode %s values: %w", enc, err)
	}
	if got := len(dst) - start; got != n {
		return dst[:start], fmt.Errorf("decoded %d values, header says %d: %w", got, n, ErrOutOfRange)
	}
	return dst, nil
}
