package columnar

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestXORCodeIsSmallest checks xorCode against a search of every window: for each range
// of non-zero bytes, the chosen window holds it and no window that holds it is smaller.
func TestXORCodeIsSmallest(t *testing.T) {
	for lo := 0; lo < 8; lo++ {
		for hi := lo + 1; hi <= 8; hi++ {
			w := xorWindows[xorCode[lo][hi]]
			if int(w.lo) > lo || int(w.lo+w.n) < hi {
				t.Fatalf("bytes [%d,%d): window %+v does not hold them", lo, hi, w)
			}
			for c, o := range xorWindows[1:] {
				if int(o.lo) <= lo && int(o.lo+o.n) >= hi && o.n < w.n {
					t.Fatalf("bytes [%d,%d): window %+v, but code %d %+v is smaller", lo, hi, w, c+1, o)
				}
			}
		}
	}
	if xorCode[8][0] != 0 || xorWindows[0].n != 0 {
		t.Fatal("a XOR of zero must be code 0, of no bytes")
	}
}

// codecCases are column values that reach every code and edge: zero, every byte alone,
// all ones, the sign bit, NaN and infinities' bits, the extremes of int64, and random
// values of each width.
func codecCases() [][]uint64 {
	var one []uint64
	for b := 0; b < 8; b++ {
		one = append(one, 0xab<<(8*b))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var widths []uint64
	for n := 0; n <= 64; n++ {
		widths = append(widths, rng.Uint64()>>(64-n)|1<<63>>(64-max(n, 1)), rng.Uint64()<<(64-n)>>(64-n))
	}
	return [][]uint64{
		{0},
		{math.MaxUint64},
		one,
		{1 << 63, math.Float64bits(math.NaN()), math.Float64bits(math.Inf(1)), math.Float64bits(math.Inf(-1)), 0, 0, 1},
		{uint64(1) << 63, math.MaxInt64, 0, math.MaxInt64, 1 << 63},
		widths,
	}
}

// encodeColumns codes ts (as version 1's ts section, in groups of counts) and xs with the
// version-2 codecs and returns the four sections.
func encodeColumns(ts []uint64, counts []uint32, xs []uint64) (tctrl, tdata, vctrl, vdata []byte) {
	n := nibbleBytes(len(ts))
	te := tsEncoder{nibbleEncoder: nibbleEncoder{ctrl: make([]byte, n), data: make([]byte, 0, 8*len(ts)+nibbleSlack)}, counts: counts}
	// Add in uneven pieces, as the builder's chunks do.
	for rest := ts; len(rest) > 0; {
		k := min(len(rest), 1+len(rest)/3)
		te.add(rest[:k])
		rest = rest[k:]
	}
	ve := xorEncoder{nibbleEncoder{ctrl: make([]byte, nibbleBytes(len(xs))), data: make([]byte, 0, 8*len(xs)+nibbleSlack)}}
	ve.add(xs)
	return te.ctrl, te.data, ve.ctrl, ve.data
}

func countBytes(counts []uint32) []byte {
	var b []byte
	for _, c := range counts {
		b = binary.LittleEndian.AppendUint32(b, c)
	}
	return b
}

func decodeColumns(t *testing.T, rows int, counts []uint32, tctrl, tdata, vctrl, vdata []byte) (ts, xs []uint64) {
	t.Helper()
	tb, vb := make([]byte, 8*rows), make([]byte, 8*rows)
	if err := decodeTs(tb, rows, countBytes(counts), tctrl, tdata); err != nil {
		t.Fatal(err)
	}
	if err := decodeXORs(vb, rows, vctrl, vdata); err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		ts = append(ts, binary.LittleEndian.Uint64(tb[8*i:]))
		xs = append(xs, binary.LittleEndian.Uint64(vb[8*i:]))
	}
	return ts, xs
}

// TestColumnCodecsRoundTrip codes the edge cases as both columns, in groups of every
// size from 1, and checks that they decode to the same bits.
func TestColumnCodecsRoundTrip(t *testing.T) {
	for _, col := range codecCases() {
		for g := 1; g <= len(col); g++ {
			var counts []uint32
			for left := len(col); left > 0; left -= g {
				counts = append(counts, uint32(min(g, left)))
			}
			tc, td, vc, vd := encodeColumns(col, counts, col)
			ts, xs := decodeColumns(t, len(col), counts, tc, td, vc, vd)
			if !slices.Equal(ts, col) || !slices.Equal(xs, col) {
				t.Fatalf("groups of %d: %x decode to ts %x and values %x", g, col, ts, xs)
			}
		}
	}
}

