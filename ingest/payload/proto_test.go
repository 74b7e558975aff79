package payload

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// pb builds protobuf messages by hand, field by field, for tests.
type pb []byte

func (b pb) tag(num uint64, wt uint8) pb { return appendTag(b, num, wt) }
func (b pb) varint(num, v uint64) pb {
	return binary.AppendUvarint(b.tag(num, wireVarint), v)
}

func (b pb) fixed64(num, v uint64) pb {
	return binary.LittleEndian.AppendUint64(b.tag(num, wireFixed64), v)
}

func (b pb) fixed32(num uint64, v uint32) pb {
	return binary.LittleEndian.AppendUint32(b.tag(num, wireFixed32), v)
}

func (b pb) bytes(num uint64, data []byte) pb {
	b = binary.AppendUvarint(b.tag(num, wireBytes), uint64(len(data)))
	return append(b, data...)
}
func (b pb) str(num uint64, s string) pb { return b.bytes(num, []byte(s)) }
func (b pb) raw(bs ...byte) pb           { return append(b, bs...) }

func packedVarints(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendUvarint(b, uint64(v))
	}
	return b
}

func packedDoubles(vs ...float64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return b
}

func TestDecodeProtoValid(t *testing.T) {
	stale := math.Float64frombits(0x7ff0000000000002)
	negZero := math.Copysign(0, -1)
	key := columnar.SeriesKey{Org: 1, Metric: 2, Context: 3}
	ids := func() pb { return pb(nil).varint(1, 1).varint(2, 2).varint(3, 3) }
	for _, tc := range []struct {
		name string
		in   pb
		want columnar.Payload
	}{
		{
			name: "max ids, packed",
			in: pb(nil).varint(1, math.MaxUint32).varint(2, math.MaxUint64).varint(3, math.MaxUint64-1).
				str(4, "env:prod").bytes(5, packedVarints(1763942400000, -1, math.MinInt64, math.MaxInt64)).
				bytes(6, packedDoubles(0.5, math.NaN(), stale, negZero)),
			want: columnar.Payload{
				SeriesKey:  columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: math.MaxUint64 - 1},
				Tags:       []string{"env:prod"},
				Timestamps: []int64{1763942400000, -1, math.MinInt64, math.MaxInt64},
				Values:     []float64{0.5, math.NaN(), stale, negZero},
			},
		},
		{
			name: "only org_id (others default to zero)",
			in:   pb(nil).varint(1, 0),
			want: columnar.Payload{},
		},
		{
			name: "unpacked and mixed repeated fields",
			in: ids().varint(5, 10).fixed64(6, math.Float64bits(1)).bytes(5, packedVarints(11, 12)).
				bytes(6, packedDoubles(2, 3)).varint(5, 13).fixed64(6, math.Float64bits(math.Inf(-1))),
			want: columnar.Payload{SeriesKey: key, Timestamps: []int64{10, 11, 12, 13}, Values: []float64{1, 2, 3, math.Inf(-1)}},
		},
		{
			name: "fields in any order, last scalar wins",
			in:   pb(nil).bytes(6, packedDoubles(5e-324)).varint(3, 9).str(4, "").bytes(5, packedVarints(7)).varint(1, 8).varint(2, 2).varint(1, 1).varint(3, 3).str(4, "a:b"),
			want: columnar.Payload{SeriesKey: key, Tags: []string{"", "a:b"}, Timestamps: []int64{7}, Values: []float64{5e-324}},
		},
		{
			name: "empty packed fields",
			in:   ids().bytes(5, nil).bytes(6, nil),
			want: columnar.Payload{SeriesKey: key},
		},
		{
			name: "unknown fields of every wire type are skipped",
			in: ids().varint(8, 1<<63).fixed64(9, 1).fixed32(10, 7).str(11, "x").bytes(1000, []byte{0xff, 0xff}).
				varint(maxFieldNumber, 1),
			want: columnar.Payload{SeriesKey: key},
		},
		{
			name: "metadata map entries",
			in:   ids().bytes(7, pb(nil).str(1, "producer").str(2, "demo")).bytes(7, nil).bytes(7, pb(nil).str(2, "v").varint(3, 1)),
			want: columnar.Payload{SeriesKey: key},
		},
		{
			name: "non-minimal varint",
			in:   pb(nil).tag(1, wireVarint).raw(0x81, 0x80, 0x00),
			want: columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			got, err := d.Decode(Proto, tc.in, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !equalPayload(&got[0], &tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			if got, err = d.Decode(Auto, tc.in, got[:0]); err != nil || !equalPayload(&got[0], &tc.want) {
				t.Fatalf("Auto: got %+v, %v", got, err)
			}
		})
	}
}

