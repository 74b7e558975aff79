package gateway

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/payload"
)

const topic = "prom"

func newCluster(t *testing.T, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newGateway starts a gateway on c behind an httptest server and returns its URL.
func newGateway(t *testing.T, c *kfake.Cluster, opt Options) (*Gateway, string) {
	t.Helper()
	opt.Brokers, opt.Topic = c.ListenAddrs(), topic
	g, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() { srv.Close(); g.Close() })
	return g, srv.URL
}

// body encodes a remote-write request with Prometheus' own types.
func body(t *testing.T, series ...prompb.TimeSeries) []byte {
	t.Helper()
	b, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

// exactBody encodes a remote-write request with payload.AppendRemoteWrite, which
// writes every field: prompb's Marshal skips a double == 0 and so sends -0 as +0.
func exactBody(series ...prompb.TimeSeries) []byte {
	var rw []payload.TimeSeries
	for _, ts := range series {
		var p payload.TimeSeries
		for _, l := range ts.Labels {
			p.Labels = append(p.Labels, payload.Label{Name: l.Name, Value: l.Value})
		}
		for _, s := range ts.Samples {
			p.Samples = append(p.Samples, payload.Sample{Value: s.Value, Timestamp: s.Timestamp})
		}
		rw = append(rw, p)
	}
	return payload.AppendRemoteWrite(nil, rw)
}

func series(name string, kv []string, samples ...prompb.Sample) prompb.TimeSeries {
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
	return prompb.TimeSeries{Labels: ls, Samples: samples}
}

type result struct {
	code       int
	retryAfter string
	body       string
}

func post(t *testing.T, url string, b []byte, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header.Get("Retry-After"), string(rb)}
}

// consume reads every record of the topic and decodes it as the sink does.
func consume(t *testing.T, c *kfake.Cluster, nparts int32) (payloads []columnar.Payload, partitions map[int32]int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends := endOffsets(t, cl, nparts)
	want := int64(0)
	for _, e := range ends {
		want += e
	}
	partitions = map[int32]int{}
	var dec payload.Decoder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for got := int64(0); got < want; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("poll after %d of %d records: %v", got, want, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			partitions[r.Partition]++
			n := len(payloads)
			payloads, err = dec.Decode(payload.RemoteWrite, r.Value, payloads)
			if err != nil {
				t.Fatalf("record %d/%d does not decode: %v", r.Partition, r.Offset, err)
			}
			for i := n; i < len(payloads); i++ { // Decode reuses the spare elements' slices
				p := &payloads[i]
				p.Tags, p.Timestamps, p.Values = slices.Clone(p.Tags), slices.Clone(p.Timestamps), slices.Clone(p.Values)
			}
		})
	}
	return payloads, partitions
}

func endOffsets(t *testing.T, cl *kgo.Client, nparts int32) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < nparts; p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if p.ErrorCode == 0 {
				ends[p.Partition] = p.Offset
			}
		}
	}
	return ends
}

// key is a point as the pipeline sees it.
type key struct {
	columnar.SeriesKey
	ts int64
}

func points(ps []columnar.Payload) map[key][]uint64 {
	out := map[key][]uint64{}
	for _, p := range ps {
		for i, ts := range p.Timestamps {
			k := key{p.SeriesKey, ts}
			out[k] = append(out[k], math.Float64bits(p.Values[i]))
		}
	}
	return out
}

