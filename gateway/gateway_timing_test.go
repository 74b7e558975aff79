package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// promBody is one request as Prometheus sends it by default: 2,000 series with one
// sample each, node-exporter-like labels.
func promBody(b testing.TB) []byte {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 2000)}
	t0 := time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC).UnixMilli()
	for s := range req.Timeseries {
		req.Timeseries[s].Labels = []prompb.Label{
			{Name: "__name__", Value: []string{"node_cpu_seconds_total", "node_memory_Active_bytes", "node_network_receive_bytes_total", "node_disk_io_time_seconds_total"}[s%4]},
			{Name: "cpu", Value: fmt.Sprint(s % 16)},
			{Name: "instance", Value: fmt.Sprintf("host-%03d:9100", s/400)},
			{Name: "job", Value: "node"},
			{Name: "mode", Value: []string{"idle", "user", "system", "iowait", "irq"}[s%5]},
		}
		req.Timeseries[s].Samples = []prompb.Sample{{Value: float64(s) * 1.25, Timestamp: t0}}
	}
	raw, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

// BenchmarkGatewayDecodeCut is a request's CPU work before the produce: decompress,
// decode with prompb, assign orgs, encode and check the records. Profile with
//
//	go test -run '^$' -bench DecodeCut -cpuprofile cpu.out ./gateway/ && go tool pprof cpu.out
func BenchmarkGatewayDecodeCut(b *testing.B) {
	body := promBody(b)
	g := &Gateway{opt: Options{Brokers: []string{"x"}, Topic: "t"}}
	if err := g.opt.defaults(); err != nil {
		b.Fatal(err)
	}
	g.work.New = func() any { return new(work) }
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		wk := g.work.Get().(*work)
		n, _ := snappy.DecodedLen(body)
		if cap(wk.raw) < n {
			wk.raw = make([]byte, n)
		}
		raw, err := snappy.Decode(wk.raw[:n], body)
		if err != nil {
			b.Fatal(err)
		}
		if err := unmarshalRequest(&wk.req, raw); err != nil {
			b.Fatal(err)
		}
		if a := g.assignOrgs(wk, "1"); a != nil {
			b.Fatal(a.reason)
		}
		if a := g.cut(wk); a != nil {
			b.Fatal(a.reason)
		}
		if wk.samples != 2000 {
			b.Fatalf("%d samples", wk.samples)
		}
		g.putWork(wk)
	}
	b.ReportMetric(float64(2000*b.N)/b.Elapsed().Seconds(), "samples/s")
}

// TestUnmarshalRequestMatchesPrompb decodes requests of varied shapes, one after the
// other into one reused WriteRequest (larger, then smaller series), and checks each
// against prompb's own WriteRequest.Unmarshal of the same bytes.
func TestUnmarshalRequestMatchesPrompb(t *testing.T) {
	var reused prompb.WriteRequest
	for i, n := range []int{3, 1, 5, 0, 2} {
		req := prompb.WriteRequest{Metadata: []prompb.MetricMetadata{{MetricFamilyName: "m", Help: "h"}}}
		for s := 0; s < n; s++ {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: fmt.Sprint("m", s)}}}
			for k := 0; k < (i+s)%4; k++ {
				ts.Labels = append(ts.Labels, prompb.Label{Name: fmt.Sprint("l", k), Value: fmt.Sprint(i)})
				ts.Samples = append(ts.Samples, prompb.Sample{Value: float64(k), Timestamp: int64(i*100 + k)})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		b, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var want prompb.WriteRequest
		if err := want.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if err := unmarshalRequest(&reused, b); err != nil {
			t.Fatal(err)
		}
		if len(reused.Timeseries) != len(want.Timeseries) {
			t.Fatalf("request %d: %d series, want %d", i, len(reused.Timeseries), len(want.Timeseries))
		}
		for s := range want.Timeseries {
			g, w := reused.Timeseries[s], want.Timeseries[s]
			if fmt.Sprint(g.Labels) != fmt.Sprint(w.Labels) || fmt.Sprint(g.Samples) != fmt.Sprint(w.Samples) {
				t.Errorf("request %d series %d: %v %v, want %v %v", i, s, g.Labels, g.Samples, w.Labels, w.Samples)
			}
		}
	}
	for _, bad := range [][]byte{{0x0a, 0x05, 0x01}, {0x0b}, {0xff}, {0x09, 1, 2}} {
		if err := unmarshalRequest(&reused, bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}
