package encoder

import (
	"bytes"
	"math"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// TestWorkedExamples pins the examples of docs/format/series.md byte for byte.
func TestWorkedExamples(t *testing.T) {
	f := func(name string, got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: % x, want % x", name, got, want)
		}
	}
	f("dod", appendTsDoD(nil, []int64{1000, 1010, 1020, 1031}), []byte{0x85, 0x20, 0x20})

	// delta-rle: 100 points every 15 s with one missed scrape, through the writer's choice.
	ts := []int64{0}
	for i := 1; i < 100; i++ {
		d := int64(15000)
		if i == 51 {
			d = 30000
		}
		ts = append(ts, ts[i-1]+d)
	}
	var e blockEncoder
	e.version = Version2
	enc, got := e.appendTs(nil, ts)
	if enc != TsDeltaRLE {
		t.Fatalf("rle example encoded as %s", enc)
	}
	f("delta-rle", got, []byte{0x98, 0x75, 0x32, 0xb0, 0xea, 0x01, 0x01, 0x98, 0x75, 0x30})

	venc, vgot := e.appendValues(nil, []float64{0.5, 0.25, 1.75, 2})
	if venc != ValueDecimal {
		t.Fatalf("decimal example encoded as %s", venc)
	}
	f("decimal", vgot, []byte{0x02, 0x00, 0x00, 0x00, 0x32, 0x19, 0x03, 0x23, 0x70})
}

