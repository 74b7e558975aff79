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
	"unicode/utf8"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/prometheus/prompb"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailor-metrics/tailor/ingest/payload"
)

// assignOrgs applies the tenancy rule to every series of wk.req, writes the org into
// its __tenant__ label and checks each series as the sink's decoder will (checkLabels).
// The series to encode go to wk.series. Native histograms are refused (the sink rejects
// them: Tailor has no column for them), exemplars and metadata are dropped (the sink
// skips them).
func (g *Gateway) assignOrgs(wk *work, tenant string) *answer {
	nl, ns := 0, 0
	for i := range wk.req.Timeseries {
		nl += len(wk.req.Timeseries[i].Labels) + 1
		ns += len(wk.req.Timeseries[i].Samples)
	}
	// One backing array each for the labels and samples of all series: no
	// allocation per series in steady state.
	wk.lbuf = slices.Grow(wk.lbuf[:0], nl)
	wk.sbuf = slices.Grow(wk.sbuf[:0], ns)
	wk.series = wk.series[:0]
	lastOrg, lastStr := uint32(0), "0"
	for i := range wk.req.Timeseries {
		ts := &wk.req.Timeseries[i]
		if len(ts.Histograms) > 0 {
			return badRequest(http.StatusBadRequest, "series %d (%s): native histograms are not supported", i, seriesName(ts.Labels))
		}
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
		if ok && org != lastOrg {
			lastOrg, lastStr = org, strconv.FormatUint(uint64(org), 10)
		}
		start := len(wk.lbuf)
		inserted := !ok
		for _, l := range rest {
			if l.Value == "" {
				// An empty value is no label, as in Prometheus and the sink; but the
				// sink checks its name's UTF-8 before it drops it.
				if !utf8.ValidString(l.Name) {
					return badRequest(http.StatusBadRequest, "series %d (%s): the sink would reject it: invalid UTF-8", i, seriesName(ts.Labels))
				}
				continue
			}
			// Senders sort labels by name: insert __tenant__ in its place, so the
			// sink's decoder need not sort.
			if !inserted && l.Name > payload.TenantLabel {
				wk.lbuf = append(wk.lbuf, payload.Label{Name: payload.TenantLabel, Value: lastStr})
				inserted = true
			}
			wk.lbuf = append(wk.lbuf, l)
		}
		if !inserted {
			wk.lbuf = append(wk.lbuf, payload.Label{Name: payload.TenantLabel, Value: lastStr})
		}
		ls := wk.lbuf[start:len(wk.lbuf):len(wk.lbuf)]
		if reason := checkLabels(ls, ok); reason != "" {
			return badRequest(http.StatusBadRequest, "series %d (%s): the sink would reject it: %s", i, seriesName(ts.Labels), reason)
		}
		sstart := len(wk.sbuf)
		for _, smp := range ts.Samples {
			wk.sbuf = append(wk.sbuf, payload.Sample{Value: smp.Value, Timestamp: smp.Timestamp})
		}
		wk.series = append(wk.series, payload.TimeSeries{Labels: ls, Samples: wk.sbuf[sstart:len(wk.sbuf):len(wk.sbuf)]})
	}
	return nil
}

// checkLabels rejects what the sink's remote-write decoder rejects in a series' labels
// (ingest/payload mapLabels), with its words, so that a request the gateway accepts
// is stored, never filed under rejects: an empty or duplicate name, invalid UTF-8, no
// __name__, and, for a series without an org (hasOrg false), an org_id label that is
// not a uint32. ls has no empty values; it is sorted here if the sender did not sort
// it. TestCheckLabelsAgreesWithDecoder holds the two to the same answers.
func checkLabels(ls []payload.Label, hasOrg bool) string {
	byName := func(a, b payload.Label) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(ls, byName) {
		slices.SortStableFunc(ls, byName)
	}
	name := false
	for j, l := range ls {
		switch {
		case l.Name == "":
			return "empty label name"
		case !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value):
			return "invalid UTF-8"
		case j > 0 && ls[j-1].Name == l.Name:
			return "duplicate label name " + strconv.Quote(l.Name)
		case l.Name == "__name__":
			name = true
		case !hasOrg && l.Name == "org_id":
			if _, err := strconv.ParseUint(l.Value, 10, 32); err != nil {
				return "org label org_id=" + strconv.Quote(l.Value) + " is not a uint32"
			}
		}
	}
	if !name {
		return "missing __name__ label"
	}
	return ""
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

// cut encodes wk.series as records whose snappy encoding fits MaxRecordBytes,
// cutting between series and a series larger than a record into pieces of its samples.
//
// The records are written by payload.AppendWriteRequest, the sink's own encoder, not
// by prompb's Marshal: gogo's generated code writes a double only when it is != 0, so
// it would turn -0 into +0 (a sender whose encoder keeps -0 would see its value bits
// changed). AppendWriteRequest writes every field.
func (g *Gateway) cut(wk *work) *answer {
	// snappy's worst case is 32 + n + n/6 bytes, so a record of at most budget
	// uncompressed bytes always fits.
	budget := (g.opt.MaxRecordBytes - 32) * 6 / 7
	wk.samples, wk.nseries = len(wk.sbuf), len(wk.series)
	wk.rw = wk.rw[:0]
	flush := func() {
		if len(wk.rw) > 0 {
			// s2's snappy-compatible encoder: standard snappy blocks, faster than
			// snappy.Encode (which is s2's "better" mode: 6% of the gateway's CPU
			// in bench-gateway's profile, for records that Kafka stores as they are).
			wk.records = append(wk.records, s2.EncodeSnappy(make([]byte, s2.MaxEncodedLen(len(wk.rw))), wk.rw))
			wk.rw = wk.rw[:0]
		}
	}
	for i := range wk.series {
		one := wk.series[i : i+1]
		before := len(wk.rw)
		wk.rw = payload.AppendWriteRequest(wk.rw, one)
		if len(wk.rw) <= budget {
			continue // the fast path: the series fits the record being built
		}
		n := len(wk.rw) - before
		wk.rw = wk.rw[:before]
		flush()
		if n <= budget {
			wk.rw = payload.AppendWriteRequest(wk.rw, one)
			continue
		}
		// One series larger than a record: its samples in pieces, same labels.
		piece := []payload.TimeSeries{{Labels: one[0].Labels}}
		labelBytes := len(payload.AppendWriteRequest(wk.rw[:0], piece))
		per := (budget - labelBytes - 16) / maxSampleBytes
		if per < 1 {
			return badRequest(http.StatusRequestEntityTooLarge, "series %d: its labels take %d bytes, more than a record of max %d bytes can hold", i, labelBytes, g.opt.MaxRecordBytes)
		}
		samples := one[0].Samples
		for s := 0; s < len(samples); s += per {
			piece[0].Samples = samples[s:min(s+per, len(samples))]
			wk.rw = payload.AppendWriteRequest(wk.rw[:0], piece)
			flush()
		}
	}
	flush()
	return nil
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
