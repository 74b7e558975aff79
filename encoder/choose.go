package encoder

import (
	"encoding/binary"
	"math"
)

// The format v3 decision rule for values (docs/format/series.md, "Decision rule (v3)").
// Exact sizes are computed for every encoding that costs no more than a pass over the
// values; the zstd stage, which costs far more, is tried only for the candidates whose
// estimated size beats the best exact one.

const (
	// alprdTryBytes: alp-rd spends at least 6 bytes a value, so it is analysed only when
	// nothing cheaper got below this.
	alprdTryBytes = 6
	// bitsDeltaTryBytes: values that decimal or a dictionary code in fewer bytes have
	// structure that bits-delta, which sees only the bit patterns, does not beat.
	bitsDeltaTryBytes = 4
	// dictZstdSpan: a dictionary whose plain size is within this factor of the best is
	// worth a zstd attempt, because zstd's matches code runs of repeated indices far below
	// their entropy, which no cheap estimate sees. The attempt is cheap: indices take one
	// or two bytes a value.
	dictZstdSpan = 2
	// dictSampleValues: after this many values, a block whose values were nearly all
	// distinct gives up on the dictionary.
	dictSampleValues = 256
)

// columnEncoder chooses and writes v3 value columns, reusing its buffers. inner encodes
// dictionaries (created when first needed).
type columnEncoder struct {
	dec     decimalEncoder
	dict    dictEncoder
	alp     alprdEncoder
	bd      bitsDeltaEncoder
	gorilla []byte
	scratch []byte
	dictCol []byte
	inner   *columnEncoder
}

// appendColumn chooses the encoding of vals and appends its payload to dst. top says
// the column is a block's (which may take a dictionary and the zstd stage), not a
// dictionary's.
func (c *columnEncoder) appendColumn(dst []byte, vals []float64, top bool) (ValueEncoding, []byte) {
	n := len(vals)
	first := math.Float64bits(vals[0])
	constant := true
	for _, v := range vals[1:] {
		if math.Float64bits(v) != first {
			constant = false
			break
		}
	}
	if constant {
		return ValueConst, binary.LittleEndian.AppendUint64(dst, first)
	}

	best, bestSize := ValueRaw, 8*n
	decOK := c.dec.analyze(vals)
	if decOK {
		if s := c.dec.size(intBitPacked); s <= bestSize {
			best, bestSize = ValueDecimal, s
		}
	}
	dictOK := false
	var dictEnc ValueEncoding
	dictSize := 0
	if top && n >= 4 && c.dict.analyze(vals, min(maxDictValues, n/2)) {
		if c.inner == nil {
			c.inner = &columnEncoder{}
		}
		dictEnc, c.dictCol = c.inner.appendColumn(c.dictCol[:0], c.dict.dict, false)
		k := len(c.dict.dict)
		dictSize = uvarintLen(uint64(k)) + 1 + uvarintLen(uint64(len(c.dictCol))) + len(c.dictCol)
		dictOK = true
		if s := dictSize + packedIntsSize(n, c.dict.st, intBitPacked); s < bestSize {
			best, bestSize = ValueDict, s
		}
	}
	if bestSize > bitsDeltaTryBytes*n {
		if s := c.bd.analyze(vals); s < bestSize {
			best, bestSize = ValueBitsDelta, s
		}
	}
	if bestSize > alprdTryBytes*n {
		if s := c.alp.analyze(vals); s < bestSize {
			best, bestSize = ValueALPRD, s
		}
	}
	if bestSize > gorillaTryBytes*n {
		c.gorilla = appendGorilla(c.gorilla[:0], vals)
		if s := len(c.gorilla); float64(s) < float64(bestSize)*(1-gorillaGain) {
			best, bestSize = ValueGorilla, s
		}
	}

	if top && bestSize >= zstdMinBytes {
		limit := int(float64(bestSize) * (1 - zstdGain))
		// The dictionary first: its attempt is cheap and its estimate unreliable.
		if dictOK && dictSize+packedIntsSize(n, c.dict.st, intBitPacked) <= dictZstdSpan*bestSize {
			c.scratch = appendDictHeader(c.scratch[:0], dictEnc, c.dictCol, len(c.dict.dict))
			c.scratch = appendInts(c.scratch, c.dict.idx, c.dict.st, intBytePlanes)
			start := len(dst)
			dst = zstdCompress3(dst, c.scratch)
			if s := len(dst) - start; s <= limit {
				return ValueDict | ValueZstd, dst
			}
			dst = dst[:start]
		}
		// Then decimal in byte planes, or raw byte planes (Parquet's BYTE_STREAM_SPLIT),
		// when the planes' entropy says zstd can beat the best.
		enc := ValueRaw
		var planeLen, nb int
		if decOK {
			enc = ValueDecimal
			c.scratch = c.dec.appendTo(c.scratch[:0], intBytePlanes)
			planeLen, nb = c.dec.packedLen(), int(c.dec.st.width+7)/8
		} else {
			c.scratch = appendValueRaw(c.scratch[:0], vals)
			planeLen, nb = n, 8
		}
		hdr := len(c.scratch) - planeLen*nb
		if est := hdr + entropyBytes(c.scratch[hdr:], planeLen); est < limit {
			start := len(dst)
			dst = zstdCompress3(dst, c.scratch)
			if s := len(dst) - start; s <= limit {
				return enc | ValueZstd, dst
			}
			dst = dst[:start]
		}
		if decOK && n >= 4*zstdMinBytes {
			// Decimal's planes lost; full-precision doubles may still gain from raw ones.
			c.scratch = appendValueRaw(c.scratch[:0], vals)
			if est := entropyBytes(c.scratch, n); est < limit {
				start := len(dst)
				dst = zstdCompress3(dst, c.scratch)
				if s := len(dst) - start; s <= limit {
					return ValueRaw | ValueZstd, dst
				}
				dst = dst[:start]
			}
		}
	}
	switch best {
	case ValueGorilla:
		dst = append(dst, c.gorilla...)
	case ValueDecimal:
		dst = c.dec.appendTo(dst, intBitPacked)
	case ValueDict:
		dst = appendDictHeader(dst, dictEnc, c.dictCol, len(c.dict.dict))
		dst = appendInts(dst, c.dict.idx, c.dict.st, intBitPacked)
	case ValueALPRD:
		dst = c.alp.appendTo(dst, vals)
	case ValueBitsDelta:
		dst = c.bd.appendTo(dst, vals)
	default:
		dst = appendValueRaw(dst, vals)
	}
	return best, dst
}
