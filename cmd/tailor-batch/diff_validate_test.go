package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/internal/leakcheck"
	"github.com/tailor-metrics/tailor/validate"
)

// TestMain runs main itself when the test binary is started by runMain, so that exit
// codes are tested as a shell sees them; otherwise it runs the tests and fails them if
// they leave goroutines running.
func TestMain(m *testing.M) {
	if os.Getenv("TAILOR_BATCH_TEST_MAIN") == "1" {
		main()
		os.Exit(0) // BUG guard: main always exits
	}
	os.Exit(leakcheck.Main(m))
}

// runMain runs tailor-batch args in a child process and returns its exit code, stdout
// and stderr.
func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TAILOR_BATCH_TEST_MAIN=1")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("run %v: %v", args, err)
	}
	return code, o.String(), e.String()
}

// TestDiffValidateExitCodes: diff exits 0 without differences, 1 with some and 2 on an
// error, like diff(1); validate exits 0 when every org passes, 1 when one fails and 2 on
// an error. An error is printed; differences and failing orgs are reported, not errors.
func TestDiffValidateExitCodes(t *testing.T) {
	pts := validationPoints()
	store := validationStore(t, pts)
	dir := t.TempDir()
	same := filepath.Join(dir, "same.csv")
	writePointsCSV(t, same, pts)
	differs := filepath.Join(dir, "differs.csv")
	writePointsCSV(t, differs, pts[1:])
	report := filepath.Join(dir, "report")
	for _, tc := range []struct {
		name string
		args []string
		code int
		// stderr must contain it (an error), or have no "tailor-batch:" line when empty.
		stderr string
	}{
		{"diff equal", []string{"diff", "--new", store, "--legacy", same}, 0, ""},
		{"diff differs", []string{"diff", "--new", store, "--legacy", differs}, 1, ""},
		{"diff differs json", []string{"diff", "--new", store, "--legacy", differs, "--format", "json"}, 1, ""},
		{"diff no legacy file", []string{"diff", "--new", store, "--legacy", filepath.Join(dir, "nope.csv")}, 2, "nope.csv"},
		{"diff bad flag", []string{"diff", "--new", store, "--legacy", same, "--format", "yaml"}, 2, `--format "yaml"`},
		{"diff unknown flag", []string{"diff", "--new", store, "--legacy", same, "--bogus"}, 2, "unknown flag: --bogus"},
		{"diff no --new", []string{"diff", "--legacy", same}, 2, `"new" not set`},
		{"validate pass", []string{"validate", "--new", store, "--legacy", same, "--out-dir", report}, 0, ""},
		{"validate fail", []string{"validate", "--new", store, "--legacy", differs, "--out-dir", report}, 1, ""},
		{"validate no legacy file", []string{"validate", "--new", store, "--legacy", filepath.Join(dir, "nope.csv"), "--out-dir", report}, 2, "nope.csv"},
		{"validate bad threshold", []string{"validate", "--new", store, "--legacy", same, "--max-value-differs", "101"}, 2, "--max-value-differs 101"},
		{"validate bad shorthand", []string{"validate", "--new", store, "--legacy", same, "--max-diff-pct", "-1"}, 2, "--max-diff-pct -1"},
		{"validate unwritable report", []string{"validate", "--new", store, "--legacy", same, "--out-dir", filepath.Join(same, "sub")}, 2, "--out-dir"},
		// Every command exits 2 on an error.
		{"resolve error", []string{"resolve", "--plan", filepath.Join(dir, "nope.yaml"), "--org", "1", "--from", "0", "--to", "1"}, 2, "nope.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			if tc.stderr == "" && strings.Contains(stderr, "tailor-batch:") || tc.stderr != "" && !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("stderr %q, want %q", stderr, tc.stderr)
			}
			if tc.code == 1 && tc.name == "validate fail" && !strings.Contains(stdout, "FAIL: missing in legacy") {
				t.Fatalf("validate printed no failing org:\n%s", stdout)
			}
		})
	}
	// --help documents the codes.
	for _, c := range []string{"diff", "validate"} {
		code, stdout, _ := runMain(t, c, "--help")
		if code != 0 || !strings.Contains(stdout, "Exit codes:") || !strings.Contains(stdout, "\n  1  ") || !strings.Contains(stdout, "\n  2  usage error") {
			t.Fatalf("%s --help (exit %d) does not document the exit codes:\n%s", c, code, stdout)
		}
	}
}

