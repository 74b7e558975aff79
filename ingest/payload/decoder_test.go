package payload

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// equalPayload reports whether a and b are the same payload, comparing values by their
// bits (so NaN payloads and -0 count) and treating nil and empty slices alike.
func equalPayload(a, b *columnar.Payload) bool {
	if a.SeriesKey != b.SeriesKey || len(a.Tags) != len(b.Tags) ||
		len(a.Timestamps) != len(b.Timestamps) || len(a.Values) != len(b.Values) {
		return false
	}
	for i := range a.Tags {
		if a.Tags[i] != b.Tags[i] {
			return false
		}
	}
	for i := range a.Timestamps {
		if a.Timestamps[i] != b.Timestamps[i] {
			return false
		}
	}
	for i := range a.Values {
		if math.Float64bits(a.Values[i]) != math.Float64bits(b.Values[i]) {
			return false
		}
	}
	return true
}

// checkDecodeError fails unless err is a *DecodeError of format f for field at offset
// off whose reason contains reason.
func checkDecodeError(t *testing.T, err error, f Format, field string, off int, reason string) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("got error %v (%T), want a *DecodeError", err, err)
	}
	if de.Format != f || de.Field != field || de.Offset != off || !strings.Contains(de.Reason, reason) {
		t.Fatalf("got %q\n(format %v field %q offset %d reason %q)\nwant format %v field %q offset %d reason containing %q",
			de.Error(), de.Format, de.Field, de.Offset, de.Reason, f, field, off, reason)
	}
}

// samplePayload returns a payload with n points and awkward values.
func samplePayload(n int) columnar.Payload {
	p := columnar.Payload{
		SeriesKey: columnar.SeriesKey{Org: 42, Metric: 0x9e3779b97f4a7c15, Context: 0xdeadbeefcafebabe},
		Tags:      []string{"env:prod", "host:web-01.example.com", "az:eu-west-1a"},
	}
	t0 := int64(1763942400000)
	for i := range n {
		p.Timestamps = append(p.Timestamps, t0+int64(i)*10000)
		var v float64
		switch i % 5 {
		case 0:
			v = float64(i) * 1.5
		case 1:
			v = 0.1 * float64(i)
		case 2:
			v = float64(int64(1) << (i % 60))
		case 3:
			v = 123456.789 + float64(i)
		default:
			v = -float64(i) / 7
		}
		p.Values = append(p.Values, v)
	}
	return p
}

func TestDecodeReusesDst(t *testing.T) {
	p := samplePayload(100)
	// An escaped tag takes the slow string path, which must not allocate either.
	p.Tags = append(p.Tags, "path:C:\\tmp\n")
	for _, tc := range []struct {
		f   Format
		rec []byte
	}{
		{Proto, AppendProto(nil, &p)},
		{JSON, AppendJSON(nil, &p)},
		{Auto, AppendJSON(nil, &p)},
	} {
		var d Decoder
		dst, err := d.Decode(tc.f, tc.rec, nil)
		if err != nil {
			t.Fatal(err)
		}
		allocs := testing.AllocsPerRun(100, func() {
			var err error
			dst, err = d.Decode(tc.f, tc.rec, dst[:0])
			if err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%v: steady-state decode allocates %v times, want 0", tc.f, allocs)
		}
		if !equalPayload(&dst[0], &p) {
			t.Errorf("%v: decoded %+v, want %+v", tc.f, dst[0], p)
		}
	}
}

func TestDecodeAllOrNothing(t *testing.T) {
	var d Decoder
	good := samplePayload(3)
	dst := []columnar.Payload{good}
	bad := AppendProto(nil, &good)
	bad = bad[:len(bad)-1]
	got, err := d.Decode(Proto, bad, dst)
	if err == nil {
		t.Fatal("decoding a truncated record succeeded")
	}
	if len(got) != 1 || !equalPayload(&got[0], &good) {
		t.Errorf("a failed decode changed dst: %+v", got)
	}
}

func TestDecodeInvalidFormat(t *testing.T) {
	var d Decoder
	_, err := d.Decode(Format(9), []byte("x"), nil)
	if !errors.Is(err, ErrInvalidFormat) || IsDecodeError(err) {
		t.Errorf("got %v, want ErrInvalidFormat and not a DecodeError", err)
	}
}

func TestDecodeEmptyRecord(t *testing.T) {
	var d Decoder
	for _, f := range []Format{Auto, Proto, JSON, RemoteWrite} {
		_, err := d.Decode(f, nil, nil)
		want := f
		if f == Auto {
			want = Proto
		}
		checkDecodeError(t, err, want, "", 0, "empty record")
	}
}

func TestNewDecoderValidates(t *testing.T) {
	for _, o := range []Options{
		{MaxDecompressedBytes: -1},
		{OrgLabels: []string{""}},
		{OrgLabels: []string{"a", "a"}},
	} {
		if _, err := NewDecoder(o); err == nil {
			t.Errorf("NewDecoder(%+v) succeeded", o)
		}
	}
	if _, err := NewDecoder(Options{}); err != nil {
		t.Errorf("NewDecoder(zero options): %v", err)
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	f := func(e *DecodeError, want string) {
		t.Helper()
		if got := e.Error(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	f(&DecodeError{Format: JSON, Field: "values[3]", Offset: 57, Reason: "invalid number"}, "json: field values[3] at byte 57: invalid number")
	f(&DecodeError{Format: Proto, Offset: 3, Reason: "truncated varint in field tag"}, "proto: at byte 3: truncated varint in field tag")
	f(&DecodeError{Format: RemoteWrite, Field: "timeseries[0].labels", Offset: 9, Decompressed: true, Reason: "missing __name__ label"},
		"remote-write: field timeseries[0].labels at byte 9 of the decompressed request: missing __name__ label")
	f(&DecodeError{Format: RemoteWrite, Field: "snappy", Reason: "corrupt block", Err: errors.New("snappy: corrupt input")},
		"remote-write: field snappy at byte 0: corrupt block: snappy: corrupt input")
}

func TestInternBounded(t *testing.T) {
	var d Decoder
	for i := range maxInternEntries + 10 {
		d.internTag([]byte(strings.Repeat("x", i%50) + string(rune('a'+i%26)) + itoa(i)))
	}
	if len(d.intern) > maxInternEntries {
		t.Errorf("intern table has %d entries, limit %d", len(d.intern), maxInternEntries)
	}
	long := []byte(strings.Repeat("y", maxInternTagLen+1))
	if s := d.internTag(long); s != string(long) || len(d.intern[string(long)]) != 0 {
		t.Error("a long tag was interned")
	}
}

func itoa(i int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
		if i == 0 {
			return string(b)
		}
	}
}
