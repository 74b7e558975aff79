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
	// zstdSampleValues: the raw planes of this many values, compressed, estimate what
	// zstd makes of a whole block's.
	zstdSampleValues = 1024
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
	zbest   []byte // the smallest zstd stage tried
	ztry    []byte
	inner   *columnEncoder
}

// zstdStage tries the zstd stage on the byte-plane layouts of the candidates whose
// estimated size beats the best plain size, and leaves the smallest that saves zstdGain
// in c.zbest. A dictionary's planes are tried whenever the dictionary is close to the
// best (cheap: indices take a byte or two a value). Decimal's and raw planes are tried
// when their estimate wins: the order-0 entropy of the planes, which is what zstd's
// Huffman stage makes of them, or, for raw planes of values that repeat (the dictionary's
// analysis tells), zstd itself on the first zstdSampleValues values scaled to the block,
// which also sees the repeats that zstd's matches find and an order-0 estimate misses.
func (c *columnEncoder) zstdStage(vals []float64, bestSize int, decOK, dictOK bool, dictEnc ValueEncoding, dictSize int) (ValueEncoding, bool) {
	n := len(vals)
	limit := int(float64(bestSize) * (1 - zstdGain))
	got := ValueInvalid
	attempt := func(enc ValueEncoding, payload []byte) {
		c.ztry = zstdCompress3(c.ztry[:0], payload)
		if len(c.ztry) <= limit {
			got, limit = enc, len(c.ztry)-1 // ties keep the earlier
			c.zbest, c.ztry = c.ztry, c.zbest
		}
	}
	if dictOK && dictSize+packedIntsSize(n, c.dict.st, intBitPacked) <= dictZstdSpan*bestSize {
		c.scratch = appendDictHeader(c.scratch[:0], dictEnc, c.dictCol, len(c.dict.dict))
		c.scratch = appendInts(c.scratch, c.dict.idx, c.dict.st, intBytePlanes)
		attempt(ValueDict|ValueZstd, c.scratch)
	}
	if decOK {
		c.scratch = c.dec.appendTo(c.scratch[:0], intBytePlanes)
		planeLen, nb := c.dec.packedLen(), int(c.dec.st.width+7)/8
		hdr := len(c.scratch) - planeLen*nb
		if hdr+entropyBytes(c.scratch[hdr:], planeLen) < limit {
			attempt(ValueDecimal|ValueZstd, c.scratch)
		}
	}
	est := rawPlanesEntropy(vals)
	if est >= limit && n >= 2*zstdSampleValues && !c.dict.unique {
		c.ztry = appendValueRaw(c.ztry[:0], vals[:zstdSampleValues])
		sample := len(zstdCompress3(c.ztry[len(c.ztry):], c.ztry))
		est = sample * n / zstdSampleValues
	}
	if est < limit {
		c.scratch = appendValueRaw(c.scratch[:0], vals)
		attempt(ValueRaw|ValueZstd, c.scratch)
	}
	return got, got != ValueInvalid
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
	c.dict.unique = false
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
		if enc, ok := c.zstdStage(vals, bestSize, decOK, dictOK, dictEnc, dictSize); ok {
			return enc, append(dst, c.zbest...)
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