func TestGatewayProducesWhatTheSinkDecodes(t *testing.T) {
	c := newCluster(t, 4)
	tenants, err := payload.ParseTenants([]byte("tenants:\n  team-a: 17\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, url := newGateway(t, c, Options{Tenancy: payload.Tenancy{Label: "team", Tenants: tenants}})

	stale := math.Float64frombits(0x7ff0000000000002)
	var sent []prompb.TimeSeries
	for i := 0; i < 8; i++ { // eight requests: the round robin reaches every partition
		ts := []prompb.TimeSeries{
			series("up", []string{"job", "api", "instance", "a:9090"}, prompb.Sample{Value: 1, Timestamp: int64(1000 * i)}),
			series("http_requests_total", []string{"code", "200", "team", "team-a"}, prompb.Sample{Value: float64(i) / 7, Timestamp: int64(1000 * i)}, prompb.Sample{Value: stale, Timestamp: int64(1000*i + 500)}),
			series("odd", []string{"org_id", "5"}, prompb.Sample{Value: math.Copysign(0, -1), Timestamp: int64(i)}),
		}
		// Exemplars are dropped and metadata ignored, as the sink would.
		ts[0].Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "x"}}, Value: 1, Timestamp: 1}}
		b := body(t, ts...) // as Prometheus encodes it
		if i%2 == 1 {
			b = exactBody(ts...) // with -0 (prompb's Marshal sends +0)
		}
		if r := post(t, url, b, "X-Scope-OrgID", "42"); r.code != http.StatusNoContent {
			t.Fatalf("request %d: %d %q", i, r.code, r.body)
		}
		sent = append(sent, ts...)
	}
	got, parts := consume(t, c, 4)
	if len(parts) != 4 {
		t.Errorf("records landed on partitions %v, want all 4", parts)
	}
	// Expected: the same series through the sink's decoder with the org the rule
	// gives: the team label → 17, else the header → 42 (org_id stays a tag).
	var want []columnar.Payload
	var dec payload.Decoder
	for k, ts := range sent {
		j := k / 3 // the request
		var ls []payload.Label
		for _, l := range ts.Labels {
			ls = append(ls, payload.Label{Name: l.Name, Value: l.Value})
		}
		rest, org, _, err := payload.Tenancy{Label: "team", Tenants: tenants}.Resolve(nil, ls, "42")
		if err != nil {
			t.Fatal(err)
		}
		rest = append(rest, payload.Label{Name: payload.TenantLabel, Value: fmt.Sprint(org)})
		var samples []payload.Sample
		for _, s := range ts.Samples {
			if s.Value == 0 && j%2 == 0 {
				s.Value = 0 // sent by prompb's Marshal: -0 arrives as +0
			}
			samples = append(samples, payload.Sample{Value: s.Value, Timestamp: s.Timestamp})
		}
		n := len(want)
		want, err = dec.Decode(payload.RemoteWrite, payload.AppendRemoteWrite(nil, []payload.TimeSeries{{Labels: rest, Samples: samples}}), want)
		if err != nil {
			t.Fatal(err)
		}
		want[n].Tags = slices.Clone(want[n].Tags)
		want[n].Timestamps, want[n].Values = slices.Clone(want[n].Timestamps), slices.Clone(want[n].Values)
	}
	gp, wp := points(got), points(want)
	if len(gp) != len(wp) || len(gp) != 8*4 {
		t.Fatalf("got %d points, want %d (32)", len(gp), len(wp))
	}
	for k, w := range wp {
		if !slices.Equal(gp[k], w) {
			t.Errorf("point %+v: got bits %x, want %x (once)", k, gp[k], w)
		}
	}
	orgs := map[uint32]bool{}
	for _, p := range got {
		orgs[p.Org] = true
		if p.Metric == 0 || len(p.Tags) == 0 || p.Tags[0] != "__name__:up" && !strings.HasPrefix(p.Tags[0], "__name__:") && !strings.HasPrefix(p.Tags[1], "__name__:") {
			t.Errorf("payload %+v: no name tag", p)
		}
		for _, tag := range p.Tags {
			if strings.HasPrefix(tag, "team:") || strings.HasPrefix(tag, "__tenant__:") {
				t.Errorf("payload %+v keeps tag %s", p, tag)
			}
		}
	}
	if !orgs[17] || !orgs[42] || len(orgs) != 2 {
		t.Errorf("orgs %v, want 17 and 42", orgs)
	}
	if st := g.Stats(); st.Requests != 8 || st.Samples != 32 || st.Series != 24 || st.Rejected+st.Failed+st.Overloaded != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestGatewayRejects(t *testing.T) {
	c := newCluster(t, 1)
	_, url := newGateway(t, c, Options{MaxBodyBytes: 64 << 10, MaxInflightBytes: 1 << 20})
	_, urlReq := newGateway(t, c, Options{RequireTenant: true, Tenancy: payload.Tenancy{Label: "team"}})
	ok := series("up", nil, prompb.Sample{Value: 1, Timestamp: 1})
	raw, _ := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ok}}).Marshal()
	hist := series("h", nil)
	hist.Histograms = []prompb.Histogram{{Timestamp: 1}}
	big := make([]byte, 100<<10)
	for _, tc := range []struct {
		name   string
		url    string
		body   []byte
		hdr    []string
		code   int
		reason string
	}{
		{"not snappy", url, []byte("hello, world"), nil, 400, "snappy"},
		{"not protobuf", url, snappy.Encode(nil, []byte{0xff, 0xff, 0xff}), nil, 400, "decode WriteRequest"},
		{"no metric name", url, body(t, prompb.TimeSeries{Labels: []prompb.Label{{Name: "job", Value: "a"}}}), nil, 400, "missing __name__ label"},
		{"duplicate label", url, body(t, prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "a"}, {Name: "job", Value: "a"}, {Name: "job", Value: "b"}}}), nil, 400, "duplicate label name"},
		{"org label not a number", url, body(t, series("up", []string{"org_id", "x"})), nil, 400, "is not a uint32"},
		{"native histogram", url, body(t, hist), nil, 400, "native histograms are not supported"},
		{"reserved label", url, body(t, series("up", []string{"__tenant__", "3"})), nil, 400, "reserved"},
		{"unknown tenant", url, body(t, ok), []string{"X-Scope-OrgID", "team-z"}, 400, "unknown tenant"},
		{"no tenant", urlReq, body(t, ok), nil, 400, "no tenant: send the X-Scope-OrgID header or the \"team\" label"},
		{"remote-write 2.0", url, body(t, ok), []string{"Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"}, 415, "only remote-write 1.0"},
		{"zstd", url, body(t, ok), []string{"Content-Encoding", "zstd"}, 415, "snappy"},
		{"json", url, raw, []string{"Content-Type", "application/json"}, 415, "application/x-protobuf"},
		{"body too large", url, big, nil, 413, "larger than max allowed 65536"},
		{"decompressed too large", url, append(binary.AppendUvarint(nil, 65<<20), 0, 0, 0), nil, 413, "decompressed size 68157440 is larger than max allowed 67108864"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, tc.url, tc.body, tc.hdr...)
			if r.code != tc.code || !strings.Contains(r.body, tc.reason) {
				t.Errorf("got %d %q, want %d with %q", r.code, r.body, tc.code, tc.reason)
			}
		})
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if got, _ := consume(t, c, 1); len(got) != 0 {
		t.Errorf("rejected requests produced %d payloads", len(got))
	}
}

