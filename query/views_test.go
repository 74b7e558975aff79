//go:build duckdb_arrow

package query_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// pipelineStore imports csv (with redeliveries as given) into a new local store and runs
// every shard, the way a user would: import, then run.
func pipelineStore(t *testing.T, csv string) storage.Store {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := ingest.ImportCSV(ctx, "test.csv", strings.NewReader(csv), ingest.ImportOptions{Store: st, Topic: "metrics"}); err != nil {
		t.Fatal(err)
	}
	if _, err := run.RunAll(ctx, run.AllOptions{RunOptions: run.RunOptions{Store: st}, WindowSize: time.Hour}); err != nil {
		t.Fatal(err)
	}
	return st
}

func openEngine(t *testing.T) *query.Engine {
	t.Helper()
	e, err := query.Open(context.Background(), query.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func queryInts(t *testing.T, e *query.Engine, stmt string, views []query.View, scope query.Scope) []int64 {
	t.Helper()
	res, err := e.QueryViews(context.Background(), stmt, views, scope)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	var out []int64
	for res.Next() {
		rec := res.RecordBatch()
		for c := 0; c < int(rec.NumCols()); c++ {
			for i := 0; i < int(rec.NumRows()); i++ {
				out = append(out, rec.Column(c).(*array.Int64).Value(i))
			}
		}
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

const hourMs = 3_600_000

// testCSV has orgs 1 and 2 (shards org-mod-1 and org-mod-2) over two hourly windows,
// with one point delivered twice (the later value wins).
func testCSV() string {
	var b strings.Builder
	b.WriteString(columnar.CSVHeader + "\n")
	for _, org := range []uint32{1, 2} {
		for m := uint64(1); m <= 3; m++ {
			for i := int64(0); i < 10; i++ {
				ts := i * hourMs / 5 // two windows: ts in [0, 2h)
				b.Write(columnar.AppendCSVPoint(nil, columnar.SeriesKey{Org: org, Metric: m, Context: 7}, ts, float64(i)+0.5))
			}
		}
	}
	// A redelivery with another value: the run keeps the later one.
	b.Write(columnar.AppendCSVPoint(nil, columnar.SeriesKey{Org: 1, Metric: 1, Context: 7}, 0, 99))
	return b.String()
}

func TestViewsPointsLatestSeries(t *testing.T) {
	st := pipelineStore(t, testCSV())
	e := openEngine(t)
	views := []query.View{query.PointsView(st, query.Scope{}, columnar.ReadOptions{}), query.LatestView(), run.SeriesView("series", st, query.Scope{})}
	for _, tc := range []struct {
		name  string
		scope query.Scope
		want  []int64 // points, latest, series, series EXCEPT latest
	}{
		{"all", query.Scope{}, []int64{61, 60, 60, 0}},
		{"shard", query.Scope{Shard: "org-mod-1"}, []int64{31, 30, 30, 0}},
		{"window", query.Scope{Window: columnar.TimeRange{From: hourMs, To: 2 * hourMs}}, []int64{30, 30, 30, 0}},
		{"shard and window", query.Scope{Shard: "org-mod-2", Window: columnar.TimeRange{From: 0, To: hourMs}}, []int64{15, 15, 15, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			views := append([]query.View(nil), views...)
			views[0] = query.PointsView(st, tc.scope, columnar.ReadOptions{})
			views[2] = run.SeriesView("series", st, tc.scope)
			var got []int64
			for _, q := range []string{
				"SELECT count(*) FROM points", "SELECT count(*) FROM latest", "SELECT count(*) FROM series",
				"SELECT count(*) FROM (SELECT org_id, metric_id, context_key, ts, value FROM series EXCEPT ALL SELECT org_id, metric_id, context_key, ts, value FROM latest)",
			} {
				got = append(got, queryInts(t, e, q, views, tc.scope)...)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("counts %v, want %v", got, tc.want)
			}
		})
	}
	// The redelivered point's later value is in the series view.
	if got := queryInts(t, e, "SELECT count(*) FILTER (WHERE value = 99) * 1000 + count(*) FROM series WHERE org_id = 1 AND metric_id = 1 AND ts = 0", views, query.Scope{}); got[0] != 1001 {
		t.Fatalf("latest value of the redelivered point: %d rows", got[0])
	}
	// Projections and joins read the right columns (see arrowUnsafeOptimizers).
	if got := queryInts(t, e, "SELECT max(value)::BIGINT, max(ts), min(context_key)::BIGINT FROM series", views, query.Scope{}); fmt.Sprint(got) != "[99 6480000 7]" {
		t.Fatalf("max(value), max(ts), min(context_key) = %v", got)
	}
	if got := queryInts(t, e, "SELECT count(*) FROM series s JOIN latest l USING (org_id, metric_id, context_key, ts) WHERE s.org_id = 2 AND s.value = l.value", views, query.Scope{}); got[0] != 30 {
		t.Fatalf("join: %v", got)
	}
}

func TestViewsOnlyOpenWhatTheStatementUses(t *testing.T) {
	e := openEngine(t)
	opened := false
	v := query.View{Name: "points", Arrow: func(context.Context) (array.RecordReader, error) {
		opened = true
		return nil, fmt.Errorf("must not open")
	}}
	if got := queryInts(t, e, "SELECT (41 + 1)::BIGINT AS pointsx", []query.View{v}, query.Scope{}); got[0] != 42 || opened {
		t.Fatalf("got %v, opened %v", got, opened)
	}
}

func TestSQLErrorShowsPosition(t *testing.T) {
	e := openEngine(t)
	_, err := e.QueryViews(context.Background(), "SELECT org_id FRM legacy", nil, query.Scope{})
	if err == nil || !strings.Contains(err.Error(), "syntax error") || !strings.Contains(err.Error(), "^") {
		t.Fatalf("error %v: want DuckDB's message with the position marker", err)
	}
}

// writeParquet writes rows with DuckDB: a plain, independent producer of Parquet.
func writeParquet(t *testing.T, e *query.Engine, path, selectStmt string) {
	t.Helper()
	if err := e.Exec(context.Background(), fmt.Sprintf("COPY (%s) TO %s (FORMAT parquet)", selectStmt, "'"+strings.ReplaceAll(path, "'", "''")+"'")); err != nil {
		t.Fatal(err)
	}
}

func TestLegacyParquetSchemaErrors(t *testing.T) {
	e := openEngine(t)
	dir := t.TempDir()
	ctx := context.Background()
	good := "SELECT 1::UINTEGER AS org, 2::UBIGINT AS metric_id, 3::UBIGINT AS context_key, 4::BIGINT AS ts"
	for _, tc := range []struct {
		name, sel string
		cols      map[string]string
		want      string
	}{
		{"value is text", good + ", 'x' AS value", map[string]string{"org_id": "org"}, `column "value" has type VARCHAR, want DOUBLE (float64)`},
		{"ts is a double", "SELECT 1::UINTEGER AS org_id, 2::UBIGINT AS metric_id, 3::UBIGINT AS context_key, 4.5::DOUBLE AS ts, 1.0 AS value", nil, `column "ts" has type DOUBLE, want BIGINT (int64 Unix ms)`},
		{"missing org", good + ", 1.0::DOUBLE AS value", nil, `no column "org_id" (for org_id, type UINTEGER (uint32))`},
		{"bad mapping", good + ", 1.0::DOUBLE AS value", map[string]string{"org": "org_id"}, `legacy column mapping "org"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".parquet")
			writeParquet(t, e, p, tc.sel)
			_, err := run.LegacyView(ctx, e, "legacy", query.LegacyOptions{Source: p, Columns: tc.cols}, query.Scope{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
	p := filepath.Join(dir, "mapped.parquet")
	writeParquet(t, e, p, good+", 2.5::FLOAT AS val")
	v, err := run.LegacyView(ctx, e, "legacy", query.LegacyOptions{Source: p, Columns: map[string]string{"org_id": "org", "value": "val"}}, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if got := queryInts(t, e, "SELECT count(*) FROM legacy WHERE org_id = 1 AND value = 2.5", []query.View{v}, query.Scope{}); got[0] != 1 {
		t.Fatalf("mapped columns: %v", got)
	}
}

func TestLegacyCSVErrors(t *testing.T) {
	e := openEngine(t)
	dir := t.TempDir()
	ctx := context.Background()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.csv", columnar.CSVHeader+"\n1,2,3,4,5\n1,2,3,x,5\n")
	v, err := run.LegacyView(ctx, e, "legacy", query.LegacyOptions{Source: bad}, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.QueryViews(ctx, "SELECT count(*) FROM legacy", []query.View{v}, query.Scope{})
	if err == nil || !strings.Contains(err.Error(), "bad.csv line 3: ts \"x\"") {
		t.Fatalf("error %v: want the file, line and field", err)
	}
	hdr := write("hdr.csv", "org,metric_id,context_key,ts,value\n")
	v, _ = run.LegacyView(ctx, e, "legacy", query.LegacyOptions{Source: hdr}, query.Scope{})
	_, err = e.QueryViews(ctx, "SELECT count(*) FROM legacy", []query.View{v}, query.Scope{})
	if err == nil || !strings.Contains(err.Error(), `want "org_id,metric_id`) {
		t.Fatalf("error %v: want the expected header", err)
	}
}
