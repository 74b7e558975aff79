package encoder

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteForceSize encodes vals with every v3 value encoding the writer can produce, in
// every layout, zstd stage or not, and returns the smallest payload, decoding each to
// check it.
func bruteForceSize(t testing.TB, vals []float64) int {
	t.Helper()
	n := len(vals)
	var bd blockDecoder
	best := math.MaxInt
	try := func(enc ValueEncoding, payload []byte) {
		t.Helper()
		got, err := bd.decodeColumn(nil, enc, payload, n, Version3)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		for i := range got {
			if math.Float64bits(got[i]) != math.Float64bits(vals[i]) {
				t.Fatalf("%s: value %d is %v, want %v", enc, i, got[i], vals[i])
			}
		}
		best = min(best, len(payload))
	}
	withZstd := func(enc ValueEncoding, payload []byte) {
		try(enc, payload)
		try(enc|ValueZstd, zstdCompress3(nil, payload, false))
	}
	constant := true
	for _, v := range vals {
		constant = constant && math.Float64bits(v) == math.Float64bits(vals[0])
	}
	if constant {
		return 8
	}
	withZstd(ValueRaw, appendValueRaw(nil, vals))
	try(ValueGorilla, appendGorilla(nil, vals))
	var dec decimalEncoder
	if dec.analyze(vals) {
		try(ValueDecimal, dec.appendTo(nil, intBitPacked))
		try(ValueDecimal|ValueZstd, zstdCompress3(nil, dec.appendTo(nil, intBytePlanes), false))
	}
	var c columnEncoder
	if n >= 4 && c.dict.analyze(vals, min(maxDictValues, n/2)) {
		enc, col := (&columnEncoder{}).appendColumn(nil, c.dict.dict, false)
		hdr := appendDictHeader(nil, enc, col, len(c.dict.dict))
		try(ValueDict, appendInts(append([]byte(nil), hdr...), c.dict.idx, c.dict.st, intBitPacked))
		try(ValueDict|ValueZstd, zstdCompress3(nil, appendInts(append([]byte(nil), hdr...), c.dict.idx, c.dict.st, intBytePlanes), true))
	}
	var a alprdEncoder
	a.analyze(vals)
	try(ValueALPRD, a.appendTo(nil, vals))
	var x bitsDeltaEncoder
	x.analyze(vals)
	try(ValueBitsDelta, x.appendTo(nil, vals))
	return best
}

// TestChoiceIsSound checks the writer's value choice against brute force: over the blocks
// of every real data set (and synthetic shapes), the chosen payloads add up to at most 1.5%
// more than the smallest encoding of each block. The writer computes exact sizes where
// that costs a pass and estimates the zstd stage; the slack is its thresholds (zstd must
// save 3%, gorilla 10%), which buy decoding speed.
func TestChoiceIsSound(t *testing.T) {
	sets := realSets(t)
	sets = append(sets, testSet{Name: "synthetic", Series: randomSeries(rand.New(rand.NewPCG(21, 21)), 60, 5000)})
	for _, f := range sets {
		t.Run(f.Name, func(t *testing.T) {
			var c columnEncoder
			chosen, brute := 0, 0
			for _, s := range f.Series {
				for i := 0; i < len(s.Values); i += defaultBlockPoints {
					vals := s.Values[i:min(i+defaultBlockPoints, len(s.Values))]
					_, p := c.appendColumn(nil, vals, true)
					chosen += len(p)
					brute += bruteForceSize(t, vals)
				}
			}
			ratio := float64(chosen) / float64(brute)
			t.Logf("%s: chosen %d bytes, brute force %d, %.4fx", f.Name, chosen, brute, ratio)
			if ratio > 1.015 {
				t.Fatalf("the writer's choices take %.4fx the smallest encodings", ratio)
			}
		})
	}
}

// TestSampledEstimates: a large block is estimated on a zstd sample unless it takes a
// dictionary whose column is a small part of its payload, whose indices show the same
// repeats in fewer bytes; either way the choice stays near the smallest encoding.
func TestSampledEstimates(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	block := func(gen func(i int) float64) []float64 {
		vals := make([]float64, defaultBlockPoints)
		for i := range vals {
			vals[i] = gen(i)
		}
		return vals
	}
	few := []float64{0.25, 1.0 / 3, 7, 1e6, math.Pi}
	cycle := make([]float64, 1500)
	for i := range cycle {
		cycle[i] = rng.Float64() * 100
	}
	for _, tc := range []struct {
		name    string
		vals    []float64
		sampled bool
	}{
		{"few distinct values", block(func(int) float64 { return few[rng.IntN(len(few))] }), false},
		{"a long cycle of many values", block(func(i int) float64 { return cycle[i%len(cycle)] }), true},
		{"distinct values", block(func(int) float64 { return rng.Float64() }), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c columnEncoder
			enc, p := c.appendColumn(nil, tc.vals, true)
			if got := c.samples == 1; got != tc.sampled {
				t.Fatalf("sampled %v, want %v", got, tc.sampled)
			}
			if brute := bruteForceSize(t, tc.vals); float64(len(p)) > 1.015*float64(brute) {
				t.Fatalf("%s of %d bytes, the smallest encoding takes %d", enc, len(p), brute)
			}
		})
	}
}

// TestFastLevel: which payloads the zstd stage compresses at the fastest level.
func TestFastLevel(t *testing.T) {
	for _, tc := range []struct {
		enc  ValueEncoding
		n    int
		fast bool
	}{
		{ValueDict, 100, true}, {ValueDict, 1 << 20, true},
		{ValueDecimal, 500, true}, {ValueDecimal, 1023, true}, {ValueDecimal, 1024, false}, {ValueDecimal, 40000, false},
		{ValueRaw, 1200, false}, {ValueRaw, 2047, false}, {ValueRaw, 2048, true}, {ValueRaw, 8000, true}, {ValueRaw, 16383, true}, {ValueRaw, 16384, false}, {ValueRaw, 65536, false},
	} {
		if got := fastLevel(tc.enc, tc.n); got != tc.fast {
			t.Errorf("fastLevel(%s, %d) = %v, want %v", tc.enc, tc.n, got, tc.fast)
		}
	}
}
