package payload

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

func TestDecodeJSONValid(t *testing.T) {
	nan := math.NaN()
	negZero := math.Copysign(0, -1)
	for _, tc := range []struct {
		name string
		in   string
		want columnar.Payload
	}{
		{
			name: "documented example",
			in:   `{"org_id":1,"metric_id":18446744073709551615,"context_key":0,"tags":["env:prod"],"timestamps":[1763942400000,1763942410000],"values":[0.5,"NaN"]}`,
			want: columnar.Payload{
				SeriesKey:  columnar.SeriesKey{Org: 1, Metric: math.MaxUint64},
				Tags:       []string{"env:prod"},
				Timestamps: []int64{1763942400000, 1763942410000},
				Values:     []float64{0.5, nan},
			},
		},
		{
			name: "max ids",
			in:   `{"org_id":4294967295,"metric_id":18446744073709551615,"context_key":18446744073709551614,"timestamps":[],"values":[]}`,
			want: columnar.Payload{SeriesKey: columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: math.MaxUint64 - 1}},
		},
		{
			name: "2^53+1 is exact",
			in:   `{"org_id":0,"metric_id":9007199254740993,"context_key":9007199254740995,"timestamps":[],"values":[]}`,
			want: columnar.Payload{SeriesKey: columnar.SeriesKey{Metric: 1<<53 + 1, Context: 1<<53 + 3}},
		},
		{
			name: "special values and exponents",
			in: `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1,2,3,4,5,6,7,8,9,10,11,12,13],` +
				`"values":["NaN","+Inf","-Inf","-0",-0,5e-324,2.2250738585072014e-308,1.7179869184e+10,1e+21,1E2,-1.5e-3,0.1,1.7976931348623157e308]}`,
			want: columnar.Payload{
				SeriesKey:  columnar.SeriesKey{Org: 1, Metric: 2, Context: 3},
				Timestamps: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13},
				Values: []float64{nan, math.Inf(1), math.Inf(-1), negZero, negZero, 5e-324, 2.2250738585072014e-308,
					17179869184, 1e21, 100, -0.0015, 0.1, math.MaxFloat64},
			},
		},
		{
			name: "integer-looking values above 2^53 are floats",
			in:   `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1,2],"values":[9007199254740993,18446744073709551616]}`,
			want: columnar.Payload{
				SeriesKey:  columnar.SeriesKey{Org: 1, Metric: 2, Context: 3},
				Timestamps: []int64{1, 2},
				Values:     []float64{9007199254740992, 18446744073709551616},
			},
		},
		{
			name: "timestamp extremes",
			in:   `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[-9223372036854775808,9223372036854775807,-1,0,-0],"values":[1,2,3,4,5]}`,
			want: columnar.Payload{
				SeriesKey:  columnar.SeriesKey{Org: 1, Metric: 2, Context: 3},
				Timestamps: []int64{math.MinInt64, math.MaxInt64, -1, 0, 0},
				Values:     []float64{1, 2, 3, 4, 5},
			},
		},
		{
			name: "missing tags, keys in any order",
			in:   `{"values":[1],"timestamps":[5],"context_key":3,"metric_id":2,"org_id":1}`,
			want: columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 1, Metric: 2, Context: 3}, Timestamps: []int64{5}, Values: []float64{1}},
		},
		{
			name: "null and empty tags",
			in:   `{"org_id":1,"metric_id":2,"context_key":3,"tags":null,"timestamps":[5],"values":[1]}`,
			want: columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 1, Metric: 2, Context: 3}, Timestamps: []int64{5}, Values: []float64{1}},
		},
		{
			name: "empty tag string",
			in:   `{"org_id":1,"metric_id":2,"context_key":3,"tags":["",""],"timestamps":[],"values":[]}`,
			want: columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 1, Metric: 2, Context: 3}, Tags: []string{"", ""}},
		},
		{
			name: "whitespace everywhere",
			in:   " \r\n\t{ \"org_id\" :\t1 ,\n\"metric_id\" : 2 , \"context_key\":3, \"tags\" : [ \"a:b\" , \"c:d\" ] , \"timestamps\" : [ 5 , 6 ] , \"values\" : [ 1.5 , \"NaN\" ] } \n",
			want: columnar.Payload{
				SeriesKey: columnar.SeriesKey{Org: 1, Metric: 2, Context: 3}, Tags: []string{"a:b", "c:d"},
				Timestamps: []int64{5, 6}, Values: []float64{1.5, nan},
			},
		},
		{
			name: "escapes and unicode in tags and keys",
			in:   `{"org\u005fid":1,"metric_id":2,"context_key":3,"tags":["q:\"x\"\\\/\b\f\n\r\t","u:\u00e9\u20ac\ud83d\ude00","raw:é€😀"],"timestamps":[],"values":[]}`,
			want: columnar.Payload{
				SeriesKey: columnar.SeriesKey{Org: 1, Metric: 2, Context: 3},
				Tags:      []string{"q:\"x\"\\/\b\f\n\r\t", "u:é€😀", "raw:é€😀"},
			},
		},
		{
			name: "unknown keys and metadata are skipped",
			in: `{"org_id":1,"x":{"a":[1,-2.5e3,true,false,null,{"b":"c"}],"d":[]},"metric_id":2,"context_key":3,` +
				`"metadata":{"producer":"demo","v":"1"},"y":"z","timestamps":[5],"values":[1],"x":0}`,
			want: columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 1, Metric: 2, Context: 3}, Timestamps: []int64{5}, Values: []float64{1}},
		},
		{
			name: "null metadata",
			in:   `{"org_id":1,"metric_id":2,"context_key":3,"metadata":null,"timestamps":[],"values":[]}`,
			want: columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 1, Metric: 2, Context: 3}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			got, err := d.Decode(JSON, []byte(tc.in), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !equalPayload(&got[0], &tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			// Auto picks JSON.
			if got, err = d.Decode(Auto, []byte(tc.in), got[:0]); err != nil || !equalPayload(&got[0], &tc.want) {
				t.Fatalf("Auto: got %+v, %v", got, err)
			}
		})
	}
}

