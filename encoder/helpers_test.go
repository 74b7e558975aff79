package encoder

import (
	"bytes"
	"math"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/internal/realdata"
	"github.com/tailor-metrics/tailor/internal/realdata/realdatatest"
)

// testSeries is one series of test input.
type testSeries struct {
	Key    columnar.SeriesKey
	Tags   []string
	Ts     []int64
	Values []float64
}

// encodeFile writes series (already in key order) to a byte slice.
func encodeFile(t testing.TB, series []testSeries, opts ...Opt) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, opts...)
	for _, s := range series {
		if err := w.Append(s.Key, s.Tags, s.Ts, s.Values); err != nil {
			t.Fatalf("append %v: %v", s.Key, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := w.Stats().Bytes; got != int64(buf.Len()) {
		t.Fatalf("stats say %d bytes, wrote %d", got, buf.Len())
	}
	return buf.Bytes()
}

// decodeFile reads every series back.
func decodeFile(t testing.TB, b []byte) []testSeries {
	t.Helper()
	r, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	var out []testSeries
	it := r.Iterator(nil)
	for it.Next() {
		s := it.At()
		out = append(out, testSeries{
			Key:    s.Key,
			Tags:   append([]string(nil), s.Tags...),
			Ts:     append([]int64(nil), s.Ts...),
			Values: append([]float64(nil), s.Values...),
		})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate: %v", err)
	}
	return out
}

// requireSameSeries compares bit for bit: float64 bit patterns, not ==, so NaN payloads
// and -0.0 count.
func requireSameSeries(t testing.TB, want, got []testSeries) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("got %d series, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := &want[i], &got[i]
		if w.Key != g.Key {
			t.Fatalf("series %d: key %v, want %v", i, g.Key, w.Key)
		}
		if len(w.Tags) != len(g.Tags) {
			t.Fatalf("series %v: tags %q, want %q", w.Key, g.Tags, w.Tags)
		}
		for j := range w.Tags {
			if w.Tags[j] != g.Tags[j] {
				t.Fatalf("series %v: tags %q, want %q", w.Key, g.Tags, w.Tags)
			}
		}
		if len(w.Ts) != len(g.Ts) || len(g.Values) != len(g.Ts) {
			t.Fatalf("series %v: %d/%d points, want %d", w.Key, len(g.Ts), len(g.Values), len(w.Ts))
		}
		for j := range w.Ts {
			if w.Ts[j] != g.Ts[j] {
				t.Fatalf("series %v point %d: ts %d, want %d", w.Key, j, g.Ts[j], w.Ts[j])
			}
			if math.Float64bits(w.Values[j]) != math.Float64bits(g.Values[j]) {
				t.Fatalf("series %v point %d: value %#x, want %#x", w.Key, j, math.Float64bits(g.Values[j]), math.Float64bits(w.Values[j]))
			}
		}
	}
}

func roundTrip(t testing.TB, series []testSeries, opts ...Opt) []byte {
	t.Helper()
	b := encodeFile(t, series, opts...)
	requireSameSeries(t, series, decodeFile(t, b))
	return b
}

// testSet is one data set of test input.
type testSet struct {
	Name   string
	Series []testSeries
}

// realSets reads every real data set (see package realdata): each NAB CSV, then
// bitbrains and dctraces. Without the data the test is skipped, and under CI it fails
// (realdatatest.Sets).
func realSets(t testing.TB) []testSet {
	t.Helper()
	nab, more := realdatatest.Sets(t)
	return append(testSets(nab, true), testSets(more, false)...)
}

// loadNABQuiet loads the NAB sets, or nothing when they are not there or do not load:
// for benchmarks and fuzz seeds, which must not depend on them.
func loadNABQuiet() []testSet {
	nab, _ := realdata.NAB(realdata.Dir())
	return testSets(nab, true)
}

// loadMoreQuiet is loadNABQuiet for bitbrains and dctraces.
func loadMoreQuiet() []testSet {
	more, _ := realdata.More(realdata.Dir())
	return testSets(more, false)
}

// testSets turns real sets into test input. tagged gives each series the tag
// "name:<series name>", which the NAB series have always carried here (so that the
// real-data round trips cover tags too); the more/ series carry none.
func testSets(sets []realdata.Set, tagged bool) []testSet {
	out := make([]testSet, 0, len(sets))
	for _, set := range sets {
		ts := testSet{Name: set.Name, Series: make([]testSeries, 0, len(set.Series))}
		for _, s := range set.Series {
			var tags []string
			if tagged {
				tags = []string{"name:" + s.Name}
			}
			ts.Series = append(ts.Series, testSeries{Key: s.Key, Tags: tags, Ts: s.Ts, Values: s.Values})
		}
		out = append(out, ts)
	}
	return out
}
