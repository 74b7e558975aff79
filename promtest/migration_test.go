package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/internal/promtools"
)

// legacySeries is one series of the legacy Prometheus: its labels and samples.
type legacySeries struct {
	labels  []payload.Label
	ts      []int64
	values  []float64
	tenant  string
	dropped map[int]bool // samples never sent through the gateway
	changed map[int]bool // samples sent with another value
}

// TestMigrationValidate writes legacy blocks with Prometheus' own tsdb package (one
// BlockWriter per 2h range, as promtool's backfill does) in Mimir's layout for two
// tenants, sends the same samples through the gateway with injected differences,
// then sink, run and validate --legacy on the blocks: the report must show exactly
// the injected differences, per org, and validate must fail.
func TestMigrationValidate(t *testing.T) {
	const t0 = int64(1763942400000)
	stale := math.Float64frombits(0x7ff0000000000002)
	var all []*legacySeries
	for _, tenant := range []string{"team-a", "9"} {
		for i := 0; i < 12; i++ {
			s := &legacySeries{tenant: tenant, dropped: map[int]bool{}, changed: map[int]bool{}, labels: []payload.Label{
				{Name: "__name__", Value: []string{"up", "node_load1", "http_requests_total"}[i%3]},
				{Name: "instance", Value: fmt.Sprintf("10.0.0.%d:9100", i)},
				{Name: "job", Value: "node"},
			}}
			for k := 0; k < 1000; k++ { // 15 s apart: 4h10m, three 2h ranges
				v := float64(k*(i+3)) / 4
				switch k % 211 {
				case 17:
					v = stale
				case 18:
					v = math.NaN()
				case 19:
					v = math.Inf(-1)
				}
				s.ts, s.values = append(s.ts, t0+int64(k)*15000), append(s.values, v)
			}
			all = append(all, s)
		}
	}
	// Injected differences: per tenant, 7 (team-a) or 3 (9) samples missing in the
	// new data, 5 or 2 with another value, and 4 or 1 extra samples only in the new.
	want := map[string]map[string]uint64{"17": {}, "9": {}}
	org := map[string]string{"team-a": "17", "9": "9"}
	inject := func(tenant string, drop, change int) {
		n := 0
		for si, s := range all {
			if s.tenant != tenant {
				continue
			}
			for k := 0; k < len(s.ts) && (drop > 0 || change > 0); k += 37 + si {
				if drop > 0 {
					s.dropped[k] = true
					drop--
					n++
				} else {
					s.changed[k] = true
					change--
				}
			}
		}
	}
	inject("team-a", 7, 5)
	inject("9", 3, 2)
	want["17"]["missing_in_new"], want["17"]["value_differs"], want["17"]["missing_in_legacy"] = 7, 5, 4
	want["9"]["missing_in_new"], want["9"]["value_differs"], want["9"]["missing_in_legacy"] = 3, 2, 1

	// The legacy: Prometheus blocks, <tenant>/<ulid>/, written by Prometheus.
	dir := t.TempDir()
	legacy := filepath.Join(dir, "legacy")
	blockRange := int64(2 * 3600 * 1000)
	for _, tenant := range []string{"team-a", "9"} {
		tdir := filepath.Join(legacy, tenant)
		if err := os.MkdirAll(tdir, 0o755); err != nil {
			t.Fatal(err)
		}
		for start := t0 - t0%blockRange; start < t0+1000*15000; start += blockRange {
			w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), tdir, blockRange)
			if err != nil {
				t.Fatal(err)
			}
			app := w.Appender(context.Background())
			for _, s := range all {
				if s.tenant != tenant {
					continue
				}
				b := labels.NewScratchBuilder(len(s.labels))
				for _, l := range s.labels {
					b.Add(l.Name, l.Value)
				}
				b.Sort()
				lset := b.Labels()
				for k, ts := range s.ts {
					if ts >= start && ts < start+blockRange {
						if _, err := app.Append(0, lset, ts, s.values[k]); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			w.Close()
		}
	}

	// The new: the same samples through the gateway, with the differences.
	brokers := promtools.Kafka(t, "prom", 4)
	tenants := promtools.TenantsFile(t, dir)
	gw := startGateway(t, brokers, "prom", "--tenants", tenants)
	for _, tenant := range []string{"team-a", "9"} {
		for start := 0; start < 1000; start += 100 { // 100 samples a series a request
			var series []payload.TimeSeries
			extra := 0
			for _, s := range all {
				if s.tenant != tenant {
					continue
				}
				rw := payload.TimeSeries{Labels: s.labels}
				for k := start; k < start+100; k++ {
					switch {
					case s.dropped[k]:
						continue
					case s.changed[k]:
						rw.Samples = append(rw.Samples, payload.Sample{Value: s.values[k] + 0.5, Timestamp: s.ts[k]})
					default:
						rw.Samples = append(rw.Samples, payload.Sample{Value: s.values[k], Timestamp: s.ts[k]})
					}
				}
				if start == 0 && extra < int(want[org[tenant]]["missing_in_legacy"]) {
					// A sample between two legacy samples: only in the new data.
					rw.Samples = append(rw.Samples, payload.Sample{Value: 1, Timestamp: s.ts[1] + 7})
					extra++
				}
				series = append(series, rw)
			}
			promtools.RemoteWrite(t, "http://"+gw+"/api/v1/write", payload.AppendRemoteWrite(nil, series), tenant)
		}
	}

	store := filepath.Join(dir, "store")
	tb(t, "sink", "--brokers", brokers, "--topics", "prom", "--format", "remote-write", "--store", store, "--stop-at-end", "--progress", "0")
	tb(t, "run", "--store", store, "--all", "--temp-dir", filepath.Join(dir, "tmp"))
	reportDir := filepath.Join(dir, "report")
	cmd := exec.Command(tailorBatch, "validate", "--new", store, "--legacy", legacy, "--legacy-tenants", tenants, "--max-diff-pct", "0", "--out-dir", reportDir)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("validate: want exit 1 for the injected differences, got %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(reportDir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Orgs []struct {
			Org             uint32 `json:"org_id"`
			PointsCompared  uint64 `json:"points_compared"`
			Equal           uint64 `json:"equal"`
			MissingInNew    uint64 `json:"missing_in_new"`
			MissingInLegacy uint64 `json:"missing_in_legacy"`
			ValueDiffers    uint64 `json:"value_differs"`
		} `json:"orgs"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(rep.Orgs) != 2 {
		t.Fatalf("report has %d orgs, want 2:\n%s", len(rep.Orgs), b)
	}
	for _, o := range rep.Orgs {
		w := want[fmt.Sprint(o.Org)]
		if w == nil || o.MissingInNew != w["missing_in_new"] || o.ValueDiffers != w["value_differs"] || o.MissingInLegacy != w["missing_in_legacy"] || o.Equal != 12*1000-w["missing_in_new"]-w["value_differs"] {
			t.Errorf("org %d: %+v, want %v and %d equal", o.Org, o, w, 12*1000-w["missing_in_new"]-w["value_differs"])
		}
	}
}
