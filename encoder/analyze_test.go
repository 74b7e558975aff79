package encoder

import (
	"bytes"
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// The analyses of the value encodings have fast paths (repeats skip the conversion or the
// probe, one pass finds the ranges, runs merge instead of being recounted, a counting
// sort); these tests hold each to the plain version it replaced, kept here as the
// reference, on blocks of every kind: what the writer chooses, and so every file's bytes,
// must not change.

// analyzeBlocks are value blocks of every kind the encodings are for, with leading,
// repeated and trailing exceptions and long repeats.
func analyzeBlocks() [][]float64 {
	rng := rand.New(rand.NewPCG(5, 8))
	var out [][]float64
	for _, s := range randomSeries(rand.New(rand.NewPCG(21, 21)), 40, 3000) {
		out = append(out, s.Values)
	}
	for _, s := range valueKinds(rand.New(rand.NewPCG(7, 7)), 600) {
		out = append(out, s.Values)
	}
	ef := edgeFloats()
	for range 200 {
		n := 1 + rng.IntN(1200)
		vals := make([]float64, n)
		kind := rng.IntN(5)
		v := float64(rng.IntN(1000)) / 10
		for i := range vals {
			switch {
			case rng.IntN(40) == 0:
				v = ef[rng.IntN(len(ef))] // exceptions of decimal, repeated or not
			case rng.IntN(3) == 0:
				// a repeat of the previous value
			case kind == 0:
				v = float64(rng.IntN(1000)) / 10
			case kind == 1:
				v += float64(rng.IntN(7))
			case kind == 2:
				v = []float64{0.2, 0.4666666666666667, 1.0 / 15, 2.6, 7}[rng.IntN(5)]
			case kind == 3:
				v = 16 + 16*rng.Float64()
			default:
				v = math.Float64frombits(rng.Uint64())
			}
			vals[i] = v
		}
		if rng.IntN(4) == 0 {
			for i := range min(n, 1+rng.IntN(5)) {
				vals[i] = math.Pi * float64(i+1) // leading exceptions
			}
		}
		out = append(out, vals)
	}
	// Exceptions before, among and after integers whose deltas are never zero: only
	// the exceptions' placeholders bring a zero delta.
	grow := func(lead, n int, exc func(i int) bool) []float64 {
		vals := make([]float64, 0, lead+n)
		for i := range lead {
			vals = append(vals, math.Pi*float64(i+1))
		}
		x := 10.0
		for i := range n {
			if exc(i) {
				vals = append(vals, math.E*float64(i+1))
				continue
			}
			x += float64(3 + i%5)
			vals = append(vals, x)
		}
		return vals
	}
	// Counts above the entropy sample, which the c·log2(c) table must cover too.
	heavy := make([]float64, 8192)
	for i := range heavy {
		heavy[i] = []float64{1, 1, 1, 2, 3, 5}[rng.IntN(6)]
	}
	out = append(out, heavy)
	never := func(int) bool { return false }
	out = append(out, grow(1, 50, never), grow(3, 50, never), grow(0, 50, func(i int) bool { return i%9 == 4 }),
		grow(0, 50, func(i int) bool { return i == 49 }), grow(2, 1, never), grow(0, 1, never))
	return out
}

func TestDecimalAnalyzeMatchesReference(t *testing.T) {
	var got, want decimalEncoder
	for i, vals := range analyzeBlocks() {
		okGot, okWant := got.analyze(vals), refDecimalAnalyze(&want, vals)
		if okGot != okWant {
			t.Fatalf("block %d: analyze says %v, the reference %v", i, okGot, okWant)
		}
		if !okGot {
			continue
		}
		if got.exp != want.exp || got.useDelta != want.useDelta || got.st != want.st || got.excSize != want.excSize ||
			!slices.Equal(got.ints, want.ints) || !slices.Equal(got.excPos, want.excPos) || !slices.Equal(got.excBits, want.excBits) ||
			(got.useDelta && !slices.Equal(got.deltas, want.deltas)) {
			t.Fatalf("block %d of %d values: analysis differs from the reference", i, len(vals))
		}
		if !bytes.Equal(got.appendTo(nil, intBitPacked), want.appendTo(nil, intBitPacked)) {
			t.Fatalf("block %d: payload differs from the reference", i)
		}
	}
}

func TestDictAnalyzeMatchesReference(t *testing.T) {
	var got, want dictEncoder
	for i, vals := range analyzeBlocks() {
		limit := min(maxDictValues, max(1, len(vals)/2))
		okGot, okWant := got.analyze(vals, limit), refDictAnalyze(&want, vals, limit)
		if okGot != okWant || got.unique != want.unique {
			t.Fatalf("block %d: analyze says %v (unique %v), the reference %v (%v)", i, okGot, got.unique, okWant, want.unique)
		}
		if okGot {
			if e, w := got.zstdEstimate(100), refDictEstimate(&want, 100); e != w {
				t.Fatalf("block %d: dictionary estimate %d, the reference %d", i, e, w)
			}
		}
		if okGot && (got.runs != want.runs || got.st != want.st || !slices.Equal(got.idx, want.idx) || !slices.Equal(got.count, want.count) ||
			!slices.EqualFunc(got.dict, want.dict, func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) })) {
			t.Fatalf("block %d: dictionary differs from the reference (runs %d, want %d)", i, got.runs, want.runs)
		}
	}
}

