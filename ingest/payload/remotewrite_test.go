package payload

import (
	"errors"
	"hash/fnv"
	"math"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/tailor-metrics/tailor/columnar"
)

// fnvRef is the FNV-1a 64 of the concatenated parts, from the standard library, to
// check the inlined hash.
func fnvRef(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	return h.Sum64()
}

const ff = "\xff"

func TestDecodeRemoteWriteMapping(t *testing.T) {
	stale := math.Float64frombits(0x7ff0000000000002)
	series := []TimeSeries{
		{ // labels sorted, tenant label
			Labels:  []Label{{"__name__", "http_requests_total"}, {"__tenant__", "42"}, {"code", "200"}, {"job", "api"}},
			Samples: []Sample{{1, 1763942400000}, {stale, 1763942410000}, {math.Copysign(0, -1), 1763942405000}},
		},
		{ // unsorted, org_id label, an empty-valued label that Prometheus treats as absent
			Labels:  []Label{{"job", "api"}, {"org_id", "4294967295"}, {"zone", ""}, {"__name__", "up"}},
			Samples: []Sample{{5e-324, -1}},
		},
		{ // no org label: default org; no other labels
			Labels: []Label{{"__name__", "up"}},
		},
		{ // both org labels: __tenant__ wins, org_id stays a tag
			Labels:  []Label{{"org_id", "7"}, {"__tenant__", "8"}, {"__name__", "up"}},
			Samples: []Sample{{math.Inf(1), 0}},
		},
	}
	want := []columnar.Payload{
		{
			SeriesKey: columnar.SeriesKey{
				Org:     42,
				Metric:  fnvRef("http_requests_total"),
				Context: fnvRef("code", ff, "200", ff, "job", ff, "api", ff),
			},
			Tags:       []string{"__name__:http_requests_total", "code:200", "job:api"},
			Timestamps: []int64{1763942400000, 1763942410000, 1763942405000},
			Values:     []float64{1, stale, math.Copysign(0, -1)},
		},
		{
			SeriesKey:  columnar.SeriesKey{Org: math.MaxUint32, Metric: fnvRef("up"), Context: fnvRef("job", ff, "api", ff)},
			Tags:       []string{"__name__:up", "job:api"},
			Timestamps: []int64{-1},
			Values:     []float64{5e-324},
		},
		{
			SeriesKey: columnar.SeriesKey{Org: 99, Metric: fnvRef("up"), Context: fnvRef()},
			Tags:      []string{"__name__:up"},
		},
		{
			SeriesKey:  columnar.SeriesKey{Org: 8, Metric: fnvRef("up"), Context: fnvRef("org_id", ff, "7", ff)},
			Tags:       []string{"__name__:up", "org_id:7"},
			Timestamps: []int64{0},
			Values:     []float64{math.Inf(1)},
		},
	}
	d, err := NewDecoder(Options{DefaultOrg: 99})
	if err != nil {
		t.Fatal(err)
	}
	rec := AppendRemoteWrite(nil, series)
	prev := columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 5}}
	got, err := d.Decode(RemoteWrite, rec, []columnar.Payload{prev})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+len(want) || !equalPayload(&got[0], &prev) {
		t.Fatalf("got %d payloads, want the old one plus %d", len(got), len(want))
	}
	for i := range want {
		if !equalPayload(&got[1+i], &want[i]) {
			t.Errorf("series %d:\n got %+v\nwant %+v", i, got[1+i], want[i])
		}
	}
}

