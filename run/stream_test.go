package run

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
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
func makeKeyed(t testing.TB, l columnar.KeyLayout, ps *PointStore, groups []kgroup) arrow.RecordBatch {
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
func newStore(t testing.TB) *PointStore {
	ps := NewPointStore(t.TempDir(), 1<<30)
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
		if want == nil && !errors.Is(err, encoder.ErrOutOfOrder) || want != nil && (err == nil || !strings.Contains(err.Error(), want.Error())) {
			t.Fatalf("%s: error %v, want %v", name, err, cmp.Or(want, encoder.ErrOutOfOrder))
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
		ps := NewPointStore(t.TempDir(), 1<<10)
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
