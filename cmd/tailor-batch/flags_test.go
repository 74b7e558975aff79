package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/run"
)

// runCLIio runs the command line args with its own standard input, output and error.
func runCLIio(t *testing.T, stdin io.Reader, stdout, stderr io.Writer, args ...string) error {
	t.Helper()
	root := newRoot()
	if stdin != nil {
		root.SetIn(stdin)
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	return root.ExecuteContext(context.Background())
}

// smallStore imports a few points of two series in one 4 h window and returns the store.
func smallStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	csv := filepath.Join(dir, "in.csv")
	var pts []csvPoint
	for i := int64(0); i < 50; i++ {
		pts = append(pts, csvPoint{columnar.SeriesKey{Org: 3, Metric: 7, Context: 1}, 1763942400000 + i*60_000, float64(i)})
		pts = append(pts, csvPoint{columnar.SeriesKey{Org: 5, Metric: 7, Context: 1}, 1763942400000 + i*60_000, float64(-i)})
	}
	writePointsCSV(t, csv, pts)
	store := "file://" + filepath.Join(dir, "store")
	if out, err := runCLI(t, "import", "--store", store, "--csv", csv); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	return store
}

// TestFlagsOutOfRange: every flag value out of range fails before any work with a usage
// error (exit 2) that names the flag and the range. Without the checks, --shard 99 and
// --parallel 0 ran nothing (or the default) and exited 0.
func TestFlagsOutOfRange(t *testing.T) {
	store := smallStore(t)
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "shards.yaml")
	if err := os.WriteFile(mapFile, []byte("version: 2\nshared: 16\ndedicated:\n  5: {parts: 4}\n  9: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TAILOR_TEST_INDEX", "70")
	legacy := filepath.Join(dir, "legacy.csv")
	writePointsCSV(t, legacy, nil)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"run", "--store", store, "--shard", "99"}, []string{"--shard org-mod-99 is out of range", "64 shared shards, org-mod-0 to org-mod-63"}},
		{[]string{"run", "--store", store, "--shard", "org-mod-64"}, []string{"--shard org-mod-64 is out of range"}},
		{[]string{"run", "--store", store, "--shard", "org-5"}, []string{"--shard org-5 is out of range", "no dedicated shards", "--shard-map"}},
		{[]string{"run", "--store", store, "--shard", "org-5-p4", "--shard-map", mapFile}, []string{"--shard org-5-p4 is out of range", "16 shared shards, org-mod-0 to org-mod-15", "org-5-p0 to org-5-p3, org-9"}},
		{[]string{"run", "--store", store, "--shard", "org-mod-16", "--shard-map", mapFile}, []string{"--shard org-mod-16 is out of range"}},
		{[]string{"run", "--store", store, "--shard-from-env", "TAILOR_TEST_INDEX"}, []string{"--shard-from-env TAILOR_TEST_INDEX org-mod-70 is out of range"}},
		{[]string{"run", "--store", store, "--all", "--parallel", "0"}, []string{"--parallel 0 is out of range: want 1 or more"}},
		{[]string{"run", "--store", store, "--all", "--parallel", "-2"}, []string{"--parallel -2 is out of range: want 1 or more"}},
		{[]string{"run", "--store", store, "--all", "--readers", "0"}, []string{"--readers 0 is out of range: want 1 or more"}},
		{[]string{"run", "--store", store, "--all", "--readers", "-1"}, []string{"--readers -1 is out of range: want 1 or more"}},
		{[]string{"run", "--store", store, "--all", "--threads", "-1"}, []string{"--threads -1 is out of range: want 0 or more"}},
		{[]string{"run", "--store", store, "--all", "--split-bytes", "0"}, []string{"--split-bytes 0 is out of range"}},
		{[]string{"run", "--store", store, "--all", "--memory-limit", "0%"}, []string{"--memory-limit", "(0%, 100%]"}},
		{[]string{"run", "--store", store, "--all", "--memory-limit", "150%"}, []string{"--memory-limit", "(0%, 100%]"}},
		{[]string{"run", "--store", store, "--all", "--memory-limit", "4"}, []string{"--memory-limit", "4GiB"}},
		{[]string{"run", "--store", store, "--all", "--window", "20251124T0500Z-4h"}, []string{"--window", "not aligned", "20251124T0400Z-4h"}},
		{[]string{"cat", "--store", store, "--shard", "64"}, []string{"--shard org-mod-64 is out of range"}},
		{[]string{"sql", "--store", store, "--shard", "org-mod-64", "SELECT 1"}, []string{"--shard org-mod-64 is out of range"}},
		{[]string{"diff", "--new", store, "--legacy", legacy, "--shard", "99"}, []string{"--shard org-mod-99 is out of range"}},
		{[]string{"validate", "--new", store, "--legacy", legacy, "--shard", "99", "--out-dir", dir}, []string{"--shard org-mod-99 is out of range"}},
		{[]string{"diff", "--new", store, "--legacy", legacy, "--top", "-1"}, []string{"--top -1 is out of range: want 0 or more"}},
		{[]string{"verify", "--store", store, "--shard", "99"}, []string{"--shard org-mod-99 is out of range"}},
		{[]string{"verify", "--store", store, "--readers", "0"}, []string{"--readers 0 is out of range: want 1 or more"}},
		{[]string{"verify", "--store", store, "--window", "20251124T0100Z-4h"}, []string{"--window", "not aligned"}},
		{[]string{"demo", "--parallel", "0"}, []string{"--parallel 0 is out of range"}},
		{[]string{"demo", "--series", "0"}, []string{"--series 0 is out of range"}},
		{[]string{"loadtest", "--parallel", "0"}, []string{"--parallel 0 is out of range"}},
		{[]string{"loadtest", "--scale", "1"}, []string{"--scale 1 is out of range: want 2 or more"}},
		{[]string{"sink", "--brokers", "127.0.0.1:1", "--topics", "t", "--store", store, "--uploads", "0"}, []string{"--uploads 0 is out of range"}},
		{[]string{"import", "--csv", legacy, "--store", store, "--partition", "-1"}, []string{"--partition -1 is out of range"}},
		{[]string{"run", "--store", store, "--all", "--log-level", "loud"}, []string{"--log-level \"loud\""}},
		{[]string{"run", "--store", store, "--all", "--log-format", "xml"}, []string{"--log-format \"xml\""}},
		{[]string{"run", "--store", store, "--all", "--parallel", "many"}, []string{"--parallel"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := runCLI(t, tc.args...)
			var ue *usageError
			if !errors.As(err, &ue) || exitCode(err, io.Discard) != exitError {
				t.Fatalf("err = %v (exit %d), want a usage error (exit 2)\n%s", err, exitCode(err, io.Discard), out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(out, "runs:") {
				t.Fatalf("the command ran:\n%s", out)
			}
		})
	}
}

