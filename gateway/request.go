package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/ingest/payload"
)

// assignOrgs applies the tenancy rule to every series of wk.req and writes the org
// into its __tenant__ label. Native histograms are refused (the sink rejects them:
// Tailor has no column for them), exemplars and metadata are dropped (the sink skips
// them).
func (g *Gateway) assignOrgs(wk *work, tenant string) *answer {
	total := 0
	for i := range wk.req.Timeseries {
		total += len(wk.req.Timeseries[i].Labels) + 1
	}
	wk.out = slices.Grow(wk.out[:0], total)
	wk.req.Metadata = nil
	lastOrg, lastStr := uint32(0), "0"
	for i := range wk.req.Timeseries {
		ts := &wk.req.Timeseries[i]
		if len(ts.Histograms) > 0 {
			return badRequest(http.StatusBadRequest, "series %d (%s): native histograms are not supported", i, seriesName(ts.Labels))
		}
		ts.Exemplars = nil
		wk.labels = wk.labels[:0]
		for _, l := range ts.Labels {
			wk.labels = append(wk.labels, payload.Label{Name: l.Name, Value: l.Value})
		}
		rest, org, ok, err := g.opt.Tenancy.Resolve(wk.rest, wk.labels, tenant)
		wk.rest = rest
		if err != nil {
			return badRequest(http.StatusBadRequest, "series %d (%s): %v", i, seriesName(ts.Labels), err)
		}
		if !ok && g.opt.RequireTenant {
			return badRequest(http.StatusBadRequest, "series %d (%s): no tenant: send the %s header%s", i, seriesName(ts.Labels), g.opt.TenantHeader, labelHint(g.opt.Tenancy.Label))
		}
		start := len(wk.out)
		if ok {
			if org != lastOrg {
				lastOrg, lastStr = org, strconv.FormatUint(uint64(org), 10)
			}
		}
		inserted := !ok
		for _, l := range rest {
			// Keep the labels sorted (senders sort them), so the sink's decoder
			// takes its fast path.
			if !inserted && l.Name > payload.TenantLabel {
				wk.out = append(wk.out, prompb.Label{Name: payload.TenantLabel, Value: lastStr})
				inserted = true
			}
			wk.out = append(wk.out, prompb.Label{Name: l.Name, Value: l.Value})
		}
		if !inserted {
			wk.out = append(wk.out, prompb.Label{Name: payload.TenantLabel, Value: lastStr})
		}
		ts.Labels = wk.out[start:len(wk.out):len(wk.out)]
	}
	return nil
}

func labelHint(label string) string {
	if label == "" {
		return ""
	}
	return " or the " + strconv.Quote(label) + " label"
}

