package columnar

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/tailor-metrics/tailor/storage"
)

// Fuzz targets of the segment format, from whole files down to one frame's payload. Run
// them with `make fuzz` (FUZZTIME each, 5 s by default), or one for a while before
// changing a reader:
//
//	go test -run '^$' -fuzz '^FuzzPointReader$' -fuzztime 60s ./columnar/
//
// Invariants, on every input:
//   - nothing panics, and every error is a *CorruptSegmentError (any other error type fails);
//   - nothing sizes memory by a claim the bytes cannot back: a reader's memory bound
//     stays within what the file's bytes can expand to (readerBoundFor);
//   - what decodes is what the footer says: its row count, its tags, the same rows
//     again on a second decode, and the same points through keyed reads.
//
// Seeds are small: the frozen fixtures (testdata/segment-v1.tseg, 605 bytes, and
// segment-v2.tseg), their frames, and the hostile segments made from version 1
// (testdata/hostile/). The fuzzer minimizes every
// new input it finds; with the seeds of a few KiB it used to have, one minimization took
// most of a 45 s run (4 to 22 executions), and with these a 5 s run executes thousands.

// fuzzSeedSegments are the fixtures and the hostile segments.
func fuzzSeedSegments(f *testing.F) [][]byte {
	f.Helper()
	out := fixtures(f)
	for _, tc := range hostileCases {
		b, err := os.ReadFile(hostileDir + "/" + tc.name + ".tseg")
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// fixtures are the frozen fixtures, version 1 first.
func fixtures(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	for _, p := range []string{fixturePath, fixtureV2Path} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// requireCorrupt fails unless err is nil or a *CorruptSegmentError.
func requireCorrupt(t *testing.T, err error) {
	t.Helper()
	var ce *CorruptSegmentError
	if err != nil && !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *CorruptSegmentError", err, err)
	}
}

// FuzzSegment opens arbitrary bytes as a segment and decodes each frame on its own.
func FuzzSegment(f *testing.F) {
	for _, b := range fuzzSeedSegments(f) {
		f.Add(b)
	}
	f.Add([]byte("TSEG"))
	f.Fuzz(func(t *testing.T, b []byte) {
		seg, err := parseSegment("x.tseg", int64(len(b)), func(off, n int64) ([]byte, error) { return b[off : off+n], nil })
		requireCorrupt(t, err)
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
			err := dec.DecodeFrame(&sp, f, b[f.Offset:f.Offset+uint64(f.Length)], DecodeOptions{Window: AllTime, Tags: func(SeriesKey, Provenance, []string) {}}, &c, &fs)
			requireCorrupt(t, err)
			if err == nil && c.Len() != int(f.Rows) {
				t.Fatalf("frame decoded %d rows, footer says %d", c.Len(), f.Rows)
			}
		}
	})
}

// FuzzPointReader reads arbitrary bytes as a stored segment through OpenSegment and a
// PointReader, as a run does: footer counts size the reader's batches before any frame
// is read, which decoding frames alone (FuzzSegment) never reaches.
func FuzzPointReader(f *testing.F) {
	for _, b := range fuzzSeedSegments(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkPointReader(t, b)
	})
}

// FuzzSegmentCounts changes one count or length of a frozen fixture's footer (version 1
// or 2) to value and writes the segment again with every checksum right, so that each
// input reaches the checks of the counts instead of stopping at a checksum; then it
// reads the segment as FuzzPointReader does.
func FuzzSegmentCounts(f *testing.F) {
	for version := range uint8(2) {
		for field := range uint8(countFields) {
			for _, v := range []uint64{0, 1, 7, math.MaxUint16 + 1, MaxFrameRows + 1, MaxFrameBytes, math.MaxUint32, math.MaxUint64} {
				f.Add(version, field, uint8(0), v)
			}
		}
	}
	fx := fixtures(f)
	f.Fuzz(func(t *testing.T, version, field, frame uint8, v uint64) {
		b := rebuildSegment(t, fx[int(version)%len(fx)], nil, func(ft *Footer) { setCount(ft, field, int(frame)%len(ft.Frames), v) })
		checkPointReader(t, b)
	})
}

// countFields is the number of footer fields setCount changes.
const countFields = 12