// TestGatewayAnswersAfterAck holds Kafka's produce responses and checks that no answer
// comes before them; then makes Kafka fail and expects a 503 with Retry-After.
func TestGatewayAnswersAfterAck(t *testing.T) {
	c := newCluster(t, 2)
	_, url := newGateway(t, c, Options{ProduceTimeout: 2 * time.Second})
	release := make(chan struct{})
	var held sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		held.Do(func() { c.SleepControl(func() { <-release }) })
		return nil, nil, false
	})
	done := make(chan result, 1)
	go func() { done <- post(t, url, body(t, series("up", nil, prompb.Sample{Value: 1, Timestamp: 1}))) }()
	select {
	case r := <-done:
		t.Fatalf("answered %d %q before Kafka acknowledged", r.code, r.body)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if r := <-done; r.code != http.StatusNoContent {
		t.Fatalf("after the ack: %d %q", r.code, r.body)
	}

	// Kafka refuses every produce: the request is answered 503 with Retry-After and
	// nothing is acknowledged.
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	r := post(t, url, body(t, series("up", nil, prompb.Sample{Value: 2, Timestamp: 2})))
	if r.code != http.StatusServiceUnavailable || r.retryAfter != "1" {
		t.Errorf("kafka down: %d, Retry-After %q, %q", r.code, r.retryAfter, r.body)
	}
}

// TestGatewayOverload fills the in-flight budget with a request that Kafka holds, and
// expects the next one to be refused at once with the configured status.
func TestGatewayOverload(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			c := newCluster(t, 1)
			pad := make([]byte, 15<<10) // random hex: it does not compress
			crand.Read(pad)
			b := body(t, series("up", []string{"pad", hex.EncodeToString(pad)}, prompb.Sample{Value: 1, Timestamp: 1}))
			g, url := newGateway(t, c, Options{MaxBodyBytes: 64 << 10, MaxInflightBytes: 100 << 10, OverloadStatus: status, RetryAfter: 2 * time.Second})
			release := make(chan struct{})
			c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
				c.SleepControl(func() { <-release })
				return nil, nil, false
			})
			first := make(chan result, 1)
			go func() { first <- post(t, url, b) }()
			deadline := time.Now().Add(5 * time.Second)
			for g.inflight.Load() < 60<<10 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			r := post(t, url, b)
			if r.code != status || r.retryAfter != "2" || !strings.Contains(r.body, "overloaded") {
				t.Errorf("second request: %d, Retry-After %q, %q", r.code, r.retryAfter, r.body)
			}
			close(release)
			if r := <-first; r.code != http.StatusNoContent {
				t.Errorf("first request: %d %q", r.code, r.body)
			}
			if g.Stats().Overloaded != 1 {
				t.Errorf("stats %+v", g.Stats())
			}
			deadline = time.Now().Add(5 * time.Second)
			for g.inflight.Load() != 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if n := g.inflight.Load(); n != 0 {
				t.Errorf("%d bytes still in flight after every answer", n)
			}
		})
	}
}

