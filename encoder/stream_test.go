package encoder

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
)

type row struct {
	org      uint32
	met, ctx uint64
	ts       int64
	v        float64
}

func makeBatch(t testing.TB, rows []row) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, columnar.SortedSchema)
	defer b.Release()
	for _, r := range rows {
		b.Field(0).(*array.Uint32Builder).Append(r.org)
		b.Field(1).(*array.Uint64Builder).Append(r.met)
		b.Field(2).(*array.Uint64Builder).Append(r.ctx)
		b.Field(3).(*array.Int64Builder).Append(r.ts)
		b.Field(4).(*array.Float64Builder).Append(r.v)
	}
	return b.NewRecordBatch()
}

func TestSortedStream(t *testing.T) {
	// Three series; the second spans two batches and repeats a timestamp across the
	// batch boundary; the first row of a run wins.
	batches := [][]row{
		{{1, 1, 1, 10, 1}, {1, 1, 1, 10, 99}, {1, 1, 1, 20, 2}, {1, 1, 2, 5, 3}},
		{{1, 1, 2, 5, 98}, {1, 1, 2, 5, 97}, {1, 1, 2, 6, math.NaN()}},
		{},
		{{2, 0, 0, -1, 4}},
	}
	var buf bytes.Buffer
	s := NewSortedStream(NewWriter(&buf), StreamTags(func(k columnar.SeriesKey) []string {
		return []string{"org:" + string(rune('0'+k.Org))}
	}))
	for _, rows := range batches {
		rec := makeBatch(t, rows)
		if err := s.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release() // the stream must not need the batch any more
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := StreamStats{PointsIn: 8, Duplicates: 3, PointsOut: 5, Series: 3}
	if got := s.Stats(); got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
	requireSameSeries(t, []testSeries{
		{Key: columnar.SeriesKey{Org: 1, Metric: 1, Context: 1}, Tags: []string{"org:1"}, Ts: []int64{10, 20}, Values: []float64{1, 2}},
		{Key: columnar.SeriesKey{Org: 1, Metric: 1, Context: 2}, Tags: []string{"org:1"}, Ts: []int64{5, 6}, Values: []float64{3, math.NaN()}},
		{Key: columnar.SeriesKey{Org: 2}, Tags: []string{"org:2"}, Ts: []int64{-1}, Values: []float64{4}},
	}, decodeFile(t, buf.Bytes()))
}

func TestSortedStreamRejects(t *testing.T) {
	f := func(name string, rows ...row) {
		t.Helper()
		var buf bytes.Buffer
		s := NewSortedStream(NewWriter(&buf))
		rec := makeBatch(t, rows)
		defer rec.Release()
		err := s.Write(rec)
		if !errors.Is(err, ErrOutOfOrder) {
			t.Fatalf("%s: error %v, want ErrOutOfOrder", name, err)
		}
		if s.Close() == nil {
			t.Fatalf("%s: close after a failed write succeeded", name)
		}
	}
	f("key decreases", row{1, 2, 0, 1, 1}, row{1, 1, 0, 2, 1})
	f("ts decreases", row{1, 1, 0, 5, 1}, row{1, 1, 0, 4, 1})

	var buf bytes.Buffer
	s := NewSortedStream(NewWriter(&buf))
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	rec := b.NewRecordBatch()
	defer rec.Release()
	if err := s.Write(rec); err == nil {
		t.Fatal("wrong schema accepted")
	}
}

func TestRecordReader(t *testing.T) {
	series := []testSeries{
		{Key: columnar.SeriesKey{Org: 1, Metric: 1, Context: 1}, Ts: []int64{1, 2, 3}, Values: []float64{1, 2, 3}},
		{Key: columnar.SeriesKey{Org: 1, Metric: 2, Context: 1}, Ts: []int64{4}, Values: []float64{math.Inf(-1)}},
		{Key: columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: math.MaxUint64}, Ts: []int64{5, 6, 7, 8, 9}, Values: []float64{5, 6, 7, 8, math.Copysign(0, -1)}},
	}
	b := encodeFile(t, series)
	r, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{1, 2, 4, 100} {
		rr := r.RecordReader(batch)
		var got []testSeries
		for rr.Next() {
			rec := rr.RecordBatch()
			if !rec.Schema().Equal(columnar.SortedSchema) || rec.NumRows() > int64(batch) {
				t.Fatalf("batch of %d rows with schema %s", rec.NumRows(), rec.Schema())
			}
			orgs := rec.Column(0).(*array.Uint32).Uint32Values()
			mets := rec.Column(1).(*array.Uint64).Uint64Values()
			ctxs := rec.Column(2).(*array.Uint64).Uint64Values()
			tss := rec.Column(3).(*array.Int64).Int64Values()
			vals := rec.Column(4).(*array.Float64).Float64Values()
			for i := range tss {
				k := columnar.SeriesKey{Org: orgs[i], Metric: mets[i], Context: ctxs[i]}
				if len(got) == 0 || got[len(got)-1].Key != k {
					got = append(got, testSeries{Key: k})
				}
				g := &got[len(got)-1]
				g.Ts = append(g.Ts, tss[i])
				g.Values = append(g.Values, vals[i])
			}
		}
		if err := rr.Err(); err != nil {
			t.Fatal(err)
		}
		rr.Release()
		requireSameSeries(t, series, got)
	}
}