func TestALPRDAnalyzeMatchesReference(t *testing.T) {
	var got, want alprdEncoder
	for i, vals := range analyzeBlocks() {
		sg, sw := got.analyze(vals), refALPRDAnalyze(&want, vals)
		if sg != sw || got.right != want.right || got.dict != want.dict || got.dictN != want.dictN || got.width != want.width ||
			got.excN != want.excN || !slices.Equal(got.codes, want.codes) {
			t.Fatalf("block %d of %d values: size %d right %d dict %v, the reference %d %d %v", i, len(vals), sg, got.right, got.dict[:got.dictN], sw, want.right, want.dict[:want.dictN])
		}
	}
}

func TestSortUint16s(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var tmp []uint16
	for _, n := range []int{0, 1, 2, 255, 256, 257, 1000} {
		xs := make([]uint16, n)
		for i := range xs {
			switch rng.IntN(3) {
			case 0:
				xs[i] = uint16(rng.Uint32())
			case 1:
				xs[i] = uint16(rng.IntN(4)) << 8 // equal low bytes
			default:
				xs[i] = 0xffff - uint16(rng.IntN(3)) // the top bucket (a byte of 255)
			}
		}
		want := slices.Sorted(slices.Values(xs))
		tmp = sortUint16s(xs, tmp)
		if !slices.Equal(xs, want) {
			t.Fatalf("%d values: %v, want %v", n, xs, want)
		}
	}
}

func TestTopRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	for range 500 {
		runs := make([]alprdRun, rng.IntN(20))
		for i := range runs {
			runs[i] = alprdRun{left: uint16(i), count: 1 + rng.IntN(5)}
		}
		want := slices.Clone(runs)
		slices.SortStableFunc(want, func(x, y alprdRun) int { return y.count - x.count })
		got := topRuns(runs)
		if k := min(len(want), alprdMaxDict); !slices.Equal(got[:k], want[:k]) {
			t.Fatalf("runs %v: top %v, want %v", runs, got[:k], want[:k])
		}
	}
}

// TestCloseFlushesOpenBlocks: a file of fewer series than the share window keeps every
// block open until Close, which hands them to the io.Writer as the buffer fills, not as
// one buffer of the whole file; a failed write there fails Close.
func TestCloseFlushesOpenBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	series := make([]testSeries, 200)
	for i := range series {
		s := &series[i]
		s.Key = columnar.SeriesKey{Org: 1, Metric: 1, Context: uint64(i)}
		t0 := rng.Int64N(1 << 40) // timestamps of their own: a block each
		for j := range 500 {
			s.Ts = append(s.Ts, t0+int64(j)*1000)
			s.Values = append(s.Values, rng.Float64())
		}
	}
	const flush = 8 << 10
	var cw chunkWriter
	w := NewWriter(&cw, FlushBytes(flush))
	for _, s := range series {
		if err := w.Append(s.Key, s.Tags, s.Ts, s.Values); err != nil {
			t.Fatal(err)
		}
	}
	if len(cw.buf) != 0 {
		t.Fatalf("%d bytes written before Close; every block should still be open", len(cw.buf))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A block of 500 full-precision values is about 4 KiB: no write holds much more than
	// the flush size and one block.
	if cw.largest > flush+8<<10 || cw.writes < 2 {
		t.Fatalf("%d writes, the largest %d bytes (flush size %d)", cw.writes, cw.largest, flush)
	}
	requireSameSeries(t, series, decodeFile(t, cw.buf))

	fail := errors.New("disk full")
	w = NewWriter(&failWriter{after: 3, err: fail}, FlushBytes(flush))
	for _, s := range series {
		if err := w.Append(s.Key, s.Tags, s.Ts, s.Values); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); !errors.Is(err, fail) {
		t.Fatalf("Close = %v, want the write's error", err)
	}
}