// TestGatewayCutsLargeRequests sends a request larger than a record, with one series
// larger than a record too, and checks that every sample arrives once.
func TestGatewayCutsLargeRequests(t *testing.T) {
	c := newCluster(t, 3)
	g, url := newGateway(t, c, Options{MaxRecordBytes: 8 << 10})
	var ts []prompb.TimeSeries
	n := 0
	for s := 0; s < 300; s++ {
		var samples []prompb.Sample
		k := 3
		if s == 7 {
			k = 2000 // about 30 KiB of samples alone
		}
		for i := 0; i < k; i++ {
			samples = append(samples, prompb.Sample{Value: float64(s*10000 + i), Timestamp: int64(1763942400000 + i*15000)})
			n++
		}
		ts = append(ts, series("m", []string{"s", fmt.Sprint(s)}, samples...))
	}
	if r := post(t, url, body(t, ts...), "X-Scope-OrgID", "3"); r.code != http.StatusNoContent {
		t.Fatalf("%d %q", r.code, r.body)
	}
	got, parts := consume(t, c, 3)
	pts := points(got)
	if len(pts) != n {
		t.Fatalf("got %d points, want %d", len(pts), n)
	}
	for k, v := range pts {
		if len(v) != 1 || k.Org != 3 {
			t.Fatalf("point %+v: %d copies", k, len(v))
		}
	}
	st := g.Stats()
	if st.Records < 6 || len(parts) != 3 || st.Samples != uint64(n) {
		t.Errorf("records %d over partitions %v, stats %+v: want the request cut over all 3", st.Records, parts, st)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for seen := uint64(0); seen < st.Records; {
		fs := cl.PollFetches(ctx)
		if errors.Is(fs.Err0(), context.DeadlineExceeded) {
			t.Fatal("timeout")
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if len(r.Value) > 8<<10 {
				t.Errorf("record of %d bytes, max 8 KiB", len(r.Value))
			}
		})
	}
}

// TestCheckLabelsAgreesWithDecoder sends random label sets, valid and invalid, through
// the gateway and checks that it accepts exactly those whose series the sink's decoder
// accepts once the org is set: a 204 means every record decodes, a 400 means the sink
// would have rejected the series.
func TestCheckLabelsAgreesWithDecoder(t *testing.T) {
	c := newCluster(t, 1)
	_, url := newGateway(t, c, Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	names := []string{"__name__", "job", "org_id", "", "a\xffb", "instance", "le", "Z"}
	values := []string{"", "1", "x", "4294967296", "v\xfe", "up"}
	var dec payload.Decoder
	accepted := 0
	for i := 0; i < 400; i++ {
		var ls []prompb.Label
		for _, n := range names {
			if rng.IntN(3) == 0 {
				ls = append(ls, prompb.Label{Name: n, Value: values[rng.IntN(len(values))]})
			}
		}
		if rng.IntN(4) == 0 {
			ls = append(ls, prompb.Label{Name: "__name__", Value: "m"})
		}
		if rng.IntN(2) == 0 {
			slices.SortFunc(ls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		}
		tenant := []string{"", "7"}[rng.IntN(2)]
		ts := prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: 1, Timestamp: int64(i)}}}
		// What the sink does with the same series, tenant label added as the
		// gateway adds it.
		var rw payload.TimeSeries
		for _, l := range ls {
			rw.Labels = append(rw.Labels, payload.Label{Name: l.Name, Value: l.Value})
		}
		if tenant != "" {
			rw.Labels = append(rw.Labels, payload.Label{Name: payload.TenantLabel, Value: tenant})
		}
		rw.Samples = []payload.Sample{{Value: 1, Timestamp: int64(i)}}
		_, derr := dec.Decode(payload.RemoteWrite, payload.AppendRemoteWrite(nil, []payload.TimeSeries{rw}), nil)
		r := post(t, url, exactBody(ts), "X-Scope-OrgID", tenant)
		if (r.code == http.StatusNoContent) != (derr == nil) {
			t.Fatalf("labels %q tenant %q: gateway %d %q, decoder %v", ls, tenant, r.code, r.body, derr)
		}
		if derr == nil {
			accepted++
		}
	}
	got, _ := consume(t, c, 1)
	if len(got) != accepted || accepted < 20 || accepted > 380 {
		t.Errorf("%d payloads stored, %d accepted of 400", len(got), accepted)
	}
}
