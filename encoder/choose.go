package encoder

import (
	"encoding/binary"
	"math"
	"slices"
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
	// dictZstdSlack: the dictionary's zstd estimate is rough (zstdEstimate), so an
	// attempt is made when it comes within 1/dictZstdSlack above the size to beat.
	dictZstdSlack = 6
	// dictSampleValues: after this many values, a block whose values were nearly all
	// distinct gives up on the dictionary.
	dictSampleValues = 256
	// zstdNextGain: after one zstd layout succeeded, the next is tried only if its
	// estimate beats the achieved size by this fraction.
	zstdNextGain = 0.05
	// decimalFastRatio and rawFastRatio: the default level's size over the fastest's, on
	// decimal and raw byte planes of the real data's blocks (0.655/0.684, 0.290/0.320).
	decimalFastRatio = 0.96
	rawFastRatio     = 0.91
	// zstdSampleValues: the byte planes of this many values, compressed, estimate what
	// zstd makes of a whole block's.
	zstdSampleValues = 1024
	// dictColumnShare: a block whose dictionary column is under 1/dictColumnShare of the
	// dictionary payload's estimate takes no sampled zstd estimates (zstdStage).
	dictColumnShare = 2
)

// columnEncoder chooses and writes v3 value columns, reusing its buffers. inner encodes
// dictionaries (created when first needed).
type columnEncoder struct {
	dec     decimalEncoder
	dict    dictEncoder
	alp     alprdEncoder
	bd      bitsDeltaEncoder
	scratch []byte
	dictCol []byte
	zbest   []byte // the smallest zstd stage tried
	ztry    []byte
	zcands  []zstdCandidate
	inner   *columnEncoder
	samples int // blocks estimated on a sample, for tests
}

// zstdStage tries the zstd stage on the byte-plane layouts of the candidates (dict,
// decimal, raw) in order of their estimated sizes, while the estimate beats the size to
// beat, and leaves the smallest that saves zstdGain over the best plain size in c.zbest.
// The estimates: a runs model for the dictionary's indices (dictEncoder.zstdEstimate);
// the order-0 entropy of decimal's and raw planes (planesBytes), or, in large blocks,
// zstd on a sample when that says less. See docs/format/series.md, "Decision rule (v3)".
func (c *columnEncoder) zstdStage(vals []float64, bestSize int, decOK, dictOK bool, dictEnc ValueEncoding, dictSize int) (ValueEncoding, bool) {
	n := len(vals)
	limit := int(float64(bestSize) * (1 - zstdGain))
	cands := c.zcands[:0]
	dictEst := 0
	if dictOK {
		dictEst = c.dict.zstdEstimate(dictSize)
		// The runs model is rough; the slack lets a near miss through.
		cands = append(cands, zstdCandidate{ValueDict, dictEst - limit/dictZstdSlack})
	}
	// Blocks of at least 2·zstdSampleValues values are also estimated by zstd itself on
	// the layout of their first zstdSampleValues values, scaled: it sees the repeats that
	// zstd's matches find and an order-0 estimate misses (off by 2x on some blocks). The
	// sample goes through the fastest level, a third of the default's time, and is scaled
	// by what the default saves over it on the real data.
	//
	// Not when the block takes a dictionary whose own column is under half of the
	// dictionary payload's estimate: its indices repeat exactly where the values do, so
	// the matches a sample would show are the indices' as well, in fewer bytes; raw or
	// decimal planes could only win by not paying for the column. On the real data this
	// skips two thirds of the samples (a tenth of the encoder's time) and changes no
	// block's choice.
	m := zstdSampleValues
	sampled := n >= 2*m && !(dictOK && dictSize*dictColumnShare < dictEst)
	if sampled {
		c.samples++
	}
	// A layout whose estimate is not below limit is never tried, so the order-0 estimate
	// is skipped when even its floor (planesBytesFloor) and the sample's say it cannot
	// be: the same candidates in the same order, without the histograms of small blocks
	// that the plain encodings already code in a few bytes a value.
	if decOK {
		est := math.MaxInt
		if sampled {
			xs := c.dec.ints
			if c.dec.useDelta {
				xs = c.dec.deltas
			}
			c.ztry = appendInts(c.ztry[:0], xs[:m], c.dec.st, intBytePlanes)
			z := float64(len(zstdCompress3(c.ztry[len(c.ztry):], c.ztry, true))) * decimalFastRatio
			est = c.dec.size(intBytePlanes) - packedIntsSize(len(xs), c.dec.st, intBytePlanes) + int(z)*len(xs)/m
		}
		if min(est, c.dec.planesFloor()) < limit {
			est = min(est, c.dec.planesEntropy())
		}
		if est < limit {
			cands = append(cands, zstdCandidate{ValueDecimal, est})
		}
	}
	est := math.MaxInt
	if sampled {
		c.ztry = appendValueRaw(c.ztry[:0], vals[:m])
		z := float64(len(zstdCompress3(c.ztry[len(c.ztry):], c.ztry, true))) * rawFastRatio
		est = int(z) * n / m
	}
	if min(est, planesBytesFloor(8)) < limit {
		est = min(est, rawPlanesEntropy(vals))
	}
	if est < limit {
		cands = append(cands, zstdCandidate{ValueRaw, est})
	}
	slices.SortStableFunc(cands, func(a, b zstdCandidate) int { return a.est - b.est })
	c.zcands = cands
	got := ValueInvalid
	for _, cd := range cands {
		// Most promising first; after a success, another layout is tried only when its
		// estimate beats the size achieved by zstdNextGain, as estimates err by a few
		// percent.
		if cd.est >= limit || (got != ValueInvalid && float64(cd.est) >= float64(limit)*(1-zstdNextGain)) {
			break
		}
		switch cd.enc {
		case ValueDict:
			c.scratch = appendDictHeader(c.scratch[:0], dictEnc, c.dictCol, len(c.dict.dict))
			c.scratch = appendInts(c.scratch, c.dict.idx, c.dict.st, intBytePlanes)
		case ValueDecimal:
			c.scratch = c.dec.appendTo(c.scratch[:0], intBytePlanes)
		default:
			c.scratch = appendValueRaw(c.scratch[:0], vals)
		}
		c.ztry = zstdCompress3(c.ztry[:0], c.scratch, fastLevel(cd.enc, len(c.scratch)))
		if len(c.ztry) <= limit {
			got, limit = cd.enc|ValueZstd, len(c.ztry)-1 // ties keep the earlier
			c.zbest, c.ztry = c.ztry, c.zbest
		}
	}
	return got, got != ValueInvalid
}

