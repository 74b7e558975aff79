//go:build duckdb_arrow

package run

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// unprunedView reads every published point, whatever the statement: the reference
// the pruned series view must agree with.
func unprunedView(st storage.Store, scope query.Scope) query.View {
	return query.View{Name: "series", Arrow: func(ctx context.Context) (array.RecordReader, error) {
		m, err := OpenSeries(ctx, st, scope)
		if err != nil {
			return nil, err
		}
		return newSeriesBatches(m, query.Restriction{}), nil
	}}
}

// randomPredicate is a random WHERE over the series view's columns: comparisons of
// each column with constants inside, at the edge of and outside its range, in every
// form the restriction reader knows (and some it does not), under AND, OR and NOT.
func randomPredicate(rng *rand.Rand, q string, base int64, depth int) string {
	if depth > 0 && rng.IntN(3) > 0 {
		a, b := randomPredicate(rng, q, base, depth-1), randomPredicate(rng, q, base, depth-1)
		switch rng.IntN(5) {
		case 0, 1:
			return "(" + a + " AND " + b + ")"
		case 2, 3:
			return "(" + a + " OR " + b + ")"
		}
		return "NOT (" + a + ")"
	}
	col := []string{"org_id", "metric_id", "context_key", "ts", "value"}[rng.IntN(5)]
	c := func() string {
		switch col {
		case "org_id":
			return []string{"0", "1", "2", "3", "4", "-1", "4294967295", "4294967296", "2::BIGINT", "CAST(1 AS UINTEGER)"}[rng.IntN(10)]
		case "metric_id":
			return []string{"0", "1", "3", "5", "6", "-5", "18446744073709551615", "18446744073709551616", "2.5"}[rng.IntN(9)]
		case "context_key":
			return fmt.Sprint(rng.IntN(4) - 1)
		case "ts":
			return fmt.Sprint(base + rng.Int64N(8*hourMs) - hourMs)
		}
		return fmt.Sprint(rng.NormFloat64() * 100)
	}
	col = q + col
	switch rng.IntN(9) {
	case 0:
		return col + " = " + c()
	case 1:
		return c() + " < " + col
	case 2:
		return col + " <= " + c()
	case 3:
		return col + " > " + c()
	case 4:
		return col + " >= " + c()
	case 5:
		return col + " <> " + c()
	case 6:
		a, b := c(), c()
		if rng.IntN(4) == 0 {
			return col + " NOT BETWEEN " + a + " AND " + b
		}
		return col + " BETWEEN " + a + " AND " + b
	case 7:
		in := []string{c(), c(), c()}
		if rng.IntN(4) == 0 {
			return col + " NOT IN (" + strings.Join(in, ", ") + ")"
		}
		return col + " IN (" + strings.Join(in, ", ") + ")"
	}
	return col + " IS NOT NULL"
}

