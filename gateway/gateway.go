// Package gateway receives Prometheus remote-write 1.0 requests over HTTP and produces
// them to Kafka as remote-write records that the sink decodes (payload.RemoteWrite).
//
// Each request is decoded into Prometheus' own prompb types, each series is given its
// org by the tenancy rule (payload.Tenancy: a tenant label, else the X-Scope-OrgID
// header), written back with the org in the __tenant__ label, and cut into records of at
// most Options.MaxRecordBytes. Every record is checked with the sink's own decoder
// before it is produced, so what Kafka receives always decodes. Records go to
// partitions round robin, so each series' successive samples spread over all
// partitions as the balancing service spreads payloads.
//
// Answers: 204 only after Kafka acknowledged every record of the request; 400 (or 413,
// 415, 405) with the reason for a request that can never succeed; 503 (or 429, see
// Options.OverloadStatus) with Retry-After when the gateway is over its in-flight
// budget, and 503 with Retry-After when Kafka did not acknowledge in time. A sender
// retries 5xx; a retried request whose records were partly produced is de-duplicated
// by the run (the same samples again: exact replays collapse).
//
// See docs/gateway.md.
package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/ingest/payload"
)

// Defaults of Options.
const (
	DefaultTenantHeader = "X-Scope-OrgID"
	// DefaultMaxBodyBytes bounds a compressed request body. Prometheus sends at most
	// 2,000 samples a request by default (tens of KiB compressed); 16 MiB leaves room
	// for senders with far larger batches.
	DefaultMaxBodyBytes = 16 << 20
	// DefaultMaxRecordBytes keeps each record under Kafka's default max.message.bytes
	// (1 MiB plus batch overhead): a larger request is cut into several records.
	DefaultMaxRecordBytes = 1000 << 10
	// DefaultMaxInflightBytes bounds the bytes of requests being decoded or waiting
	// for Kafka's acknowledgement (bodies, decompressed requests and records).
	DefaultMaxInflightBytes = 256 << 20
	DefaultRetryAfter       = time.Second
	DefaultProduceTimeout   = 10 * time.Second
)

