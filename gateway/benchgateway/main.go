// Command benchgateway measures the remote-write gateway into kfake: requests/s,
// samples/s, samples/s per core and the p50/p99 latency of a request (sent until 204,
// which comes after Kafka's acknowledgement), beside a raw kgo producer of the same
// bytes (each request body produced as one record and waited for, the floor any
// gateway pays for Kafka). Run it with `make bench-gateway`.
//
// Requests are shaped as Prometheus sends them by default: max_samples_per_send 2,000,
// one sample of each of 2,000 series with node-exporter-like labels, snappy protobuf
// encoded with Prometheus' prompb, sent by 8 concurrent senders (Prometheus' queue
// shards). Each side runs in a child process, so its CPU time (user+sys) is its own,
// not the broker's or the senders'. Samples/s per core = samples / CPU seconds.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/gateway"
	"github.com/tailor-metrics/tailor/internal/benchproc"
)

const topic = "prom"

func main() {
	var (
		child    = flag.String("child", "", "internal: run one side (gateway or raw) against -brokers")
		brokers  = flag.String("brokers", "", "internal: kfake brokers")
		addrFile = flag.String("addr-file", "", "internal: where the gateway child writes its address")
		reqFile  = flag.String("requests", "", "internal: the request bodies, for the raw child")
		requests = flag.Int("n", 1500, "requests to send")
		series   = flag.Int("series", 2000, "series per request (one sample each)")
		samples  = flag.Int("samples", 1, "samples per series per request")
		senders  = flag.Int("senders", 8, "concurrent senders")
	)
	flag.Parse()
	log.SetFlags(0)
	switch *child {
	case "gateway":
		if os.Getenv("GOGC") == "" {
			debug.SetGCPercent(400) // as tailor-batch gateway does
		}
		if p := os.Getenv("BENCHGATEWAY_CPUPROFILE"); p != "" {
			f, err := os.Create(p)
			if err != nil {
				log.Fatal(err)
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		if err := runGateway(strings.Split(*brokers, ","), *addrFile); err != nil {
			log.Fatalf("gateway: %v", err)
		}
		pprof.StopCPUProfile()
		return
	case "raw":
		if err := runRaw(strings.Split(*brokers, ","), *reqFile, *senders, *addrFile); err != nil {
			log.Fatalf("raw: %v", err)
		}
		return
	}
	if err := run(*requests, *series, *samples, *senders); err != nil {
		log.Fatal(err)
	}
}

// bodies makes n requests of series × samples, as Prometheus encodes them.
func bodies(n, series, samples int) ([][]byte, error) {
	out := make([][]byte, n)
	t0 := time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC).UnixMilli()
	for r := range out {
		req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, series)}
		for s := range req.Timeseries {
			host := (r*series + s) / 400 % 500
			req.Timeseries[s].Labels = []prompb.Label{
				{Name: "__name__", Value: []string{"node_cpu_seconds_total", "node_memory_Active_bytes", "node_network_receive_bytes_total", "node_disk_io_time_seconds_total"}[s%4]},
				{Name: "cpu", Value: fmt.Sprint(s % 16)},
				{Name: "instance", Value: fmt.Sprintf("host-%03d:9100", host)},
				{Name: "job", Value: "node"},
				{Name: "mode", Value: []string{"idle", "user", "system", "iowait", "irq"}[s%5]},
			}
			for k := 0; k < samples; k++ {
				req.Timeseries[s].Samples = append(req.Timeseries[s].Samples, prompb.Sample{Value: float64(r*1000+s) * 1.25, Timestamp: t0 + int64(r*samples+k)*15000})
			}
		}
		b, err := req.Marshal()
		if err != nil {
			return nil, err
		}
		out[r] = snappy.Encode(nil, b)
	}
	return out, nil
}

type result struct {
	name     string
	wall     time.Duration
	cpu      time.Duration
	lat      []time.Duration
	requests int
}