type chunkWriter struct {
	buf             []byte
	writes, largest int
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	c.buf = append(c.buf, p...)
	c.writes++
	c.largest = max(c.largest, len(p))
	return len(p), nil
}

type failWriter struct {
	after int
	err   error
}

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after == 0 {
		return 0, f.err
	}
	f.after--
	return len(p), nil
}

// TestEntropyEstimatesMatchReference: the unrolled histograms and the masked table give
// the estimates of the plain loops, to the byte.
func TestEntropyEstimatesMatchReference(t *testing.T) {
	var d decimalEncoder
	for i, vals := range analyzeBlocks() {
		if got, want := rawPlanesEntropy(vals), refRawPlanesEntropy(vals); got != want {
			t.Fatalf("block %d: raw planes estimate %d, the reference %d", i, got, want)
		}
		if got, floor := rawPlanesEntropy(vals), planesBytesFloor(8); got < floor {
			t.Fatalf("block %d: raw planes estimate %d under its floor %d", i, got, floor)
		}
		if d.analyze(vals) {
			if got, want := d.planesEntropy(), refPlanesEntropy(&d); got != want {
				t.Fatalf("block %d: decimal planes estimate %d, the reference %d", i, got, want)
			}
			if got, floor := d.planesEntropy(), d.planesFloor(); got < floor {
				t.Fatalf("block %d: decimal planes estimate %d under its floor %d", i, got, floor)
			}
		}
	}
	// The floor holds where it is tightest: planes of one byte value (entropy 0), one
	// value sampled, and sparse planes whose counts are all 0 or 1.
	for _, vals := range [][]float64{{1}, {1, 1, 1, 1}, make([]float64, 4096), {1, 2, 3, 4, 5, 6, 7, 8}} {
		if got, floor := rawPlanesEntropy(vals), planesBytesFloor(8); got < floor {
			t.Fatalf("%d values: raw planes estimate %d under its floor %d", len(vals), got, floor)
		}
		if got, want := rawPlanesEntropy(vals), refRawPlanesEntropy(vals); got != want {
			t.Fatalf("%d values: raw planes estimate %d, the reference %d", len(vals), got, want)
		}
	}
}

// The plain analyses the fast ones replaced.

func refDecimalAnalyze(d *decimalEncoder, vals []float64) bool {
	n := len(vals)
	exp, ok := chooseDecimalExp(vals)
	if !ok {
		return false
	}
	d.exp = exp
	d.ints = d.ints[:0]
	d.excPos = d.excPos[:0]
	d.excBits = d.excBits[:0]
	p := pow10[d.exp]
	var last int64
	firstValid := -1
	d.ints = slices.Grow(d.ints, n)[:n]
	for i, v := range vals {
		f := v * p
		if f > -decimalLimit && f < decimalLimit {
			x := int64(math.RoundToEven(f))
			// x / 10^0 is x: integer-valued series, the commonest, skip the division.
			if math.Float64bits(divPow10(float64(x), p, d.exp)) == math.Float64bits(v) {
				d.ints[i] = x
				last = x
				if firstValid < 0 {
					firstValid = i
				}
				continue
			}
		}
		// An exception keeps the previous integer as a placeholder: a zero delta, and no
		// wider range.
		d.excPos = append(d.excPos, i)
		d.excBits = append(d.excBits, math.Float64bits(v))
		d.ints[i] = last
		if len(d.excPos) > n/2 {
			return false
		}
	}
	for i := 0; i < firstValid; i++ {
		d.ints[i] = d.ints[firstValid]
	}
	d.excSize = uvarintLen(uint64(len(d.excPos))) + 8*len(d.excPos)
	prev := -1
	for _, p := range d.excPos {
		d.excSize += uvarintLen(uint64(p - prev - 1))
		prev = p
	}

	// One pass for the ranges of the integers and of their deltas; divisors only after.
	ints := d.ints
	lo, hi := ints[0], ints[0]
	dlo, dhi := int64(math.MaxInt64), int64(math.MinInt64)
	for i := 1; i < n; i++ {
		x := ints[i]
		lo, hi = min(lo, x), max(hi, x)
		dx := x - ints[i-1]
		dlo, dhi = min(dlo, dx), max(dhi, dx)
	}
	stFOR := finishIntStats(ints, lo, hi)
	sizeFOR := packedIntsSize(n, stFOR, intBitPacked)
	d.useDelta = false
	d.st = stFOR
	if n > 1 && uint64(dhi-dlo) < uint64(hi-lo) {
		d.deltas = d.deltas[:0]
		for i := 1; i < n; i++ {
			d.deltas = append(d.deltas, ints[i]-ints[i-1])
		}
		stDelta := finishIntStats(d.deltas, dlo, dhi)
		if varintLen(ints[0])+packedIntsSize(n-1, stDelta, intBitPacked) < sizeFOR {
			d.useDelta, d.st = true, stDelta
		}
	}
	return true
}

