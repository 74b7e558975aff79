package main

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/pipeline"
	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/storage/s3test"
)

// TestS3ImportRunCatSameAsFile: import, run and cat on s3:// (a real versitygw) give the
// same CSV, byte for byte, as on file://. The file:// pipeline is checked point by point
// against its input in TestImportRunCatEdgeCases, so equal output is correct output.
func TestS3ImportRunCatSameAsFile(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	rng := rand.New(rand.NewPCG(11, 3))
	var csv bytes.Buffer
	csv.WriteString(columnar.CSVHeader + "\n")
	specials := []float64{math.NaN(), math.Inf(-1), math.Copysign(0, -1), 5e-324, math.MaxFloat64}
	for i := range 20000 {
		k := columnar.SeriesKey{Org: uint32(rng.IntN(6)), Metric: rng.Uint64N(5), Context: rng.Uint64()}
		v := math.Round(rng.NormFloat64()*1e4) / 100
		if i%1000 == 0 {
			v = specials[(i/1000)%len(specials)]
		}
		csv.Write(columnar.AppendCSVPoint(nil, k, 1763942400000+rng.Int64N(2*86400000), v))
	}
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "points.csv")
	if err := os.WriteFile(csvPath, csv.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pipeline := func(store string) (cat, runOut string) {
		t.Helper()
		out, err := runCLI(t, "import", "--csv", csvPath, "--store", store, "--flush-payloads", "500")
		if err != nil {
			t.Fatalf("import %s: %v\n%s", store, err, out)
		}
		if strings.HasPrefix(store, "s3://") != strings.Contains(out, "store retries: 0 (") {
			t.Errorf("import %s: the summary shows store retries on s3:// only:\n%s", store, out)
		}
		runOut, err = runCLI(t, "run", "--store", store, "--all", "--readers", "2", "--threads", "2", "--temp-dir", filepath.Join(dir, "tmp"))
		if err != nil {
			t.Fatalf("run %s: %v\n%s", store, err, runOut)
		}
		cat, err = runCLI(t, "cat", "--store", store)
		if err != nil {
			t.Fatalf("cat %s: %v", store, err)
		}
		return cat, runOut
	}
	fileCat, fileRun := pipeline("file://" + filepath.Join(dir, "store"))
	s3Cat, s3Run := pipeline(srv.URL("import/x"))
	if n := strings.Count(fileCat, "\n"); n < 19000 {
		t.Fatalf("file:// cat printed %d lines, want about 20000", n)
	}
	if s3Cat != fileCat {
		gl, wl := strings.Split(s3Cat, "\n"), strings.Split(fileCat, "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("s3:// cat line %d: %q, file:// %q", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("s3:// cat has %d lines, file:// %d", len(gl), len(wl))
	}
	// The run report shows the store's retries on S3, and only there.
	if !strings.Contains(s3Run, "store retries: 0 (slowdown 0") {
		t.Errorf("s3 run report has no retry line:\n%s", s3Run)
	}
	if strings.Contains(fileRun, "store retries") {
		t.Errorf("file run report has a retry line:\n%s", fileRun)
	}
	// A part size under S3's minimum is refused with the flag named.
	if _, err := runCLI(t, "cat", "--store", srv.URL("import/x"), "--part-size", "1024"); err == nil || !strings.Contains(err.Error(), "--part-size") {
		t.Errorf("--part-size 1024: err = %v, want a refusal naming the flag", err)
	}
}

// TestS3DemoThroughFaultProxy runs the demo's pipeline (kfake → sink → run → check of
// every point) on versitygw behind the fault proxy: 503 SlowDown bursts on every
// request, slow answers, connections dropped before the server saw the request, after it
// stored an object (the client cannot know), and in the middle of a read. Every point
// must come out exactly once with its value bits, and the faults must show up as
// retries of their reasons in the demo's report.
func TestS3DemoThroughFaultProxy(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	px := s3test.StartFaultProxy(t, srv.Endpoint)
	slowdown := px.Add(s3test.ProxyRule{Kind: s3test.SlowDown, Period: 7, Burst: 2})
	px.Add(s3test.ProxyRule{Kind: s3test.Slow, Op: "PutObject", Period: 5, Delay: 30 * time.Millisecond})
	px.Add(s3test.ProxyRule{Kind: s3test.Slow, Op: "GetObject", Period: 6, Delay: 30 * time.Millisecond})
	drop := px.Add(s3test.ProxyRule{Kind: s3test.Drop, Op: "PutObject", After: 2, Period: 11})
	dropResp := px.Add(s3test.ProxyRule{Kind: s3test.DropResponse, Op: "PutObject", After: 3, Period: 13})
	dropMid := px.Add(s3test.ProxyRule{Kind: s3test.DropMidBody, Op: "GetObject", Period: 9, AfterBytes: 100})

	spec := workload.Default()
	spec.Series, spec.PointsPerSeries, spec.Redeliver = 200, 300, 0.05
	var progress bytes.Buffer
	sum, err := runDemo(context.Background(), demoOptions{
		spec: spec, storeURL: srv.URLVia(px.URL, "demo"), flushPayloads: 100, jsonShare: 0.2, malformed: 3, parallel: 2,
	}, &progress)
	t.Logf("proxy: slowdown %d, drop %d, drop after the server acted %d, cut mid-body %d, requests %d, 502s %d",
		slowdown.Hits(), drop.Hits(), dropResp.Hits(), dropMid.Hits(), px.Requests(""), px.BadGateway())
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, progress.String())
	}
	if sum.Check != "passed" || sum.PointsOut != uint64(spec.Points()) || sum.Rejected != 3 || sum.DuplicatesRemove == 0 {
		t.Fatalf("demo through the fault proxy lost or changed points: %+v\n%s", sum, progress.String())
	}
	if slowdown.Hits() == 0 || drop.Hits() == 0 || dropResp.Hits() == 0 || dropMid.Hits() == 0 {
		t.Fatal("a fault never fired; the test does not cover it")
	}
	rs := sum.Retries
	if rs == nil {
		t.Fatal("the demo summary has no store retries on S3")
	}
	t.Logf("store retries: %+v", *rs)
	// Every SlowDown the proxy sent is one slowdown retry, or, when the answer came after
	// an attempt's deadline on a loaded machine, a timeout retry; the budget (5 minutes)
	// is never spent on bursts of two.
	lost := int64(slowdown.Hits()) - rs.SlowDown
	if lost < 0 || lost > rs.Timeout || rs.BudgetExhausted != 0 {
		t.Errorf("slowdown retries %d for %d injected (%d timeouts), %d budgets spent", rs.SlowDown, slowdown.Hits(), rs.Timeout, rs.BudgetExhausted)
	}
	// A connection cut before the answer is a conn_reset retry (or, on a loaded machine,
	// a timeout). A body cut after 100 bytes costs a retry only when the read wanted more
	// than 100 bytes, and a reused idle connection the proxy closed adds one: so at least
	// the dropped requests, and no retry storm.
	if lo, hi := int64(drop.Hits()+dropResp.Hits()), 2*int64(drop.Hits()+dropResp.Hits()+dropMid.Hits()); rs.ConnReset+rs.Timeout-lost < lo || rs.ConnReset+rs.Timeout-lost > hi {
		t.Errorf("conn_reset %d + timeout %d retries, want %d..%d for the cut connections", rs.ConnReset, rs.Timeout, lo, hi)
	}
	var out bytes.Buffer
	sum.print(&out)
	if !strings.Contains(out.String(), "store retries     ") {
		t.Errorf("the demo report does not print the retries:\n%s", out.String())
	}
	if ups := srv.MultipartUploads(t); len(ups) != 0 {
		t.Errorf("unfinished multipart uploads left: %q", ups)
	}
}

