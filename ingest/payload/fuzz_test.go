package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/tailor-metrics/tailor/columnar"
)

// Fuzz targets, one per decoder. Run each for a while before changing a decoder:
//
//	go test -run '^$' -fuzz '^FuzzDecodeJSON$' -fuzztime 60s ./ingest/payload/
//	go test -run '^$' -fuzz '^FuzzDecodeProto$' -fuzztime 60s ./ingest/payload/
//	go test -run '^$' -fuzz '^FuzzDecodeRemoteWrite$' -fuzztime 60s ./ingest/payload/
//	go test -run '^$' -fuzz '^FuzzParseNumber$' -fuzztime 60s ./ingest/payload/
//
// Invariants checked on every input:
//   - Decode never panics, and returns either payloads or a *DecodeError of the
//     requested format whose offset lies within the input (within the decompressed
//     request for remote-write); on error dst keeps its length.
//   - On success, every payload has as many timestamps as values and valid UTF-8 tags.
//   - On success, re-encoding each payload with AppendProto decodes to the same payload,
//     bit for bit; with AppendJSON too, except that every NaN becomes the canonical NaN
//     (JSON has one NaN).
//   - JSON: an accepted record is valid JSON for encoding/json, and encoding/json reads
//     the same ids, timestamps and numeric values from it (a differential check of the
//     hand-rolled scanner).
//   - parseNumber gives the same bits as strconv.ParseFloat for every JSON number.
//
// Seeds are added in code (jsonSeeds, protoSeeds, rwSeeds, numberSeeds), so that every
// target starts from valid records of each shape and the edge cases around them; inputs
// the fuzzer finds failing are kept in testdata/fuzz/<FuzzName>/ as usual. make fuzz runs
// every target for a few seconds.

// seedPayloads are the payloads the JSON and proto seeds are made of.
func seedPayloads() []columnar.Payload {
	return []columnar.Payload{
		samplePayload(3),
		{SeriesKey: columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: 1}},
		{
			Tags:       []string{"", "q:\"\\\n", "u:é😀"},
			Timestamps: []int64{math.MinInt64, math.MaxInt64, 0, 1, 2, 3},
			Values: []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 5e-324,
				1.7179869184e+10},
		},
	}
}

func jsonSeeds() [][]byte {
	var out [][]byte
	for _, p := range seedPayloads() {
		out = append(out, AppendJSON(nil, &p))
	}
	return append(out,
		[]byte(`{"org_id":1,"metric_id":18446744073709551615,"context_key":0,"tags":["env:prod"],"timestamps":[1763942400000,1763942410000],"values":[0.5,"NaN"]}`),
		[]byte(" {\"org\\u005fid\" : 1, \"x\":[{\"a\":null},true,-1.5e-3], \"metric_id\":2,\"context_key\":3,\"metadata\":{\"k\":\"v\"},\"tags\":null,\"timestamps\":[-0],\"values\":[1e+21]}\n"),
		[]byte(`{"org_id":-1}`),
		[]byte(`{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[1e400]}`),
	)
}

func protoSeeds() [][]byte {
	var out [][]byte
	for _, p := range seedPayloads() {
		out = append(out, AppendProto(nil, &p))
	}
	unpacked := pb(nil).varint(1, 1).varint(5, 10).fixed64(6, math.Float64bits(1)).bytes(7, pb(nil).str(1, "k").str(2, "v")).
		fixed32(99, 1).str(4, "a:b")
	return append(out, unpacked, []byte{0x08})
}

func rwSeeds() [][]byte {
	series := benchSeries(2, 3)
	series = append(series,
		TimeSeries{Labels: []Label{{"org_id", "7"}, {"zone", ""}, {"__name__", "up"}}, Samples: []Sample{{math.Float64frombits(0x7ff0000000000002), -1}}},
		TimeSeries{Labels: []Label{{"__name__", "x"}, {"a", "1"}, {"a", "2"}}},
	)
	raw := AppendWriteRequest(nil, series)
	return [][]byte{
		AppendRemoteWrite(nil, series),
		raw, // uncompressed: the target compresses it too
		pb(nil).bytes(rwTimeseries, pb(nil).bytes(tsLabels, pb(nil).str(labelName, "__name__").str(labelValue, "up")).
			bytes(tsExemplars, nil).bytes(tsSamples, nil)).str(2, "x").bytes(rwMetadata, nil),
	}
}

// numberSeeds are JSON numbers around the fast path's edges and past float64's range.
var numberSeeds = []string{"0", "-0", "0.1", "1e+21", "1.7179869184e+10", "9007199254740993", "5e-324", "1e-400", "1e400",
	"123456789012345678901234567890", "2.2250738585072011e-308", "0.000000000000000000000000001"}

// canonicalNaN returns p with every NaN replaced by math.NaN(), which is what a JSON
// round trip gives.
func canonicalNaN(p columnar.Payload) columnar.Payload {
	p.Values = append([]float64(nil), p.Values...)
	for i, v := range p.Values {
		if math.IsNaN(v) {
			p.Values[i] = math.NaN()
		}
	}
	return p
}

