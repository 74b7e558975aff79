package pointdiff

import (
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

type pt struct {
	k  seriesKey
	ts int64
	v  float64
}

// runs hands the points (sorted) over in runs of random length, a series split at will.
type runs struct {
	pts []pt
	rng *rand.Rand
	i   int
	run Run
	ts  []int64
	vs  []float64
}

func (r *runs) Next() bool {
	if r.i == len(r.pts) {
		return false
	}
	j := r.i + 1
	for j < len(r.pts) && r.pts[j].k == r.pts[r.i].k && r.rng.IntN(4) > 0 {
		j++
	}
	r.ts, r.vs = r.ts[:0], r.vs[:0]
	for _, p := range r.pts[r.i:j] {
		r.ts, r.vs = append(r.ts, p.ts), append(r.vs, p.v)
	}
	k := r.pts[r.i].k
	r.run = Run{Org: k.org, Metric: k.metric, Context: k.context, Ts: r.ts, Values: r.vs}
	r.i = j
	return true
}
func (r *runs) At() *Run   { return &r.run }
func (r *runs) Err() error { return nil }

// reference is sql/diff.sql and diffsummary.sql written out naively: group legacy by
// point, then classify every point of either side.
func reference(n, l []pt, tol float64, bucket int64) (map[[4]int64]Group, []Row) {
	type pk struct {
		k  seriesKey
		ts int64
	}
	copies := map[pk][]float64{}
	for _, p := range l {
		copies[pk{p.k, p.ts}] = append(copies[pk{p.k, p.ts}], p.v)
	}
	newV := map[pk]float64{}
	keys := map[pk]bool{}
	for _, p := range n {
		newV[pk{p.k, p.ts}] = p.v
		keys[pk{p.k, p.ts}] = true
	}
	for k := range copies {
		keys[k] = true
	}
	var all []pk
	for k := range keys {
		all = append(all, k)
	}
	slices.SortFunc(all, func(a, b pk) int {
		if c := a.k.compare(b.k); c != 0 {
			return c
		}
		return cmp.Compare(a.ts, b.ts)
	})
	groups := map[[4]int64]Group{}
	var rows []Row
	for _, k := range all {
		nv, inNew := newV[k]
		cs := copies[k]
		kind := MissingInNew
		switch {
		case len(cs) > 1:
			kind = DuplicateInLegacy
		case !inNew:
		case len(cs) == 0:
			kind = MissingInLegacy
		case Same(nv, cs[0], tol):
			kind = Equal
		default:
			kind = ValueDiffers
		}
		id := [4]int64{int64(k.k.org), int64(k.k.metric), Bucket(k.ts, bucket), int64(kind)}
		g, ok := groups[id]
		if !ok {
			g = Group{Org: k.k.org, Metric: k.k.metric, Bucket: id[2], Kind: kind, FirstTs: k.ts, LastTs: k.ts}
		}
		g.Points++
		g.FirstTs, g.LastTs = min(g.FirstTs, k.ts), max(g.LastTs, k.ts)
		groups[id] = g
		if kind == Equal {
			continue
		}
		var np *float64
		if inNew {
			np = &nv
		}
		if len(cs) == 0 {
			rows = append(rows, Row{Kind: kind, Org: k.k.org, Metric: k.k.metric, Context: k.k.context, Ts: k.ts, New: np})
			continue
		}
		sorted := slices.Clone(cs)
		slices.SortStableFunc(sorted, compareCopies)
		for i := range sorted {
			rows = append(rows, Row{Kind: kind, Org: k.k.org, Metric: k.k.metric, Context: k.k.context, Ts: k.ts, New: np, Legacy: &sorted[i]})
		}
	}
	return groups, rows
}

func sameRow(a, b Row) bool {
	eq := func(x, y *float64) bool {
		return x == nil && y == nil || x != nil && y != nil && math.Float64bits(*x) == math.Float64bits(*y)
	}
	return a.Kind == b.Kind && a.Org == b.Org && a.Metric == b.Metric && a.Context == b.Context && a.Ts == b.Ts && eq(a.New, b.New) && eq(a.Legacy, b.Legacy)
}

// TestJoinMatchesReference: on random sides (runs of any length, series split across
// runs, copies within and across runs, edge values, negative timestamps, buckets of
// several widths) Join gives the naive reference's groups and rows.
func TestJoinMatchesReference(t *testing.T) {
	edge := []float64{0, math.Copysign(0, -1), math.NaN(), math.Float64frombits(0x7ff8000000000bad), math.Inf(1), math.Inf(-1), 1, 1 + 1e-9, 2}
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var n, l []pt
		for range 1 + rng.IntN(8) {
			k := seriesKey{uint32(rng.IntN(3)), uint64(rng.IntN(3)), uint64(rng.IntN(3))}
			for ts := int64(-20 + rng.IntN(10)); ts < 40; ts += 1 + int64(rng.IntN(4)) {
				v := edge[rng.IntN(len(edge))]
				if rng.IntN(6) > 0 {
					n = append(n, pt{k, ts, v})
				}
				for c := rng.IntN(4) - 1; c >= 0; c-- {
					if rng.IntN(2) == 0 {
						v = edge[rng.IntN(len(edge))]
					}
					l = append(l, pt{k, ts, v})
				}
			}
		}
		order := func(a, b pt) int {
			if c := a.k.compare(b.k); c != 0 {
				return c
			}
			return int(a.ts - b.ts)
		}
		slices.SortStableFunc(n, order)
		n = slices.CompactFunc(n, func(a, b pt) bool { return order(a, b) == 0 })
		slices.SortStableFunc(l, order)
		tol := []float64{0, 1e-6}[seed%2]
		bucket := []int64{1, 7, 1000}[seed%3]
		var rows []Row
		got, err := Join(&runs{pts: n, rng: rng}, &runs{pts: l, rng: rng}, JoinOptions{Tolerance: tol, BucketMs: bucket, Rows: func(r Row) error { rows = append(rows, r); return nil }})
		if err != nil {
			t.Fatal(err)
		}
		wantGroups, wantRows := reference(n, l, tol, bucket)
		if len(got) != len(wantGroups) {
			t.Fatalf("seed %d: %d groups, want %d", seed, len(got), len(wantGroups))
		}
		for _, g := range got {
			if w := wantGroups[[4]int64{int64(g.Org), int64(g.Metric), g.Bucket, int64(g.Kind)}]; w != g {
				t.Fatalf("seed %d: group %+v, want %+v", seed, g, w)
			}
		}
		if len(rows) != len(wantRows) {
			t.Fatalf("seed %d: %d rows, want %d", seed, len(rows), len(wantRows))
		}
		for i := range rows {
			if !sameRow(rows[i], wantRows[i]) {
				t.Fatalf("seed %d: row %d %+v, want %+v", seed, i, rows[i], wantRows[i])
			}
		}
	}
}

