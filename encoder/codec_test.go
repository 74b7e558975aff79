package encoder

import (
	"bytes"
	"math"
	"testing"
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
	vals := []float64{1, math.NaN(), -0.0, 3.25}
	venc := appendGorilla(nil, vals)
	for l := range len(venc) {
		if _, err := decodeGorilla(nil, venc[:l], len(vals)); err == nil {
			t.Fatalf("gorilla: %d of %d bytes decoded without error", l, len(venc))
		}
	}
}