// setCount sets footer field number field (of frame i for frame fields) to v.
func setCount(ft *Footer, field uint8, i int, v uint64) {
	fr := &ft.Frames[i]
	switch field % countFields {
	case 0:
		ft.Rows = v
	case 1:
		ft.Records = v
	case 2:
		ft.EndOffset = int64(v)
	case 3:
		fr.Rows = uint32(v)
		ft.Rows = ft.Rows - uint64(fr.Rows) + uint64(uint32(v))
	case 4:
		fr.Groups = uint32(v)
	case 5:
		fr.RawLength = uint32(v)
	case 6:
		fr.Length = uint32(v)
	case 7:
		fr.Offset = v
	case 8:
		fr.Shard = uint32(v)
	case 9:
		fr.MinTs, fr.MaxTs = int64(v), int64(v>>1)
	case 10:
		ft.Shards = append(ft.Shards, strings.Repeat("s", int(v%(2*math.MaxUint16))))
	case 11:
		ft.Frames = append(ft.Frames, ft.Frames[:v%4]...)
	}
}

// checkPointReader opens b as a stored segment and reads it with a PointReader, points
// and keyed rows.
func checkPointReader(t *testing.T, b []byte) {
	t.Helper()
	ctx := context.Background()
	st := storage.NewMem("fuzz")
	const key = "segments/00/2025112400/t-0-00000000000000000000.tseg"
	if err := st.Put(ctx, key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	seg, err := OpenSegment(ctx, st, key, -1)
	requireCorrupt(t, err)
	if err != nil {
		return
	}
	segs := []*Segment{seg}
	var splits []Split
	for _, sh := range seg.Footer.Shards {
		splits = append(splits, PlanSplits(segs, sh, AllTime, 0)...)
	}
	for _, keyed := range []bool{false, true} {
		opt := ReadOptions{BatchRows: 1 << 10}
		if keyed {
			var ids testIDs
			opt.Groups, opt.Layout, opt.Points, opt.Tags = ids.Assign, KeyLayout{Wide: true}, &memSink{}, func(SeriesKey, Provenance, []string) {}
		}
		r := NewPointReader(ctx, st, splits, Topics(segs), opt)
		if m := r.ReadStats().Memory; m.BoundBytes > readerBoundFor(len(b), opt.BatchRows) {
			t.Fatalf("a %d-byte segment makes a reader bound of %d bytes", len(b), m.BoundBytes)
		}
		var rows uint64
		for r.Next() {
			rows += uint64(r.RecordBatch().NumRows())
		}
		err := r.Err()
		r.Release()
		requireCorrupt(t, err)
		if err == nil && !keyed && rows != seg.Footer.Rows {
			t.Fatalf("read %d rows, footer says %d", rows, seg.Footer.Rows)
		}
	}
}

// readerBoundFor is the most memory a reader of one reader goroutine may plan for a
// segment of n bytes: its frames' raw lengths are at most maxZstdExpansion times their
// bytes, and their rows at most a 16th of that.
func readerBoundFor(n, batchRows int) int64 {
	// A raw payload holds 16 bytes a row at least, and a version-2 decoder holds the
	// sections too (sectionBytes: 17 bytes a row and one).
	raw := int64(maxZstdExpansion) * int64(n)
	raw += raw*17/16 + 1
	batch := (int64(batchRows) + raw/rowRawBytes + batchRowsGranule) * pointBytes
	return (int64(n) + int64(pageSize) + mmapDropBytes) + raw + 2*batch
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

// fixtureFrames are a frozen fixture's frames: the footer entries and the bytes.
func fixtureFrames(f *testing.F, path string) (*Segment, []byte) {
	f.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return parsedSegment(f, b), b
}

// FuzzFooter decodes arbitrary footer bytes, past the trailer's checksum. Invariants: it
// never panics; a footer that decodes re-encodes to the same bytes, its frames tile
// [headerEnd, dataEnd) inside the limits, each naming a shard that exists, and their
// counts are what their lengths can hold.
func FuzzFooter(f *testing.F) {
	seg, b := fixtureFrames(f, fixtureV2Path)
	fb := seg.Footer.Marshal(nil)
	f.Add(fb, uint64(seg.Header.headerSize()), uint64(len(b)-TrailerSize-len(fb)))
	f.Add([]byte{}, uint64(0), uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, headerEnd, dataEnd uint64) {
		var ft Footer
		if err := ft.Unmarshal(b, headerEnd, dataEnd); err != nil {
			return
		}
		if got := ft.Marshal(nil); !bytes.Equal(got, b) {
			t.Fatalf("footer re-encodes to %d bytes that differ from its %d", len(got), len(b))
		}
		next, rows := headerEnd, uint64(0)
		for i, fr := range ft.Frames {
			if fr.Offset != next || fr.Length <= FrameHeaderSize || fr.Length > MaxFrameBytes || fr.RawLength > MaxFrameBytes || int(fr.Shard) >= len(ft.Shards) {
				t.Fatalf("frame %d %+v accepted after offset %d", i, fr, next)
			}
			g, r := uint64(fr.Groups), uint64(fr.Rows)
			if g == 0 || r < g || r > MaxFrameRows || 8+40*g+16*r > uint64(fr.RawLength) || uint64(fr.RawLength) > maxZstdExpansion*uint64(fr.Length-FrameHeaderSize) {
				t.Fatalf("frame %d %+v: counts accepted that its lengths cannot hold", i, fr)
			}
			next += uint64(fr.Length)
			rows += r
		}
		if next != dataEnd || rows != ft.Rows {
			t.Fatalf("frames end at %d holding %d rows, data ends at %d, footer says %d rows", next, rows, dataEnd, ft.Rows)
		}
	})
}

// FuzzFrame decodes an arbitrary frame body (the bytes after the frame header) of a
// version-1 or version-2 segment, with a correct length and checksum in front, so the
// fuzzer reaches zstd, the value codec and the payload parser. Seeds: the fixtures'
// frames.
func FuzzFrame(f *testing.F) {
	for i, path := range []string{fixturePath, fixtureV2Path} {
		seg, b := fixtureFrames(f, path)
		for _, fr := range seg.Footer.Frames {
			f.Add(uint8(i), b[fr.Offset+FrameHeaderSize:fr.Offset+uint64(fr.Length)], fr.RawLength, fr.Rows, fr.Groups)
		}
	}
	f.Add(uint8(0), zstdRLEBomb(3), uint32(130), uint32(1), uint32(1))
	f.Fuzz(func(t *testing.T, version uint8, body []byte, rawLen, rows, groups uint32) {
		checkFrame(t, 1+uint16(version%2), body, rawLen%(1<<20), rows, groups) // keep fuzzing fast: 1 MiB raw at most
	})
}

// FuzzFrameRaw builds an arbitrary raw frame payload into a frame of either version, so
// that the fuzzer changes the payload's counts and lengths (groups, rows, each group's
// count, tag counts and lengths) and its value XORs directly, which FuzzFrame reaches
// only through zstd and the value codec. Seeds: the fixture's raw payloads.
func FuzzFrameRaw(f *testing.F) {
	seg, b := fixtureFrames(f, fixturePath)
	dec := NewFrameDecoder()
	defer dec.Close()
	for _, fr := range seg.Footer.Frames {
		if _, err := dec.decode("x", 1, fr, b[fr.Offset:fr.Offset+uint64(fr.Length)], &ReadTimers{}); err != nil {
			f.Fatal(err)
		}
		f.Add(slices.Clone(dec.raw), fr.Rows, fr.Groups)
	}
	f.Fuzz(func(t *testing.T, raw []byte, rows, groups uint32) {
		checkFrame(t, 1, zstdEncoder.EncodeAll(raw, nil), uint32(len(raw)), rows, groups)
		if body := v2Body(raw, rows, groups); body != nil {
			checkFrame(t, 2, body, uint32(len(raw)), rows, groups)
		}
	})
}

// v2Body is the version-2 frame body of a version-1 raw payload whose footer entry
// claims rows and groups, or nil if the payload cannot hold their sections or counts.
func v2Body(raw []byte, rows, groups uint32) []byte {
	r, g := uint64(rows), uint64(groups)
	at := frameRawHeader + 32*g
	if r > MaxFrameRows || g > r || at+16*r+8*g > uint64(len(raw)) {
		return nil
	}
	le := binary.LittleEndian
	col := func(off uint64) []uint64 {
		xs := make([]uint64, r)
		for i := range xs {
			xs[i] = le.Uint64(raw[off+8*uint64(i):])
		}
		return xs
	}
	ts, vals := col(at), col(at+8*r)
	counts := make([]uint32, g)
	var sum uint64
	for i := range counts {
		counts[i] = le.Uint32(raw[at+16*r+4*g+4*uint64(i):])
		if counts[i] == 0 {
			return nil
		}
		sum += uint64(counts[i])
	}
	if sum != r {
		return nil // the encoder walks the counts: the writer never has them wrong
	}
	rest := append(slices.Clip(raw[:at]), raw[at+16*r:]...)
	tc, td, vc, vd := encodeColumns(ts, counts, vals)
	return v2FrameBody(zstdEncoder.EncodeAll(rest, nil), tc, td, vc, vd, len(raw)%2 == 1)
}

// v2FrameBody lays out a version-2 frame body from zstd bytes and the four sections,
// with the value bytes stored as they are, or as an s2 block.
func v2FrameBody(zs, tc, td, vc, vd []byte, valuesInS2 bool) []byte {
	le := binary.LittleEndian
	head := s2.Encode(nil, slices.Concat(tc, td, vc))
	body := le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, uint32(len(zs))), uint32(len(head))), uint32(len(td)))
	if valuesInS2 {
		vd = s2.Encode(nil, vd)
		body = append(body, valuesS2)
	} else {
		body = append(body, valuesStored)
	}
	return slices.Concat(body, zs, head, vd)
}

