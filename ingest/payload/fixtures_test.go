package payload

import (
	"bytes"
	"math"
	"os"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/tailor-metrics/tailor/columnar"
)

// TestProtoFixture decodes testdata/proto/full.bin, written by protoc from
// full.textproto (see the comment there), so the hand-written codec is checked against
// an independent protobuf implementation.
func TestProtoFixture(t *testing.T) {
	rec, err := os.ReadFile("testdata/proto/full.bin")
	if err != nil {
		t.Fatal(err)
	}
	want := columnar.Payload{
		SeriesKey:  columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: 1},
		Tags:       []string{"env:prod", "", "u:é€😀"},
		Timestamps: []int64{1763942400000, -1, math.MinInt64, math.MaxInt64},
		Values:     []float64{0.5, math.Copysign(0, -1), math.Inf(1), 5e-324},
	}
	var d Decoder
	got, err := d.Decode(Auto, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !equalPayload(&got[0], &want) {
		t.Fatalf("got %+v\nwant %+v", got[0], want)
	}
	// Up to the metadata (which columnar.Payload does not hold), AppendProto writes
	// exactly what protoc wrote.
	enc := AppendProto(nil, &want)
	if !bytes.HasPrefix(rec, enc) || rec[len(enc)] != fieldMetadata<<3|wireBytes {
		t.Errorf("AppendProto differs from protoc:\n got % x\nwant % x", enc, rec)
	}
}

// TestRemoteWriteFixture decodes testdata/remote-write/request.bin, a WriteRequest
// written by protoc (see request.textproto), compressed here with snappy.
func TestRemoteWriteFixture(t *testing.T) {
	raw, err := os.ReadFile("testdata/remote-write/request.bin")
	if err != nil {
		t.Fatal(err)
	}
	want := []columnar.Payload{
		{
			SeriesKey: columnar.SeriesKey{
				Org:     42,
				Metric:  fnvRef("http_requests_total"),
				Context: fnvRef("code", ff, "200", ff, "job", ff, "api", ff),
			},
			Tags:       []string{"__name__:http_requests_total", "code:200", "job:api"},
			Timestamps: []int64{1763942400000, 1763942415000},
			Values:     []float64{1027, 1031.5},
		},
		{
			SeriesKey:  columnar.SeriesKey{Org: 0, Metric: fnvRef("up"), Context: fnvRef("job", ff, "node", ff)},
			Tags:       []string{"__name__:up", "job:node"},
			Timestamps: []int64{1763942400000, 0},
			Values:     []float64{0, 1},
		},
	}
	var d Decoder
	got, err := d.Decode(RemoteWrite, snappy.Encode(nil, raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d payloads, want %d", len(got), len(want))
	}
	for i := range want {
		if !equalPayload(&got[i], &want[i]) {
			t.Errorf("series %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
}
