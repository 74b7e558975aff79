//go:build duckdb_arrow

package query_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/pointdiff"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
)

type diffPoint struct {
	k  columnar.SeriesKey
	ts int64
	v  float64
}

// diffFixture is the new side (testCSV plus NaN and 0 points, through import and run)
// and a legacy copy with one difference of each kind, plus a value within 1e-6.
func diffFixture(t *testing.T) (newCSV string, legacy []diffPoint) {
	t.Helper()
	k := func(org uint32, m uint64) columnar.SeriesKey {
		return columnar.SeriesKey{Org: org, Metric: m, Context: 7}
	}
	newCSV = testCSV() +
		string(columnar.AppendCSVPoint(nil, k(1, 4), 0, math.NaN())) +
		string(columnar.AppendCSVPoint(nil, k(1, 4), 1, 0))
	for _, org := range []uint32{1, 2} {
		for m := uint64(1); m <= 3; m++ {
			for i := int64(0); i < 10; i++ {
				p := diffPoint{k(org, m), i * hourMs / 5, float64(i) + 0.5}
				switch {
				case org == 1 && m == 1 && i == 0:
					p.v = 99 // the redelivered value
				case org == 1 && m == 2 && i == 0:
					continue // dropped: missing in legacy
				case org == 1 && m == 3 && i == 3:
					p.v = 42 // value differs
				case org == 2 && m == 1 && i == 2:
					p.v += 1e-9 // differs by bits, equal within a tolerance
				}
				legacy = append(legacy, p)
			}
		}
	}
	legacy = append(legacy,
		diffPoint{k(1, 4), 0, math.Float64frombits(0x7ff8000000000bad)}, // NaN = NaN
		diffPoint{k(1, 4), 1, math.Copysign(0, -1)},                     // -0 differs from 0
		diffPoint{k(2, 9), 5 * hourMs / 4, 1},                           // missing in new
	)
	return newCSV, legacy
}