// checkFrame decodes the frame of compressed bytes body whose footer entry claims
// rawLen, rows and groups. Invariants: an error is a CorruptSegmentError at the frame's offset;
// a frame that decodes never held more than rawLen raw bytes, yields exactly rows rows,
// decodes again to the same rows, and its keyed decode gives the same points.
func checkFrame(t *testing.T, version uint16, body []byte, rawLen, rows, groups uint32) {
	t.Helper()
	fb := binary.LittleEndian.AppendUint32(nil, uint32(len(body)))
	fb = binary.LittleEndian.AppendUint32(fb, crc(body))
	fb = append(fb, body...)
	info := FrameInfo{Offset: 77, Length: uint32(len(fb)), RawLength: rawLen, Rows: rows, Groups: groups, MinTs: math.MinInt64, MaxTs: math.MaxInt64}
	seg := &Segment{Key: "x.tseg", Header: Header{Version: version}}
	sp := Split{Seg: seg, Frames: []FrameInfo{info}}
	dec := NewFrameDecoder()
	defer dec.Close()
	var c Columns
	var fs FrameStats
	ntags := 0
	err := dec.DecodeFrame(&sp, info, fb, DecodeOptions{Window: AllTime, Tags: func(_ SeriesKey, _ Provenance, tags []string) { ntags += len(tags) }}, &c, &fs)
	if err != nil {
		var ce *CorruptSegmentError
		if !errors.As(err, &ce) || ce.Offset != 77 {
			t.Fatalf("error %v is not a CorruptSegmentError at byte 77", err)
		}
		return
	}
	if c.Len() != int(rows) || cap(dec.raw) > int(rawLen) {
		t.Fatalf("decoded %d rows (footer %d), raw buffer %d (footer %d)", c.Len(), rows, cap(dec.raw), rawLen)
	}
	var again Columns
	if err := dec.DecodeFrame(&sp, info, fb, DecodeOptions{Window: AllTime}, &again, &fs); err != nil {
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
		win = TimeRange{From: slices.Min(c.Ts), To: slices.Max(c.Ts) + 1}
		if l := LayoutFor(win); !l.Wide {
			layouts = append(layouts, l)
		}
	}
	for _, l := range layouts {
		var k Keyed
		ps := &memSink{}
		pw := ps.Writer()
		if err := dec.decodeFrameKeyed(&sp, info, fb, DecodeOptions{Window: win, Layout: l, Groups: g.Assign, Points: pw}, &k, &fs); err != nil {
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
}