func TestDecodeProtoInvalid(t *testing.T) {
	// ids returns a fresh message each time: appending to a shared one would alias.
	ids := func() pb { return pb(nil).varint(1, 1).varint(2, 2).varint(3, 3) }
	n := len(ids())
	for _, tc := range []struct {
		name   string
		in     pb
		field  string
		off    int
		reason string
	}{
		{"org wrong wire type", ids().fixed64(1, 1), "org_id", n, "wrong wire type 1 (fixed64), want 0 (varint)"},
		{"metric as bytes", ids().str(2, "x"), "metric_id", n, "wrong wire type 2"},
		{"org overflow", pb(nil).varint(1, 1<<32), "org_id", 1, "4294967296 overflows uint32"},
		{"truncated id varint", ids().tag(2, wireVarint).raw(0x80), "metric_id", n + 1, "truncated varint"},
		{"varint overflow", ids().tag(3, wireVarint).raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02), "context_key", n + 1, "overflows 64 bits"},
		{"eleven-byte varint", ids().tag(3, wireVarint).raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00), "context_key", n + 1, "overflows 64 bits"},
		{"truncated tag", ids().raw(0x80), "", n, "truncated varint in field tag"},
		{"field number 0", ids().raw(0x00), "", n, "invalid field number 0"},
		{"field number too large", ids().tag(maxFieldNumber+1, wireVarint).raw(0), "", n, "invalid field number"},
		{"tags as varint", ids().varint(4, 1), "tags[0]", n, "wrong wire type 0"},
		{"tag length past end", ids().str(4, "ok").tag(4, wireBytes).raw(5, 'a'), "tags[1]", n + 4 + 1, "length 5 past the end (1 bytes left)"},
		{"tag huge length", ids().tag(4, wireBytes).raw(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), "tags[0]", n + 1, "past the end"},
		{"tag invalid utf8", ids().str(4, "a\xff"), "tags[0]", n + 2, "invalid UTF-8"},
		{"timestamps as fixed64", ids().fixed64(5, 1), "timestamps", n, "wrong wire type 1 (fixed64), want 2 (length-delimited) or 0 (varint)"},
		{"truncated packed varint", ids().bytes(5, []byte{1, 2, 0x80}), "timestamps[2]", n + 2 + 2, "truncated varint"},
		{"packed varint overflow", ids().bytes(5, []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}), "timestamps[1]", n + 3, "overflows"},
		{"packed timestamps past end", ids().tag(5, wireBytes).raw(4, 1), "timestamps", n + 1, "past the end"},
		{"truncated unpacked timestamp", ids().tag(5, wireVarint).raw(0x80), "timestamps[0]", n + 1, "truncated varint"},
		{"values as varint", ids().varint(6, 1), "values", n, "want 2 (length-delimited) or 1 (fixed64)"},
		{"packed doubles not multiple of 8", ids().bytes(6, make([]byte, 12)), "values", n + 1, "length 12 is not a multiple of 8"},
		{"truncated fixed64 value", ids().tag(6, wireFixed64).raw(1, 2, 3), "values[0]", n + 1, "truncated fixed64"},
		{"count mismatch", ids().bytes(5, packedVarints(1, 2)).bytes(6, packedDoubles(1)), "values", n + 4, "2 timestamps but 1 values"},
		{"count mismatch, values first", ids().bytes(6, packedDoubles(1)).bytes(5, packedVarints(1, 2)), "values", n + 10, "2 timestamps but 1 values"},
		{"values without timestamps", ids().fixed64(6, 0), "values", n, "0 timestamps but 1 values"},
		{"metadata as varint", ids().varint(7, 1), "metadata", n, "wrong wire type 0"},
		{"metadata key as varint", ids().bytes(7, pb(nil).varint(1, 1)), "metadata", n + 2, "wrong wire type 0"},
		{"metadata bad utf8", ids().bytes(7, pb(nil).str(2, "\xc3")), "metadata", n + 4, "invalid UTF-8"},
		{"metadata truncated", ids().bytes(7, pb(nil).raw(0x0a, 0x05)), "metadata", n + 3, "length 5 past the end"},
		{"unknown group", ids().tag(9, wireStartGroup).tag(9, wireEndGroup), "", n, "groups (wire type 3) are not supported"},
		{"unknown wire type 6", ids().tag(9, 6), "", n, "invalid wire type 6"},
		{"unknown truncated fixed32", ids().tag(9, wireFixed32).raw(1, 2), "", n, "truncated fixed32"},
		{"unknown truncated fixed64", ids().tag(9, wireFixed64).raw(1, 2), "", n, "truncated fixed64"},
		{"unknown length past end", ids().tag(9, wireBytes).raw(9), "", n, "past the end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			dst, err := d.Decode(Proto, tc.in, nil)
			if len(dst) != 0 {
				t.Errorf("failed decode returned %d payloads", len(dst))
			}
			checkDecodeError(t, err, Proto, tc.field, tc.off, tc.reason)
		})
	}
}

