package encoder

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// edgeFloats are values whose bit patterns a lossy or ==-based codec would get wrong.
func edgeFloats() []float64 {
	return []float64{
		0, math.Copysign(0, -1), 1, -1,
		math.Inf(1), math.Inf(-1),
		math.NaN(), math.Float64frombits(0x7ff0000000000001), // signalling NaN
		math.Float64frombits(0xfff8000000000bad), // negative NaN with a payload
		math.Float64frombits(0x7fffffffffffffff),
		math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64,
		math.Float64frombits(0x000fffffffffffff), // largest subnormal
		math.MaxFloat64, -math.MaxFloat64,
		0.1, 0.2, 0.30000000000000004, 51.846000000000004, 1e-300, 1e300,
		float64(1 << 53), float64(1<<53 + 2), -float64(1 << 62),
	}
}

func TestRoundTripEdgeCases(t *testing.T) {
	ef := edgeFloats()
	ramp := func(n int, t0, step int64) []int64 {
		ts := make([]int64, n)
		for i := range ts {
			ts[i] = t0 + int64(i)*step
		}
		return ts
	}
	vals := func(n int, f func(i int) float64) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = f(i)
		}
		return v
	}
	tests := []struct {
		name   string
		series []testSeries
	}{
		{name: "empty file"},
		{name: "single point", series: []testSeries{{Key: columnar.SeriesKey{Org: 1, Metric: 2, Context: 3}, Ts: []int64{1700000000000}, Values: []float64{42}}}},
		{name: "max keys", series: []testSeries{
			{Key: columnar.SeriesKey{Org: 0, Metric: 0, Context: 0}, Ts: []int64{0}, Values: []float64{0}},
			{Key: columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: math.MaxUint64 - 1}, Ts: []int64{1}, Values: []float64{1}},
			{Key: columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: math.MaxUint64}, Ts: []int64{2}, Values: []float64{2}},
		}},
		{name: "edge floats", series: []testSeries{{Key: columnar.SeriesKey{Org: 7}, Ts: ramp(len(ef), 0, 1000), Values: ef}}},
		{name: "edge floats reversed and repeated", series: []testSeries{{Key: columnar.SeriesKey{Org: 7}, Ts: ramp(3*len(ef), -5, 7),
			Values: vals(3*len(ef), func(i int) float64 { return ef[len(ef)-1-(i/3)%len(ef)] })}}},
		{name: "extreme timestamps", series: []testSeries{
			{Key: columnar.SeriesKey{Org: 1}, Ts: []int64{math.MinInt64, math.MaxInt64}, Values: []float64{1, 2}},
			{Key: columnar.SeriesKey{Org: 2}, Ts: []int64{math.MinInt64, -1, 0, 1, math.MaxInt64 - 1, math.MaxInt64}, Values: []float64{1, 2, 3, 4, 5, 6}},
			{Key: columnar.SeriesKey{Org: 3}, Ts: ramp(100, -62135596800000, 1), Values: vals(100, func(int) float64 { return 0 })},
			{Key: columnar.SeriesKey{Org: 4}, Ts: []int64{math.MaxInt64}, Values: []float64{math.NaN()}},
		}},
		{name: "40000 points", series: []testSeries{{Key: columnar.SeriesKey{Org: 1, Metric: 1, Context: 1}, Ts: ramp(40000, 1700000000000, 10000),
			Values: vals(40000, func(i int) float64 { return math.Sin(float64(i) / 100) })}}},
		{name: "tags", series: []testSeries{
			{Key: columnar.SeriesKey{Org: 1}, Tags: []string{"host:a", "env:prod", "", "utf8:é✓", string([]byte{0, 255})}, Ts: []int64{1}, Values: []float64{1}},
			{Key: columnar.SeriesKey{Org: 1, Metric: 1}, Tags: []string{}, Ts: []int64{1}, Values: []float64{1}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, bp := range []int{1, 3, defaultBlockPoints} {
				roundTrip(t, tc.series, BlockPoints(bp))
			}
		})
	}
}