func run(n, series, samples, senders int) error {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(8, topic))
	if err != nil {
		return err
	}
	defer c.Close()
	reqs, err := bodies(n, series, samples)
	if err != nil {
		return err
	}
	var total int
	for _, b := range reqs {
		total += len(b)
	}
	nsamples := n * series * samples
	fmt.Printf("%d requests of %d series × %d samples (%d samples, %.1f MiB snappy) by %d senders into kfake (8 partitions)\n\n",
		n, series, samples, nsamples, float64(total)/(1<<20), senders)
	dir, err := os.MkdirTemp("", "benchgateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	reqFile := filepath.Join(dir, "requests")
	if err := writeRequests(reqFile, reqs); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	brokers := strings.Join(c.ListenAddrs(), ",")
	var res []result

	// The raw producer: the child produces and reports its latencies.
	{
		latFile := filepath.Join(dir, "raw.lat")
		cmd := exec.Command(self, "-child", "raw", "-brokers", brokers, "-requests", reqFile, "-senders", fmt.Sprint(senders), "-addr-file", latFile)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("raw: %w", err)
		}
		r := result{name: "raw kgo", wall: time.Since(start), requests: n}
		fill(&r, cmd.ProcessState)
		b, err := os.ReadFile(latFile)
		if err != nil {
			return err
		}
		var wall time.Duration
		if r.lat, wall, err = parseLat(b); err != nil {
			return err
		}
		r.wall = wall
		res = append(res, r)
	}
	// The gateway: the child serves, this process sends.
	{
		addrFile := filepath.Join(dir, "gateway.addr")
		cmd := exec.Command(self, "-child", "gateway", "-brokers", brokers, "-addr-file", addrFile)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		addr, err := waitAddr(addrFile)
		if err != nil {
			cmd.Process.Kill()
			return err
		}
		lat, wall, err := send("http://"+addr+"/api/v1/write", reqs, senders)
		cmd.Process.Signal(syscall.SIGTERM)
		if werr := cmd.Wait(); err == nil && werr != nil {
			err = werr
		}
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		r := result{name: "gateway", wall: wall, lat: lat, requests: n}
		fill(&r, cmd.ProcessState)
		res = append(res, r)
	}

	fmt.Printf("%-9s %9s %9s %12s %13s %15s %9s %9s\n", "", "wall", "cpu", "requests/s", "samples/s", "samples/s/core", "p50", "p99")
	perCore := map[string]float64{}
	for _, r := range res {
		pc := float64(nsamples) / r.cpu.Seconds()
		perCore[r.name] = pc
		slices.Sort(r.lat)
		fmt.Printf("%-9s %9s %9s %12.0f %13.0f %15.0f %9s %9s\n", r.name, r.wall.Round(time.Millisecond), r.cpu.Round(time.Millisecond),
			float64(r.requests)/r.wall.Seconds(), float64(nsamples)/r.wall.Seconds(), pc,
			pct(r.lat, 0.50).Round(10*time.Microsecond), pct(r.lat, 0.99).Round(10*time.Microsecond))
	}
	fmt.Printf("\ngateway / raw kgo: samples per CPU second %.2fx\n", perCore["gateway"]/perCore["raw kgo"])
	fmt.Printf("goal >= 1,000,000 samples/s per core: %s (%.0f)\n", benchproc.Verdict(perCore["gateway"] >= 1e6), perCore["gateway"])
	return nil
}

// fill takes a child's CPU time (user+sys). Its peak RSS is not shown: a forked
// child's ru_maxrss starts from the parent's, which holds every request.
func fill(r *result, ps *os.ProcessState) {
	r.cpu = ps.UserTime() + ps.SystemTime()
}

func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// send posts every request with senders concurrent clients and returns each latency
// and the wall time of the whole.
func send(url string, reqs [][]byte, senders int) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, len(reqs))
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders}}
	start := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(reqs[i]))
				req.Header.Set("Content-Encoding", "snappy")
				req.Header.Set("Content-Type", "application/x-protobuf")
				req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
				req.Header.Set("X-Scope-OrgID", "1")
				t := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusNoContent {
						err = fmt.Errorf("request %d: status %d", i, resp.StatusCode)
					}
				}
				lat[i] = time.Since(t)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return lat, time.Since(start), firstErr
}

func runGateway(brokers []string, addrFile string) error {
	g, err := gateway.New(gateway.Options{Brokers: brokers, Topic: topic})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	if err := os.WriteFile(addrFile+".tmp", []byte(ln.Addr().String()), 0o644); err != nil {
		return err
	}
	if err := os.Rename(addrFile+".tmp", addrFile); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	g.Close()
	if st := g.Stats(); st.Rejected+st.Failed+st.Overloaded > 0 {
		return fmt.Errorf("stats %+v", st)
	}
	return err
}

// runRaw produces each request body as one record, senders at a time, each waited
// for, and writes the latencies and the wall time to latFile.
func runRaw(brokers []string, reqFile string, senders int, latFile string) error {
	reqs, err := readRequests(reqFile)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(2<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Ping(context.Background()); err != nil {
		return err
	}
	lat := make([]time.Duration, len(reqs))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	start := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(reqs) {
					return
				}
				t := time.Now()
				if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: reqs[i]}).FirstErr(); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	select {
	case err := <-errs:
		return err
	default:
	}
	var b strings.Builder
	fmt.Fprintln(&b, wall)
	for _, l := range lat {
		fmt.Fprintln(&b, l)
	}
	return os.WriteFile(latFile, []byte(b.String()), 0o644)
}

func parseLat(b []byte) ([]time.Duration, time.Duration, error) {
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		return nil, 0, errors.New("no latencies")
	}
	wall, err := time.ParseDuration(lines[0])
	if err != nil {
		return nil, 0, err
	}
	var out []time.Duration
	for _, l := range lines[1:] {
		d, err := time.ParseDuration(l)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
	}
	return out, wall, nil
}

func writeRequests(path string, reqs [][]byte) error {
	var b []byte
	for _, r := range reqs {
		b = fmt.Appendf(b, "%d\n", len(r))
		b = append(b, r...)
	}
	return os.WriteFile(path, b, 0o644)
}

func readRequests(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return nil, errors.New("truncated requests file")
		}
		var n int
		if _, err := fmt.Sscan(string(b[:i]), &n); err != nil {
			return nil, err
		}
		b = b[i+1:]
		if n > len(b) {
			return nil, errors.New("truncated requests file")
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

func waitAddr(path string) (string, error) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil {
			return string(b), nil
		}
	}
	return "", errors.New("gateway child did not start")
}
