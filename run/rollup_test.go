//go:build duckdb_arrow

package run

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/rollup"
	"github.com/tailor-metrics/tailor/storage"
)

// rollupSQL computes, in DuckDB over the raw points (the series view), what every rollup
// bucket must hold at resolution res ms: the aggregates docs/format/rollup.md defines,
// written in SQL independently of the Go code, with the increase of every series.
func rollupSQL(res int64) string {
	return fmt.Sprintf(`
WITH b AS (SELECT *, ts - ((ts %% %[1]d) + %[1]d) %% %[1]d AS bucket FROM series),
agg AS (SELECT org_id, metric_id, context_key, bucket, count(*)::UBIGINT AS count,
        sum(value) FILTER (WHERE NOT isnan(value)) AS sum,
        min(value) FILTER (WHERE NOT isnan(value)) AS min,
        max(value) FILTER (WHERE NOT isnan(value)) AS max,
        arg_min(value, ts) FILTER (WHERE NOT isnan(value)) AS first,
        arg_max(value, ts) FILTER (WHERE NOT isnan(value)) AS last
        FROM b GROUP BY ALL),
steps AS (SELECT org_id, metric_id, context_key, bucket, value,
          lag(value) OVER (PARTITION BY org_id, metric_id, context_key, bucket ORDER BY ts) AS prev
          FROM b WHERE NOT isnan(value)),
inc AS (SELECT org_id, metric_id, context_key, bucket,
        sum(CASE WHEN prev IS NULL THEN 0 WHEN value >= prev THEN value - prev ELSE value END) AS increase
        FROM steps GROUP BY ALL)
SELECT a.org_id, a.metric_id, a.context_key, a.bucket AS ts, a.count, a.sum, a.min, a.max, a.first, a.last, i.increase
FROM agg a LEFT JOIN inc i USING (org_id, metric_id, context_key, bucket)`, res)
}

type bucketRow struct {
	count                           uint64
	sum, min, max, first, last, inc float64
	incNull                         bool
}

func queryBuckets(t *testing.T, e *query.Engine, st storage.Store, stmt string) map[string]bucketRow {
	t.Helper()
	ctx := context.Background()
	views := append([]query.View{SeriesView("series", st, query.Scope{})}, RollupViews(st, query.Scope{})...)
	res, err := e.QueryViews(ctx, stmt, views, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	out := map[string]bucketRow{}
	for res.Next() {
		b := res.RecordBatch()
		col := func(i int) arrowCol { return arrowCol{b.Column(i)} }
		for i := 0; i < int(b.NumRows()); i++ {
			k := fmt.Sprintf("%d/%d/%d/%d", col(0).u(i), col(1).u(i), col(2).u(i), col(3).i(i))
			r := bucketRow{count: col(4).u(i), sum: col(5).f(i), min: col(6).f(i), max: col(7).f(i), first: col(8).f(i), last: col(9).f(i)}
			if b.Column(10).IsNull(i) {
				r.incNull = true
			} else {
				r.inc = col(10).f(i)
			}
			out[k] = r
		}
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type arrowCol struct{ a interface{ IsNull(int) bool } }

func (c arrowCol) u(i int) uint64 {
	switch a := c.a.(type) {
	case *array.Uint32:
		return uint64(a.Value(i))
	case *array.Uint64:
		return a.Value(i)
	}
	panic(fmt.Sprintf("column %T", c.a))
}

func (c arrowCol) i(i int) int64 { return c.a.(*array.Int64).Value(i) }

func (c arrowCol) f(i int) float64 {
	if c.a.IsNull(i) {
		return math.NaN()
	}
	return c.a.(*array.Float64).Value(i)
}

// checkRollups compares every bucket of the rollup view with the SQL aggregates of the
// raw points, at every resolution, the counters' increases too; it returns how many
// buckets it compared.
func checkRollups(t *testing.T, st storage.Store, resolutions []int64) int {
	t.Helper()
	ctx := context.Background()
	e, err := query.Open(ctx, query.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	n, nCounters := 0, 0
	for _, res := range resolutions {
		want := queryBuckets(t, e, st, rollupSQL(res))
		got := queryBuckets(t, e, st, fmt.Sprintf(`SELECT org_id, metric_id, context_key, ts, count, sum, min, max, first, last, increase FROM rollup WHERE resolution = '%s'`, rollup.Name(res)))
		if len(got) != len(want) || len(want) == 0 {
			t.Fatalf("%s: %d buckets, the raw points give %d", rollup.Name(res), len(got), len(want))
		}
		for k, w := range want {
			g, ok := got[k]
			switch {
			case !ok:
				t.Fatalf("%s bucket %s: missing", rollup.Name(res), k)
			case g.count != w.count || !sameF(g.sum, w.sum) || !sameF(g.min, w.min) || !sameF(g.max, w.max) || !sameF(g.first, w.first) || !sameF(g.last, w.last):
				t.Fatalf("%s bucket %s: %+v, the raw points give %+v", rollup.Name(res), k, g, w)
			case !g.incNull && !sameF(g.inc, w.inc):
				t.Fatalf("%s bucket %s: increase %v, the raw points give %v", rollup.Name(res), k, g.inc, w.inc)
			}
			if !g.incNull {
				nCounters++
			}
			n++
		}
	}
	// The workload's tags name the segment a payload came from, so a series is a
	// counter in the runs whose latest payload of it carries a counter tag.
	if nCounters == 0 || nCounters == n {
		t.Fatalf("%d of %d buckets are a counter's: the test proves too little", nCounters, n)
	}
	return n
}

func sameF(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

// TestRollupsMatchSQL: the rollups run writes, and those compaction writes, hold exactly
// the aggregates DuckDB computes over the raw points (windows stay open here, so every
// point of a bucket is in the run that rolls it up; see docs/lifecycle.md for late data).
func TestRollupsMatchSQL(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("rollups")
	lateWorkload(t, st, 9, 16)
	cfg := &RollupConfig{ResolutionsMs: []int64{5 * 60_000, 15 * 60_000}, CounterTags: []string{"seg:3", "seg:7", "seg:20"}}
	if _, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: Arrival{Size: time.Hour}, Engine: query.Options{Threads: 1}, PartBytes: 4 << 10, Rollups: cfg}}); err != nil {
		t.Fatal(err)
	}
	n := checkRollups(t, st, cfg.ResolutionsMs)
	// Compaction makes its rollups from the merged points, and can add a resolution.
	more := &RollupConfig{ResolutionsMs: []int64{hourMs}}
	if _, err := Compact(ctx, CompactOptions{Store: st, Levels: []time.Duration{2 * time.Hour, 6 * time.Hour}, Rollups: more, TempDir: t.TempDir(), PartBytes: 4 << 10}); err != nil {
		t.Fatal(err)
	}
	if m := checkRollups(t, st, []int64{5 * 60_000, 15 * 60_000, hourMs}); m <= n {
		t.Fatalf("%d buckets after compaction, %d before", m, n)
	}
}
