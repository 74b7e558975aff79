package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/internal/promtools"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/validate"
)

// runCLICtx is runCLI under ctx, for the commands that serve until cancelled.
func runCLICtx(ctx context.Context, args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// startGateway runs `tailor-batch gateway` against the brokers until the test ends.
func startGateway(t *testing.T, brokers, topic string, args ...string) string {
	t.Helper()
	addr := promtools.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if out, err := runCLICtx(ctx, append([]string{"gateway", "--listen", addr, "--brokers", brokers, "--topic", topic}, args...)...); err != nil {
			t.Errorf("gateway: %v\n%s", err, out)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			return "http://" + addr + "/api/v1/write"
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// promRequests are remote-write requests as a Prometheus with two tenants sends them:
// 15 s scrapes of a few series over 5 hours (three 2h blocks), with NaN, a NaN
// payload, stale markers, infinities and -0 (sent with an encoder that keeps it;
// Prometheus' prompb sends -0 as +0).
func promRequests() (bodies [][]byte, tenants []string) {
	const t0 = int64(1763942400000)
	stale := math.Float64frombits(0x7ff0000000000002)
	for step := 0; step < 1200; step += 60 {
		for _, tenant := range []string{"team-a", "9"} {
			var series []payload.TimeSeries
			for i := 0; i < 6; i++ {
				ls := []payload.Label{{Name: "__name__", Value: []string{"up", "http_requests_total", "node_load1"}[i%3]}, {Name: "instance", Value: fmt.Sprintf("host-%d:9100", i)}, {Name: "job", Value: "node"}}
				var samples []payload.Sample
				for k := step; k < step+60; k++ {
					v := float64(k*(i+1)) / 8
					switch (k + i) % 101 {
					case 3:
						v = math.NaN()
					case 4:
						v = stale
					case 5:
						v = math.Float64frombits(0x7ff8000000000abc)
					case 6:
						v = math.Inf(1)
					case 7:
						v = math.Copysign(0, -1)
					}
					samples = append(samples, payload.Sample{Value: v, Timestamp: t0 + int64(k)*15000})
				}
				series = append(series, payload.TimeSeries{Labels: ls, Samples: samples})
			}
			bodies = append(bodies, payload.AppendRemoteWrite(nil, series))
			tenants = append(tenants, tenant)
		}
	}
	return bodies, tenants
}

// TestGatewaySinkRunExportPromtool drives the whole Prometheus path through the CLI:
// remote-write into the gateway, sink and run, then export; promtool (built from the
// module proxy) must accept the blocks, and its dump must equal cat line for line; the
// exported blocks read back as --legacy must diff equal to the series files.
func TestGatewaySinkRunExportPromtool(t *testing.T) {
	promtool, err := promtools.Path("promtool")
	if err != nil {
		t.Fatal(err)
	}
	brokers := promtools.Kafka(t, "prom", 4)
	dir := t.TempDir()
	tenants := promtools.TenantsFile(t, dir)
	url := startGateway(t, brokers, "prom", "--tenants", tenants)
	bodies, ts := promRequests()
	for i, b := range bodies {
		promtools.RemoteWrite(t, url, b, ts[i])
	}

	store := "file://" + filepath.Join(dir, "store")
	for _, args := range [][]string{
		{"sink", "--brokers", brokers, "--topics", "prom", "--format", "remote-write", "--store", store, "--stop-at-end", "--flush-payloads", "50"},
		{"run", "--store", store, "--all", "--temp-dir", filepath.Join(dir, "tmp")},
	} {
		if out, err := runCLI(t, args...); err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
	}
	cat, err := runCLI(t, "cat", "--store", store)
	if err != nil {
		t.Fatalf("cat: %v\n%s", err, cat)
	}
	catLines := strings.Split(strings.TrimSpace(cat), "\n")[1:]
	if want := 20 * 2 * 6 * 60; len(catLines) != want {
		t.Fatalf("cat printed %d points, want %d", len(catLines), want)
	}

	out := filepath.Join(dir, "blocks")
	if o, err := runCLI(t, "export", "--format", "prometheus", "--store", store, "--out", out); err != nil || !strings.Contains(o, "2 orgs → 6 blocks") {
		t.Fatalf("export: %v\n%s", err, o)
	}
	var dumpLines []string
	for _, org := range []string{"9", "17"} {
		db := filepath.Join(out, org)
		ents, _ := os.ReadDir(db)
		for _, e := range ents {
			if e.Name() == "wal" {
				continue
			}
			if o, err := exec.Command(promtool, "tsdb", "analyze", db, e.Name()).CombinedOutput(); err != nil {
				t.Fatalf("promtool tsdb analyze %s %s: %v\n%s", db, e.Name(), err, o)
			}
		}
		cmd := exec.Command(promtool, "tsdb", "dump", "--sandbox-dir-root", t.TempDir(), db)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		o, err := cmd.Output()
		if err != nil {
			t.Fatalf("promtool tsdb dump %s: %v\n%s", db, err, stderr.String())
		}
		var dec payload.Decoder
		for _, line := range strings.Split(strings.TrimSpace(string(o)), "\n") {
			ls, v, ts, err := promtools.ParseDump(line)
			if err != nil {
				t.Fatal(err)
			}
			k, err := seriesKeyOf(&dec, ls, org)
			if err != nil {
				t.Fatal(err)
			}
			dumpLines = append(dumpLines, k+","+ts+","+v)
		}
	}
	slices.Sort(dumpLines)
	slices.Sort(catLines)
	if !slices.Equal(dumpLines, catLines) {
		for i := 0; i < min(len(dumpLines), len(catLines)); i++ {
			if dumpLines[i] != catLines[i] {
				t.Fatalf("promtool dump and cat differ at line %d: %q vs %q (%d and %d lines)", i, dumpLines[i], catLines[i], len(dumpLines), len(catLines))
			}
		}
		t.Fatalf("promtool dump has %d lines, cat %d", len(dumpLines), len(catLines))
	}

	// A store that does not exist, or holds no series files, is an error naming
	// --store, not an empty export.
	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "segments"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{filepath.Join(dir, "missing"), empty} {
		if o, err := runCLI(t, "export", "--format", "prometheus", "--store", st, "--out", filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "--store") {
			t.Errorf("export of %s: %v\n%s", st, err, o)
		}
	}

	// The exported blocks as legacy data (Mimir layout: the tenant is the directory).
	o, err := runCLI(t, "diff", "--new", store, "--legacy", out, "--format", "json")
	if err != nil {
		t.Fatalf("diff: %v\n%s", err, o)
	}
	var totals struct {
		validate.Counts
		Reads map[string]query.ReadStats `json:"reads"`
	}
	if err := json.Unmarshal([]byte(o[strings.Index(o, "{"):]), &totals); err != nil {
		t.Fatalf("%v: %s", err, o)
	}
	if totals.Equal != uint64(len(catLines)) || totals.MissingInNew+totals.MissingInLegacy+totals.ValueDiffers != 0 {
		t.Fatalf("diff against the exported blocks: %+v", totals)
	}
	if totals.Reads["legacy"].FilesRead == 0 {
		t.Fatalf("diff against the exported blocks read no legacy block: %+v", totals.Reads)
	}
}

// seriesKeyOf maps Prometheus labels of org's blocks to "org,metric,context" by the
// remote-write rule.
func seriesKeyOf(dec *payload.Decoder, ls []payload.Label, org string) (string, error) {
	ls = append(ls, payload.Label{Name: payload.TenantLabel, Value: org})
	var pl columnar.Payload
	if err := dec.MapLabels(ls, &pl); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d,%d,%d", pl.Org, pl.Metric, pl.Context), nil
}