func TestJoinRejectsUnsorted(t *testing.T) {
	a, b := seriesKey{1, 1, 1}, seriesKey{1, 1, 2}
	f := func(name string, n, l []pt) {
		t.Helper()
		rng := rand.New(rand.NewPCG(1, 1))
		_, err := Join(&runs{pts: n, rng: rng}, &runs{pts: l, rng: rng}, JoinOptions{BucketMs: 10})
		if !errors.Is(err, ErrUnsorted) {
			t.Fatalf("%s: %v, want ErrUnsorted", name, err)
		}
	}
	f("new series out of order", []pt{{b, 1, 0}, {a, 1, 0}}, nil)
	f("new ts out of order", []pt{{a, 2, 0}, {a, 1, 0}}, nil)
	f("new ts twice", []pt{{a, 1, 0}, {a, 1, 0}}, nil)
	f("legacy series out of order", nil, []pt{{b, 1, 0}, {a, 1, 0}})
	f("legacy ts out of order", nil, []pt{{a, 2, 0}, {a, 1, 0}})
}

func TestBucket(t *testing.T) {
	f := func(ts, ms, want int64) {
		t.Helper()
		if got := Bucket(ts, ms); got != want {
			t.Fatalf("Bucket(%d, %d) = %d, want %d", ts, ms, got, want)
		}
	}
	f(0, 10, 0)
	f(9, 10, 0)
	f(10, 10, 10)
	f(-1, 10, -10)
	f(-10, 10, -10)
	f(-11, 10, -20)
}
