package rollup

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// TestAggregate: the aggregates of small series, written out by hand.
func TestAggregate(t *testing.T) {
	nan := math.NaN()
	f := func(name string, ts []int64, vals []float64, counter bool, want []Bucket) {
		t.Helper()
		got := Aggregate(nil, ts, vals, 10, counter)
		if len(got) != len(want) {
			t.Fatalf("%s: %d buckets, want %d: %+v", name, len(got), len(want), got)
		}
		for i := range want {
			if !sameBucket(got[i], want[i]) {
				t.Fatalf("%s: bucket %d = %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}
	f("gauge", []int64{0, 3, 9, 10, 25}, []float64{2, -1, 5, 7, 1}, false, []Bucket{
		{Start: 0, Count: 3, Sum: 6, Min: -1, Max: 5, First: 2, Last: 5},
		{Start: 10, Count: 1, Sum: 7, Min: 7, Max: 7, First: 7, Last: 7},
		{Start: 20, Count: 1, Sum: 1, Min: 1, Max: 1, First: 1, Last: 1},
	})
	f("counter with a reset", []int64{0, 1, 2, 3, 4}, []float64{10, 12, 3, 5, 5}, true, []Bucket{
		{Start: 0, Count: 5, Sum: 35, Min: 3, Max: 12, First: 10, Last: 5, Increase: 2 + 3 + 2 + 0},
	})
	f("NaN skipped", []int64{-5, -4, -3, 0}, []float64{nan, 4, nan, nan}, true, []Bucket{
		{Start: -10, Count: 3, Sum: 4, Min: 4, Max: 4, First: 4, Last: 4},
		{Start: 0, Count: 1, Sum: nan, Min: nan, Max: nan, First: nan, Last: nan, Increase: nan},
	})
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func sameBucket(a, b Bucket) bool {
	return a.Start == b.Start && a.Count == b.Count && sameFloat(a.Sum, b.Sum) && sameFloat(a.Min, b.Min) && sameFloat(a.Max, b.Max) &&
		sameFloat(a.First, b.First) && sameFloat(a.Last, b.Last) && sameFloat(a.Increase, b.Increase)
}

func randomFile(t testing.TB, seed uint64) ([]byte, []Series) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	w := NewWriter(60_000)
	var want []Series
	for i := 0; i < 40; i++ {
		k := columnar.SeriesKey{Org: uint32(i / 10), Metric: uint64(i), Context: 7}
		var ts []int64
		var vals []float64
		at := int64(rng.IntN(1000)) * 1000
		for j := 0; j < 1+rng.IntN(300); j++ {
			at += 1000 + int64(rng.IntN(30_000))
			ts = append(ts, at)
			v := math.Round(rng.NormFloat64() * 100)
			if rng.IntN(30) == 0 {
				v = math.NaN()
			}
			vals = append(vals, v)
		}
		counter := i%3 == 0
		b := Aggregate(nil, ts, vals, 60_000, counter)
		if !counter {
			for j := range b {
				b[j].Increase = 0
			}
		}
		s := Series{Key: k, Tags: []string{"host:a"}, Counter: counter, Buckets: b}
		if err := w.Append(s.Key, s.Tags, s.Buckets, counter); err != nil {
			t.Fatal(err)
		}
		want = append(want, s)
	}
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b, want
}

// TestRoundTrip: what a Writer writes, a Reader gives back, bit for bit.
func TestRoundTrip(t *testing.T) {
	b, want := randomFile(t, 1)
	r, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Resolution() != 60_000 || r.Series() != len(want) {
		t.Fatalf("resolution %d, %d series", r.Resolution(), r.Series())
	}
	it := r.Iterator()
	n := 0
	for it.Next() {
		got, w := it.At(), want[n]
		if got.Key != w.Key || got.Counter != w.Counter || len(got.Tags) != 1 || len(got.Buckets) != len(w.Buckets) {
			t.Fatalf("series %d: %+v, want %+v", n, got, w)
		}
		for i := range w.Buckets {
			g, x := got.Buckets[i], w.Buckets[i]
			if math.Float64bits(g.Sum) != math.Float64bits(x.Sum) || math.Float64bits(g.Min) != math.Float64bits(x.Min) || !sameBucket(g, x) {
				t.Fatalf("series %d bucket %d: %+v, want %+v", n, i, g, x)
			}
		}
		n++
	}
	if err := it.Err(); err != nil || n != len(want) {
		t.Fatalf("%d series, err %v", n, err)
	}
}

// TestCorruptFileNeverPanics: every byte flipped gives an error that wraps ErrCorrupt
// (or, in a section, the series format's), or a file that still reads whole; never a
// panic.
func TestCorruptFileNeverPanics(t *testing.T) {
	b, _ := randomFile(t, 2)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x5a
		r, err := Open(bytes.NewReader(c), int64(len(c)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d: %v does not wrap ErrCorrupt", i, err)
			}
			continue
		}
		it := r.Iterator()
		for it.Next() {
		}
		if it.Err() == nil {
			t.Fatalf("byte %d flipped: the file still reads without error", i)
		}
	}
	for _, n := range []int{0, 10, headerSize + 1, len(b) - 1} {
		if _, err := Open(bytes.NewReader(b[:n]), int64(n)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		}
	}
}

func TestIsCounter(t *testing.T) {
	for _, tc := range []struct {
		tags []string
		want bool
	}{
		{[]string{"type:counter"}, true},
		{[]string{"__name__:http_requests_total", "job:a"}, true},
		{[]string{"__name__:cpu"}, false},
		{nil, false},
	} {
		if got := IsCounter(tc.tags, DefaultCounterTags); got != tc.want {
			t.Fatalf("IsCounter(%v) = %v", tc.tags, got)
		}
	}
}
