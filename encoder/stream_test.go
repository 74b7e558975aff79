package encoder

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
)

// krow is one keyed row: series id, ts, value and group.
type krow struct {
	sid uint32
	ts  int64
	v   float64
	gid uint32
}

func makeKeyed(t testing.TB, l columnar.KeyLayout, rows []krow) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, l.Schema())
	defer b.Release()
	for _, r := range rows {
		c := 0
		if l.Wide {
			b.Field(0).(*array.Uint64Builder).Append(uint64(r.sid))
			b.Field(1).(*array.Int64Builder).Append(r.ts)
			c = 1
		} else {
			b.Field(0).(*array.Uint64Builder).Append(uint64(r.sid)<<32 | uint64(r.ts-l.Base))
		}
		b.Field(c + 1).(*array.Float64Builder).Append(r.v)
		b.Field(c + 2).(*array.Uint32Builder).Append(r.gid)
	}
	return b.NewRecordBatch()
}

// laterGid ranks groups by id: a higher gid arrived later.
func laterGid(a, b uint32) bool { return a > b }

func TestKeyedStream(t *testing.T) {
	// Three series; the second spans two batches and repeats a timestamp across the
	// batch boundary; the latest arrival (highest gid here) wins wherever it comes in
	// the run of repeats.
	batches := [][]krow{
		{{0, 10, 1, 1}, {0, 10, 99, 0}, {0, 20, 2, 0}, {1, 5, 98, 4}},
		{{1, 5, 3, 7}, {1, 5, 97, 5}, {1, 6, math.NaN(), 0}},
		{},
		{{7, 1 << 31, 4, 0}},
	}
	for _, l := range []columnar.KeyLayout{{Base: -1000}, {Wide: true}} {
		type series struct {
			sid  uint32
			ts   []int64
			vals []float64
		}
		var got []series
		s := NewKeyedStream(l, laterGid, func(sid uint32, ts []int64, vals []float64) error {
			got = append(got, series{sid, slices.Clone(ts), slices.Clone(vals)})
			return nil
		})
		for _, rows := range batches {
			rec := makeKeyed(t, l, rows)
			if err := s.Write(rec); err != nil {
				t.Fatal(err)
			}
			rec.Release() // the stream must not need the batch any more
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		want := StreamStats{PointsIn: 8, Duplicates: 3, PointsOut: 5, Series: 3}
		if st := s.Stats(); st != want {
			t.Fatalf("%+v: stats %+v, want %+v", l, st, want)
		}
		wantSeries := []series{{0, []int64{10, 20}, []float64{1, 2}}, {1, []int64{5, 6}, []float64{3, math.NaN()}}, {7, []int64{1 << 31}, []float64{4}}}
		if len(got) != len(wantSeries) {
			t.Fatalf("%+v: got %d series, want %d", l, len(got), len(wantSeries))
		}
		for i, w := range wantSeries {
			g := got[i]
			if g.sid != w.sid || !slices.Equal(g.ts, w.ts) || len(g.vals) != len(w.vals) {
				t.Fatalf("%+v: series %d = %+v, want %+v", l, i, g, w)
			}
			for j := range w.vals {
				if math.Float64bits(g.vals[j]) != math.Float64bits(w.vals[j]) {
					t.Fatalf("%+v: series %d value %d = %v, want %v", l, i, j, g.vals[j], w.vals[j])
				}
			}
		}
	}
}

func TestKeyedStreamRejects(t *testing.T) {
	l := columnar.KeyLayout{}
	emit := func(uint32, []int64, []float64) error { return nil }
	f := func(name string, rows ...krow) {
		t.Helper()
		s := NewKeyedStream(l, laterGid, emit)
		rec := makeKeyed(t, l, rows)
		defer rec.Release()
		err := s.Write(rec)
		if !errors.Is(err, ErrOutOfOrder) {
			t.Fatalf("%s: error %v, want ErrOutOfOrder", name, err)
		}
		if s.Close() == nil {
			t.Fatalf("%s: close after a failed write succeeded", name)
		}
	}
	f("series id decreases", krow{2, 1, 1, 0}, krow{1, 2, 1, 0})
	f("ts decreases", krow{1, 5, 1, 0}, krow{1, 4, 1, 0})

	for _, schema := range []*arrow.Schema{
		arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil),
		columnar.KeyedWideSchema, // a wide batch into a narrow stream
	} {
		s := NewKeyedStream(l, laterGid, emit)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		rec := b.NewRecordBatch()
		if err := s.Write(rec); err == nil {
			t.Fatalf("schema %s accepted", schema)
		}
		rec.Release()
		b.Release()
	}

	failed := errors.New("emit failed")
	s := NewKeyedStream(l, laterGid, func(uint32, []int64, []float64) error { return failed })
	rec := makeKeyed(t, l, []krow{{1, 1, 1, 0}, {2, 1, 1, 0}})
	defer rec.Release()
	if err := s.Write(rec); !errors.Is(err, failed) {
		t.Fatalf("emit error: got %v", err)
	}
}

