//go:build duckdb_arrow

package query_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// The diff benchmark's data: 20,000 series x 1,000 points = 20M points, once as
// published series files, and as two Parquet files written by DuckDB from them: the
// legacy copy (a few points dropped and changed) and a plain copy for the baseline.
// Under -short (CI runs every benchmark once, for its checks) 2,000 series: 2M points,
// the fewest that still hold one point of each injected difference.
const (
	benchPerSeries   = 1_000
	benchSeriesPerPt = 2_000 // series per part file
)

// benchSeries is the number of series of the data: 20,000, or 2,000 under -short.
func benchSeries() int {
	if testing.Short() {
		return 2_000
	}
	return 20_000
}

// benchDiffData builds (or reuses) the data under $TAILOR_BENCH_DIR or the temp dir.
func benchDiffData(b *testing.B, e *query.Engine) (st storage.Store, newPQ, legacyPQ string) {
	b.Helper()
	ctx := context.Background()
	dir := os.Getenv("TAILOR_BENCH_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, fmt.Sprintf("tailor-bench-diff-%d", benchSeries()*benchPerSeries))
	st, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	newPQ, legacyPQ = filepath.Join(dir, "new.parquet"), filepath.Join(dir, "legacy.parquet")
	done := filepath.Join(dir, "COMPLETE")
	if _, err := os.Stat(done); err == nil {
		return st, newPQ, legacyPQ
	}
	b.Logf("writing %d points to %s (once)", benchSeries()*benchPerSeries, dir)
	base := time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC)
	w := run.Window{From: base, Size: 24 * time.Hour}
	const shard = "org-mod-0"
	runID := "bench"
	var parts []run.Part
	ts := make([]int64, benchPerSeries)
	vals := make([]float64, benchPerSeries)
	var buf bytes.Buffer
	var enc *encoder.Writer
	var partSeries uint64
	flush := func() {
		if err := enc.Close(); err != nil {
			b.Fatal(err)
		}
		key := run.PartKey(shard, w, runID, len(parts))
		if err := st.Put(ctx, key, bytes.NewReader(buf.Bytes())); err != nil {
			b.Fatal(err)
		}
		p, err := run.DescribePart(key, buf.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		parts = append(parts, p)
		enc, partSeries = nil, 0
	}
	for s := 0; s < benchSeries(); s++ {
		if enc == nil {
			buf.Reset()
			enc = encoder.NewWriter(&buf)
		}
		k := columnar.SeriesKey{Org: uint32(s / 400), Metric: uint64(s), Context: 1}
		for i := range ts {
			ts[i] = base.UnixMilli() + int64(i)*60_000
			vals[i] = math.Round(100*math.Sin(float64(s+i)/7)*1000) / 1000 // gauge-like decimals
		}
		if err := enc.Append(k, nil, ts, vals); err != nil {
			b.Fatal(err)
		}
		if partSeries++; partSeries == benchSeriesPerPt {
			flush()
		}
	}
	if enc != nil {
		flush()
	}
	win := w.TsRange()
	m := run.Manifest{RunID: runID, Shard: shard, Window: w.Name(), From: win.From, To: win.To, Parts: parts}
	if err := run.Publish(ctx, st, &m, run.PublishOptions{}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ path, sel string }{
		{newPQ, "SELECT * FROM series"},
		// 1 in 1,000,003 points dropped, 1 in 999,983 changed.
		{legacyPQ, "SELECT org_id, metric_id, context_key, ts, CASE WHEN (metric_id * 1000 + ts // 60000) % 999983 = 5 THEN value + 1 ELSE value END AS value FROM series WHERE (metric_id * 1000 + ts // 60000) % 1000003 <> 7"},
	} {
		vs, err := e.DefineViews(ctx, []string{c.sel}, []query.View{run.SeriesView("series", st, query.Scope{})}, query.Scope{})
		if err != nil {
			b.Fatal(err)
		}
		if err := vs.Exec(ctx, fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet, COMPRESSION zstd)", c.sel, "'"+c.path+"'")); err != nil {
			b.Fatal(err)
		}
		if err := vs.Close(); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return st, newPQ, legacyPQ
}

// BenchmarkDiff20M times tailor-batch diff's work (series files against a legacy
// Parquet copy: run.Diff, the merge-join with the summary per org, metric, hour and
// kind) beside the baseline, a plain DuckDB full outer join of two Parquet files with
// the same classification counted by kind, in the same run, and reports the ratio
// (issue 16's goal: Tailor at least 2x faster, a ratio of at most 0.5).
//
//	make bench-diff
//	go test -run '^$' -bench Diff20M -benchtime 2x -cpuprofile cpu.out ./query/
func BenchmarkDiff20M(b *testing.B) {
	ctx := context.Background()
	e, err := query.Open(ctx, query.Options{TempDir: filepath.Join(os.TempDir(), "tailor-bench-duckdb")})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	st, newPQ, legacyPQ := benchDiffData(b, e)
	baseline := fmt.Sprintf(`SELECT kind, count(*)::BIGINT AS n FROM (
		SELECT CASE WHEN l.copies > 1 THEN 4 WHEN n.ts IS NULL THEN 1 WHEN l.ts IS NULL THEN 2
		            WHEN (n.value = l.value AND signbit(n.value) = signbit(l.value)) OR (isnan(n.value) AND isnan(l.value)) THEN 0
		            ELSE 3 END AS kind
		FROM read_parquet(%s) n FULL OUTER JOIN (
		  SELECT org_id, metric_id, context_key, ts, count(*) AS copies, any_value(value) AS value
		  FROM read_parquet(%s) GROUP BY ALL) l
		  ON n.org_id = l.org_id AND n.metric_id = l.metric_id AND n.context_key = l.context_key AND n.ts = l.ts)
		GROUP BY kind ORDER BY kind`, "'"+newPQ+"'", "'"+legacyPQ+"'")
	var tailorSec, baseSec float64
	var method string
	tailor := func() [5]int64 {
		start := time.Now()
		res, err := run.Diff(ctx, e, run.DiffOptions{New: st, Legacy: query.LegacyOptions{Source: legacyPQ}, SQL: os.Getenv("TAILOR_BENCH_SQL") != ""})
		if err != nil {
			b.Fatal(err)
		}
		tailorSec += time.Since(start).Seconds()
		method = res.Method
		var got [5]int64
		for _, g := range res.Groups {
			got[g.Kind] += int64(g.Points)
		}
		return got
	}
	plain := func() [5]int64 {
		start := time.Now()
		res, err := e.Query(ctx, baseline, nil)
		if err != nil {
			b.Fatal(err)
		}
		var want [5]int64
		for res.Next() {
			rec := res.RecordBatch()
			for i := 0; i < int(rec.NumRows()); i++ {
				want[rec.Column(0).(*array.Int32).Value(i)] = rec.Column(1).(*array.Int64).Value(i)
			}
		}
		res.Release()
		baseSec += time.Since(start).Seconds()
		return want
	}
	b.ResetTimer()
	for i := range b.N {
		// Alternate which goes first, so neither always meets a cold cache or a
		// fresh buffer pool (-benchtime 2x in make bench-diff).
		var got, want [5]int64
		if i%2 == 0 {
			got, want = tailor(), plain()
		} else {
			want, got = plain(), tailor()
		}
		// Correctness: both count the same, and the injected differences are there.
		if got != want || got[0]+got[2]+got[3] != int64(benchSeries()*benchPerSeries) || got[2] == 0 || got[3] == 0 || got[4] != 0 {
			b.Fatalf("diff %v, baseline %v", got, want)
		}
	}
	n := float64(b.N)
	b.ReportMetric(tailorSec/n, "diff-s")
	b.ReportMetric(baseSec/n, "baseline-s")
	b.ReportMetric(tailorSec/baseSec, "diff/baseline")
	b.ReportMetric(float64(benchSeries()*benchPerSeries)*n/tailorSec/1e6, "Mpoints/s")
	fmt.Printf("diff of %d points, series files vs legacy Parquet (%s): %.2fs; plain DuckDB full outer join of two Parquet files: %.2fs; ratio %s (goal <= 0.5, Tailor 2x faster; mean of %d runs each)\n",
		benchSeries()*benchPerSeries, method, tailorSec/n, baseSec/n, strconv.FormatFloat(tailorSec/baseSec, 'f', 2, 64), b.N)
}