// TestTsCodecSizes pins what the ts codec is for: a regular series stores no bytes past
// its first ts and first delta, and a jitter of under ±64 ms one byte a point.
func TestTsCodecSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 1000
	var regular, jittery []uint64
	prev := int64(0)
	for i := range n {
		ts := 1_763_942_400_000 + int64(i)*10_000
		jt := ts + rng.Int64N(32)
		if i == 0 {
			regular, jittery = append(regular, uint64(ts)), append(jittery, uint64(jt))
		} else {
			regular, jittery = append(regular, 10_000), append(jittery, uint64(jt-prev))
		}
		prev = jt
	}
	counts := []uint32{n}
	if _, td, _, _ := encodeColumns(regular, counts, regular); len(td) != 6+2 {
		t.Fatalf("a regular series of %d points stores %d ts bytes, want 8 (its first ts and first delta)", n, len(td))
	}
	if _, td, _, _ := encodeColumns(jittery, counts, jittery); len(td) > 6+2+n-2 {
		t.Fatalf("a series with 32 ms of jitter stores %d ts bytes for %d points, want at most one a point", len(td), n)
	}
}

// TestColumnCodecsRejectBadSections damages valid sections one way at a time: each must
// fail with an error that says what, never decode to other values or panic.
func TestColumnCodecsRejectBadSections(t *testing.T) {
	ts := []uint64{1_000_000, 10_000, 10_003, 9_998, 5}
	xs := []uint64{math.Float64bits(1.5), 0, 0xff << 48, 1, math.MaxUint64}
	counts := []uint32{3, 2}
	tc, td, vc, vd := encodeColumns(ts, counts, xs)
	rows := len(ts)
	cases := []struct {
		name        string
		counts      []uint32
		tc, td      []byte
		vc, vd      []byte
		ts, wantErr string
	}{
		{name: "ts code 9", tc: append([]byte{tc[0]&0xf0 | 9}, tc[1:]...), td: td, ts: "bad codes 9"},
		{name: "ts data short", tc: tc, td: td[:len(td)-1], ts: "codes hold"},
		{name: "ts data long", tc: tc, td: append(slices.Clone(td), 0), ts: "codes hold"},
		{name: "ts controls short", tc: tc[:len(tc)-1], td: td, ts: "control bytes for 5 rows"},
		{name: "ts unused nibble", tc: append(slices.Clone(tc[:len(tc)-1]), tc[len(tc)-1]|0x10), td: td, ts: "unused control nibble"},
		{name: "group of no rows", counts: []uint32{3, 0, 2}, tc: tc, td: td, ts: "group 1 has no rows"},
		{name: "groups past rows", counts: []uint32{3, 3}, tc: tc, td: td, ts: "group 1 has 3 rows, 2 of the frame's 5 left"},
		{name: "groups short of rows", counts: []uint32{3}, tc: tc, td: td, ts: "groups hold 3 rows, the frame 5"},
		{name: "value data short", vc: vc, vd: vd[:len(vd)-1], wantErr: "codes hold"},
		{name: "value data long", vc: vc, vd: append(slices.Clone(vd), 7), wantErr: "codes hold"},
		{name: "value unused nibble", vc: append(slices.Clone(vc[:len(vc)-1]), vc[len(vc)-1]|0x30), vd: vd, wantErr: "unused control nibble"},
	}
	for _, tc2 := range cases {
		t.Run(tc2.name, func(t *testing.T) {
			var err error
			if tc2.ts != "" {
				c := counts
				if tc2.counts != nil {
					c = tc2.counts
				}
				err = decodeTs(make([]byte, 8*rows), rows, countBytes(c), tc2.tc, tc2.td)
				tc2.wantErr = tc2.ts
			} else {
				err = decodeXORs(make([]byte, 8*rows), rows, tc2.vc, tc2.vd)
			}
			if err == nil || !strings.Contains(err.Error(), tc2.wantErr) {
				t.Fatalf("err = %v, want one saying %q", err, tc2.wantErr)
			}
		})
	}
}