// TestDiffValidateLegacyDuplicates: a legacy copy that holds points twice no longer
// passes for equal. Org 1 lacks one point in legacy and holds each of its other 95
// twice with the same value: counted as 190 equal points, the missing one was 0.52% of
// 191 and passed a 1% threshold; now the 95 are duplicate_in_legacy and the missing
// point is 1.04% of 96, a FAIL. Org 2 holds one point twice with another value.
func TestDiffValidateLegacyDuplicates(t *testing.T) {
	pts := validationPoints()
	store := validationStore(t, pts)
	dir := t.TempDir()
	var legacy []csvPoint
	org2dup := false
	for i, p := range pts {
		switch {
		case p.k.Org == 1 && i == 0:
			continue // missing in legacy
		case p.k.Org == 1:
			legacy = append(legacy, p, p)
		case p.k.Org == 2 && !org2dup:
			q := p
			q.v += 1
			legacy = append(legacy, p, q)
			org2dup = true
		default:
			legacy = append(legacy, p)
		}
	}
	csv := filepath.Join(dir, "legacy.csv")
	writePointsCSV(t, csv, legacy)

	var cf *checkFailed
	out, err := runCLI(t, "diff", "--new", store, "--legacy", csv, "--format", "json")
	if !errors.As(err, &cf) {
		t.Fatalf("%v\n%s", err, out)
	}
	var got struct {
		validate.Counts
		Reads map[string]json.RawMessage `json:"reads"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := (validate.Counts{Equal: 95 + 96, MissingInLegacy: 1, DuplicateInLegacy: 96}); got.Counts != want || len(got.Reads) != 2 {
		t.Fatalf("totals %+v, want %+v and the reads of both sides", got, want)
	}
	pq := filepath.Join(dir, "rows.parquet")
	out, err = runCLI(t, "diff", "--new", store, "--legacy", csv, "--out", pq)
	if !errors.As(err, &cf) {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, s := range []string{
		"org                          compared          equal missing_in_new missing_in_legacy  value_differs duplicate_in_legacy",
		"1                                  96              0              0                 1              0                  95",
		"2                                  96             95              0                 0              0                   1",
		"total                             288            191              0                 1              0                  96",
		"2/4611686018427387904              24             23              0                 0              0                   1",
		"193 differing rows written",
	} {
		if !strings.Contains(out, s) {
			t.Fatalf("diff output lacks %q:\n%s", s, out)
		}
	}
	out, err = runCLI(t, "sql", "--store", store, "--format", "csv", "SELECT kind, org_id, count(*) AS n, count(new_value) AS with_new FROM read_parquet('"+pq+"') GROUP BY ALL ORDER BY ALL")
	if err != nil || out != "kind,org_id,n,with_new\nduplicate_in_legacy,1,190,190\nduplicate_in_legacy,2,2,2\nmissing_in_legacy,1,1,1\n" {
		t.Fatalf("diff rows (every copy of a duplicate): %q %v", out, err)
	}

	report := filepath.Join(dir, "report")
	stdout, err := runCLI(t, "validate", "--new", store, "--legacy", csv, "--out-dir", report, "--max-diff-pct", "1", "--max-duplicate-in-legacy", "100")
	if !errors.As(err, &cf) {
		t.Fatalf("duplicates must not hide the missing point: %v\n%s", err, stdout)
	}
	for _, s := range []string{
		"| 1 | 96 | 0 | 0 | 1 | 0 | 95 | 100% | FAIL: missing in legacy 1.041667% |",
		"| 2 | 96 | 95 | 0 | 0 | 0 | 1 | 1.041667% | PASS |",
	} {
		if !strings.Contains(stdout, s) {
			t.Fatalf("report lacks %q:\n%s", s, stdout)
		}
	}
	b, err := os.ReadFile(filepath.Join(report, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Orgs []struct {
			Failed []string `json:"failed_kinds"`
		} `json:"orgs"`
		Version string `json:"tailor_version"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rep.Orgs[0].Failed, rep.Orgs[1].Failed) != "[missing_in_legacy] []" || rep.Version == "" {
		t.Fatalf("report.json: failed kinds %v, version %q", rep.Orgs, rep.Version)
	}
	// The default thresholds fail org 2 on its duplicate too.
	stdout, _ = runCLI(t, "validate", "--new", store, "--legacy", csv, "--out-dir", report)
	if !strings.Contains(stdout, "| 2 | 96 | 95 | 0 | 0 | 0 | 1 | 1.041667% | FAIL: duplicate in legacy 1.041667% |") {
		t.Fatalf("default thresholds:\n%s", stdout)
	}
}

// TestValidateHostileLegacyName: a legacy path with glob characters is read literally,
// and one with a backtick and HTML stays inside its code span in report.md.
func TestValidateHostileLegacyName(t *testing.T) {
	pts := validationPoints()
	store := validationStore(t, pts)
	dir := t.TempDir()
	// legacy.parquet is a copy that lacks org 1; le[g]acy.parquet is exact. As a glob,
	// le[g]acy.parquet read legacy.parquet. (Written with parquet-go: DuckDB 1.5.6's
	// Parquet writer turns -0 into 0 once a column holds both.)
	writePQ := func(name string, keep func(csvPoint) bool) string {
		t.Helper()
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		w := validate.NewParquetWriter[validate.PointRow](f)
		for _, pt := range pts {
			if keep(pt) {
				if err := w.Write(validate.PointRow{Org: pt.k.Org, Metric: pt.k.Metric, Context: pt.k.Context, Ts: pt.ts, Value: pt.v}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := errors.Join(w.Close(), f.Close()); err != nil {
			t.Fatal(err)
		}
		return p
	}
	writePQ("legacy.parquet", func(p csvPoint) bool { return p.k.Org != 1 })
	exact := writePQ("le[g]acy.parquet", func(csvPoint) bool { return true })
	if out, err := runCLI(t, "diff", "--new", store, "--legacy", exact); err != nil {
		t.Fatalf("le[g]acy.parquet must be read literally and equal: %v\n%s", err, out)
	}
	var cf *checkFailed
	if out, err := runCLI(t, "diff", "--new", store, "--legacy", "glob:"+filepath.Join(dir, "le[g]acy.parquet")); !errors.As(err, &cf) || !strings.Contains(out, "total                             288            192              0                96") {
		t.Fatalf("glob:le[g]acy.parquet must read legacy.parquet: %v\n%s", err, out)
	}

	hostile := filepath.Join(dir, "x`<img src=x onerror=alert(1)>`.csv")
	writePointsCSV(t, hostile, pts)
	report := filepath.Join(dir, "report")
	if out, err := runCLI(t, "validate", "--new", store, "--legacy", hostile, "--out-dir", report); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	md, err := os.ReadFile(filepath.Join(report, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "- legacy: ``" + hostile + "``\n"; !strings.Contains(string(md), want) {
		t.Fatalf("report.md lacks %q:\n%s", want, md)
	}
}
