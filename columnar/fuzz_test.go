package columnar

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// FuzzSegment feeds arbitrary bytes to the segment reader: header, trailer, footer and
// every frame. Invariants: it never panics; a segment that opens has frames inside the
// file; decoding a frame either fails with a CorruptError or yields exactly the footer's
// row count. Seeds: valid segments (testdata/fuzz/FuzzSegment holds more).
func FuzzSegment(f *testing.F) {
	for _, seed := range []uint64{1, 2} {
		rng := rand.New(rand.NewPCG(seed, seed))
		ps, srcs := genPayloads(rng, 5)
		w := NewSegmentWriter(Header{Topic: "t", Partition: 1, StartOffset: srcs[0].Offset}, DefaultShardMap(), 64)
		for i := range ps {
			if err := w.Add(srcs[i], ps[i:i+1]); err != nil {
				f.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("TSEG"))
	f.Fuzz(func(t *testing.T, b []byte) {
		seg, err := parseSegment("x.tseg", int64(len(b)), func(off, n int64) ([]byte, error) { return b[off : off+n], nil })
		if err != nil {
			return
		}
		dec := NewFrameDecoder()
		defer dec.Close()
		for _, f := range seg.Footer.Frames {
			if f.Offset+uint64(f.Length) > uint64(len(b)) {
				t.Fatalf("frame %+v outside a %d-byte file", f, len(b))
			}
			sp := Split{Seg: seg, Frames: []FrameInfo{f}}
			var c Columns
			var fs FrameStats
			err := dec.DecodeFrame(&sp, f, b[f.Offset:f.Offset+uint64(f.Length)], 0, AllTime, false, &c, &fs, func(SeriesKey, Source, []string) {})
			if err != nil {
				continue
			}
			if c.Len() != int(f.Rows) {
				t.Fatalf("frame decoded %d rows, footer says %d", c.Len(), f.Rows)
			}
		}
	})
}

// FuzzParseCSVPoint: the CSV row parser never panics, and a parsed row prints back to a
// row that parses to the same point, bit for bit.
func FuzzParseCSVPoint(f *testing.F) {
	for _, s := range []string{"1,2,3,4,5", "4294967295,18446744073709551615,0,-1,NaN", "0,0,0,0,-0", "1,1,1,1,+Inf", "1,1,1,1,1e-320", "1,2,3,4", ",,,,", "1,2,3,4,0x1p-2"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		k, ts, v, err := ParseCSVPoint(line)
		if err != nil {
			return
		}
		out := AppendCSVPoint(nil, k, ts, v)
		k2, ts2, v2, err := ParseCSVPoint(bytes.TrimSuffix(out, []byte("\n")))
		if err != nil || k2 != k || ts2 != ts || (math.Float64bits(v2) != math.Float64bits(v) && !(v != v && v2 != v2)) {
			t.Fatalf("%q → %q → %+v %d %v (%v)", line, out, k2, ts2, v2, err)
		}
	})
}
