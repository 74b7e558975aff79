package columnar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
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
			err := dec.DecodeFrame(&sp, f, b[f.Offset:f.Offset+uint64(f.Length)], DecodeOptions{Tags: func(SeriesKey, Provenance, []string) {}}, &c, &fs)
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

// fuzzSegmentBytes is a small valid segment for seeds.
func fuzzSegmentBytes(t testing.TB, seed uint64, frameRows int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	ps, srcs := genPayloads(rng, 5)
	w := NewSegmentWriter(Header{Topic: "t", Partition: 1, StartOffset: srcs[0].Offset}, DefaultShardMap(), frameRows)
	for i := range ps {
		if err := w.Add(srcs[i], ps[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzFooter decodes arbitrary footer bytes, past the trailer's checksum. Invariants: it
// never panics; a footer that decodes re-encodes to the same bytes, and its frames tile
// [headerEnd, dataEnd) inside the limits, each naming a shard that exists.
func FuzzFooter(f *testing.F) {
	// Seeds with few frames: the fuzzer minimizes every new input byte by byte, which
	// takes minutes on a footer of many frames.
	for _, seed := range []uint64{1, 2, 3} {
		b := fuzzSegmentBytes(f, seed, 1000)
		seg, err := parseSegment("x", int64(len(b)), func(off, n int64) ([]byte, error) { return b[off : off+n], nil })
		if err != nil {
			f.Fatal(err)
		}
		fb := seg.Footer.Marshal(nil)
		f.Add(fb, uint64(seg.Header.HeaderSize()), uint64(len(b)-TrailerSize-len(fb)))
	}
	f.Add([]byte{}, uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, headerEnd, dataEnd uint64) {
		var ft Footer
		if err := ft.Unmarshal(b, headerEnd, dataEnd); err != nil {
			return
		}
		if got := ft.Marshal(nil); !bytes.Equal(got, b) {
			t.Fatalf("footer re-encodes to %d bytes that differ from its %d", len(got), len(b))
		}
		next := headerEnd
		for i, fr := range ft.Frames {
			if fr.Offset != next || fr.Length <= FrameHeaderSize || fr.Length > MaxFrameBytes || fr.RawLength > MaxFrameBytes || int(fr.Shard) >= len(ft.Shards) {
				t.Fatalf("frame %d %+v accepted after offset %d", i, fr, next)
			}
			next += uint64(fr.Length)
		}
		if next != dataEnd {
			t.Fatalf("frames end at %d, data ends at %d", next, dataEnd)
		}
	})
}

// FuzzFrame decodes an arbitrary frame body (the bytes after the frame header), with a
// correct length and checksum in front, so the fuzzer reaches zstd and the payload
// parser. Invariants: it never panics and never allocates past the footer's raw length;
// an error is a CorruptError at the frame's offset; a frame that decodes yields exactly
// the footer's row count, every group's tags parse, and decoding it again gives the same
// rows.
func FuzzFrame(f *testing.F) {
	for _, seed := range []uint64{1, 2} {
		b := fuzzSegmentBytes(f, seed, 64)
		seg, err := parseSegment("x", int64(len(b)), func(off, n int64) ([]byte, error) { return b[off : off+n], nil })
		if err != nil {
			f.Fatal(err)
		}
		for _, fr := range seg.Footer.Frames[:2] {
			f.Add(b[fr.Offset+FrameHeaderSize:fr.Offset+uint64(fr.Length)], fr.RawLength, fr.Rows, fr.Groups)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, rawLen, rows, groups uint32) {
		rawLen %= 1 << 20 // the footer caps it (MaxFrameBytes); keep fuzzing fast
		fb := binary.LittleEndian.AppendUint32(nil, uint32(len(body)))
		fb = binary.LittleEndian.AppendUint32(fb, crc(body))
		fb = append(fb, body...)
		info := FrameInfo{Offset: 77, Length: uint32(len(fb)), RawLength: rawLen, Rows: rows, Groups: groups, MinTs: math.MinInt64, MaxTs: math.MaxInt64}
		seg := &Segment{Key: "x.tseg"}
		sp := Split{Seg: seg, Frames: []FrameInfo{info}}
		dec := NewFrameDecoder()
		defer dec.Close()
		var c Columns
		var fs FrameStats
		ntags := 0
		err := dec.DecodeFrame(&sp, info, fb, DecodeOptions{Tags: func(_ SeriesKey, _ Provenance, tags []string) { ntags += len(tags) }}, &c, &fs)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Offset != 77 {
				t.Fatalf("error %v is not a CorruptError at byte 77", err)
			}
			return
		}
		if c.Len() != int(rows) || cap(dec.raw) > int(rawLen) && rawLen > 0 {
			t.Fatalf("decoded %d rows (footer %d), raw buffer %d (footer %d)", c.Len(), rows, cap(dec.raw), rawLen)
		}
		var again Columns
		if err := dec.DecodeFrame(&sp, info, fb, DecodeOptions{}, &again, &fs); err != nil {
			t.Fatalf("second decode: %v", err)
		}
		if !slices.Equal(c.Ts, again.Ts) || !slices.Equal(c.Offset, again.Offset) || len(c.Value) != len(again.Value) {
			t.Fatal("second decode differs")
		}
		for i := range c.Value {
			if math.Float64bits(c.Value[i]) != math.Float64bits(again.Value[i]) {
				t.Fatalf("row %d value differs", i)
			}
		}
		// The keyed decode of the same frame gives the same rows: wide, and narrow over
		// the rows' own span when it fits.
		var g testIDs
		layouts := []KeyLayout{{Wide: true}}
		win := AllTime
		if n := len(c.Ts); n > 0 {
			win = Window{From: slices.Min(c.Ts), To: slices.Max(c.Ts) + 1}
			if l := LayoutFor(win); !l.Wide {
				layouts = append(layouts, l)
			}
		}
		for _, l := range layouts {
			var k Keyed
			ps := &memSink{}
			pw := ps.Writer()
			if err := dec.DecodeFrameKeyed(&sp, info, fb, DecodeOptions{Window: win, Layout: l, Groups: g.Assign, Points: pw}, &k, &fs); err != nil {
				t.Fatalf("keyed decode: %v", err)
			}
			if err := pw.Close(); err != nil {
				t.Fatal(err)
			}
			if k.Len() > int(groups) {
				t.Fatalf("keyed decode: %d rows for %d groups", k.Len(), groups)
			}
			row := 0
			for i := range k.Key {
				var tc int64
				if l.Wide {
					tc = k.Ts[i]
				}
				sid, first := l.Split(k.Key[i], tc)
				pts, err := ps.Points(k.Ref[i], int(k.Count[i])*RunPointBytes)
				if err != nil || k.Count[i] == 0 {
					t.Fatalf("keyed row %d: %d points: %v", i, k.Count[i], err)
				}
				for j := range int(k.Count[i]) {
					ts, bits := RunPoint(pts, j)
					if row >= c.Len() {
						t.Fatalf("keyed decode: more points than %d", c.Len())
					}
					key := SeriesKey{Org: c.Org[row], Metric: c.Metric[row], Context: c.Context[row]}
					if j == 0 && first != ts || g.Key(sid) != key || ts != c.Ts[row] || bits != math.Float64bits(c.Value[row]) || g.Provenance(k.Gid[i]).Offset != c.Offset[row] {
						t.Fatalf("keyed row %d point %d differs", i, j)
					}
					row++
				}
			}
			if row != c.Len() {
				t.Fatalf("keyed decode: %d points, want %d", row, c.Len())
			}
		}
	})
}