// TestCheckShardAccepts: every name the map produces is accepted, in canonical form.
func TestCheckShardAccepts(t *testing.T) {
	m := &columnar.ShardMap{Version: 2, Shared: 16, Dedicated: map[uint32]columnar.Dedicated{5: {Parts: 4}, 9: {}}}
	for in, want := range map[string]string{"0": "org-mod-0", "15": "org-mod-15", "org-mod-3": "org-mod-3", "org-9": "org-9", "org-5-p3": "org-5-p3", " 7 ": "org-mod-7"} {
		got, err := checkShard("--shard", in, m)
		if err != nil || got != want {
			t.Fatalf("checkShard(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"16", "org-5", "org-9-p0", "org-mod-03", "org-7", "shard-1"} {
		if _, err := checkShard("--shard", in, m); err == nil {
			t.Fatalf("checkShard(%q) accepted", in)
		}
	}
}

// dryRun runs run --dry-run --json with args and returns its summary and reports.
func dryRun(t *testing.T, args ...string) (runSummary, []*run.Report, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := runCLIio(t, nil, &out, &errOut, append([]string{"run", "--dry-run", "--json"}, args...)...); err != nil {
		t.Fatalf("run %v: %v\n%s", args, err, errOut.String())
	}
	var r struct {
		Summary runSummary    `json:"summary"`
		Runs    []*run.Report `json:"runs"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("run --json: %v\n%s", err, out.String())
	}
	return r.Summary, r.Runs, errOut.String()
}

// TestMemoryLimitForms: sizes in every unit form and shares of memory are taken; a share
// is of the memory this process may use, split over --parallel, and 60% is the default.
func TestMemoryLimitForms(t *testing.T) {
	store := smallStore(t)
	for in, want := range map[string]string{"4Gi": "4Gi", "4GiB": "4GiB", "4G": "4G", "512MB": "512MB"} {
		if s, _, _ := dryRun(t, "--store", store, "--all", "--memory-limit", in); s.MemoryLimit != want {
			t.Fatalf("--memory-limit %s: memory limit %q, want %q", in, s.MemoryLimit, want)
		}
	}
	avail := run.AvailableMemory()
	if avail.Bytes == 0 {
		t.Skip("this machine's memory is unknown")
	}
	def, _, _ := dryRun(t, "--store", store, "--all", "--parallel", "2")
	pct, _, _ := dryRun(t, "--store", store, "--all", "--parallel", "2", "--memory-limit", "60%")
	if def.MemoryLimit != pct.MemoryLimit || def.MemoryLimit != run.DefaultMemoryLimit(2) {
		t.Fatalf("default %q, 60%% %q, want both %q", def.MemoryLimit, pct.MemoryLimit, run.DefaultMemoryLimit(2))
	}
	half, _, _ := dryRun(t, "--store", store, "--all", "--parallel", "1", "--memory-limit", "50%")
	n, err := run.ParseBytes(half.MemoryLimit)
	if want := avail.Bytes / 2; err != nil || n > want || n < want-(1<<20) {
		t.Fatalf("50%% of %d bytes: %q (%d, %v)", avail.Bytes, half.MemoryLimit, n, err)
	}
}

// TestMemoryLimitAboveMachineWarns: a limit larger than the machine (or the container)
// runs, with a warning that names both figures, in the log format asked for.
func TestMemoryLimitAboveMachineWarns(t *testing.T) {
	avail := run.AvailableMemory()
	if avail.Bytes == 0 {
		t.Skip("this machine's memory is unknown")
	}
	store := smallStore(t)
	_, _, stderr := dryRun(t, "--store", store, "--all", "--memory-limit", "1000Ti", "--parallel", "2", "--log-format", "json")
	var line struct {
		Level     string `json:"level"`
		Msg       string `json:"msg"`
		Limit     int64  `json:"memory_limit_bytes"`
		Available int64  `json:"available_bytes"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(stderr)), &line); err != nil {
		t.Fatalf("want one JSON log line, got %q: %v", stderr, err)
	}
	if line.Level != "WARN" || line.Limit != 2*1000<<40 || line.Available != avail.Bytes {
		t.Fatalf("warning %+v, want WARN with %d and %d bytes", line, 2*1000<<40, avail.Bytes)
	}
	for _, want := range []string{run.FormatBytes(1000<<40) + " per run × --parallel 2 = " + run.FormatBytes(2*1000<<40), run.FormatBytes(avail.Bytes), avail.Source} {
		if !strings.Contains(line.Msg, want) {
			t.Fatalf("warning %q lacks %q", line.Msg, want)
		}
	}
	// Within the machine: no warning.
	if _, _, stderr := dryRun(t, "--store", store, "--all", "--memory-limit", "64MiB"); stderr != "" {
		t.Fatalf("a small limit warned: %q", stderr)
	}
}

// TestWindowNameFlag: --window takes the window names the tool prints, as run, sql and
// the other scoped commands print them, for the same window as FROM/DURATION.
func TestWindowNameFlag(t *testing.T) {
	store := smallStore(t)
	_, byName, _ := dryRun(t, "--store", store, "--all", "--window", "20251124T0000Z-4h")
	_, byRange, _ := dryRun(t, "--store", store, "--all", "--window", "2025-11-24T00:00:00Z/4h")
	if len(byName) != 2 || len(byName) != len(byRange) {
		t.Fatalf("%d runs by name, %d by range, want 2 each", len(byName), len(byRange))
	}
	for i := range byName {
		if byName[i].Window != "20251124T0000Z-4h" || byName[i].RunID != byRange[i].RunID {
			t.Fatalf("run %d: %s %s by name, %s %s by range", i, byName[i].Window, byName[i].RunID, byRange[i].Window, byRange[i].RunID)
		}
	}
	out, err := runCLI(t, "sql", "--store", store, "--format", "csv", "--window", "20251124T0000Z-4h", "SELECT count(*) AS n FROM points")
	if err != nil || out != "n\n100\n" {
		t.Fatalf("sql --window by name: %q %v", out, err)
	}
}

// fakeTerminal is a terminal as the console sees one: it records every byte written.
type fakeTerminal struct{ syncBuffer }

func (*fakeTerminal) IsTerminal() bool { return true }

// TestRunClearsProgressBeforeSummary: on a terminal the bar draws while runs go, and
// its line is cleared before the summary prints; nothing is drawn after it. Before,
// the bar was stopped after the summary: the summary began on the bar's line and the
// bar's last redraw overwrote the summary's last line.
func TestRunClearsProgressBeforeSummary(t *testing.T) {
	setProgressEvery(t, time.Millisecond)
	store := smallStore(t)
	term := &fakeTerminal{}
	if err := runCLIio(t, nil, term, term, "run", "--store", store, "--all", "--window-size", "1h", "--temp-dir", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	s := term.String()
	i := strings.Index(s, "runs: ")
	if i < 0 || !strings.Contains(s[:i], "] 0/") && !strings.Contains(s[:i], "] 1/") {
		t.Fatalf("no progress line before the summary:\n%q", s)
	}
	if !strings.HasSuffix(s[:i], "\r\033[K") {
		t.Fatalf("the summary does not start on a cleared line: %q", s[max(0, i-80):i])
	}
	if strings.Contains(s[i:], "\r") || strings.Contains(s[i:], "\033") {
		t.Fatalf("the bar drew after the summary: %q", s[i:])
	}
	if sc := bufio.NewScanner(strings.NewReader(s[i:])); !sc.Scan() || !strings.HasPrefix(sc.Text(), "runs: 2 (") {
		t.Fatalf("summary: %q", s[i:])
	}
}

// TestIntLimitsNameRealFlags: every flag the limits table checks exists on its command
// as an integer flag, so a renamed flag fails here and not on a user's command line.
func TestIntLimitsNameRealFlags(t *testing.T) {
	root := newRoot()
	for name, limits := range intLimits {
		cmd, _, err := root.Find([]string{name})
		if err != nil || cmd.Name() != name {
			t.Fatalf("no command %s: %v", name, err)
		}
		if err := checkFlagLimits(cmd); err != nil {
			t.Fatalf("%s with its defaults: %v", name, err)
		}
		for _, l := range limits {
			if f := cmd.Flags().Lookup(l.flag); f == nil || !strings.HasPrefix(f.Value.Type(), "int") {
				t.Fatalf("%s --%s: %v", name, l.flag, f)
			}
		}
	}
}

// TestRunSizingDefaults: without --parallel, --readers and --threads, run takes them from
// the processors and memory this process may use and says so, in the summary and in
// --json; counts the user gives are kept and not reported as chosen.
func TestRunSizingDefaults(t *testing.T) {
	store := smallStore(t)
	want := run.ChooseSizing(0, 0, 0, run.AvailableCPU(), run.AvailableMemory())
	s, _, _ := dryRun(t, "--store", store, "--all")
	if z := s.Sizing; z.Parallel != want.Parallel || z.Readers != want.Readers || z.Threads != want.Threads ||
		!slices.Equal(z.Chosen, []string{"parallel", "readers", "threads"}) {
		t.Fatalf("default sizing %+v, want %d/%d/%d, all chosen", z, want.Parallel, want.Readers, want.Threads)
	}
	if def := run.DefaultMemoryLimit(want.Parallel); s.MemoryLimit != def {
		t.Fatalf("memory limit %q, want 60%% over %d runs: %q", s.MemoryLimit, want.Parallel, def)
	}
	s, _, _ = dryRun(t, "--store", store, "--all", "--parallel", "3", "--threads", "5")
	if z := s.Sizing; z.Parallel != 3 || z.Threads != 5 || !slices.Equal(z.Chosen, []string{"readers"}) {
		t.Fatalf("sizing with --parallel 3 --threads 5: %+v", z)
	}

	var out, errOut bytes.Buffer
	if err := runCLIio(t, nil, &out, &errOut, "run", "--store", store, "--all"); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	line := fmt.Sprintf("sizing: --parallel %d --readers %d --threads %d (chosen: parallel, readers, threads; from %s and %s)",
		want.Parallel, want.Readers, want.Threads, run.AvailableCPU(), run.AvailableMemory())
	if !strings.Contains(out.String(), line) {
		t.Fatalf("summary lacks %q:\n%s", line, out.String())
	}
}
