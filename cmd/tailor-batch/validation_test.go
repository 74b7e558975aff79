package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
)

// validationStore imports pts into a new store and runs every shard with 1h windows;
// it returns the store URL.
func validationStore(t *testing.T, pts []csvPoint) string {
	t.Helper()
	dir := t.TempDir()
	csv := filepath.Join(dir, "in.csv")
	writePointsCSV(t, csv, pts)
	store := "file://" + filepath.Join(dir, "store")
	if out, err := runCLI(t, "import", "--store", store, "--csv", csv); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "run", "--store", store, "--all", "--window-size", "1h"); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	return store
}

func writePointsCSV(t *testing.T, path string, pts []csvPoint) {
	t.Helper()
	b := []byte(columnar.CSVHeader + "\n")
	for _, p := range pts {
		b = columnar.AppendCSVPoint(b, p.k, p.ts, p.v)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// validationPoints: 3 orgs, 4 metrics each, 2 hours of 5-minute points, with special values.
func validationPoints() []csvPoint {
	var pts []csvPoint
	specials := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 5e-324, 1e21}
	for org := uint32(1); org <= 3; org++ {
		for m := uint64(1); m <= 4; m++ {
			for i := int64(0); i < 24; i++ {
				v := float64(i) * 1.25
				if m == 4 && int(i) < len(specials) {
					v = specials[i]
				}
				pts = append(pts, csvPoint{columnar.SeriesKey{Org: org, Metric: m << 62, Context: 9}, 1763942400000 + i*300_000, v})
			}
		}
	}
	return pts
}

func TestSQLSeriesEqualsCat(t *testing.T) {
	store := validationStore(t, validationPoints())
	cat, err := runCLI(t, "cat", "--store", store)
	if err != nil {
		t.Fatal(err)
	}
	got, err := runCLI(t, "sql", "--store", store, "--format", "csv", "SELECT org_id, metric_id, context_key, ts, value FROM series ORDER BY org_id, metric_id, context_key, ts")
	if err != nil {
		t.Fatal(err)
	}
	if got != cat {
		t.Fatalf("sql over the series view differs from cat:\n%s\nwant\n%s", got, cat)
	}
	if n := strings.Count(cat, "\n"); n != 3*4*24+1 {
		t.Fatalf("cat printed %d lines", n)
	}
}

func TestSQLFormats(t *testing.T) {
	store := validationStore(t, validationPoints())
	out, err := runCLI(t, "sql", "--store", store, "--shard", "2", "SELECT org_id, count(*) AS n FROM points GROUP BY org_id")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "org_id  n ") || !strings.Contains(out, "2       96") || !strings.Contains(out, "(1 rows)") {
		t.Fatalf("table:\n%s", out)
	}
	out, err = runCLI(t, "sql", "--store", store, "--format", "json", "--window", "2025-11-24T01:00:00Z/1h",
		"SELECT org_id, metric_id, value FROM series WHERE metric_id = 13835058055282163712 AND org_id = 1 ORDER BY ts LIMIT 2")
	if err != nil {
		t.Fatal(err)
	}
	// The second hour starts at point 12: 12 * 1.25 = 15 and 16.25; uint64 above 2^63 stays exact.
	want := `{"org_id":1,"metric_id":13835058055282163712,"value":15}` + "\n" + `{"org_id":1,"metric_id":13835058055282163712,"value":16.25}` + "\n"
	if out != want {
		t.Fatalf("json:\n%s\nwant\n%s", out, want)
	}
	out, err = runCLI(t, "sql", "--store", store, "--format", "json", "SELECT value FROM series WHERE org_id = 1 AND metric_id = 0 AND ts = 1763942400000")
	if err != nil || out != `{"value":"NaN"}`+"\n" {
		t.Fatalf("NaN in json: %q %v", out, err)
	}
	out, err = runCLI(t, "sql", "--store", store, "--explain", "SELECT count(*) FROM latest")
	if err != nil || !strings.Contains(out, "ARROW_SCAN") {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	pq := filepath.Join(t.TempDir(), "out.parquet")
	if out, err := runCLI(t, "sql", "--store", store, "--format", "parquet", "--out", pq, "SELECT * FROM series"); err != nil {
		t.Fatalf("parquet: %v\n%s", err, out)
	}
	out, err = runCLI(t, "sql", "--store", store, "--format", "csv", "--legacy", pq, "SELECT count(*) AS n, count(*) FILTER (WHERE isnan(value)) AS nan FROM legacy")
	if err != nil || out != "n,nan\n288,3\n" {
		t.Fatalf("parquet read back as legacy: %q %v", out, err)
	}
	_, err = runCLI(t, "sql", "--store", store, "SELECT org_id FROM series WHER org_id = 1")
	if err == nil || !strings.Contains(err.Error(), "Parser Error") || !strings.Contains(err.Error(), "LINE 1") {
		t.Fatalf("sql error: %v", err)
	}
}

func TestDiffCommand(t *testing.T) {
	pts := validationPoints()
	store := validationStore(t, pts)
	dir := t.TempDir()
	// Legacy: drop 2 points, change 3 values (the sign of 15), add 1.
	var legacy []csvPoint
	for i, p := range pts {
		switch i {
		case 5, 77:
			continue
		case 10, 11:
			p.v += 1
		case 12:
			p.v = -p.v
		}
		legacy = append(legacy, p)
	}
	legacy = append(legacy, csvPoint{columnar.SeriesKey{Org: 3, Metric: 1, Context: 1}, 1763942400000, 1})
	csv := filepath.Join(dir, "legacy.csv")
	writePointsCSV(t, csv, legacy)

	// Differences make diff fail (exit 1), after it printed them.
	var cf *checkFailed
	out, err := runCLI(t, "diff", "--new", store, "--legacy", csv, "--format", "json")
	if !errors.As(err, &cf) {
		t.Fatalf("diff with differences: %v\n%s", err, out)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var reads map[string]query.ReadStats
	if err := json.Unmarshal(got["reads"], &reads); err != nil {
		t.Fatalf("reads: %v: %s", err, out)
	}
	delete(got, "reads")
	want := map[string]json.RawMessage{"equal": json.RawMessage(fmt.Sprint(288 - 2 - 3)), "missing_in_new": json.RawMessage("1"), "missing_in_legacy": json.RawMessage("2"), "value_differs": json.RawMessage("3"), "duplicate_in_legacy": json.RawMessage("0")}
	if fmt.Sprintf("%s", got) != fmt.Sprintf("%s", want) {
		t.Fatalf("totals %s, want %s", got, want)
	}
	// The totals say what each side read: the store's series files and the CSV.
	if r, ok := reads["new"]; !ok || r.FilesRead == 0 || r.BytesRead == 0 || r.SeriesRead == 0 {
		t.Fatalf("diff --format json reads %+v: no series files read", reads)
	}
	pq := filepath.Join(dir, "diffs.parquet")
	out, err = runCLI(t, "diff", "--new", store, "--legacy", csv, "--out", pq, "--shard", "1")
	if !errors.As(err, &cf) {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, s := range []string{"By org", "total", "1/4611686018427387904", "5 differing rows written"} {
		if !strings.Contains(out, s) {
			t.Fatalf("diff text output lacks %q:\n%s", s, out)
		}
	}
	out, err = runCLI(t, "sql", "--store", store, "--format", "csv", "SELECT kind, count(*) AS n FROM read_parquet('"+pq+"') GROUP BY kind ORDER BY kind")
	if err != nil || out != "kind,n\nmissing_in_legacy,2\nvalue_differs,3\n" {
		t.Fatalf("diff rows: %q %v", out, err)
	}
}

func TestValidateCommand(t *testing.T) {
	pts := validationPoints()
	store := validationStore(t, pts)
	dir := t.TempDir()
	legacy := append([]csvPoint(nil), pts[1:]...) // org 1 misses one point in legacy
	csv := filepath.Join(dir, "legacy.csv")
	writePointsCSV(t, csv, legacy)
	out := filepath.Join(dir, "report")
	stdout, err := runCLI(t, "validate", "--new", store, "--legacy", csv, "--out-dir", out)
	var cf *checkFailed
	if !errors.As(err, &cf) {
		t.Fatalf("validate must fail with one difference in 96 points at 0.0001%%: %v\n%s", err, stdout)
	}
	if !strings.Contains(stdout, "| 1 | 96 | 95 | 0 | 1 | 0 | 0 | 1.041667% | FAIL: missing in legacy 1.041667% |") || !strings.Contains(stdout, "| 2 | 96 | 96 | 0 | 0 | 0 | 0 | 0% | PASS |") {
		t.Fatalf("summary:\n%s", stdout)
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Pass bool `json:"pass"`
		Orgs []struct {
			Org             uint32 `json:"org_id"`
			MissingInLegacy uint64 `json:"missing_in_legacy"`
			Pass            bool   `json:"pass"`
		} `json:"orgs"`
		Reads map[string]query.ReadStats `json:"reads"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Pass || len(rep.Orgs) != 3 || rep.Orgs[0].MissingInLegacy != 1 || rep.Orgs[0].Pass || !rep.Orgs[1].Pass {
		t.Fatalf("report.json: %s", b)
	}
	if r := rep.Reads["new"]; r.FilesRead == 0 || r.SeriesRead == 0 {
		t.Fatalf("report.json says no series files were read: %+v", rep.Reads)
	}
	for _, f := range []string{"report.md", "report.html"} {
		if fi, err := os.Stat(filepath.Join(out, f)); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	// A threshold above 1.04% passes, for one shard and window too; the threshold of the
	// kind that differs is the one that counts, and its own flag beats --max-diff-pct.
	for _, args := range [][]string{{"--max-diff-pct", "1.5"}, {"--max-missing-in-legacy", "1.5"}, {"--max-diff-pct", "0", "--max-missing-in-legacy", "1.5"}} {
		if stdout, err := runCLI(t, append([]string{"validate", "--new", store, "--legacy", csv, "--out-dir", out}, args...)...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stdout)
		}
	}
	for _, args := range [][]string{{"--max-missing-in-new", "1.5", "--max-value-differs", "1.5"}, {"--max-diff-pct", "1.5", "--max-missing-in-legacy", "1"}} {
		if stdout, err := runCLI(t, append([]string{"validate", "--new", store, "--legacy", csv, "--out-dir", out}, args...)...); !errors.As(err, &cf) {
			t.Fatalf("%v must fail on missing in legacy: %v\n%s", args, err, stdout)
		}
	}
	if stdout, err := runCLI(t, "validate", "--new", store, "--legacy", csv, "--out-dir", out, "--shard", "2", "--window", "2025-11-24T00:00:00Z/1h", "--max-diff-pct", "0"); err != nil || !strings.Contains(stdout, "| 2 | 48 | 48 |") {
		t.Fatalf("shard 2, first hour: %v\n%s", err, stdout)
	}
}

func TestResolveCommand(t *testing.T) {
	pts := validationPoints()
	store := validationStore(t, pts)
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.yaml")
	body := "version: 1\nrevision: 4\nmode: partial\nlegacy: file:///legacy-root\ntailor: " + store + "\norgs:\n  - org: 2\n    cutovers:\n      - {at: 2025-11-24T00:30:00Z, serve: tailor}\n"
	if err := os.WriteFile(plan, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "resolve", "--plan", plan, "--org", "2", "--from", "2025-11-24T00:00:00Z", "--to", "1763949600000")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, s := range []string{"plan revision 4 (partial), org 2", "[2025-11-24T00:00:00.000Z, 2025-11-24T00:30:00.000Z)  legacy  file:///legacy-root  0 files",
		"gap: no legacy file covers", "[2025-11-24T00:30:00.000Z, 2025-11-24T02:00:00.000Z)  tailor", "series/org-mod-2/20251124T0000Z-1h/", "series/org-mod-2/20251124T0100Z-1h/"} {
		if !strings.Contains(out, s) {
			t.Fatalf("resolve output lacks %q:\n%s", s, out)
		}
	}
	out, err = runCLI(t, "resolve", "--plan", plan, "--org", "2", "--from", "1763942400000", "--to", "1763949600000", "--format", "json")
	if err != nil || !strings.Contains(out, `"plan_revision": 4`) || !strings.Contains(out, `"serve": "tailor"`) {
		t.Fatalf("json: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(body+"      - {at: 2025-11-24T00:10:00Z, serve: legacy}\n"), 0o644)
	if _, err := runCLI(t, "resolve", "--plan", bad, "--org", "2", "--from", "0", "--to", "1"); err == nil || !strings.Contains(err.Error(), "org 2: cutover 2") {
		t.Fatalf("unsorted plan: %v", err)
	}
}

// TestSQLTableKeepsStrings: the table format holds every cell until the end, past the
// batch the cell came in; string cells must not alias batch memory DuckDB reuses.
func TestSQLTableKeepsStrings(t *testing.T) {
	store := validationStore(t, validationPoints()[:1]) // sql refuses a store without data
	out, err := runCLI(t, "sql", "--store", store, "SELECT 'name-' || i::VARCHAR || '-with-a-long-tail' AS s FROM range(5000) t(i) ORDER BY i")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 5002 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines[2:5002] {
		if want := fmt.Sprintf("name-%d-with-a-long-tail", i); strings.TrimSpace(l) != want {
			t.Fatalf("row %d is %q, want %q", i, l, want)
		}
	}
}