// memAndLocal are the two kinds of store the scan reads differently (a local store's
// directories are listed and its files read in place).
func memAndLocal(t *testing.T) []struct {
	name string
	st   func() storage.Store
} {
	return []struct {
		name string
		st   func() storage.Store
	}{
		{"mem", func() storage.Store { return storage.NewMem("scan") }},
		{"local", func() storage.Store {
			st, err := storage.OpenLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	}
}

// TestPrunedEqualsUnpruned: on a store with several shards, windows and late outputs,
// every random predicate gives the same answer through the pruned series view as
// through a reader of everything, for queries that read all columns, some, or none;
// and pruning skips files.
func TestPrunedEqualsUnpruned(t *testing.T) {
	ctx := context.Background()
	for _, mk := range memAndLocal(t) {
		t.Run(mk.name, func(t *testing.T) {
			st := mk.st()
			defer st.Close()
			lateWorkload(t, st, 7, 64)
			if _, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), Engine: query.Options{Threads: 1}}}); err != nil {
				t.Fatal(err)
			}
			e, err := query.Open(ctx, query.Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			base := int64(1763942400000)
			rng := rand.New(rand.NewPCG(3, 5))
			answer := func(stmt string, v query.View, scope query.Scope) (string, query.ReadStats) {
				t.Helper()
				views := []query.View{v}
				if v.Name == "points" {
					views = append(views, query.LatestView())
				}
				vs, err := e.DefineViews(ctx, []string{stmt}, views, scope)
				if err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
				res, err := vs.Query(ctx, stmt)
				if err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
				var b strings.Builder
				for res.Next() {
					rec := res.RecordBatch()
					for i := 0; i < int(rec.NumRows()); i++ {
						for c := 0; c < int(rec.NumCols()); c++ {
							fmt.Fprintf(&b, "%s|", rec.Column(c).ValueStr(i))
						}
						b.WriteByte('\n')
					}
				}
				if err := res.Err(); err != nil {
					t.Fatal(err)
				}
				res.Release()
				if err := vs.Close(); err != nil {
					t.Fatal(err)
				}
				return b.String(), vs.Reads()[v.Name]
			}
			points := func(scope query.Scope) query.View {
				return query.PointsView(st, scope, columnar.ReadOptions{Readers: 2})
			}
			unprunedPoints := func(scope query.Scope) query.View {
				return query.View{Name: "points", Arrow: func(ctx context.Context) (array.RecordReader, error) {
					return points(scope).Scan(ctx, query.Restriction{})
				}}
			}
			var skipped, rows int64
			for i := range 60 {
				seed := rng.Uint64()
				scope := query.Scope{}
				switch i % 5 {
				case 3:
					scope.Shard = fmt.Sprintf("org-mod-%d", rng.IntN(4))
				case 4:
					scope.Window = Window{From: time.UnixMilli(base + int64(rng.IntN(6))*hourMs).UTC(), Size: 2 * time.Hour}.TsRange()
				}
				for _, q := range []string{
					"SELECT org_id, metric_id, context_key, ts, value FROM series WHERE %s ORDER BY ALL",
					"SELECT count(*) FROM series WHERE %s",
					"SELECT org_id, count(*), min(ts), max(ts) FROM series WHERE %s GROUP BY org_id ORDER BY org_id",
					"SELECT s.org_id, count(*) FROM series s JOIN (SELECT DISTINCT org_id FROM series WHERE org_id < 3) o ON s.org_id = o.org_id WHERE %s GROUP BY ALL ORDER BY ALL",
				} {
					prefix := []string{"", "series."}[seed%2]
					if strings.Contains(q, "series s") {
						prefix = "s."
					}
					stmt := fmt.Sprintf(q, randomPredicate(rand.New(rand.NewPCG(seed, 1)), prefix, base, 2))
					got, reads := answer(stmt, SeriesView("series", st, scope), scope)
					want, _ := answer(stmt, unprunedView(st, scope), scope)
					if got != want {
						t.Fatalf("%s (scope %+v):\npruned:\n%s\nunpruned:\n%s", stmt, scope, got, want)
					}
					skipped += reads.FilesSkipped
					rows += int64(strings.Count(got, "\n"))
				}
				// The raw segments and their de-duplication, pruned the same way.
				for _, view := range []string{"points", "latest"} {
					stmt := fmt.Sprintf("SELECT org_id, metric_id, context_key, ts, value FROM %s WHERE %s ORDER BY ALL", view,
						randomPredicate(rand.New(rand.NewPCG(seed, 2)), "", base, 2))
					got, reads := answer(stmt, points(scope), scope)
					want, _ := answer(stmt, unprunedPoints(scope), scope)
					if got != want {
						t.Fatalf("%s (scope %+v):\npruned:\n%s\nunpruned:\n%s", stmt, scope, got, want)
					}
					skipped += reads.FilesSkipped
				}
			}
			if skipped == 0 || rows == 0 {
				t.Fatalf("%d files skipped, %d rows: the test proves too little", skipped, rows)
			}
		})
	}
}