// randomSeries generates series of several shapes from a fixed seed: regular and jittery
// timestamps with gaps, and constant, counter, decimal, noisy and special values.
func randomSeries(rng *rand.Rand, nSeries, maxPoints int) []testSeries {
	keys := map[columnar.SeriesKey]bool{}
	var out []testSeries
	for len(out) < nSeries {
		k := columnar.SeriesKey{Org: uint32(rng.IntN(4)), Metric: rng.Uint64() >> uint(rng.IntN(64)), Context: rng.Uint64() >> uint(rng.IntN(64))}
		if keys[k] {
			continue
		}
		keys[k] = true
		n := 1 + rng.IntN(maxPoints)
		s := testSeries{Key: k, Ts: make([]int64, n), Values: make([]float64, n)}
		if rng.IntN(2) == 0 {
			s.Tags = []string{"host:h" + string(rune('a'+rng.IntN(26))), "env:prod"}
		}
		t := rng.Int64N(1<<42) - 1<<41
		step := []int64{1, 1000, 10000, 60000, 300000}[rng.IntN(5)]
		tsShape, vShape := rng.IntN(4), rng.IntN(7)
		v := rng.NormFloat64() * 100
		for i := range n {
			s.Ts[i] = t
			switch tsShape {
			case 0:
				t += step
			case 1:
				t += step + rng.Int64N(50) - 25 + 26 // jitter, stays positive
			case 2:
				t += step
				if rng.IntN(20) == 0 {
					t += step * rng.Int64N(100) // gap
				}
			default:
				t += 1 + rng.Int64N(1<<40)
			}
			switch vShape {
			case 0:
				s.Values[i] = 3.5
			case 1:
				v += float64(rng.IntN(10))
				s.Values[i] = v
			case 2:
				s.Values[i] = float64(rng.IntN(1000)) / 100
			case 3:
				s.Values[i] = rng.NormFloat64()
			case 4:
				s.Values[i] = math.Float64frombits(rng.Uint64())
			case 5:
				ef := edgeFloats()
				s.Values[i] = ef[rng.IntN(len(ef))]
			default:
				s.Values[i] = math.Round(rng.NormFloat64()*1e6) / 1e3
			}
		}
		out = append(out, s)
	}
	sortSeries(out)
	return out
}

func sortSeries(s []testSeries) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Key.Less(s[j-1].Key); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestRoundTripRandom(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*7919))
		series := randomSeries(rng, 1+rng.IntN(30), 3000)
		bp := 1 + rng.IntN(5000)
		roundTrip(t, series, BlockPoints(bp))
	}
}

func TestRoundTripReal(t *testing.T) {
	for _, f := range realSets(t) {
		t.Run(f.Name, func(t *testing.T) {
			b := roundTrip(t, f.Series)
			var pts int
			for _, s := range f.Series {
				pts += len(s.Ts)
			}
			t.Logf("%s: %d series, %d points, %.3f B/pt (v%d)", f.Name, len(f.Series), pts, float64(len(b))/float64(pts), CurrentVersion)
		})
	}
}