func refALPRDAnalyze(a *alprdEncoder, vals []float64) int {
	n := len(vals)
	step := max(1, n/alprdSamples)
	a.sample = a.sample[:0]
	for i := 0; i < n; i += step {
		a.sample = append(a.sample, uint16(math.Float64bits(vals[i])>>48))
	}
	slices.Sort(a.sample)
	m := len(a.sample)
	bestCost := math.MaxInt
	var bestRuns [alprdMaxDict]alprdRun
	bestD := 0
	for r := uint(alprdMinRight); r <= 63; r++ {
		// The sample is sorted by its top 16 bits, so it stays sorted by any prefix of
		// them: equal left parts are adjacent.
		sh := r - alprdMinRight
		a.runs = a.runs[:0]
		for i := 0; i < m; {
			l := a.sample[i] >> sh
			j := i + 1
			for j < m && a.sample[j]>>sh == l {
				j++
			}
			a.runs = append(a.runs, alprdRun{left: l, count: j - i})
			i = j
		}
		slices.SortStableFunc(a.runs, func(x, y alprdRun) int { return y.count - x.count })
		covered := 0
		for d := 1; d <= alprdMaxDict && d <= len(a.runs); d++ {
			covered += a.runs[d-1].count
			if d&(d-1) != 0 && d != len(a.runs) {
				continue // a dictionary fills its index width
			}
			w := uint(bits.Len(uint(d - 1)))
			cost := m*int(r+w) + (m-covered)*alprdExcBits + d*16
			if cost < bestCost {
				bestCost, bestD = cost, d
				a.right = r
				copy(bestRuns[:], a.runs[:d])
			}
		}
	}
	a.dictN = bestD
	for i := range bestD {
		a.dict[i] = bestRuns[i].left
	}
	slices.Sort(a.dict[:bestD]) // a canonical order
	a.width = uint(bits.Len(uint(bestD - 1)))

	a.codes = slices.Grow(a.codes[:0], n)[:n]
	a.excN = 0
	r := a.right
	excSize := 0
	last := -1
	for i, v := range vals {
		l := uint16(math.Float64bits(v) >> r)
		c := uint8(alprdMaxDict)
		for j := range a.dictN {
			if a.dict[j] == l {
				c = uint8(j)
				break
			}
		}
		if c == alprdMaxDict {
			a.excN++
			excSize += uvarintLen(uint64(i-last-1)) + 2
			last = i
		}
		a.codes[i] = c
	}
	a.size = 2 + 2*a.dictN + uvarintLen(uint64(a.excN)) + excSize +
		(n*int(a.width)+7)/8 + (n*int(r)+7)/8
	return a.size
}

