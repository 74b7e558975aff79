package encoder

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
)

// kgroup is one keyed row: a group of series sid, with id gid and points ts, vs. The
// key carries ts[0], or keyTs when set (to build a row whose key lies).
type kgroup struct {
	sid   uint32
	gid   uint32
	ts    []int64
	vs    []float64
	keyTs *int64
}

// makeKeyed stores the groups' points in ps and returns their keyed rows.
func makeKeyed(t testing.TB, l columnar.KeyLayout, ps *columnar.PointStore, groups []kgroup) arrow.RecordBatch {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, l.Schema())
	defer b.Release()
	pw := ps.Writer()
	defer pw.Close()
	for _, g := range groups {
		first := int64(0)
		if len(g.ts) > 0 {
			first = g.ts[0]
		}
		if g.keyTs != nil {
			first = *g.keyTs
		}
		c := 0
		if l.Wide {
			b.Field(0).(*array.Uint64Builder).Append(uint64(g.sid))
			b.Field(1).(*array.Int64Builder).Append(first)
			c = 1
		} else {
			b.Field(0).(*array.Uint64Builder).Append(uint64(g.sid)<<32 | uint64(first-l.Base))
		}
		b.Field(c + 1).(*array.Uint32Builder).Append(g.gid)
		dst, err := pw.Reserve(len(g.ts) * columnar.RunPointBytes)
		if err != nil {
			t.Fatal(err)
		}
		for i, ts := range g.ts {
			binary.LittleEndian.PutUint64(dst[16*i:], uint64(ts))
			binary.LittleEndian.PutUint64(dst[16*i+8:], math.Float64bits(g.vs[i]))
		}
		b.Field(c + 2).(*array.Uint32Builder).Append(uint32(len(g.ts)))
		b.Field(c + 3).(*array.Uint64Builder).Append(pw.Commit(len(dst)))
	}
	return b.NewRecordBatch()
}

// newStore returns a point store removed when the test ends.
func newStore(t testing.TB) *columnar.PointStore {
	ps := columnar.NewPointStore(t.TempDir(), 1<<30)
	t.Cleanup(func() { ps.Close() })
	return ps
}

// laterGid ranks groups by id: a higher gid arrived later.
func laterGid(a, b uint32) bool { return a > b }