// TestSpool hands series to a spool in a shuffled order, with a memory bound small enough
// that most records go to its file, and checks that the parts it writes hold every
// series in key order, bit for bit, cut at the part size.
func TestSpool(t *testing.T) {
	series := make([]testSeries, 300)
	for i := range series {
		n := 1 + i%50
		s := testSeries{Key: columnar.SeriesKey{Org: uint32(i % 7), Metric: uint64(i), Context: uint64(i * 31)}, Tags: []string{"i:" + strconv.Itoa(i)}}
		for j := range n {
			s.Ts = append(s.Ts, int64(1000*j+i))
			s.Values = append(s.Values, float64(i)+float64(j)/7)
		}
		series[i] = s
	}
	slices.SortFunc(series, func(a, b testSeries) int { return a.Key.Compare(b.Key) })
	for _, memBytes := range []int{1 << 30, 4096, 1} {
		dir := t.TempDir()
		sp := NewSpool(dir, memBytes)
		order := rand.New(rand.NewPCG(uint64(memBytes), 2)).Perm(len(series))
		for _, i := range order {
			s := series[i]
			if err := sp.Add(s.Key, s.Tags, s.Ts, s.Values); err != nil {
				t.Fatal(err)
			}
		}
		st := sp.Stats()
		if st.Series != int64(len(series)) || (memBytes < 1<<30) != (st.Spilled > 0) {
			t.Fatalf("mem %d: stats %+v", memBytes, st)
		}
		var got []testSeries
		var parts, points int64
		err := sp.WriteSorted(8<<10, func(file []byte, n, p int64) error {
			parts++
			points += p
			dec := decodeFile(t, file)
			if int64(len(dec)) != n {
				t.Fatalf("part holds %d series, reported %d", len(dec), n)
			}
			got = append(got, dec...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		requireSameSeries(t, series, got)
		if parts < 2 || points != st.Points {
			t.Fatalf("mem %d: %d parts, %d points (spool has %d)", memBytes, parts, points, st.Points)
		}
		if err := sp.Close(); err != nil {
			t.Fatal(err)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("mem %d: spool left %d files", memBytes, len(left))
		}
	}
}

func TestSpoolRejectsRepeatedSeries(t *testing.T) {
	sp := NewSpool(t.TempDir(), 1<<20)
	defer sp.Close()
	k := columnar.SeriesKey{Org: 1}
	for range 2 {
		if err := sp.Add(k, nil, []int64{1}, []float64{1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.WriteSorted(1<<20, func([]byte, int64, int64) error { return nil }); err == nil {
		t.Fatal("a series added twice was written")
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

// TestSpoolLargeRecord: a record larger than a spool chunk gets a chunk of its own, and
// small records after it still come back bit for bit, in memory and from the file.
func TestSpoolLargeRecord(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	big := testSeries{Key: columnar.SeriesKey{Org: 2}}
	for j := range 300_000 {
		big.Ts = append(big.Ts, int64(j))
		big.Values = append(big.Values, math.Float64frombits(rng.Uint64()))
	}
	small := []testSeries{
		{Key: columnar.SeriesKey{Org: 1}, Ts: []int64{1, 2}, Values: []float64{1, 2}},
		{Key: columnar.SeriesKey{Org: 3}, Ts: []int64{5}, Values: []float64{math.NaN()}},
	}
	for _, memBytes := range []int{1 << 30, 1} {
		sp := NewSpool(t.TempDir(), memBytes)
		for _, s := range []testSeries{small[1], big, small[0]} {
			if err := sp.Add(s.Key, s.Tags, s.Ts, s.Values); err != nil {
				t.Fatal(err)
			}
		}
		if st := sp.Stats(); st.Bytes < 2*spoolChunk {
			t.Fatalf("the big record takes %d bytes; the test wants one larger than a chunk", st.Bytes)
		}
		var got []testSeries
		if err := sp.WriteSorted(1<<30, func(file []byte, _, _ int64) error {
			got = append(got, decodeFile(t, file)...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		requireSameSeries(t, []testSeries{small[0], big, small[1]}, got)
		if err := sp.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