// checkDecoded checks the invariants shared by all formats after a Decode call.
func checkDecoded(t *testing.T, f Format, in []byte, n0 int, dst []columnar.Payload, err error) {
	t.Helper()
	if err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("error %v is not a *DecodeError", err)
		}
		if de.Format != f || de.Offset < 0 || (!de.Decompressed && de.Offset > len(in)) {
			t.Fatalf("bad error %+v for %d input bytes", de, len(in))
		}
		if len(dst) != n0 {
			t.Fatalf("failed decode changed len(dst) from %d to %d", n0, len(dst))
		}
		return
	}
	var d Decoder
	for i := n0; i < len(dst); i++ {
		p := &dst[i]
		if len(p.Timestamps) != len(p.Values) {
			t.Fatalf("payload %d: %d timestamps, %d values", i, len(p.Timestamps), len(p.Values))
		}
		re, err := d.Decode(Proto, AppendProto(nil, p), nil)
		if err != nil || !equalPayload(&re[0], p) {
			t.Fatalf("proto re-encoding of %+v decodes to %+v, %v", *p, re, err)
		}
		want := canonicalNaN(*p)
		re, err = d.Decode(JSON, AppendJSON(nil, p), nil)
		if err != nil || !equalPayload(&re[0], &want) {
			t.Fatalf("JSON re-encoding of %+v decodes to %+v, %v", *p, re, err)
		}
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var d Decoder
		prev := []columnar.Payload{samplePayload(2)}
		dst, err := d.Decode(JSON, in, prev)
		checkDecoded(t, JSON, in, 1, dst, err)
		if err != nil {
			return
		}
		if !json.Valid(in) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		jsonDifferential(t, in, &dst[1])
	})
}

// jsonDifferential reads in with encoding/json and compares the numbers with p.
func jsonDifferential(t *testing.T, in []byte, p *columnar.Payload) {
	t.Helper()
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("encoding/json rejects accepted record %q: %v", in, err)
	}
	uint := func(key string, bits int) uint64 {
		var n json.Number
		if err := json.Unmarshal(m[key], &n); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		v, err := strconv.ParseUint(string(n), 10, bits)
		if err != nil {
			t.Fatalf("%s = %s accepted but ParseUint says %v", key, n, err)
		}
		return v
	}
	if uint("org_id", 32) != uint64(p.Org) || uint("metric_id", 64) != p.Metric || uint("context_key", 64) != p.Context {
		t.Fatalf("ids differ from encoding/json: %q -> %+v", in, p.SeriesKey)
	}
	var ts []json.Number
	if err := json.Unmarshal(m["timestamps"], &ts); err != nil || len(ts) != len(p.Timestamps) {
		t.Fatalf("timestamps: %v, %d vs %d", err, len(ts), len(p.Timestamps))
	}
	for i, n := range ts {
		if v, err := strconv.ParseInt(string(n), 10, 64); err != nil || v != p.Timestamps[i] {
			t.Fatalf("timestamps[%d] = %s, decoded %d", i, n, p.Timestamps[i])
		}
	}
	var vs []any
	d := json.NewDecoder(bytes.NewReader(m["values"]))
	d.UseNumber()
	if err := d.Decode(&vs); err != nil || len(vs) != len(p.Values) {
		t.Fatalf("values: %v, %d vs %d", err, len(vs), len(p.Values))
	}
	for i, v := range vs {
		var want float64
		switch v := v.(type) {
		case json.Number:
			want, _ = strconv.ParseFloat(string(v), 64)
		case string:
			want = map[string]float64{"NaN": math.NaN(), "+Inf": math.Inf(1), "-Inf": math.Inf(-1), "-0": math.Copysign(0, -1)}[v]
		}
		if math.Float64bits(want) != math.Float64bits(p.Values[i]) {
			t.Fatalf("values[%d] = %v, decoded %v", i, v, p.Values[i])
		}
	}
	var tags []string
	if err := json.Unmarshal(m["tags"], &tags); m["tags"] != nil && (err != nil || len(tags) != len(p.Tags)) {
		t.Fatalf("tags: %v, %q vs %q", err, tags, p.Tags)
	}
	for i := range tags {
		if tags[i] != p.Tags[i] {
			t.Fatalf("tags[%d] = %q, decoded %q", i, tags[i], p.Tags[i])
		}
	}
}

func FuzzDecodeProto(f *testing.F) {
	for _, s := range protoSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var d Decoder
		dst, err := d.Decode(Proto, in, nil)
		checkDecoded(t, Proto, in, 0, dst, err)
	})
}

func FuzzDecodeRemoteWrite(f *testing.F) {
	for _, s := range rwSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := NewDecoder(Options{DefaultOrg: 3, MaxDecompressedBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		// As a record (mostly exercises the snappy checks)...
		dst, err := d.Decode(RemoteWrite, in, nil)
		checkDecoded(t, RemoteWrite, in, 0, dst, err)
		// ...and as the WriteRequest inside one.
		dst, err = d.Decode(RemoteWrite, snappy.Encode(nil, in), dst[:0])
		checkDecoded(t, RemoteWrite, in, 0, dst, err)
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) && (de.Field == "snappy" || de.Offset > len(in)) {
				t.Fatalf("well-formed snappy of %d bytes rejected: %v", len(in), err)
			}
		}
	})
}

func FuzzParseNumber(f *testing.F) {
	for _, s := range numberSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		if scanNumber(b, 0) != len(b) {
			return // not exactly one JSON number
		}
		got, end, reason := parseNumber(b, 0)
		want, err := strconv.ParseFloat(s, 64)
		if err != nil {
			if reason == "" {
				t.Fatalf("parseNumber(%q) = %v, ParseFloat fails: %v", s, got, err)
			}
			return
		}
		if reason != "" || end != len(b) || math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("parseNumber(%q) = %v (%#x), %d, %q; ParseFloat = %v (%#x)", s, got, math.Float64bits(got), end, reason, want, math.Float64bits(want))
		}
	})
}