func TestTsDoDBuckets(t *testing.T) {
	// One dod per bucket boundary, both signs: each must land in its bucket and return.
	var ts []int64
	t0 := int64(0)
	ts = append(ts, t0)
	delta := int64(1 << 40)
	for _, d := range []int64{0, 63, -64, 64, 8191, -8192, 8192, 1<<23 - 1, -1 << 23, 1 << 23, 1<<35 - 1, -1 << 35, 1 << 35} {
		delta += d
		t0 += delta
		ts = append(ts, t0)
	}
	got, err := decodeTsDoD(nil, appendTsDoD(nil, ts), len(ts), ts[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := range ts {
		if got[i] != ts[i] {
			t.Fatalf("ts %d: %d, want %d", i, got[i], ts[i])
		}
	}
}

func TestDecodersRejectShortInput(t *testing.T) {
	ts := []int64{0, 5, 1 << 50, 1<<50 + 1}
	enc := appendTsDoD(nil, ts)
	for l := range len(enc) {
		if _, err := decodeTsDoD(nil, enc[:l], len(ts), 0); err == nil {
			t.Fatalf("dod: %d of %d bytes decoded without error", l, len(enc))
		}
	}
	vals := []float64{1, math.NaN(), math.Copysign(0, -1), 3.25}
	venc := appendGorilla(nil, vals)
	for l := range len(venc) {
		if _, err := decodeGorilla(nil, venc[:l], len(vals)); err == nil {
			t.Fatalf("gorilla: %d of %d bytes decoded without error", l, len(venc))
		}
	}
}

// valueExample is a worked example of docs/format/series.md: values and their payload.
type valueExample struct {
	name    string
	enc     ValueEncoding
	vals    []float64
	payload []byte
}

// workedValueExamples are the v3 value encodings' examples of docs/format/series.md.
func workedValueExamples() []valueExample {
	return []valueExample{
		{name: "dict", enc: ValueDict,
			vals: []float64{0.4666666666666667, 0.2, 0.4666666666666667, 0.4666666666666667, 0.2, 1.0 / 15, 0.2, 0.2},
			payload: []byte{0x03, 0x03, 0x18,
				0x11, 0x9a, 0xde, 0x11, 0x99, 0xdd, 0x11, 0x99, 0xdd, 0x11, 0x99, 0xdd,
				0x11, 0x99, 0xdd, 0x11, 0x99, 0xdd, 0xb1, 0xc9, 0xdd, 0x3f, 0x3f, 0x3f,
				0x00, 0x00, 0x01, 0x02, 0x9a, 0x45}},
		{name: "alp-rd", enc: ValueALPRD,
			vals: []float64{16.126976521322472, 21.587782805429864, 17.319327731092436, 16.828703703703702},
			payload: []byte{0x33, 0x01, 0x06, 0x08, 0x00,
				0x04, 0x10, 0x31, 0x10, 0xce, 0x13, 0x76, 0x59, 0xe3, 0xbc, 0x59, 0xe3, 0xbc,
				0xa8, 0xdf, 0xbb, 0x28, 0xdf, 0xbb, 0x0d, 0x42, 0x5e, 0xd0, 0x97, 0xb4, 0x20}},
		{name: "bits-delta", enc: ValueBitsDelta,
			vals:    []float64{1.0, 1.0000000000000002, 1.0000000000000007, 1.0000000000000004},
			payload: []byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, 0x00, 0x01, 0x01, 0x02, 0xb0}},
	}
}

// workedFile is the two-series v3 file of docs/format/series.md, "A whole file": series
// {1 7 1} with tag host:a and values 1, 2, 3, and series {1 7 2} with values 5, 5, 5, both
// at ts 1000, 2000, 3000, so they share one block.
var workedFile = []byte{
	0x54, 0x4c, 0x53, 0x46, 0x03, 0x00, 0x00, 0x00, // header
	0x03, 0xd0, 0x0f, 0xd0, 0x0f, 0x02, 0x00, 0x02, 0x04, 0x08, 0x02, 0x08, // block header
	0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x02, 0x18, // column 0: decimal
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x40, // column 1: const 5
	0x13, 0xb8, 0x1e, 0x67, // block crc32c
	0x02, 0x01, 0x00, 0x1a, // index header
	0x20, 0x03, 0xd0, 0x0f, 0xd0, 0x0f, 0x02, // block 0
	0x01, 0x07, 0x01, 0x01, 0x06, 'h', 'o', 's', 't', ':', 'a', 0x01, 0x02, // series 0
	0x00, 0x00, 0x00, 0x00, 0x01, 0x00, // series 1
	0x28, 0, 0, 0, 0, 0, 0, 0, 0x1e, 0, 0, 0, 0, 0, 0, 0, // trailer: index offset, length
	0x4e, 0xdd, 0x2b, 0xc1, 0x03, 0x00, 0x00, 0x00, 'T', 'L', 'S', 'F',
}

// TestWorkedExamplesV3 pins the v3 examples of docs/format/series.md byte for byte: each
// value payload as its encoder writes it (the dictionary's through the writer's choice),
// each decoding back to its values, and a whole two-series file.
func TestWorkedExamplesV3(t *testing.T) {
	for _, ex := range workedValueExamples() {
		var got []byte
		switch ex.enc {
		case ValueDict:
			var c columnEncoder
			var enc ValueEncoding
			if enc, got = c.appendColumn(nil, ex.vals, true); enc != ValueDict {
				t.Fatalf("dict example encoded as %s", enc)
			}
		case ValueALPRD:
			var a alprdEncoder
			if a.analyze(ex.vals) != len(ex.payload) {
				t.Fatalf("alp-rd example sized %d", a.analyze(ex.vals))
			}
			got = a.appendTo(nil, ex.vals)
		case ValueBitsDelta:
			var b bitsDeltaEncoder
			b.analyze(ex.vals)
			got = b.appendTo(nil, ex.vals)
		}
		if !bytes.Equal(got, ex.payload) {
			t.Fatalf("%s: % x, want % x", ex.name, got, ex.payload)
		}
		var bd blockDecoder
		vals, err := bd.decodeColumn(nil, ex.enc, ex.payload, len(ex.vals), Version3)
		if err != nil {
			t.Fatalf("%s: %v", ex.name, err)
		}
		for i := range vals {
			if math.Float64bits(vals[i]) != math.Float64bits(ex.vals[i]) {
				t.Fatalf("%s: value %d decodes to %v, want %v", ex.name, i, vals[i], ex.vals[i])
			}
		}
	}
	ts := []int64{1000, 2000, 3000}
	file := encodeFile(t, []testSeries{
		{Key: columnar.SeriesKey{Org: 1, Metric: 7, Context: 1}, Tags: []string{"host:a"}, Ts: ts, Values: []float64{1, 2, 3}},
		{Key: columnar.SeriesKey{Org: 1, Metric: 7, Context: 2}, Ts: ts, Values: []float64{5, 5, 5}},
	})
	if !bytes.Equal(file, workedFile) {
		t.Fatalf("file: % x, want % x", file, workedFile)
	}
}