func TestKeyedStream(t *testing.T) {
	// Three series; the first has two groups starting at one ts, the second spans two
	// batches and repeats a timestamp across the batch boundary; the latest arrival
	// (highest gid here) wins wherever it comes among the repeats.
	batches := [][]kgroup{
		{{sid: 0, gid: 1, ts: []int64{10}, vs: []float64{1}}, {sid: 0, gid: 0, ts: []int64{10, 20}, vs: []float64{99, 2}}, {sid: 1, gid: 4, ts: []int64{5}, vs: []float64{98}}},
		{{sid: 1, gid: 7, ts: []int64{5}, vs: []float64{3}}, {sid: 1, gid: 5, ts: []int64{5, 6}, vs: []float64{97, math.NaN()}}},
		{},
		{{sid: 7, gid: 0, ts: []int64{1 << 31}, vs: []float64{4}}},
	}
	for _, l := range []columnar.KeyLayout{{Base: -1000}, {Wide: true}} {
		type series struct {
			sid  uint32
			ts   []int64
			vals []float64
		}
		var got []series
		ps := newStore(t)
		s := NewKeyedStream(l, laterGid, ps.Points, func(sid uint32, ts []int64, vals []float64) error {
			got = append(got, series{sid, slices.Clone(ts), slices.Clone(vals)})
			return nil
		})
		for _, rows := range batches {
			rec := makeKeyed(t, l, ps, rows)
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
	// want nil: ErrOutOfOrder; otherwise an error containing want's text.
	f := func(name string, want error, groups ...kgroup) {
		t.Helper()
		ps := newStore(t)
		s := NewKeyedStream(l, laterGid, ps.Points, emit)
		rec := makeKeyed(t, l, ps, groups)
		defer rec.Release()
		err := s.Write(rec)
		if want == nil && !errors.Is(err, ErrOutOfOrder) || want != nil && (err == nil || !strings.Contains(err.Error(), want.Error())) {
			t.Fatalf("%s: error %v, want %v", name, err, cmp.Or(want, ErrOutOfOrder))
		}
		if s.Close() == nil {
			t.Fatalf("%s: close after a failed write succeeded", name)
		}
	}
	at := func(ts int64) *int64 { return &ts }
	f("series id decreases", nil, kgroup{sid: 2, ts: []int64{1}, vs: []float64{1}}, kgroup{sid: 1, ts: []int64{2}, vs: []float64{1}})
	f("group start decreases", nil, kgroup{sid: 1, ts: []int64{5}, vs: []float64{1}}, kgroup{sid: 1, ts: []int64{4}, vs: []float64{1}})
	f("ts repeats in a group", nil, kgroup{sid: 1, ts: []int64{5, 5}, vs: []float64{1, 2}})
	f("ts decreases in a group", nil, kgroup{sid: 1, ts: []int64{5, 4}, vs: []float64{1, 2}})
	f("key lies about the first ts", errors.New("key says"), kgroup{sid: 1, ts: []int64{5}, vs: []float64{1}, keyTs: at(4)})
	f("group without points", errors.New("without points"), kgroup{sid: 1})

	for _, schema := range []*arrow.Schema{
		arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil),
		columnar.KeyedWideSchema, // a wide batch into a narrow stream
	} {
		s := NewKeyedStream(l, laterGid, newStore(t).Points, emit)
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		rec := b.NewRecordBatch()
		if err := s.Write(rec); err == nil {
			t.Fatalf("schema %s accepted", schema)
		}
		rec.Release()
		b.Release()
	}

	failed := errors.New("emit failed")
	ps := newStore(t)
	s := NewKeyedStream(l, laterGid, ps.Points, func(uint32, []int64, []float64) error { return failed })
	rec := makeKeyed(t, l, ps, []kgroup{{sid: 1, ts: []int64{1}, vs: []float64{1}}, {sid: 2, ts: []int64{1}, vs: []float64{1}}})
	defer rec.Release()
	if err := s.Write(rec); !errors.Is(err, failed) {
		t.Fatalf("emit error: got %v", err)
	}
}

// TestKeyedStreamMerges feeds random groups (overlapping, nested, disjoint, repeated
// arrivals of one ts from many groups) in key order, cut into random batches, and checks
// each series against a map that keeps, per ts, the point of the latest group.
func TestKeyedStreamMerges(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		l := columnar.KeyLayout{Wide: seed%2 == 0}
		type point struct {
			bits uint64
			gid  uint32
		}
		want := map[uint32]map[int64]point{}
		var groups []kgroup
		gids := rng.Perm(1000)
		in := 0
		for sid := range uint32(1 + rng.IntN(4)) {
			want[sid] = map[int64]point{}
			span := 1 + rng.IntN(200)
			for range 1 + rng.IntN(12) {
				g := kgroup{sid: sid, gid: uint32(gids[0])}
				gids = gids[1:]
				t0 := int64(rng.IntN(span))
				for ts := t0; ts < int64(span) && len(g.ts) < 50; ts += 1 + int64(rng.IntN(4)) {
					bits := rng.Uint64()
					g.ts, g.vs = append(g.ts, ts), append(g.vs, math.Float64frombits(bits))
					if p, ok := want[sid][ts]; !ok || g.gid > p.gid {
						want[sid][ts] = point{bits, g.gid}
					}
				}
				in += len(g.ts)
				groups = append(groups, g)
			}
		}
		slices.SortFunc(groups, func(a, b kgroup) int {
			return cmp.Or(cmp.Compare(a.sid, b.sid), cmp.Compare(a.ts[0], b.ts[0]))
		})
		out := 0
		// A small bound: the points of most seeds spill.
		ps := columnar.NewPointStore(t.TempDir(), 1<<10)
		s := NewKeyedStream(l, laterGid, ps.Points, func(sid uint32, ts []int64, vals []float64) error {
			w := want[sid]
			if len(ts) != len(w) {
				return fmt.Errorf("series %d: %d points, want %d", sid, len(ts), len(w))
			}
			for i, x := range ts {
				if i > 0 && x <= ts[i-1] {
					return fmt.Errorf("series %d: ts %d after %d", sid, x, ts[i-1])
				}
				if p, ok := w[x]; !ok || p.bits != math.Float64bits(vals[i]) {
					return fmt.Errorf("series %d ts %d: value bits %x, want %x (present %v)", sid, x, math.Float64bits(vals[i]), p.bits, ok)
				}
			}
			out += len(ts)
			return nil
		})
		for len(groups) > 0 {
			n := min(len(groups), rng.IntN(5))
			rec := makeKeyed(t, l, ps, groups[:n])
			groups = groups[n:]
			if err := s.Write(rec); err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			rec.Release()
		}
		if err := s.Close(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if st := s.Stats(); st.PointsIn != int64(in) || st.PointsOut != int64(out) || st.Duplicates != int64(in-out) {
			t.Fatalf("seed %d: stats %+v, want %d in, %d out", seed, st, in, out)
		}
		if err := ps.Close(); err != nil {
			t.Fatal(err)
		}
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