func TestDecodeJSONInvalid(t *testing.T) {
	// Each case names the field and the unique substring of the input at which the error
	// must point (its byte offset), or "$" for the end of the input.
	const ok = `"timestamps":[1],"values":[1]`
	for _, tc := range []struct {
		name, in, field, at, reason string
	}{
		{"not an object", `[1]`, "", `[1]`, "expected '{'"},
		{"only whitespace", "  ", "", "$", "expected '{'"},
		{"negative id", `{"org_id":-1,"metric_id":2,"context_key":3,` + ok + `}`, "org_id", `-1`, "negative"},
		{"org overflow", `{"org_id":4294967296,"metric_id":2,"context_key":3,` + ok + `}`, "org_id", `4294967296`, "4294967296 overflows uint32"},
		{"metric overflow", `{"org_id":1,"metric_id":18446744073709551616,"context_key":3,` + ok + `}`, "metric_id", `18446744073709551616`, "overflows uint64"},
		{"context way over", `{"org_id":1,"metric_id":2,"context_key":99999999999999999999999,` + ok + `}`, "context_key", `99999999999999999999999`, "overflows uint64"},
		{"id fraction", `{"org_id":1,"metric_id":2.0,"context_key":3,` + ok + `}`, "metric_id", `2.0`, "fraction"},
		{"id exponent", `{"org_id":1,"metric_id":2,"context_key":1e3,` + ok + `}`, "context_key", `1e3`, "exponent"},
		{"id string", `{"org_id":"1","metric_id":2,"context_key":3,` + ok + `}`, "org_id", `"1"`, "found string"},
		{"id leading zero", `{"org_id":01,"metric_id":2,"context_key":3,` + ok + `}`, "org_id", `01`, "leading zero"},
		{"id null", `{"org_id":null,"metric_id":2,"context_key":3,` + ok + `}`, "org_id", `null`, "expected unsigned integer"},
		{"timestamp fraction", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1,2.5],"values":[1,2]}`, "timestamps[1]", `2.5`, "fraction"},
		{"timestamp exponent", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1e12],"values":[1]}`, "timestamps[0]", `1e12`, "exponent"},
		{"timestamp overflow", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[9223372036854775808],"values":[1]}`, "timestamps[0]", `9223372036854775808`, "overflows int64"},
		{"timestamp underflow", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[-9223372036854775809],"values":[1]}`, "timestamps[0]", `-9223372036854775809`, "overflows int64"},
		{"timestamp string", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":["1"],"values":[1]}`, "timestamps[0]", `"1"`, "found string"},
		{"timestamps not array", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":1,"values":[1]}`, "timestamps", `1,"values"`, "expected array"},
		{"bad value string", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1,2],"values":[1,"nan"]}`, "values[1]", `"nan"`, "invalid value string"},
		{"long value string", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":["Infinity"]}`, "values[0]", `"Infinity"`, "invalid value string"},
		{"value trailing comma", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[1,]}`, "values[1]", `]}`, "invalid number"},
		{"value plus sign", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[+1]}`, "values[0]", `+1`, "invalid number"},
		{"value hex", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[0x10]}`, "values", `x10`, "expected ',' or ']'"},
		{"value dot", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[1.]}`, "values[0]", `1.]`, "invalid number"},
		{"value out of range", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[1e400]}`, "values[0]", `1e400`, "out of float64 range"},
		{"value null", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[null]}`, "values[0]", `null`, "invalid number"},
		{"count mismatch", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1,2],"values":[1]}`, "values", `[1]}`, "2 timestamps but 1 values"},
		{"duplicate key", `{"org_id":1,"metric_id":2,"org_id":1,"context_key":3,` + ok + `}`, "org_id", `"org_id":1,"context_key"`, "duplicate key"},
		{"missing key", `{"org_id":1,"context_key":3,` + ok + `}`, "metric_id", `}`, "missing required key"},
		{"missing values", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[]}`, "values", `}`, "missing required key"},
		{"empty object", `{}`, "org_id", `}`, "missing required key"},
		{"trailing data", `{"org_id":1,"metric_id":2,"context_key":3,` + ok + `} {}`, "", `{}`, "trailing data"},
		{"two objects", `{"org_id":1,"metric_id":2,"context_key":3,` + ok + `}` + "\n" + `{"org_id":1}`, "", `{"org_id":1}`, "trailing data"},
		{"truncated", `{"org_id":1,"metric_id":2,"context_key":3,"timestamps":[1],"values":[1`, "values", "$", "expected ',' or ']'"},
		{"truncated after key", `{"org_id"`, "", "$", "expected ':'"},
		{"truncated value", `{"org_id":`, "org_id", "$", "found end of input"},
		{"unquoted key", `{org_id:1}`, "", `org_id`, "expected object key"},
		{"tag not string", `{"org_id":1,"metric_id":2,"context_key":3,"tags":["a",1],` + ok + `}`, "tags[1]", `1],`, "expected string"},
		{"tag control char", "{\"org_id\":1,\"metric_id\":2,\"context_key\":3,\"tags\":[\"a\tb\"]," + ok + "}", "tags[0]", "\tb", "control character"},
		{"tag bad utf8", "{\"org_id\":1,\"metric_id\":2,\"context_key\":3,\"tags\":[\"a\xffb\"]," + ok + "}", "tags[0]", "\xff", "invalid UTF-8"},
		{"tag lone surrogate", `{"org_id":1,"metric_id":2,"context_key":3,"tags":["\ud800x"],` + ok + `}`, "tags[0]", `\ud800`, "unpaired surrogate"},
		{"tag reversed surrogates", `{"org_id":1,"metric_id":2,"context_key":3,"tags":["\udc00\ud800"],` + ok + `}`, "tags[0]", `\udc00`, "unpaired surrogate"},
		{"tag bad escape", `{"org_id":1,"metric_id":2,"context_key":3,"tags":["a\x"],` + ok + `}`, "tags[0]", `\x`, "invalid escape"},
		{"tag bad hex", `{"org_id":1,"metric_id":2,"context_key":3,"tags":["\u12g4"],` + ok + `}`, "tags[0]", `\u12g4`, `invalid \u escape`},
		{"tag unterminated", `{"org_id":1,"metric_id":2,"context_key":3,"tags":["abc`, "tags[0]", `"abc`, "unterminated string"},
		{"tags object", `{"org_id":1,"metric_id":2,"context_key":3,"tags":{},` + ok + `}`, "tags", `{},`, "expected array"},
		{"metadata number", `{"org_id":1,"metric_id":2,"context_key":3,"metadata":{"a":1},` + ok + `}`, "metadata", `1},`, "expected string value"},
		{"unknown bad literal", `{"org_id":1,"x":tru,"metric_id":2,"context_key":3,` + ok + `}`, "", `tru,`, "expected value"},
		{"unknown bad number", `{"org_id":1,"x":-,"metric_id":2,"context_key":3,` + ok + `}`, "", `-,`, "invalid number"},
		{"unknown too deep", `{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "", "[", "nesting deeper than 64"},
		{"unknown unterminated", `{"x":[1,2`, "", "$", "expected ',' or ']'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			off := len(tc.in)
			if tc.at != "$" {
				off = strings.Index(tc.in, tc.at)
				if tc.name == "unknown too deep" {
					off = strings.Index(tc.in, "[") + maxJSONDepth // 64 levels are fine, the 65th is not
				}
				if off < 0 {
					t.Fatalf("bad test: %q not in input", tc.at)
				}
			}
			dst, err := d.Decode(JSON, []byte(tc.in), nil)
			if len(dst) != 0 {
				t.Errorf("failed decode returned %d payloads", len(dst))
			}
			checkDecodeError(t, err, JSON, tc.field, off, tc.reason)
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	ps := []columnar.Payload{
		samplePayload(100),
		{},
		{
			SeriesKey: columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: 1<<53 + 1},
			Tags:      []string{"", "q:\"\\\n\r\t\x00\x1f\x7f", "u:é€😀"},
			Timestamps: []int64{
				math.MinInt64, math.MaxInt64, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
			},
			Values: []float64{
				math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0,
				5e-324, math.SmallestNonzeroFloat64 * 3, 2.2250738585072014e-308, math.MaxFloat64, -math.MaxFloat64,
				0.1, 1e21, 17179869184, 1 << 53, 123456789.123456789,
			},
		},
	}
	var d Decoder
	var buf []byte
	for i := range ps {
		buf = AppendJSON(buf[:0], &ps[i])
		got, err := d.Decode(JSON, buf, nil)
		if err != nil {
			t.Fatalf("payload %d: %v\n%s", i, err, buf)
		}
		if !equalPayload(&got[0], &ps[i]) {
			t.Fatalf("payload %d: round trip changed it:\n got %+v\nwant %+v\n%s", i, got[0], ps[i], buf)
		}
	}
}

func TestAppendJSONExactFormat(t *testing.T) {
	p := columnar.Payload{
		SeriesKey:  columnar.SeriesKey{Org: 1, Metric: math.MaxUint64},
		Tags:       []string{"env:prod"},
		Timestamps: []int64{1763942400000, 1763942410000, 1763942420000, 1763942430000, 1763942440000, 1763942450000},
		Values:     []float64{0.5, math.NaN(), 1e21, 17179869184, math.Copysign(0, -1), math.Inf(-1)},
	}
	const want = `{"org_id":1,"metric_id":18446744073709551615,"context_key":0,"tags":["env:prod"],` +
		`"timestamps":[1763942400000,1763942410000,1763942420000,1763942430000,1763942440000,1763942450000],` +
		`"values":[0.5,"NaN",1e+21,1.7179869184e+10,"-0","-Inf"]}`
	if got := string(AppendJSON(nil, &p)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Invalid UTF-8 (which no decoder produces) becomes U+FFFD rather than invalid JSON.
	bad := columnar.Payload{Tags: []string{"a\xffb"}}
	if got := string(AppendJSON(nil, &bad)); !strings.Contains(got, `"a\ufffdb"`) {
		t.Errorf("invalid UTF-8 tag encoded as %s", got)
	}
}

// TestJSONNaNPayloadIsCanonicalized documents the one lossy case: NaN payload bits.
func TestJSONNaNPayloadIsCanonicalized(t *testing.T) {
	stale := math.Float64frombits(0x7ff0000000000002) // Prometheus' stale marker
	p := columnar.Payload{Timestamps: []int64{1}, Values: []float64{stale}}
	var d Decoder
	got, err := d.Decode(JSON, AppendJSON(nil, &p), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bits := math.Float64bits(got[0].Values[0]); bits != math.Float64bits(math.NaN()) {
		t.Errorf("stale marker decoded to %#x, want the canonical NaN %#x", bits, math.Float64bits(math.NaN()))
	}
}

// TestParseNumberMatchesParseFloat checks the fast path of parseNumber against
// strconv.ParseFloat on many numbers of the shapes producers send (FuzzParseNumber
// explores further).
func TestParseNumberMatchesParseFloat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(s string) {
		t.Helper()
		b := []byte(s)
		if scanNumber(b, 0) != len(b) {
			return
		}
		got, end, reason := parseNumber(b, 0)
		want, err := strconv.ParseFloat(s, 64)
		if (err != nil) != (reason != "") || (err == nil && (end != len(b) || math.Float64bits(got) != math.Float64bits(want))) {
			t.Fatalf("parseNumber(%q) = %v, %d, %q; ParseFloat = %v, %v", s, got, end, reason, want, err)
		}
	}
	for range 200000 {
		v := math.Float64frombits(r.Uint64())
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		check(strconv.FormatFloat(v, 'g', -1, 64))
		check(strconv.FormatFloat(v, 'e', r.IntN(20), 64))
		// Short decimals such as gauges and counters: the fast path.
		m := r.Int64N(1 << 54)
		check(strconv.FormatInt(m, 10))
		check(strconv.FormatInt(m, 10) + "e" + strconv.Itoa(r.IntN(50)-25))
		check("-" + strconv.FormatInt(m%100000, 10) + "." + strconv.FormatInt(r.Int64N(1e9), 10))
		check(strconv.FormatFloat(float64(m%1000000)/float64(1+r.IntN(1000)), 'f', -1, 64))
	}
	for _, s := range []string{"0", "-0", "0e5", "-0.0e-5", "9007199254740992", "9007199254740993", "1e22", "1e23",
		"1e-22", "1e-23", "4.9e-324", "2e-324", "1e-400", "1e400", "-1e400", "1" + strings.Repeat("0", 400),
		"0." + strings.Repeat("0", 400) + "1", "1e99999999999999999999", "1e-99999999999999999999"} {
		check(s)
	}
}