// Options configures a Gateway. Zero fields take the defaults given.
type Options struct {
	// Brokers are the Kafka seed brokers (required).
	Brokers []string
	// Topic is the topic records are produced to (required). Its sink must use the
	// remote-write format.
	Topic string
	// Tenancy decides each series' org: the tenant label, then the request's tenant.
	Tenancy payload.Tenancy
	// TenantHeader is the header naming the request's tenant. Default X-Scope-OrgID
	// (Mimir's).
	TenantHeader string
	// DefaultTenant is the tenant of a request without the header. Default none: such
	// series keep their labels and the sink's rule applies (an org_id label, else org 0).
	DefaultTenant string
	// RequireTenant answers 400 to a series that has no tenant by the rule.
	RequireTenant bool
	// MaxBodyBytes bounds the compressed body; larger is 413. Default 16 MiB.
	MaxBodyBytes int
	// MaxDecompressedBytes bounds the decompressed request; larger is 413. Default
	// payload.DefaultMaxDecompressedBytes (64 MiB), the sink's own limit.
	MaxDecompressedBytes int
	// MaxRecordBytes bounds one Kafka record value. Default 1000 KiB.
	MaxRecordBytes int
	// MaxInflightBytes bounds the memory of requests in progress; a request that
	// would pass it is answered OverloadStatus at once. Default 256 MiB.
	MaxInflightBytes int64
	// OverloadStatus is the status for a request over MaxInflightBytes:
	// http.StatusServiceUnavailable (503, the default) or http.StatusTooManyRequests
	// (429). Prometheus retries 5xx always but 429 only with retry_on_http_429, so 429
	// makes a default Prometheus drop the batch.
	OverloadStatus int
	// RetryAfter is the Retry-After of 429 and 503 answers, in whole seconds (at
	// least 1). Default 1 s.
	RetryAfter time.Duration
	// ProduceTimeout bounds the wait for Kafka's acknowledgement of a request's
	// records; past it the answer is 503. Default 10 s.
	ProduceTimeout time.Duration
	// KafkaOpts are added to the producer's options (after the gateway's own).
	KafkaOpts []kgo.Opt
	// Registerer receives the gateway's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger logs failed produces; nil logs nothing.
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if len(o.Brokers) == 0 {
		return errors.New("gateway: no brokers")
	}
	if o.Topic == "" {
		return errors.New("gateway: no topic")
	}
	if o.TenantHeader == "" {
		o.TenantHeader = DefaultTenantHeader
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxDecompressedBytes == 0 {
		o.MaxDecompressedBytes = payload.DefaultMaxDecompressedBytes
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.MaxInflightBytes == 0 {
		o.MaxInflightBytes = DefaultMaxInflightBytes
	}
	if o.OverloadStatus == 0 {
		o.OverloadStatus = http.StatusServiceUnavailable
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.ProduceTimeout == 0 {
		o.ProduceTimeout = DefaultProduceTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.MaxBodyBytes < 0 || o.MaxDecompressedBytes < 0 || o.MaxInflightBytes < 0:
		return fmt.Errorf("gateway: negative limit (body %d, decompressed %d, in flight %d)", o.MaxBodyBytes, o.MaxDecompressedBytes, o.MaxInflightBytes)
	case o.MaxRecordBytes < minRecordBytes:
		return fmt.Errorf("gateway: max record bytes %d is smaller than min allowed %d", o.MaxRecordBytes, minRecordBytes)
	case o.MaxInflightBytes < int64(o.MaxBodyBytes):
		return fmt.Errorf("gateway: max in-flight bytes %d is smaller than max body bytes %d: no request of the largest size could ever pass", o.MaxInflightBytes, o.MaxBodyBytes)
	case o.OverloadStatus != http.StatusServiceUnavailable && o.OverloadStatus != http.StatusTooManyRequests:
		return fmt.Errorf("gateway: overload status %d: want 503 or 429", o.OverloadStatus)
	case o.RetryAfter < time.Second:
		return fmt.Errorf("gateway: retry-after %s is shorter than min allowed 1s (the header counts whole seconds)", o.RetryAfter)
	case o.ProduceTimeout < 0:
		return fmt.Errorf("gateway: produce timeout %s is negative", o.ProduceTimeout)
	}
	return nil
}

// minRecordBytes leaves room for one sample of a series with large labels; smaller
// limits could not hold a record at all.
const minRecordBytes = 4 << 10

// Gateway is an http.Handler for remote-write requests. It is safe for concurrent use.
type Gateway struct {
	opt      Options
	cl       *kgo.Client
	inflight atomic.Int64
	m        *metrics
	stats    stats

	// work holds per-request scratch (decompression buffer, prompb request, label
	// scratch, the checking decoder), reused across requests.
	work sync.Pool
}

// New returns a Gateway producing to opt.Topic. Close it to flush and stop the
// producer.
func New(opt Options) (*Gateway, error) {
	if err := opt.defaults(); err != nil {
		return nil, err
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(opt.Brokers...),
		kgo.DefaultProduceTopic(opt.Topic),
		// One record to the next partition: a series' samples of successive requests
		// land on different partitions, as the balancing service spreads payloads.
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(int32(opt.MaxRecordBytes + 64<<10)),
		kgo.MaxBufferedBytes(int(opt.MaxInflightBytes)),
		kgo.RecordDeliveryTimeout(opt.ProduceTimeout),
		kgo.ProducerLinger(0),
		// Records are snappy WriteRequests already; compressing batches again
		// would cost CPU for nothing.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	}
	kopts = append(kopts, opt.KafkaOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("gateway: kafka client: %w", err)
	}
	g := &Gateway{opt: opt, cl: cl, m: newMetrics(opt.Registerer)}
	g.work.New = func() any { return new(work) }
	return g, nil
}

// Close waits for records in flight and closes the Kafka client. Stop the HTTP server
// first, so no request starts producing after Close.
func (g *Gateway) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), g.opt.ProduceTimeout)
	defer cancel()
	_ = g.cl.Flush(ctx)
	g.cl.Close()
}

// Stats are the gateway's totals since New.
type Stats struct {
	Requests, Samples, Series, Records, RecordBytes uint64
	// Rejected counts requests answered 4xx; Overloaded 429/503 for the in-flight
	// budget; Failed 503 for Kafka.
	Rejected, Overloaded, Failed uint64
}

type stats struct {
	requests, samples, series, records, recordBytes atomic.Uint64
	rejected, overloaded, failed                    atomic.Uint64
}

// Stats returns the totals since New.
func (g *Gateway) Stats() Stats {
	s := &g.stats
	return Stats{
		Requests: s.requests.Load(), Samples: s.samples.Load(), Series: s.series.Load(), Records: s.records.Load(),
		RecordBytes: s.recordBytes.Load(), Rejected: s.rejected.Load(), Overloaded: s.overloaded.Load(), Failed: s.failed.Load(),
	}
}

// work is one request's reusable scratch.
type work struct {
	body, raw []byte
	req       prompb.WriteRequest
	labels    []payload.Label
	rest      []payload.Label
	// series are the request's series as they are encoded: labels with the org, in
	// lbuf; samples in sbuf.
	series  []payload.TimeSeries
	lbuf    []payload.Label
	sbuf    []payload.Sample
	rw      []byte // the uncompressed record being built
	records [][]byte
	// samples and nseries count what the records hold, for the stats once acked.
	samples, nseries int
}

// answer is the outcome of a request.
type answer struct {
	status int
	reason string
	err    error // for the log
}

func badRequest(status int, format string, args ...any) *answer {
	return &answer{status: status, reason: fmt.Sprintf(format, args...)}
}

// ServeHTTP handles one remote-write request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	g.stats.requests.Add(1)
	a := g.serve(r)
	code := http.StatusNoContent
	if a != nil {
		code = a.status
		switch {
		case code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests:
			w.Header().Set("Retry-After", strconv.Itoa(int(g.opt.RetryAfter/time.Second)))
		case code == http.StatusMethodNotAllowed:
			w.Header().Set("Allow", http.MethodPost)
		}
		if code/100 == 4 && code != http.StatusTooManyRequests {
			g.stats.rejected.Add(1)
		}
		if a.err != nil {
			g.opt.Logger.Warn("remote-write request failed", "status", code, "reason", a.reason, "err", a.err)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		io.WriteString(w, a.reason+"\n")
	} else {
		w.WriteHeader(code)
	}
	g.m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	g.m.duration.Observe(time.Since(start).Seconds())
}

func (g *Gateway) serve(r *http.Request) *answer {
	if r.Method != http.MethodPost {
		return badRequest(http.StatusMethodNotAllowed, "method %s: remote-write takes POST", r.Method)
	}
	if a := checkHeaders(r.Header); a != nil {
		return a
	}
	// Reserve the largest the body may be before reading it, so that many large
	// bodies at once cannot pass the budget while they are read.
	reserve := int64(g.opt.MaxBodyBytes)
	if r.ContentLength >= 0 && r.ContentLength <= int64(g.opt.MaxBodyBytes) {
		reserve = r.ContentLength
	}
	if !g.acquire(reserve) {
		return g.overloaded(reserve)
	}
	held := reserve
	defer func() { g.release(held) }()

	wk := g.work.Get().(*work)
	defer g.putWork(wk)

	body, err := readBody(r.Body, wk.body[:0], g.opt.MaxBodyBytes)
	wk.body = body
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return badRequest(http.StatusRequestEntityTooLarge, "body is larger than max allowed %d bytes", g.opt.MaxBodyBytes)
		}
		return badRequest(http.StatusBadRequest, "read body: %v", err)
	}
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return badRequest(http.StatusBadRequest, "snappy: invalid block header: %v", err)
	}
	if n > g.opt.MaxDecompressedBytes {
		return badRequest(http.StatusRequestEntityTooLarge, "decompressed size %d is larger than max allowed %d", n, g.opt.MaxDecompressedBytes)
	}
	// The decompressed request counts too; the records are counted when cut.
	extra := int64(n) + int64(len(body)) - held
	if extra > 0 {
		if !g.acquire(extra) {
			return g.overloaded(extra)
		}
		held += extra
	}
	if cap(wk.raw) < n {
		wk.raw = make([]byte, n)
	}
	raw, err := snappy.DecodeStrict(wk.raw[:n], body)
	if err != nil {
		return badRequest(http.StatusBadRequest, "snappy: corrupt block: %v", err)
	}
	if err := unmarshalRequest(&wk.req, raw); err != nil {
		return badRequest(http.StatusBadRequest, "decode WriteRequest: %v", err)
	}
	tenant := strings.TrimSpace(r.Header.Get(g.opt.TenantHeader))
	if tenant == "" {
		tenant = g.opt.DefaultTenant
	}
	if a := g.assignOrgs(wk, tenant); a != nil {
		return a
	}
	if a := g.cut(wk); a != nil {
		return a
	}
	return g.produce(r.Context(), wk)
}

