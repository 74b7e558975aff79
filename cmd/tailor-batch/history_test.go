package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestScopeFlagsAndReads: --org, --metric, --from and --to narrow sql and diff like a
// WHERE would, -v --log-format json reports what the series view read and skipped, and
// a pruned query reads fewer files than a full one.
func TestScopeFlagsAndReads(t *testing.T) {
	pts := validationPoints()
	store := validationStore(t, pts)
	count := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, append([]string{"sql", "--store", store, "--format", "csv"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	const stmt = "SELECT count(*) AS n, count(DISTINCT org_id) AS orgs, min(ts) AS lo, max(ts) AS hi FROM series"
	flags := count("--org", "2-3", "--metric", "4611686018427387904", "--from", "1763943000000", "--to", "2025-11-24T01:00:00Z", stmt)
	where := count(stmt + " WHERE org_id BETWEEN 2 AND 3 AND metric_id = 4611686018427387904 AND ts >= 1763943000000 AND ts < 1763946000000")
	if flags != where || !strings.Contains(flags, "\n20,2,") {
		t.Fatalf("flags give\n%s\nWHERE gives\n%s", flags, where)
	}
	for _, bad := range [][]string{{"--org", "x"}, {"--org", "5-2"}, {"--org", "4294967296"}, {"--from", "2025-11-24T02:00:00Z", "--to", "2025-11-24T01:00:00Z"}} {
		var ue *usageError
		if _, err := runCLI(t, append([]string{"sql", "--store", store}, append(bad, stmt)...)...); !errors.As(err, &ue) {
			t.Fatalf("%v: %v, want a usage error", bad, err)
		}
	}

	reads := func(args ...string) map[string]float64 {
		t.Helper()
		var stdout, stderr bytes.Buffer
		err := runCLIio(t, nil, &stdout, &stderr, append([]string{"-v", "--log-format", "json"}, args...)...)
		var cf *checkFailed
		if err != nil && !errors.As(err, &cf) {
			t.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		for _, l := range strings.Split(stderr.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) != nil || !strings.HasSuffix(rec["msg"].(string), ": read") {
				continue
			}
			if rec["view"] == "series" || rec["view"] == "new" {
				out := map[string]float64{}
				for _, k := range []string{"files_read", "files_skipped", "bytes_read", "bytes_skipped", "series_read", "series_skipped"} {
					out[k], _ = rec[k].(float64)
				}
				return out
			}
		}
		t.Fatalf("%v: no read report in\n%s", args, stderr.String())
		return nil
	}
	full := reads("sql", "--store", store, "SELECT count(*) FROM series")
	pruned := reads("sql", "--store", store, "SELECT count(*) FROM series WHERE org_id = 2 AND ts < 1763946000000")
	if full["files_read"] == 0 || pruned["files_read"] >= full["files_read"] || pruned["files_skipped"] == 0 || pruned["bytes_read"] >= full["bytes_read"] {
		t.Fatalf("full scan read %v, a pruned one %v", full, pruned)
	}
	csv := filepath.Join(t.TempDir(), "legacy.csv")
	writePointsCSV(t, csv, pts[:len(pts)-1])
	// Other shards are not even listed: what diff --org 1 reads is that org's shard.
	diffAll := reads("diff", "--new", store, "--legacy", csv)
	diffOrg := reads("diff", "--new", store, "--legacy", csv, "--org", "1", "--window", "2025-11-24T00:00:00Z/1h")
	if diffOrg["files_read"] == 0 || diffOrg["files_read"] >= diffAll["files_read"] || diffOrg["files_skipped"] == 0 {
		t.Fatalf("diff read %v, diff --org 1 --window read %v", diffAll, diffOrg)
	}
}