func writeLegacyCSV(t *testing.T, path string, pts []diffPoint) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(columnar.CSVHeader + "\n")
	for _, p := range pts {
		b.Write(columnar.AppendCSVPoint(nil, p.k, p.ts, p.v))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeLegacyTSF writes pts as one series file of format version 1 (an older version).
func writeLegacyTSF(t *testing.T, path string, pts []diffPoint) {
	t.Helper()
	sort.Slice(pts, func(i, j int) bool {
		if pts[i].k != pts[j].k {
			return pts[i].k.Less(pts[j].k)
		}
		return pts[i].ts < pts[j].ts
	})
	var buf bytes.Buffer
	w := encoder.NewWriter(&buf, encoder.FormatVersion(1))
	for i := 0; i < len(pts); {
		j := i
		var ts []int64
		var vs []float64
		for ; j < len(pts) && pts[j].k == pts[i].k; j++ {
			ts, vs = append(ts, pts[j].ts), append(vs, pts[j].v)
		}
		if err := w.Append(pts[i].k, nil, ts, vs); err != nil {
			t.Fatal(err)
		}
		i = j
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func totals(groups []pointdiff.Group) (byKind [5]uint64, byOrg map[uint32][5]uint64) {
	byOrg = map[uint32][5]uint64{}
	for _, g := range groups {
		byKind[g.Kind] += g.Points
		o := byOrg[g.Org]
		o[g.Kind] += g.Points
		byOrg[g.Org] = o
	}
	return byKind, byOrg
}

func TestDiffEveryLegacyFormat(t *testing.T) {
	newCSV, legacy := diffFixture(t)
	st := pipelineStore(t, newCSV)
	e := openEngine(t)
	ctx := context.Background()
	dir := t.TempDir()

	csvPath := filepath.Join(dir, "legacy.csv")
	writeLegacyCSV(t, csvPath, legacy)
	tsfPath := filepath.Join(dir, "legacy.tsf")
	writeLegacyTSF(t, tsfPath, append([]diffPoint(nil), legacy...))
	// Parquet with other column names, written by DuckDB from the CSV copy.
	pqPath := filepath.Join(dir, "legacy.parquet")
	csvView, err := run.LegacyView(ctx, e, "legacy", query.LegacyOptions{Source: csvPath}, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := e.DefineViews(ctx, []string{"legacy"}, []query.View{csvView}, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	if err := vs.Exec(ctx, fmt.Sprintf("COPY (SELECT org_id AS org, metric_id, context_key, ts AS time_ms, value FROM legacy) TO %s (FORMAT parquet)", "'"+pqPath+"'")); err != nil {
		t.Fatal(err)
	}
	if err := vs.Close(); err != nil {
		t.Fatal(err)
	}
	// Series files of another root: the legacy points through import and run.
	var lcsv strings.Builder
	lcsv.WriteString(columnar.CSVHeader + "\n")
	for _, p := range legacy {
		lcsv.Write(columnar.AppendCSVPoint(nil, p.k, p.ts, p.v))
	}
	legacyStore := pipelineStore(t, lcsv.String())

	for _, tc := range []struct {
		name string
		opt  query.LegacyOptions
	}{
		{"csv", query.LegacyOptions{Source: csvPath}},
		{"parquet", query.LegacyOptions{Source: pqPath, Columns: map[string]string{"org_id": "org", "ts": "time_ms"}}},
		{"series file v1", query.LegacyOptions{Source: tsfPath}},
		{"series store", query.LegacyOptions{Source: legacyStore.URL()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lv, err := run.LegacyView(ctx, e, "x", tc.opt, query.Scope{})
			if err != nil {
				t.Fatal(err)
			}
			var rows []string
			groups, err := e.Diff(ctx, query.DiffOptions{New: run.SeriesView("x", st, query.Scope{}), Legacy: lv, Rows: func(r pointdiff.Row) error {
				rows = append(rows, fmtRow(r))
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			byKind, byOrg := totals(groups)
			// 62 points on each side; 1 dropped from legacy, 1 only in legacy, and value
			// differences: 42 vs 3.5, 1e-9 off, 0 vs -0.
			if want := [5]uint64{58, 1, 1, 3, 0}; byKind != want {
				t.Fatalf("equal, missing in new, missing in legacy, value differs, duplicate in legacy = %v, want %v", byKind, want)
			}
			if want := [5]uint64{29, 0, 1, 2, 0}; byOrg[1] != want {
				t.Fatalf("org 1: %v, want %v", byOrg[1], want)
			}
			want := []string{
				"1/2 0 missing_in_legacy new=0.5 legacy=none",
				"1/3 2160000 value_differs new=3.5 legacy=42",
				"1/4 1 value_differs new=0 legacy=-0",
				"2/1 1440000 value_differs new=2.5 legacy=2.500000001",
				"2/9 4500000 missing_in_new new=none legacy=1",
			}
			if strings.Join(rows, "\n") != strings.Join(want, "\n") {
				t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
			}
		})
	}

	t.Run("tolerance and scope", func(t *testing.T) {
		scope := query.Scope{Shard: "org-mod-2", Window: columnar.TimeRange{From: 0, To: hourMs}}
		lv, err := run.LegacyView(ctx, e, "x", query.LegacyOptions{Source: pqPath, Columns: map[string]string{"org_id": "org", "ts": "time_ms"}}, scope)
		if err != nil {
			t.Fatal(err)
		}
		groups, err := e.Diff(ctx, query.DiffOptions{New: run.SeriesView("x", st, scope), Legacy: lv, Scope: scope, Tolerance: 1e-6})
		if err != nil {
			t.Fatal(err)
		}
		// Org 2's first hour: 3 metrics x 5 points, the 1e-9 difference within tolerance;
		// the point only in legacy is in the second hour.
		if byKind, _ := totals(groups); byKind != [5]uint64{15, 0, 0, 0, 0} {
			t.Fatalf("counts %v", byKind)
		}
		for _, g := range groups {
			if g.Org != 2 || g.Bucket != 0 {
				t.Fatalf("group outside the scope: %+v", g)
			}
		}
	})
}

// fmtRow prints a diff row for comparison with literal expectations.
func fmtRow(r pointdiff.Row) string {
	side := func(v *float64) string {
		if v == nil {
			return "none"
		}
		return string(columnar.AppendValue(nil, *v))
	}
	return fmt.Sprintf("%d/%d %d %s new=%s legacy=%s", r.Org, r.Metric, r.Ts, r.Kind, side(r.New), side(r.Legacy))
}

// TestDiffLegacyDuplicates: a (series, ts) that legacy holds more than once is one
// duplicate_in_legacy point, whether its copies agree with new, disagree, or new lacks
// it; its copies are no longer counted as extra equal points. --out rows list every copy.
func TestDiffLegacyDuplicates(t *testing.T) {
	k := columnar.SeriesKey{Org: 1, Metric: 1, Context: 7}
	var newCSV strings.Builder
	newCSV.WriteString(columnar.CSVHeader + "\n")
	for i := int64(0); i < 5; i++ {
		newCSV.Write(columnar.AppendCSVPoint(nil, k, i, float64(i)+0.5))
	}
	st := pipelineStore(t, newCSV.String())
	legacy := []diffPoint{
		{k, 0, 0.5},              // equal
		{k, 1, 1.5}, {k, 1, 1.5}, // copies that agree with new
		{k, 2, 7}, {k, 2, 2.5}, // copies that disagree
		{k, 4, 9},                       // value differs; ts 3 is missing in legacy
		{k, 5, 3}, {k, 5, 1}, {k, 5, 2}, // three copies, none in new
		{k, 6, 1}, // missing in new
	}
	e := openEngine(t)
	ctx := context.Background()
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "legacy.csv")
	writeLegacyCSV(t, csvPath, legacy)
	pqPath := filepath.Join(dir, "legacy.parquet")
	writeParquet(t, e, pqPath, "SELECT * FROM read_csv('"+csvPath+"', header = true, columns = {'org_id': 'UINTEGER', 'metric_id': 'UBIGINT', 'context_key': 'UBIGINT', 'ts': 'BIGINT', 'value': 'DOUBLE'})")
	wantRows := []string{
		"1/1 1 duplicate_in_legacy new=1.5 legacy=1.5",
		"1/1 1 duplicate_in_legacy new=1.5 legacy=1.5",
		"1/1 2 duplicate_in_legacy new=2.5 legacy=2.5",
		"1/1 2 duplicate_in_legacy new=2.5 legacy=7",
		"1/1 3 missing_in_legacy new=3.5 legacy=none",
		"1/1 4 value_differs new=4.5 legacy=9",
		"1/1 5 duplicate_in_legacy new=none legacy=1",
		"1/1 5 duplicate_in_legacy new=none legacy=2",
		"1/1 5 duplicate_in_legacy new=none legacy=3",
		"1/1 6 missing_in_new new=none legacy=1",
	}
	for _, src := range []string{csvPath, pqPath} {
		t.Run(filepath.Ext(src), func(t *testing.T) {
			lv, err := run.LegacyView(ctx, e, "x", query.LegacyOptions{Source: src}, query.Scope{})
			if err != nil {
				t.Fatal(err)
			}
			// The summary alone, then with rows: the rows pass reads legacy twice more.
			groups, err := e.Diff(ctx, query.DiffOptions{New: run.SeriesView("x", st, query.Scope{}), Legacy: lv})
			if err != nil {
				t.Fatal(err)
			}
			// Before: 4 equal (both agreeing copies and one disagreeing), 2 value differs, 4 missing in new.
			if byKind, _ := totals(groups); byKind != [5]uint64{1, 1, 1, 1, 3} {
				t.Fatalf("equal, missing in new, missing in legacy, value differs, duplicate in legacy = %v", byKind)
			}
			var rows []string
			groups2, err := e.Diff(ctx, query.DiffOptions{New: run.SeriesView("x", st, query.Scope{}), Legacy: lv, Rows: func(r pointdiff.Row) error {
				rows = append(rows, fmtRow(r))
				return nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(totals(groups2)) != fmt.Sprint(totals(groups)) {
				t.Fatalf("summary with rows %v, without %v", groups2, groups)
			}
			if strings.Join(rows, "\n") != strings.Join(wantRows, "\n") {
				t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(wantRows, "\n"))
			}
			for _, g := range groups {
				if g.FirstTs > g.LastTs || g.FirstTs < g.Bucket || g.LastTs > 6 {
					t.Fatalf("group ts range %+v", g)
				}
			}
		})
	}
}