// TestRemoteWriteHashesFrozen pins metric_id and context_key for one series. These
// values are stored in every output file: if this test fails, the mapping changed and
// every remote-write series would get new ids. Do not update the constants.
func TestRemoteWriteHashesFrozen(t *testing.T) {
	var d Decoder
	rec := AppendRemoteWrite(nil, []TimeSeries{{
		Labels: []Label{{"__name__", "up"}, {"instance", "localhost:9090"}, {"job", "prometheus"}},
	}})
	got, err := d.Decode(RemoteWrite, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	// FNV-1a 64 of "up" and of "instance\xfflocalhost:9090\xffjob\xffprometheus\xff",
	// computed independently (Python) when the mapping was frozen.
	const wantMetric, wantContext = 0x08c43a07b566d980, 0xc7702cffcec50b00
	if got[0].Metric != wantMetric || got[0].Context != wantContext {
		t.Errorf("metric_id %#016x context_key %#016x, want %#016x %#016x", got[0].Metric, got[0].Context, uint64(wantMetric), uint64(wantContext))
	}
}

func TestDecodeRemoteWriteInvalid(t *testing.T) {
	okLabels := []Label{{"__name__", "up"}}
	one := func(ls []Label) []byte { return AppendWriteRequest(nil, []TimeSeries{{Labels: ls}}) }
	okRaw := one(okLabels) // series tag+len (2), label tag+len (2), name (10), value (4): 18 bytes
	ts := func(body pb) pb { return pb(nil).bytes(rwTimeseries, body) }
	// nameLabel returns a fresh series body holding the label __name__="up" (18 bytes).
	nameLabel := func() pb { return pb(nil).bytes(tsLabels, pb(nil).str(labelName, "__name__").str(labelValue, "up")) }
	for _, tc := range []struct {
		name   string
		opts   Options
		raw    []byte // compressed with snappy unless rec is set
		rec    []byte
		field  string
		off    int
		reason string
	}{
		{name: "not snappy", rec: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, field: "snappy", reason: "invalid block header"},
		{name: "corrupt snappy", rec: []byte{10, 0x01, 0x00}, field: "snappy", reason: "corrupt block"},
		{name: "forged length", rec: []byte{0x80, 0x80, 0x80, 0x20, 0x00}, field: "snappy", reason: "more than snappy can expand"},
		{name: "over the limit", opts: Options{MaxDecompressedBytes: 10}, raw: okRaw, field: "snappy", reason: "decompressed size 18 is larger than max allowed 10"},
		{name: "missing name", raw: one([]Label{{"job", "x"}}), field: "timeseries[0].labels", off: 2, reason: "missing __name__ label"},
		{name: "empty name value", raw: one([]Label{{"__name__", ""}}), field: "timeseries[0].labels", off: 2, reason: "missing __name__ label"},
		{name: "empty label name", raw: one([]Label{{"__name__", "up"}, {"", "x"}}), field: "timeseries[0].labels", off: 18, reason: "empty label name"},
		{name: "duplicate label", raw: one([]Label{{"__name__", "up"}, {"a", "1"}, {"a", "2"}}), field: "timeseries[0].labels", off: 26, reason: `duplicate label name "a"`},
		{name: "bad org", raw: one([]Label{{"__name__", "up"}, {"org_id", "-1"}}), field: "timeseries[0].labels", off: 18, reason: `org label org_id="-1" is not a uint32`},
		{name: "org overflow", raw: one([]Label{{"__name__", "up"}, {"__tenant__", "4294967296"}}), field: "timeseries[0].labels", off: 18, reason: "is not a uint32"},
		{name: "require org", opts: Options{RequireOrg: true, OrgLabels: []string{"tenant"}}, raw: okRaw, field: "timeseries[0].labels", off: 2, reason: `missing org label (one of "tenant")`},
		{name: "histogram", raw: ts(nameLabel().bytes(tsHistograms, nil)), field: "timeseries[0].histograms", off: 18, reason: "native histograms are not supported"},
		{name: "timeseries as varint", raw: pb(nil).varint(rwTimeseries, 1), field: "timeseries[0]", off: 0, reason: "wrong wire type 0"},
		{name: "timeseries past end", raw: pb(nil).tag(rwTimeseries, wireBytes).raw(5, 0), field: "timeseries[0]", off: 1, reason: "past the end"},
		{name: "label as varint", raw: ts(pb(nil).varint(tsLabels, 1)), field: "timeseries[0].labels[0]", off: 2, reason: "wrong wire type 0"},
		{name: "label name as fixed32", raw: ts(pb(nil).bytes(tsLabels, pb(nil).fixed32(labelName, 1))), field: "timeseries[0].labels[0]", off: 4, reason: "wrong wire type 5"},
		{name: "label bad utf8", raw: ts(pb(nil).bytes(tsLabels, pb(nil).str(labelName, "__name__").str(labelValue, "a\xff"))), field: "timeseries[0].labels[0]", off: 16, reason: "invalid UTF-8"},
		{name: "sample value as varint", raw: ts(nameLabel().bytes(tsSamples, pb(nil).varint(sampleValue, 1))), field: "timeseries[0].samples[0]", off: 20, reason: "wrong wire type 0 (varint), want 1 (fixed64)"},
		{name: "sample truncated value", raw: ts(nameLabel().bytes(tsSamples, pb(nil).tag(sampleValue, wireFixed64).raw(1))), field: "timeseries[0].samples[0]", off: 21, reason: "truncated fixed64"},
		{name: "sample ts as fixed64", raw: ts(nameLabel().bytes(tsSamples, pb(nil).fixed64(sampleTimestamp, 1))), field: "timeseries[0].samples[0]", off: 20, reason: "want 0 (varint)"},
		{name: "sample ts truncated", raw: ts(nameLabel().bytes(tsSamples, pb(nil).tag(sampleTimestamp, wireVarint).raw(0x80))), field: "timeseries[0].samples[0]", off: 21, reason: "truncated varint"},
		{name: "second series bad", raw: append(append([]byte(nil), okRaw...), one([]Label{{"x", "y"}})...), field: "timeseries[1].labels", off: 20, reason: "missing __name__"},
		{name: "bad top-level tag", raw: append(append([]byte(nil), okRaw...), 0x80), field: "", off: 18, reason: "truncated varint in field tag"},
		{name: "group in series", raw: ts(nameLabel().tag(9, wireStartGroup)), field: "timeseries[0]", off: 18, reason: "groups"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDecoder(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			rec := tc.rec
			if rec == nil {
				rec = snappy.Encode(nil, tc.raw)
			}
			dst, err := d.Decode(RemoteWrite, rec, nil)
			if len(dst) != 0 {
				t.Errorf("failed decode returned %d payloads", len(dst))
			}
			checkDecodeError(t, err, RemoteWrite, tc.field, tc.off, tc.reason)
			var de *DecodeError
			if errors.As(err, &de) && de.Decompressed != (tc.field != "snappy") {
				t.Errorf("Decompressed = %v for field %q", de.Decompressed, tc.field)
			}
		})
	}
}

func TestDecodeRemoteWriteSkipsExtras(t *testing.T) {
	// Exemplars, metadata, reserved field 2 and unknown fields are skipped.
	label := pb(nil).str(labelName, "__name__").str(labelValue, "up").varint(9, 1)
	sample := pb(nil).fixed64(sampleValue, math.Float64bits(2)).varint(sampleTimestamp, 7).fixed32(9, 1)
	series := pb(nil).bytes(tsLabels, label).bytes(tsExemplars, []byte{1, 2, 3}).bytes(tsSamples, sample).
		bytes(tsSamples, nil).fixed64(99, 1)
	raw := pb(nil).bytes(rwTimeseries, series).str(2, "cortex").bytes(rwMetadata, pb(nil).str(4, "help"))
	var d Decoder
	got, err := d.Decode(RemoteWrite, snappy.Encode(nil, raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := columnar.Payload{
		SeriesKey:  columnar.SeriesKey{Metric: fnvRef("up"), Context: fnvRef()},
		Tags:       []string{"__name__:up"},
		Timestamps: []int64{7, 0},
		Values:     []float64{2, 0},
	}
	if len(got) != 1 || !equalPayload(&got[0], &want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// An empty request is valid and holds no series.
	if got, err = d.Decode(RemoteWrite, snappy.Encode(nil, nil), got[:0]); err != nil || len(got) != 0 {
		t.Errorf("empty WriteRequest: %d payloads, %v", len(got), err)
	}
}

func TestRemoteWriteSteadyStateAllocs(t *testing.T) {
	var d Decoder
	rec := AppendRemoteWrite(nil, benchSeries(10, 100))
	dst, err := d.Decode(RemoteWrite, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(50, func() {
		if dst, err = d.Decode(RemoteWrite, rec, dst[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("steady-state remote-write decode allocates %v times, want 0", allocs)
	}
}

// benchSeries returns n realistic series of k samples each.
func benchSeries(n, k int) []TimeSeries {
	out := make([]TimeSeries, n)
	for i := range out {
		out[i].Labels = []Label{
			{"__name__", "http_request_duration_seconds_bucket"},
			{"__tenant__", "42"},
			{"instance", "web-" + itoa(i) + ".example.com:9100"},
			{"job", "api"},
			{"le", "0.25"},
		}
		p := samplePayload(k)
		for j := range k {
			// Distinct values and times per series, so snappy does not see ten copies.
			out[i].Samples = append(out[i].Samples, Sample{Value: p.Values[j] * float64(i+1), Timestamp: p.Timestamps[j] + int64(i)*37})
		}
	}
	return out
}