func TestProtoRoundTrip(t *testing.T) {
	ps := []columnar.Payload{
		samplePayload(100),
		{},
		{
			SeriesKey:  columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: math.MaxUint64},
			Tags:       []string{"", "q:\"\\\n\x00", "u:é€😀"},
			Timestamps: []int64{math.MinInt64, math.MaxInt64, -1, 0, 1, 2, 3},
			Values: []float64{
				math.Float64frombits(0x7ff0000000000002), math.Float64frombits(0xfff8000000000123), math.Inf(-1),
				math.Copysign(0, -1), 5e-324, math.MaxFloat64, 0.1,
			},
		},
	}
	var d Decoder
	var buf []byte
	for i := range ps {
		buf = AppendProto(buf[:0], &ps[i])
		got, err := d.Decode(Proto, buf, nil)
		if err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
		if !equalPayload(&got[0], &ps[i]) {
			t.Fatalf("payload %d: round trip changed it:\n got %+v\nwant %+v", i, got[0], ps[i])
		}
	}
}

// TestAppendProtoGolden freezes the wire bytes of a small payload, so an accidental
// change to the encoder or the field numbers fails here. The bytes were checked against
// protoc --decode_raw.
func TestAppendProtoGolden(t *testing.T) {
	p := columnar.Payload{
		SeriesKey:  columnar.SeriesKey{Org: 1, Metric: 300, Context: 2},
		Tags:       []string{"a:b"},
		Timestamps: []int64{1, 2},
		Values:     []float64{1, -2},
	}
	want := []byte{
		0x08, 0x01, // org_id = 1
		0x10, 0xac, 0x02, // metric_id = 300
		0x18, 0x02, // context_key = 2
		0x22, 0x03, 'a', ':', 'b', // tags
		0x2a, 0x02, 0x01, 0x02, // timestamps, packed
		0x32, 0x10, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0xc0, // values, packed
	}
	if got := AppendProto(nil, &p); string(got) != string(want) {
		t.Errorf("got  % x\nwant % x", got, want)
	}
}

// TestUvarintMatchesBinary checks the word-at-a-time uvarint and the packed-varint count
// against encoding/binary at every position of random bytes: varints of every length,
// non-minimal ones, tenth bytes above 1, and ends closer than ten bytes.
func TestUvarintMatchesBinary(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 2000; round++ {
		b := make([]byte, 1+rng.IntN(40))
		cont := rng.Float64() // the share of bytes with the continuation bit
		for i := range b {
			b[i] = byte(rng.IntN(0x80))
			if rng.Float64() < cont {
				b[i] |= 0x80
			} else if rng.IntN(4) == 0 {
				b[i] = byte(rng.IntN(2)) // a tenth byte of 0 or 1 is valid
			}
		}
		for i := range b {
			v, next := uvarint(b, i)
			ref := b[i:]
			if len(ref) >= binary.MaxVarintLen64 {
				// Ten bytes that all continue are an overflow, however many follow;
				// binary.Uvarint says so only once it sees an eleventh.
				ref = append(ref[:len(ref):len(ref)], 0)
			}
			want, n := binary.Uvarint(ref)
			switch {
			case n > 0 && (next != i+n || v != want):
				t.Fatalf("%x at %d: got %d next %d, want %d next %d", b, i, v, next, want, i+n)
			case n == 0 && next != errVarintTruncated:
				t.Fatalf("%x at %d: got %d next %d, want truncated", b, i, v, next)
			case n < 0 && next != errVarintOverflow:
				t.Fatalf("%x at %d: got %d next %d, want overflow", b, i, v, next)
			}
		}
		ends := 0
		for _, c := range b {
			if c < 0x80 {
				ends++
			}
		}
		if got := varintEnds(b); got != ends {
			t.Fatalf("%x: varintEnds %d, want %d", b, got, ends)
		}
	}
}