func refDictAnalyze(d *dictEncoder, vals []float64, limit int) bool {
	n := len(vals)
	d.set.reset(n)
	d.ids = slices.Grow(d.ids[:0], n)[:n]
	d.runs = 1
	d.unique = false
	prev := math.Float64bits(vals[0])
	for i, v := range vals {
		b := math.Float64bits(v)
		if b != prev {
			d.runs++
			prev = b
		}
		id := d.set.id(b, limit)
		if id < 0 {
			return false
		}
		if i == dictSampleValues-1 && len(d.set.keys) > dictSampleValues*3/4 {
			d.unique = true
			return false
		}
		d.ids[i] = uint32(id)
	}
	keys := d.set.keys
	d.count = slices.Grow(d.count[:0], len(keys))[:len(keys)]
	clear(d.count)
	for _, id := range d.ids {
		d.count[id]++
	}
	k := len(keys)
	// Sort the patterns themselves (a sort of plain integers, far faster than one through
	// a comparison of numbers), then find each one's number again in the set.
	d.sorted = append(d.sorted[:0], keys...)
	slices.Sort(d.sorted)
	d.rank = slices.Grow(d.rank[:0], k)[:k]
	d.dict = slices.Grow(d.dict[:0], k)[:k]
	for pos, b := range d.sorted {
		d.rank[d.set.lookup(b)] = uint32(pos)
		d.dict[pos] = math.Float64frombits(b)
	}
	d.idx = slices.Grow(d.idx[:0], n)[:n]
	for i, id := range d.ids {
		d.idx[i] = int64(d.rank[id])
	}
	d.st = intStats{divisor: 1, width: uint(bits.Len64(uint64(k - 1)))}
	return true
}

func refRawPlanesEntropy(vals []float64) int {
	n := len(vals)
	stride := max(1, (n+entropySample-1)/entropySample)
	var hist [8][256]uint32
	cnt := 0
	for i := 0; i < n; i += stride {
		b := math.Float64bits(vals[i])
		for k := range hist {
			hist[k][byte(b>>(8*k))]++
		}
		cnt++
	}
	return refPlanesBytes(hist[:], cnt, n)
}
func refPlanesBytes(hist [][256]uint32, cnt, planeLen int) int {
	xlog := xlog2xTable()
	total := float64(zstdFrameBytes)
	for k := range hist {
		bitsSum := xlog[cnt]
		distinct := 0
		for _, c := range hist[k] {
			bitsSum -= xlog[c]
			if c > 0 {
				distinct++
			}
		}
		perSymbol := bitsSum/float64(cnt) + float64(distinct-1)/(2*float64(cnt)*math.Ln2)
		total += min(8, perSymbol)*float64(planeLen)/8 + 16
	}
	return int(total)
}

func refPlanesEntropy(d *decimalEncoder) int {
	xs := d.ints
	if d.useDelta {
		xs = d.deltas
	}
	nb := int(d.st.width+7) / 8
	total := d.size(intBytePlanes) - len(xs)*nb
	if nb == 0 || len(xs) == 0 {
		return total
	}
	stride := max(1, (len(xs)+entropySample-1)/entropySample)
	var hist [8][256]uint32
	dv := newExactDivider(d.st.divisor)
	cnt := 0
	for i := 0; i < len(xs); i += stride {
		q := dv.div(uint64(xs[i] - d.st.base))
		for k := range nb {
			hist[k][byte(q>>(8*k))]++
		}
		cnt++
	}
	return total + refPlanesBytes(hist[:nb], cnt, len(xs))
}

// refDictEstimate is dictEncoder.zstdEstimate with c·log2(c) computed, not looked up.
func refDictEstimate(d *dictEncoder, dictBytes int) int {
	n := float64(len(d.idx))
	h := n * math.Log2(n)
	for _, c := range d.count {
		if c > 1 {
			h -= float64(c) * math.Log2(float64(c))
		}
	}
	idx := min(h/8, float64(d.runs)*(h/n/8+runMatchBytes))
	return dictBytes + int(idx) + 32
}

// TestGorillaSize: the writer sizes gorilla without writing it, to the byte.
func TestGorillaSize(t *testing.T) {
	blocks := append(analyzeBlocks(), nil, []float64{1}, []float64{1, 1, 1}, []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), 1e-300, 3})
	for i, vals := range blocks {
		if got, want := gorillaSize(vals), len(appendGorilla(nil, vals)); got != want {
			t.Fatalf("block %d (%d values): gorillaSize %d, appendGorilla wrote %d bytes", i, len(vals), got, want)
		}
	}
}
