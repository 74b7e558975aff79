package encoder

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
)

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
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Fatalf("mem %d: the spool's file is visible: a killed run would leave it", memBytes)
		}
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
