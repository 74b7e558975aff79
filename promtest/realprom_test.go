package promtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/internal/promtools"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

type point struct {
	k  columnar.SeriesKey
	ts int64
}

// exporter serves a scrape target whose values change every scrape: ordinary and
// extreme floats, NaN, infinities, -0, counters, and a series that disappears after the
// fourth scrape, so that Prometheus writes a stale marker for it.
func exporter(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		i := n.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		var b strings.Builder
		fmt.Fprintf(&b, "# TYPE demo_gauge gauge\n")
		fmt.Fprintf(&b, "demo_gauge{kind=\"normal\"} %s\n", strconv.FormatFloat(float64(i)/7, 'g', -1, 64))
		fmt.Fprintf(&b, "demo_gauge{kind=\"nan\"} NaN\n")
		fmt.Fprintf(&b, "demo_gauge{kind=\"inf\"} +Inf\n")
		fmt.Fprintf(&b, "demo_gauge{kind=\"neginf\"} -Inf\n")
		fmt.Fprintf(&b, "demo_gauge{kind=\"tiny\"} 5e-324\n")
		fmt.Fprintf(&b, "demo_gauge{kind=\"huge\"} -1.7976931348623157e+308\n")
		fmt.Fprintf(&b, "demo_gauge{kind=\"negzero\"} -0\n")
		if i <= 4 {
			fmt.Fprintf(&b, "demo_gauge{kind=\"short_lived\"} %d\n", i)
		}
		fmt.Fprintf(&b, "# TYPE demo_requests_total counter\n")
		fmt.Fprintf(&b, "demo_requests_total{code=\"200\",path=\"/a b\"} %d\n", i*1000)
		fmt.Fprintf(&b, "demo_requests_total{code=\"500\",path=\"/é\"} %d\n", i)
		w.Write([]byte(b.String()))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestRealPrometheusRemoteWrite runs a real Prometheus server (built from the Go
// module proxy into the tool cache by scripts/prometheus.sh) that scrapes a test
// exporter and remote-writes to the gateway; then sink and run, and compares the
// series files with that Prometheus' own TSDB, read with Prometheus' tsdb package:
// every sample once, bit for bit.
//
// One exception, asserted: -0. Prometheus stores -0, but its remote-write encoder
// (prompb, gogo-generated) writes a double only when it is != 0, so -0 is sent as no
// field and arrives as +0; the gateway keeps the bits it receives.
func TestRealPrometheusRemoteWrite(t *testing.T) {
	promBin, err := promtools.Path("prometheus")
	if err != nil {
		t.Fatal(err)
	}
	brokers := promtools.Kafka(t, "prom", 4)
	dir := t.TempDir()
	tenants := promtools.TenantsFile(t, dir)
	gw := startGateway(t, brokers, "prom", "--tenants", tenants)
	exp, scrapes := exporter(t)

	// Prometheus: scrape every second, remote-write with Mimir's tenant header and
	// an external label (remote-write adds it to every series; the TSDB does not
	// store it).
	promAddr := promtools.FreeAddr(t)
	cfg := filepath.Join(dir, "prometheus.yml")
	targets := filepath.Join(dir, "targets.json")
	writeTargets := func(scrape bool) {
		b := "[]"
		if scrape {
			b = fmt.Sprintf(`[{"targets": [%q]}]`, strings.TrimPrefix(exp.URL, "http://"))
		}
		// Written whole then renamed, so file discovery never reads half a file.
		if err := os.WriteFile(targets+".tmp", []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(targets+".tmp", targets); err != nil {
			t.Fatal(err)
		}
	}
	writeTargets(true)
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  external_labels:
    cluster: test
scrape_configs:
  - job_name: exporter
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
remote_write:
  - url: http://%s/api/v1/write
    headers:
      X-Scope-OrgID: team-a
    queue_config:
      batch_send_deadline: 500ms
      max_samples_per_send: 100
    metadata_config:
      send: false
`, targets, gw)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	var plog bytes.Buffer
	prom := exec.Command(promBin, "--config.file="+cfg, "--storage.tsdb.path="+data, "--web.listen-address="+promAddr, "--log.level=warn")
	prom.Stdout, prom.Stderr = &plog, &plog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			prom.Process.Kill()
			prom.Wait()
		}
		if t.Failed() {
			t.Logf("prometheus:\n%s", plog.String())
		}
	}()
	waitHTTP(t, "http://"+promAddr+"/-/ready", 60*time.Second)
	for deadline := time.Now().Add(60 * time.Second); scrapes.Load() < 10; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d scrapes in 60 s", scrapes.Load())
		}
	}
	// The target disappears from discovery: Prometheus writes a stale marker for
	// each of its series still there, about two intervals later. (Removing the
	// whole job would not: a stopped scrape pool writes none.)
	writeTargets(false)
	reloaded := time.Now()
	// Then wait until the gateway has received every sample Prometheus appended
	// (Prometheus' own count), and both counts stay put for 3 s.
	metric := func(url, name string) float64 {
		resp, err := http.Get(url)
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		sum, found := 0.0, false
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
				continue
			}
			f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err == nil {
				sum, found = sum+f, true
			}
		}
		if !found {
			return -1
		}
		return sum
	}
	last, since := [2]float64{-1, -1}, time.Now()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		cur := [2]float64{
			metric("http://"+promAddr+"/metrics", "prometheus_tsdb_head_samples_appended_total"),
			metric("http://"+gw+"/metrics", "tailor_gateway_samples_total"),
		}
		if cur != last {
			last, since = cur, time.Now()
		}
		if cur[0] > 0 && cur[0] == cur[1] && time.Since(since) > 3*time.Second && time.Since(reloaded) > 5*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("in 90 s the gateway did not receive all Prometheus appended: %.0f appended, %.0f received", cur[0], cur[1])
		}
	}
	// Stop Prometheus: it flushes its remote-write queue, every request answered
	// (204 only after Kafka's ack) before it exits.
	prom.Process.Signal(syscall.SIGTERM)
	if err := prom.Wait(); err != nil {
		t.Fatalf("prometheus: %v\n%s", err, plog.String())
	}
	stopped = true

	store := filepath.Join(dir, "store")
	tb(t, "sink", "--brokers", brokers, "--topics", "prom", "--format", "remote-write", "--store", store, "--stop-at-end", "--progress", "0")
	tb(t, "run", "--store", store, "--all", "--temp-dir", filepath.Join(dir, "tmp"))

	// Prometheus' TSDB, read with its own package (WAL replay included).
	want := map[point]uint64{}
	negZero := 0
	staleMarkers := 0
	db, err := tsdb.OpenDBReadOnly(data, t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var dec payload.Decoder
	var pl columnar.Payload
	series := 0
	for ss.Next() {
		s := ss.At()
		var ls []payload.Label
		s.Labels().Range(func(l labels.Label) { ls = append(ls, payload.Label{Name: l.Name, Value: l.Value}) })
		if !s.Labels().Has("cluster") {
			ls = append(ls, payload.Label{Name: "cluster", Value: "test"})
		}
		ls = append(ls, payload.Label{Name: payload.TenantLabel, Value: "17"})
		if err := dec.MapLabels(ls, &pl); err != nil {
			t.Fatal(err)
		}
		series++
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			bits := math.Float64bits(v)
			if bits == 1<<63 {
				negZero++
				bits = 0 // sent as +0 by Prometheus' remote-write (see above)
			}
			if bits == 0x7ff0000000000002 {
				staleMarkers++
			}
			want[point{pl.SeriesKey, ts}] = bits
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	q.Close()
	db.Close()
	if series < 14 || negZero < 10 || staleMarkers < 12 || len(want) < 150 {
		t.Fatalf("Prometheus' TSDB holds %d series, %d samples, %d -0, %d stale markers: too few scrapes to test", series, len(want), negZero, staleMarkers)
	}

	// Tailor's series files.
	st, err := storage.OpenLocal(store)
	if err != nil {
		t.Fatal(err)
	}
	m, err := run.OpenSeries(context.Background(), st, query.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[point]uint64{}
	for m.Next() {
		s := m.At()
		for i, ts := range s.Ts {
			p := point{s.Key, ts}
			if _, dup := got[p]; dup {
				t.Fatalf("point %+v twice in the series files", p)
			}
			got[p] = math.Float64bits(s.Values[i])
		}
	}
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	missing, differ := 0, 0
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			missing++
			if missing <= 5 {
				t.Errorf("sample %+v (bits %x) of Prometheus' TSDB is not in the series files", p, w)
			}
		case g != w:
			differ++
			if differ <= 5 {
				t.Errorf("sample %+v: TSDB bits %x, series files %x", p, w, g)
			}
		}
	}
	extra := len(got) - (len(want) - missing)
	if missing+differ+extra != 0 {
		t.Fatalf("%d samples missing, %d differ, %d extra of %d", missing, differ, extra, len(want))
	}
	t.Logf("%d series, %d samples (%d stale markers, %d -0 sent as +0) equal in Prometheus' TSDB and the series files", series, len(want), staleMarkers, negZero)
}