// FuzzColumnCodecs decodes arbitrary sections with both decoders: they never panic, and
// what decodes codes again to sections that decode to the same values. It also codes the
// input's words as both columns and requires the same bits back.
func FuzzColumnCodecs(f *testing.F) {
	for _, col := range codecCases() {
		tc, td, vc, vd := encodeColumns(col, []uint32{uint32(len(col))}, col)
		f.Add(uint16(len(col)), uint16(len(col)), tc, td, vc, vd)
	}
	f.Fuzz(func(t *testing.T, rows16, group16 uint16, tctrl, tdata, vctrl, vdata []byte) {
		rows := int(rows16 % 4096)
		group := max(1, int(group16))
		var counts []uint32
		for left := rows; left > 0; left -= group {
			counts = append(counts, uint32(min(group, left)))
		}
		if rows > 0 {
			tb, vb := make([]byte, 8*rows), make([]byte, 8*rows)
			if decodeTs(tb, rows, countBytes(counts), tctrl, tdata) == nil {
				col := words(tb)
				tc, td, _, _ := encodeColumns(col, counts, nil)
				if got, _ := decodeColumnsTs(t, rows, counts, tc, td); !slices.Equal(got, col) {
					t.Fatal("decoded ts code to sections that decode to other values")
				}
			}
			if decodeXORs(vb, rows, vctrl, vdata) == nil {
				col := words(vb)
				_, _, vc, vd := encodeColumns(nil, nil, col)
				if got := decodeColumnsXOR(t, rows, vc, vd); !slices.Equal(got, col) {
					t.Fatal("decoded values code to sections that decode to other values")
				}
			}
		}
		// Arbitrary words as both columns, in groups.
		col := words(append(slices.Clone(tctrl), tdata...))
		if len(col) == 0 {
			return
		}
		counts = counts[:0]
		for left := len(col); left > 0; left -= group {
			counts = append(counts, uint32(min(group, left)))
		}
		tc, td, vc, vd := encodeColumns(col, counts, col)
		ts, xs := decodeColumns(t, len(col), counts, tc, td, vc, vd)
		if !slices.Equal(ts, col) || !slices.Equal(xs, col) {
			t.Fatalf("%x decode to ts %x and values %x", col, ts, xs)
		}
	})
}

// words reads b as little-endian uint64s, dropping a partial last one.
func words(b []byte) []uint64 {
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out
}

func decodeColumnsTs(t *testing.T, rows int, counts []uint32, tctrl, tdata []byte) ([]uint64, error) {
	t.Helper()
	b := make([]byte, 8*rows)
	err := decodeTs(b, rows, countBytes(counts), tctrl, tdata)
	return words(b), err
}

func decodeColumnsXOR(t *testing.T, rows int, vctrl, vdata []byte) []uint64 {
	t.Helper()
	b := make([]byte, 8*rows)
	if err := decodeXORs(b, rows, vctrl, vdata); err != nil {
		t.Fatal(err)
	}
	return words(b)
}

// TestV2FrameLengthsBoundMemory: a version-2 frame whose lengths agree with each other
// but claim more than its rows can hold (a ts section of 1 GiB, an s2 block that says it
// decodes to that) fails before the decoder allocates for it.
func TestV2FrameLengthsBoundMemory(t *testing.T) {
	const rows = 4
	raw := make([]byte, frameRawHeader+groupRawBytes+rowRawBytes*rows)
	binary.LittleEndian.PutUint32(raw, 1)
	binary.LittleEndian.PutUint32(raw[4:], rows)
	binary.LittleEndian.PutUint32(raw[frameRawHeader+32+16*rows+4:], rows) // the group's count
	for _, tc := range []struct {
		name     string
		tl       uint32
		valuesS2 bool
		want     string
	}{
		{"ts section", 1 << 30, false, "1073741824 ts bytes, more than 8 for each of 4 rows"},
		{"value block", 0, true, "value block of 1073741824 bytes, more than 8 for each of 4 rows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			le := binary.LittleEndian
			// The raw payload without its ts and value sections.
			zs := zstdEncoder.EncodeAll(append(slices.Clone(raw[:frameRawHeader+32]), raw[frameRawHeader+32+16*rows:]...), nil)
			head := binary.AppendUvarint(nil, uint64(2*nibbleBytes(rows))+uint64(tc.tl)) // an s2 header alone
			vals := []byte{}
			if tc.valuesS2 {
				vals = binary.AppendUvarint(nil, 1<<30)
			}
			body := le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, uint32(len(zs))), uint32(len(head))), tc.tl)
			if tc.valuesS2 {
				body = append(body, valuesS2)
			} else {
				body = append(body, valuesStored)
			}
			body = slices.Concat(body, zs, head, vals)
			fb := le.AppendUint32(nil, uint32(len(body)))
			fb = append(le.AppendUint32(fb, crc(body)), body...)
			info := FrameInfo{Offset: 5, Length: uint32(len(fb)), RawLength: uint32(len(raw)), Rows: rows, Groups: 1}
			sp := Split{Seg: &Segment{Key: "x.tseg", Header: Header{Version: 2}}, Frames: []FrameInfo{info}}
			dec := NewFrameDecoder()
			defer dec.Close()
			var c Columns
			var fs FrameStats
			err := dec.DecodeFrame(&sp, info, fb, DecodeOptions{}, &c, &fs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			if cap(dec.sec) > sectionBytes(rows) {
				t.Fatalf("the decoder holds %d bytes of sections for %d rows", cap(dec.sec), rows)
			}
		})
	}
}