func TestWriterRejects(t *testing.T) {
	k1 := columnar.SeriesKey{Org: 1, Metric: 5}
	k0 := columnar.SeriesKey{Org: 1, Metric: 4}
	tests := []struct {
		name    string
		opts    []Opt
		appends func(w *Writer) error
		is      error
		msg     string
	}{
		{name: "key repeats", appends: func(w *Writer) error {
			_ = w.Append(k1, nil, []int64{1}, []float64{1})
			return w.Append(k1, nil, []int64{2}, []float64{1})
		}, is: ErrOutOfOrder},
		{name: "key decreases", appends: func(w *Writer) error {
			_ = w.Append(k1, nil, []int64{1}, []float64{1})
			return w.Append(k0, nil, []int64{2}, []float64{1})
		}, is: ErrOutOfOrder},
		{name: "ts repeats", appends: func(w *Writer) error {
			return w.Append(k1, nil, []int64{1, 2, 2}, []float64{1, 2, 3})
		}, is: ErrOutOfOrder, msg: "index 2"},
		{name: "ts decreases", appends: func(w *Writer) error {
			return w.Append(k1, nil, []int64{5, 4}, []float64{1, 2})
		}, is: ErrOutOfOrder, msg: "index 1"},
		{name: "length mismatch", appends: func(w *Writer) error {
			return w.Append(k1, nil, []int64{5, 6}, []float64{1})
		}},
		{name: "no points", appends: func(w *Writer) error {
			return w.Append(k1, nil, nil, nil)
		}},
		{name: "bad block points", opts: []Opt{BlockPoints(MaxBlockPoints + 1)}, appends: func(w *Writer) error {
			return w.Append(k1, nil, []int64{1}, []float64{1})
		}, msg: "block points"},
		{name: "bad version", opts: []Opt{FormatVersion(99)}, appends: func(w *Writer) error {
			return w.Close()
		}, msg: "format version"},
		{name: "append after close", appends: func(w *Writer) error {
			_ = w.Close()
			return w.Append(k1, nil, []int64{1}, []float64{1})
		}, is: ErrClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := tc.appends(NewWriter(&buf, tc.opts...))
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("error %v is not %v", err, tc.is)
			}
			if tc.msg != "" && !bytes.Contains([]byte(err.Error()), []byte(tc.msg)) {
				t.Fatalf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestReaderLookups(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	series := randomSeries(rng, 200, 500)
	b := encodeFile(t, series, BlockPoints(64))
	r, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version() != CurrentVersion || len(r.Index()) != len(series) {
		t.Fatalf("version %d, %d entries", r.Version(), len(r.Index()))
	}
	var s Series
	for i, want := range series {
		e, ok := r.Find(want.Key)
		if !ok {
			t.Fatalf("series %d %v not found", i, want.Key)
		}
		if e.Points != int64(len(want.Ts)) || e.MinTs != want.Ts[0] || e.MaxTs != want.Ts[len(want.Ts)-1] {
			t.Fatalf("entry %+v does not describe series %d", e, i)
		}
		if err := r.ReadSeries(e, &s); err != nil {
			t.Fatal(err)
		}
		requireSameSeries(t, []testSeries{want}, []testSeries{{Key: s.Key, Tags: s.Tags, Ts: s.Ts, Values: s.Values}})

		// A time range keeps exactly the points inside it.
		lo, hi := want.Ts[len(want.Ts)/3], want.Ts[len(want.Ts)*2/3]
		if err := r.ReadSeriesRange(e, lo, hi, &s); err != nil {
			t.Fatal(err)
		}
		var sub testSeries
		sub.Key, sub.Tags = want.Key, want.Tags
		for j, ts := range want.Ts {
			if ts >= lo && ts <= hi {
				sub.Ts = append(sub.Ts, ts)
				sub.Values = append(sub.Values, want.Values[j])
			}
		}
		requireSameSeries(t, []testSeries{sub}, []testSeries{{Key: s.Key, Tags: s.Tags, Ts: s.Ts, Values: s.Values}})
	}
	if _, ok := r.Find(columnar.SeriesKey{Org: 99}); ok {
		t.Fatal("found a key that is not there")
	}

	// Org ranges partition the index.
	total := 0
	for _, o := range r.OrgRanges() {
		got := r.OrgSeries(o.Org)
		if len(got) != o.Count {
			t.Fatalf("org %d: %d series, range says %d", o.Org, len(got), o.Count)
		}
		for _, e := range got {
			if e.Key.Org != o.Org {
				t.Fatalf("org %d range holds %v", o.Org, e.Key)
			}
		}
		n := 0
		it := r.Iterator(nil, IterOrg(o.Org))
		for it.Next() {
			n++
		}
		if it.Err() != nil || n != o.Count {
			t.Fatalf("org %d iterator: %d series, err %v", o.Org, n, it.Err())
		}
		total += o.Count
	}
	if total != len(series) || r.OrgSeries(1<<31) != nil {
		t.Fatalf("org ranges cover %d of %d", total, len(series))
	}
}