// seriesName names a series in an error: its metric name, or its first labels.
func seriesName(ls []prompb.Label) string {
	for _, l := range ls {
		if l.Name == "__name__" {
			return strconv.Quote(l.Value)
		}
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i == 3 {
			b.WriteString(",…")
			break
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteByte('}')
	return b.String()
}

// maxSampleBytes is the largest encoding of one Sample entry in a TimeSeries:
// tag + length + (tag + 8-byte double) + (tag + 10-byte varint).
const maxSampleBytes = 1 + 1 + 9 + 11

// cut encodes the request as records whose snappy encoding fits MaxRecordBytes,
// cutting between series and a series larger than a record into pieces of its
// samples, and checks each record with the sink's decoder.
//
// The records are written by payload.AppendWriteRequest, the sink's own encoder, not
// by prompb's Marshal: gogo's generated code writes a double only when it is != 0, so
// it would turn -0 into +0 (a sender whose encoder keeps -0 would see its value bits
// changed). AppendWriteRequest writes every field.
func (g *Gateway) cut(wk *work) *answer {
	// snappy's worst case is 32 + n + n/6 bytes, so a record of at most budget
	// uncompressed bytes always fits.
	budget := (g.opt.MaxRecordBytes - 32) * 6 / 7
	wk.samples, wk.nseries = 0, 0
	wk.rw = wk.rw[:0]
	flush := func() *answer {
		if len(wk.rw) == 0 {
			return nil
		}
		rec, a := g.record(wk, wk.rw)
		if a != nil {
			return a
		}
		wk.records = append(wk.records, rec)
		wk.rw = wk.rw[:0]
		return nil
	}
	one := wk.one[:1]
	for i := range wk.req.Timeseries {
		ts := &wk.req.Timeseries[i]
		one[0].Labels = one[0].Labels[:0]
		for _, l := range ts.Labels {
			one[0].Labels = append(one[0].Labels, payload.Label{Name: l.Name, Value: l.Value})
		}
		one[0].Samples = one[0].Samples[:0]
		for _, s := range ts.Samples {
			one[0].Samples = append(one[0].Samples, payload.Sample{Value: s.Value, Timestamp: s.Timestamp})
		}
		before := len(wk.rw)
		wk.rw = payload.AppendWriteRequest(wk.rw, one)
		if len(wk.rw) <= budget {
			continue // the fast path: the series fits the record being built
		}
		n := len(wk.rw) - before
		wk.rw = wk.rw[:before]
		if a := flush(); a != nil {
			return a
		}
		if n <= budget {
			wk.rw = payload.AppendWriteRequest(wk.rw, one)
			continue
		}
		// One series larger than a record: its samples in pieces, same labels.
		samples := one[0].Samples
		one[0].Samples = nil
		labelBytes := len(payload.AppendWriteRequest(wk.rw[:0], one))
		per := (budget - labelBytes - 16) / maxSampleBytes
		if per < 1 {
			return badRequest(http.StatusRequestEntityTooLarge, "series %d (%s): its labels take %d bytes, more than a record of max %d bytes can hold", i, seriesName(ts.Labels), labelBytes, g.opt.MaxRecordBytes)
		}
		for s := 0; s < len(samples); s += per {
			one[0].Samples = samples[s:min(s+per, len(samples))]
			wk.rw = payload.AppendWriteRequest(wk.rw[:0], one)
			if a := flush(); a != nil {
				return a
			}
		}
		one[0].Samples = samples[:0]
	}
	wk.one = one
	return flush()
}

// record compresses one WriteRequest and checks it with the sink's decoder, so that a
// record Kafka accepts is a record the sink stores.
func (g *Gateway) record(wk *work, raw []byte) ([]byte, *answer) {
	rec := snappy.Encode(make([]byte, snappy.MaxEncodedLen(len(raw))), raw)
	var err error
	wk.decoded, err = wk.dec.Decode(payload.RemoteWrite, rec, wk.decoded[:0])
	if err != nil {
		var de *payload.DecodeError
		if errors.As(err, &de) {
			return nil, badRequest(http.StatusBadRequest, "the sink would reject this request: %s", de.Reason)
		}
		return nil, &answer{status: http.StatusInternalServerError, reason: "check record", err: err}
	}
	for _, p := range wk.decoded {
		wk.samples += len(p.Timestamps)
	}
	wk.nseries += len(wk.decoded)
	return rec, nil
}

// produce sends the records and waits for Kafka's acknowledgement of all of them, at
// most ProduceTimeout.
func (g *Gateway) produce(ctx context.Context, wk *work) *answer {
	if len(wk.records) == 0 {
		return nil // an empty request: nothing to store
	}
	var bytes int64
	for _, rec := range wk.records {
		bytes += int64(len(rec))
	}
	// The records stay in the producer until acknowledged, which may be after this
	// request gave up: their bytes are released by the last callback, not here.
	if !g.acquire(bytes) {
		return g.overloaded(bytes)
	}
	ctx, cancel := context.WithTimeout(ctx, g.opt.ProduceTimeout)
	defer cancel()
	b := &batch{done: make(chan struct{}), left: len(wk.records), bytes: bytes, g: g}
	for _, rec := range wk.records {
		g.cl.Produce(ctx, &kgo.Record{Value: rec}, b.callback)
	}
	timer := time.NewTimer(g.opt.ProduceTimeout)
	defer timer.Stop()
	select {
	case <-b.done:
	case <-timer.C:
		g.stats.failed.Add(1)
		return &answer{status: http.StatusServiceUnavailable, reason: fmt.Sprintf("kafka did not acknowledge within %s; retry later", g.opt.ProduceTimeout)}
	}
	if b.err != nil {
		if errors.Is(b.err, kerr.MessageTooLarge) || errors.Is(b.err, kerr.RecordListTooLarge) {
			g.stats.rejected.Add(1)
			return &answer{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("kafka refused a record as too large (%v); lower the gateway's max record bytes below the topic's max.message.bytes", b.err), err: b.err}
		}
		g.stats.failed.Add(1)
		return &answer{status: http.StatusServiceUnavailable, reason: fmt.Sprintf("kafka produce failed: %v; retry later", b.err), err: b.err}
	}
	g.stats.samples.Add(uint64(wk.samples))
	g.stats.series.Add(uint64(wk.nseries))
	g.m.samples.Add(float64(wk.samples))
	g.stats.records.Add(uint64(len(wk.records)))
	g.stats.recordBytes.Add(uint64(bytes))
	g.m.records.Add(float64(len(wk.records)))
	return nil
}

// batch collects the produce results of one request's records.
type batch struct {
	mu    sync.Mutex
	left  int
	err   error
	bytes int64
	done  chan struct{}
	g     *Gateway
}

func (b *batch) callback(_ *kgo.Record, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil && b.err == nil {
		b.err = err
	}
	b.left--
	if b.left == 0 {
		b.g.release(b.bytes)
		close(b.done)
	}
}