// TestPrunedThroughTheLife: through compaction, runs made inside a compacted range,
// deletes recorded and applied, and gc, a read restricted to random orgs, metrics and ts
// ranges, with values or without, returns exactly the points of a read of everything
// that the restriction admits (and only points that read returns, bit for bit), and
// skips files; every part of every serving run records its ts and org range, derived
// and rewritten runs' included, so that they are pruned too.
func TestPrunedThroughTheLife(t *testing.T) {
	ctx := context.Background()
	base := int64(1763942400000)
	for _, mk := range memAndLocal(t) {
		t.Run(mk.name, func(t *testing.T) {
			st := mk.st()
			defer st.Close()
			specs := lateWorkload(t, st, 8, 16)
			runAllLife(t, st)
			rng := rand.New(rand.NewPCG(8, 13))
			check := func(stage string) {
				t.Helper()
				all := readAll(t, st, query.Scope{})
				if len(all) == 0 {
					t.Fatalf("%s: no point", stage)
				}
				ms, err := Published(ctx, st)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range ms {
					for _, p := range append(append([]Part(nil), m.Parts...), m.LateParts...) {
						if len(p.Ts) != 2 || len(p.Orgs) != 2 {
							t.Fatalf("%s: run %s %s part %s records ts %v orgs %v", stage, m.Shard, m.Window, p.Key, p.Ts, p.Orgs)
						}
					}
				}
				var skipped int64
				for range 25 {
					var r query.Restriction
					if rng.IntN(3) > 0 {
						r.Orgs = query.IDs(uint64(rng.IntN(4)), uint64(rng.IntN(5)))
					}
					if rng.IntN(2) == 0 {
						r.Metrics = query.NewIDSet(query.IDRange{Lo: uint64(rng.IntN(6)), Hi: uint64(rng.IntN(6))})
					}
					if rng.IntN(3) > 0 {
						lo := base + rng.Int64N(10*hourMs) - 2*hourMs
						r.Ts = &query.TsRange{Min: lo, Max: lo + rng.Int64N(3*hourMs)}
					}
					vals := rng.IntN(2) == 0
					if !vals {
						r.Columns = []string{"org_id", "ts"}
					}
					m, err := OpenSeriesWith(ctx, st, ScanOptions{Restriction: r, Workers: 2})
					if err != nil {
						t.Fatal(err)
					}
					got := map[outPoint]bool{}
					for m.Next() {
						s := m.At()
						for i, ts := range s.Ts {
							op := outPoint{s.Key, ts}
							bits, ok := all[op]
							if !ok || got[op] || vals && math.Float64bits(s.Values[i]) != bits {
								t.Fatalf("%s, %v: %+v (value %v) is not a point of the whole read once, or not its value", stage, r, op, vals)
							}
							got[op] = true
						}
					}
					if err := m.Err(); err != nil {
						t.Fatal(err)
					}
					lo, hi := r.TsBounds()
					for op := range all {
						if r.MatchKey(op.k) && op.ts >= lo && op.ts <= hi && !got[op] {
							t.Fatalf("%s, %v: %+v missing", stage, r, op)
						}
					}
					skipped += m.Reads().FilesSkipped
				}
				if skipped == 0 {
					t.Fatalf("%s: no file skipped", stage)
				}
			}
			compactLife(t, st, 2*time.Hour, 6*time.Hour)
			lateSegment(t, st, specs, 9, base+2*hourMs+10*60_000)
			runAllLife(t, st)
			check("runs inside a compacted range")
			recordDelete(t, st, 2)
			metric := uint64(3)
			if _, _, err := RecordTombstone(ctx, st, Tombstone{Org: 1, Metric: &metric, From: base + hourMs, To: base + 3*hourMs, Created: far}); err != nil {
				t.Fatal(err)
			}
			check("deletes recorded")
			if _, err := ApplyTombstones(ctx, ApplyOptions{Store: st, TempDir: t.TempDir(), Now: far}); err != nil {
				t.Fatal(err)
			}
			check("deletes applied")
			for _, now := range []time.Time{far, far.Add(DefaultGrace)} {
				if _, err := GC(ctx, GCOptions{Store: st, Now: now}); err != nil {
					t.Fatal(err)
				}
			}
			check("after gc")
		})
	}
}