// checkHeaders refuses remote-write 2.0 and other encodings. Missing headers are
// accepted: some senders omit them, and the body is checked anyway.
func checkHeaders(h http.Header) *answer {
	if enc := h.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return badRequest(http.StatusUnsupportedMediaType, "Content-Encoding %q: remote-write 1.0 is snappy", enc)
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-protobuf" {
		return badRequest(http.StatusUnsupportedMediaType, "Content-Type %q: want application/x-protobuf", ct)
	}
	if p, ok := params["proto"]; ok && p != "prometheus.WriteRequest" {
		return badRequest(http.StatusUnsupportedMediaType, "Content-Type %q: only remote-write 1.0 (prometheus.WriteRequest) is supported", ct)
	}
	return nil
}

var errBodyTooLarge = errors.New("body too large")

// readBody reads r into dst, at most max bytes.
func readBody(r io.Reader, dst []byte, max int) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst) > max {
			return dst, errBodyTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

func (g *Gateway) acquire(n int64) bool {
	for {
		cur := g.inflight.Load()
		if cur+n > g.opt.MaxInflightBytes {
			return false
		}
		if g.inflight.CompareAndSwap(cur, cur+n) {
			g.m.inflight.Set(float64(cur + n))
			return true
		}
	}
}

func (g *Gateway) release(n int64) {
	g.m.inflight.Set(float64(g.inflight.Add(-n)))
}

func (g *Gateway) overloaded(n int64) *answer {
	g.stats.overloaded.Add(1)
	return &answer{status: g.opt.OverloadStatus, reason: fmt.Sprintf("overloaded: %d bytes in flight, %d more would pass the limit of %d; retry later", g.inflight.Load(), n, g.opt.MaxInflightBytes)}
}

// unmarshalRequest decodes a WriteRequest into req, reusing the label and sample slices
// of its series from earlier requests. It walks the request's top-level fields itself
// and hands each TimeSeries to prompb's generated Unmarshal, which appends to the
// slices it finds: prompb's WriteRequest.Unmarshal would start every series from a zero
// TimeSeries and allocate both slices again (2 of about 12 allocations a series in
// bench-gateway's requests). Metadata (field 3) and unknown fields are skipped, as
// the sink skips them.
func unmarshalRequest(req *prompb.WriteRequest, b []byte) error {
	n := 0
	for len(b) > 0 {
		key, k := binary.Uvarint(b)
		if k <= 0 {
			return fmt.Errorf("field tag at byte %d: bad varint", len(b))
		}
		b = b[k:]
		field, wire := key>>3, key&7
		switch wire {
		case 0: // varint
			if _, k = binary.Uvarint(b); k <= 0 {
				return fmt.Errorf("field %d: bad varint", field)
			}
			b = b[k:]
		case 1, 5: // fixed64, fixed32
			size := 8
			if wire == 5 {
				size = 4
			}
			if len(b) < size {
				return fmt.Errorf("field %d: truncated", field)
			}
			b = b[size:]
		case 2: // length-delimited
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				return fmt.Errorf("field %d: length past the end", field)
			}
			msg := b[k : k+int(l)]
			b = b[k+int(l):]
			if field != 1 {
				continue
			}
			if n < cap(req.Timeseries) {
				req.Timeseries = req.Timeseries[:n+1]
			} else {
				req.Timeseries = append(req.Timeseries[:n], prompb.TimeSeries{})
			}
			ts := &req.Timeseries[n]
			ts.Labels, ts.Samples, ts.Exemplars, ts.Histograms = ts.Labels[:0], ts.Samples[:0], ts.Exemplars[:0], ts.Histograms[:0]
			if err := ts.Unmarshal(msg); err != nil {
				return fmt.Errorf("timeseries[%d]: %w", n, err)
			}
			n++
		default:
			return fmt.Errorf("field %d: wire type %d is not supported", field, wire)
		}
	}
	req.Timeseries = req.Timeseries[:n]
	return nil
}

func (g *Gateway) putWork(wk *work) {
	// Drop references to the request's strings and records, keep capacity (the
	// series' label and sample slices too, for unmarshalRequest). Very large buffers
	// are not kept, so one huge request does not pin its memory.
	all := wk.req.Timeseries[:cap(wk.req.Timeseries)]
	for i := range all {
		clear(all[i].Labels[:cap(all[i].Labels)])
		all[i].Exemplars, all[i].Histograms = nil, nil
	}
	wk.req.Timeseries = wk.req.Timeseries[:0]
	clear(wk.lbuf[:cap(wk.lbuf)])
	clear(wk.labels[:cap(wk.labels)])
	clear(wk.rest[:cap(wk.rest)])
	clear(wk.series[:cap(wk.series)])
	clear(wk.records[:cap(wk.records)])
	wk.records = wk.records[:0]
	for _, b := range []*[]byte{&wk.body, &wk.raw, &wk.rw} {
		if cap(*b) > 16<<20 {
			*b = nil
		}
	}
	g.work.Put(wk)
}