// fastLevel reports whether the zstd stage compresses a payload of enc's layout and n
// bytes at zstd's fastest level rather than the default: dictionary indices always (on
// their long runs the default's match finder took 2.5x the time for 7% fewer bytes),
// decimal planes under fastDecimalBytes and raw planes of fastRawMin to fastRawMax
// bytes. On such small payloads the default level spends its time in cache misses on
// its 1 MiB hash table, and the fastest level finds as much: on every data set of
// bench-codec and the run benchmarks' workloads the files came out the same size or
// smaller (the real data pooled 68 bytes smaller in 3.7 MB), and BenchmarkKeyedStream's
// merge, encode and spool ran 16% faster. Below fastRawMin the default's matches pay
// on raw planes (the short scrape-aligned series were 0.1% larger without it).
func fastLevel(enc ValueEncoding, n int) bool {
	switch enc {
	case ValueDict:
		return true
	case ValueDecimal:
		return n < fastDecimalBytes
	case ValueRaw:
		return n >= fastRawMin && n < fastRawMax
	}
	return false
}

const (
	fastDecimalBytes = 1 << 10
	fastRawMin       = 2 << 10
	fastRawMax       = 16 << 10
)

// zstdCandidate is a layout the zstd stage may try, with its estimated size.
type zstdCandidate struct {
	enc ValueEncoding
	est int
}

// appendColumn chooses the encoding of vals and appends its payload to dst. top says
// the column is a block's (which may take a dictionary and the zstd stage), not a
// dictionary's.
func (c *columnEncoder) appendColumn(dst []byte, vals []float64, top bool) (ValueEncoding, []byte) {
	n := len(vals)
	if b, ok := constantBits(vals); ok {
		return ValueConst, binary.LittleEndian.AppendUint64(dst, b)
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
		if s := gorillaSize(vals); float64(s) < float64(bestSize)*(1-gorillaGain) {
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
		dst = appendGorilla(dst, vals)
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
