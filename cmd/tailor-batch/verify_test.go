package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// decadesStore imports one series of weekly points from 1990 to 2025 and a few recent
// points of other orgs, so that one frame's ts range spans decades, and returns the store
// directory and its one segment file.
func decadesStore(t *testing.T) (store, seg string) {
	t.Helper()
	dir := t.TempDir()
	var pts []csvPoint
	for ts := int64(631152000000); ts < 1763942400000; ts += 7 * 86_400_000 {
		pts = append(pts, csvPoint{columnar.SeriesKey{Org: 1, Metric: 2, Context: 3}, ts, float64(ts % 977)})
	}
	for i := int64(0); i < 50; i++ {
		pts = append(pts, csvPoint{columnar.SeriesKey{Org: 2, Metric: 1, Context: uint64(i)}, 1763942400000 + i*60_000, float64(i)})
	}
	csv := filepath.Join(dir, "in.csv")
	writePointsCSV(t, csv, pts)
	store = filepath.Join(dir, "store")
	if out, err := runCLI(t, "import", "--store", store, "--csv", csv); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	filepath.Walk(store, func(path string, info os.FileInfo, err error) error {
		if strings.HasSuffix(path, ".tseg") {
			seg = path
		}
		return nil
	})
	return store, seg
}

// TestSkipCorruptEveryPath is issue 15's case: a byte flipped in the middle of a segment
// whose timestamps span decades. Without --skip-corrupt every path that reads frames
// names the damage; with it, planning, run and sql skip it, diff and validate (which read
// series files) answer, and verify reports it.
func TestSkipCorruptEveryPath(t *testing.T) {
	store, seg := decadesStore(t)
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "tmp")
	name := filepath.Base(seg)

	if _, err := runCLI(t, "run", "--store", store, "--all", "--temp-dir", tmp); err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("run without --skip-corrupt: %v, want an error naming %s", err, name)
	}
	if _, err := runCLI(t, "sql", "--store", store, "SELECT count(*) FROM points"); err == nil || !strings.Contains(err.Error(), name) {
		t.Fatalf("sql without --skip-corrupt: %v, want an error naming %s", err, name)
	}
	out, err := runCLI(t, "run", "--store", store, "--all", "--skip-corrupt", "--temp-dir", tmp)
	if err != nil {
		t.Fatalf("run --all --skip-corrupt: %v\n%s", err, out)
	}
	if !strings.Contains(out, "DEGRADED") || !strings.Contains(out, name) {
		t.Fatalf("run summary does not say what was skipped:\n%s", out)
	}
	// org_id <> 1 prunes nothing (docs/validation.md, "Pruning"): every frame is read and
	// the damaged one skipped, with a warning.
	out, err = runCLI(t, "sql", "--store", store, "--skip-corrupt", "--format", "csv", "SELECT count(*) AS n FROM points WHERE org_id <> 1")
	if err != nil || !strings.Contains(out, "level=WARN") || !strings.Contains(out, name) || !strings.Contains(out, "\n50\n") {
		t.Fatalf("sql --skip-corrupt: %v\n%s", err, out)
	}
	// org_id = 2 reads org 2's shard alone: the damaged frame, of org 1's, is not read,
	// so nothing is skipped and nothing is said, even without --skip-corrupt.
	out, err = runCLI(t, "sql", "--store", store, "--format", "csv", "SELECT count(*) AS n FROM points WHERE org_id = 2")
	if err != nil || strings.Contains(out, "level=WARN") || !strings.Contains(out, "\n50\n") {
		t.Fatalf("sql of org 2 alone: %v\n%s", err, out)
	}
	legacy := filepath.Join(t.TempDir(), "legacy.csv")
	writePointsCSV(t, legacy, nil)
	if out, err := runCLI(t, "diff", "--new", "file://"+store, "--legacy", legacy); err != nil && !isCheck(err) {
		t.Fatalf("diff: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "validate", "--new", "file://"+store, "--legacy", legacy, "--out-dir", t.TempDir()); err != nil && !isCheck(err) {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	out, err = runCLI(t, "verify", "--store", store)
	if !isCheck(err) || !strings.Contains(out, "run_degraded") && !strings.Contains(out, "frame_corrupt") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

func isCheck(err error) bool {
	var cf *checkFailed
	return errors.As(err, &cf)
}

// TestVerifyCommand: exit 0 and OK on a store the pipeline made; on damage, exit 1 and
// every problem named, also in --json; the group's committed offsets through a real
// Kafka protocol (kfake); a usage mistake is an error (exit 2), not a check.
func TestVerifyCommand(t *testing.T) {
	store := validationStore(t, validationPoints())
	out, err := runCLI(t, "verify", "--store", store, "--deep")
	if err != nil || !strings.Contains(out, "OK:") {
		t.Fatalf("verify of a clean store: %v\n%s", err, out)
	}
	if code := exitCode(err, &bytes.Buffer{}); code != exitOK {
		t.Fatalf("exit code %d", code)
	}

	// The group committed 5 offsets past what the store holds.
	c, err := kfake.NewCluster(kfake.SeedTopics(1, "import"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Kafka 3.0's protocol: OffsetCommit by topic name, as a standalone admin commit makes it.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.MaxVersions(kversion.V3_0_0()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	local, err := storage.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := columnar.ListSegments(context.Background(), local)
	if err != nil {
		t.Fatal(err)
	}
	end := segs[0].Footer.EndOffset
	// A standalone commit (no member, generation -1), as admin tools make one.
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = "tailor", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "import"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, end+5
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("commit: %v", err)
	}
	out, err = runCLI(t, "verify", "--store", store, "--brokers", strings.Join(c.ListenAddrs(), ","), "--group", "tailor", "--json")
	if !isCheck(err) || exitCode(err, &bytes.Buffer{}) != exitCheck {
		t.Fatalf("verify with a commit past the segments: %v\n%s", err, out)
	}
	var rep struct {
		OK       bool `json:"ok"`
		Problems []struct {
			Kind     string `json:"kind"`
			From, To int64
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].Kind != "committed_gap" || rep.Problems[0].From != end || rep.Problems[0].To != end+5 {
		t.Fatalf("problems %+v, want one committed_gap [%d, %d)", rep.Problems, end, end+5)
	}

	if _, err := runCLI(t, "verify", "--store", store, "--brokers", "127.0.0.1:1"); err == nil || isCheck(err) || exitCode(err, &bytes.Buffer{}) != exitError {
		t.Fatalf("--brokers without --group: %v, want a usage error", err)
	}
}