// TestS3SinkCLISameAsFile: the sink command on s3:// stores what it stores on file://:
// after run and cat, both stores give the same CSV. The sink's summary shows the store's
// retries on S3, and its metrics registry holds the store's counters.
func TestS3SinkCLISameAsFile(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	cluster, err := pipeline.StartBroker(4)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	spec := workload.Default()
	spec.Series, spec.PointsPerSeries, spec.Partitions, spec.Redeliver = 100, 200, 4, 0.05
	gen, err := workload.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	if _, _, err := pipeline.Produce(ctx, cluster.ListenAddrs(), pipeline.Topic, gen, pipeline.ProduceOptions{JSONShare: 0.2, Malformed: 2}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pipelineCLI := func(store, group string) (sinkOut, cat string) {
		t.Helper()
		sinkOut, err := runCLI(t, "sink", "--brokers", brokers, "--topics", pipeline.Topic, "--group", group, "--store", store,
			"--stop-at-end", "--flush-payloads", "60")
		if err != nil {
			t.Fatalf("sink %s: %v\n%s", store, err, sinkOut)
		}
		if out, err := runCLI(t, "run", "--store", store, "--all", "--readers", "2", "--threads", "2", "--temp-dir", filepath.Join(dir, "tmp")); err != nil {
			t.Fatalf("run %s: %v\n%s", store, err, out)
		}
		if cat, err = runCLI(t, "cat", "--store", store); err != nil {
			t.Fatalf("cat %s: %v", store, err)
		}
		return sinkOut, cat
	}
	fileSink, fileCat := pipelineCLI("file://"+filepath.Join(dir, "store"), "g-file")
	s3Sink, s3Cat := pipelineCLI(srv.URL("sink"), "g-s3")
	if want := int(spec.Points()); strings.Count(fileCat, "\n") != want+1 {
		t.Fatalf("file:// cat printed %d lines, want %d points and a header", strings.Count(fileCat, "\n"), want)
	}
	if s3Cat != fileCat {
		t.Fatalf("s3:// cat differs from file:// (%d and %d bytes)", len(s3Cat), len(fileCat))
	}
	if !strings.Contains(s3Sink, "sink: store retries: ") || strings.Contains(fileSink, "store retries") {
		t.Errorf("the sink summary shows the store retries on s3:// only:\ns3: %s\nfile: %s", s3Sink, fileSink)
	}

	// The sink hands its metrics registry to the store.
	reg := prometheus.NewRegistry()
	st, err := createStore(withStoreObservers(ctx, reg, nil), srv.URL("metrics"), "--store")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Create(ctx, "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "tailor_storage_s3_requests_total"
	}
	if !found {
		t.Error("the store's metrics are not in the registry the sink serves")
	}
}
