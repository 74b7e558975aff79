package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/run"
)

// TestLifecycleCommands: run --rollups, compact, delete, retain and gc from the command
// line, on imported points of six orgs over two days: cat reads the same points after
// compaction and gc, a deleted org is gone, the rollup view answers, ls shows the
// superseded runs, and verify passes after every step.
func TestLifecycleCommands(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "in.csv")
	var pts []csvPoint
	for org := uint32(1); org <= 6; org++ {
		for i := int64(0); i < 48*12; i++ { // two days of 5-minute points
			pts = append(pts, csvPoint{columnar.SeriesKey{Org: org, Metric: 7, Context: 1}, 1763942400000 + i*300_000, float64(i) / 4})
		}
	}
	writePointsCSV(t, csv, pts)
	store := "file://" + filepath.Join(dir, "store")
	tmp := t.TempDir()
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	verify := func(when string) {
		t.Helper()
		if out, err := runCLI(t, "verify", "--store", store); err != nil {
			t.Fatalf("verify %s: %v\n%s", when, err, out)
		}
	}
	mustRun("import", "--csv", csv, "--store", store)
	mustRun("run", "--store", store, "--all", "--rollups", "1h", "--temp-dir", tmp)
	before := mustRun("cat", "--store", store)
	verify("after run")

	out := mustRun("compact", "--store", store, "--levels", "1d", "--temp-dir", tmp, "--rollups", "1d")
	if !strings.Contains(out, "compacted runs from") {
		t.Fatalf("compact printed:\n%s", out)
	}
	if after := mustRun("cat", "--store", store); after != before {
		t.Fatal("cat after compaction differs")
	}
	verify("after compaction")
	var l storeListing
	if err := json.Unmarshal([]byte(mustRun("ls", "--store", store, "--json")), &l); err != nil {
		t.Fatal(err)
	}
	if l.States["superseded"] == 0 {
		t.Fatalf("ls after compaction: states %v", l.States)
	}
	if out := mustRun("sql", "--store", store, "--format", "csv", "SELECT resolution, count(*) FROM rollup WHERE org_id = 1 GROUP BY ALL ORDER BY ALL"); !strings.Contains(out, "1d,2") || !strings.Contains(out, "1h,48") {
		t.Fatalf("rollup view:\n%s", out)
	}

	mustRun("delete", "--store", store, "--org", "4", "--reason", "test", "--now", "2026-01-01T00:00:00Z")
	if strings.Contains(mustRun("cat", "--store", store), "\n4,") {
		t.Fatal("cat shows the deleted org before --apply")
	}
	out = mustRun("delete", "--store", store, "--apply", "--temp-dir", tmp, "--now", "2026-01-01T00:00:00Z")
	if !strings.Contains(out, "applied 1 tombstones") {
		t.Fatalf("delete --apply printed:\n%s", out)
	}
	deleted := mustRun("cat", "--store", store)
	if strings.Contains(deleted, "\n4,") || len(deleted) >= len(before) {
		t.Fatal("the deleted org is read after --apply")
	}
	verify("after the delete")

	policy := filepath.Join(dir, "retention.yaml")
	if err := os.WriteFile(policy, []byte("grace: 1d\ndefault:\n  raw: 400d\norgs:\n  5:\n    raw: 30d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	snap := seriesFiles(t, filepath.Join(dir, "store"))
	if out := mustRun("retain", "--store", store, "--policy", policy, "--now", "2026-01-01T00:00:00Z", "--dry-run"); !strings.Contains(out, "would rewrite 2 runs") {
		t.Fatalf("retain --dry-run printed:\n%s", out)
	}
	if len(seriesFiles(t, filepath.Join(dir, "store"))) != len(snap) {
		t.Fatal("retain --dry-run changed the store")
	}
	mustRun("retain", "--store", store, "--policy", policy, "--now", "2026-01-01T00:00:00Z", "--temp-dir", tmp)
	if strings.Contains(mustRun("cat", "--store", store), "\n5,") {
		t.Fatal("org 5's expired points are read")
	}
	verify("after retain")

	kept := mustRun("cat", "--store", store)
	mustRun("gc", "--store", store, "--now", "2026-01-01T00:00:00Z")
	out = mustRun("gc", "--store", store, "--now", "2026-01-03T00:00:00Z", "--dry-run")
	if !strings.Contains(out, "would remove") {
		t.Fatalf("gc --dry-run printed:\n%s", out)
	}
	out = mustRun("gc", "--store", store, "--now", "2026-01-03T00:00:00Z")
	if !strings.Contains(out, "removed") || strings.Contains(out, "removed 0 runs") {
		t.Fatalf("gc printed:\n%s", out)
	}
	if mustRun("cat", "--store", store) != kept {
		t.Fatal("cat after gc differs")
	}
	verify("after gc")
	// run --all again makes nothing: the compacted runs cover what is left.
	var again struct {
		Runs []struct {
			Shard, Window string
			Skipped       bool
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(mustRun("run", "--store", store, "--all", "--temp-dir", tmp, "--json")), &again); err != nil {
		t.Fatal(err)
	}
	for _, r := range again.Runs {
		if !r.Skipped {
			t.Fatalf("run %s %s after the life ran again", r.Shard, r.Window)
		}
	}
}

// TestDeployRetentionPolicyParses: the policy the retain CronJob mounts is one retain
// accepts.
func TestDeployRetentionPolicyParses(t *testing.T) {
	b, err := os.ReadFile("../../deploy/retain-cronjob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.NewDecoder(strings.NewReader(string(b))).Decode(&cm); err != nil || cm.Kind != "ConfigMap" {
		t.Fatalf("the first document is not the policy's ConfigMap: %v", err)
	}
	p, err := run.ParseRetentionPolicy([]byte(cm.Data["retention.yaml"]), "deploy/retain-cronjob.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Default) == 0 {
		t.Fatal("the policy keeps everything for ever")
	}
}
