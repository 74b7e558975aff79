package columnar

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/tailor-metrics/tailor/storage"
)

// TestCorruption: each kind of damage gives a CorruptSegmentError that names the file, the
// byte offset and what was wrong, on both read paths; frame damage can be skipped with
// SkipCorrupt, which reads the other frames and counts the bad one.
func TestCorruption(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	ps, srcs := genPayloads(rng, 60)
	for i := range ps {
		ps[i].Org = 1
	}
	clean := storage.NewMem("clean")
	seg := writeSegment(t, clean, ps, srcs, 500)
	good, err := storage.ReadAll(ctx, clean, seg.Key)
	if err != nil {
		t.Fatal(err)
	}
	if len(seg.Footer.Frames) < 3 {
		t.Fatalf("want at least 3 frames, have %d", len(seg.Footer.Frames))
	}
	f1 := seg.Footer.Frames[1]
	footerOff := uint64(len(good)) - TrailerSize - uint64(binary.LittleEndian.Uint32(good[len(good)-TrailerSize:]))
	le := binary.LittleEndian
	// refixFrame recomputes frame 1's crc, so that damage inside it gets past the check.
	refixFrame := func(b []byte) {
		comp := b[f1.Offset+FrameHeaderSize : f1.Offset+uint64(f1.Length)]
		le.PutUint32(b[f1.Offset+4:], crc(comp))
	}
	refixFooter := func(b []byte) {
		le.PutUint32(b[len(b)-TrailerSize+4:], crc(b[footerOff:len(b)-TrailerSize]))
	}
	for _, tc := range []struct {
		name string
		// damage returns the damaged file; afterOpen damages it only after the segment
		// was opened (the file changed under a run).
		damage    func(b []byte) []byte
		afterOpen bool
		// frame is true when the damage is confined to frame 1 (skippable).
		frame bool
		off   uint64
		what  string
	}{
		{name: "bad crc", damage: func(b []byte) []byte { b[f1.Offset+FrameHeaderSize+3] ^= 0xff; return b }, frame: true, off: f1.Offset, what: "bad crc32c"},
		{name: "bad length", damage: func(b []byte) []byte { le.PutUint32(b[f1.Offset:], f1.Length); return b }, frame: true, off: f1.Offset, what: "bad length"},
		{name: "bad zstd with good crc", damage: func(b []byte) []byte {
			copy(b[f1.Offset+FrameHeaderSize:], "not zstd")
			refixFrame(b)
			return b
		}, frame: true, off: f1.Offset, what: "zstd"},
		{name: "bad payload with good crc", damage: func(b []byte) []byte {
			// A valid frame of a payload whose counts do not add up: zstd of the payload
			// without values, and the values, all zero.
			raw := make([]byte, f1.RawLength-16*f1.Rows)
			le.PutUint32(raw, f1.Groups)
			le.PutUint32(raw[4:], f1.Rows)
			comp := zstdEncoder.EncodeAll(raw, nil)
			// The ts and values of all-zero sections: one zero byte for each of
			// their nibbles.
			sec := s2.Encode(nil, make([]byte, 2*nibbleBytes(int(f1.Rows))))
			hdr := le.AppendUint32(nil, uint32(len(sec)))
			hdr = append(le.AppendUint32(hdr, 0), valuesStored)
			// Pad with an empty zstd skippable frame so the length stays the footer's.
			pad := int(f1.Length) - FrameHeaderSize - v2BodyHeader - len(comp) - len(sec)
			if pad < 8 {
				t.Fatalf("no room for padding: the payload compresses to %d of the frame's %d bytes", len(comp), f1.Length-FrameHeaderSize)
			}
			comp = le.AppendUint32(comp, 0x184D2A50)
			comp = le.AppendUint32(comp, uint32(pad-8))
			comp = append(comp, make([]byte, pad-8)...)
			body := slices.Concat(le.AppendUint32(nil, uint32(len(comp))), hdr, comp, sec)
			copy(b[f1.Offset+FrameHeaderSize:], body)
			refixFrame(b)
			return b
		}, frame: true, off: f1.Offset, what: "group 0 has no rows"},
		{name: "truncated", damage: func(b []byte) []byte { return b[:len(b)-100] }, off: uint64(len(good)) - 100 - TrailerSize, what: "truncated"},
		{name: "truncated to nothing", damage: func(b []byte) []byte { return b[:10] }, off: 0, what: "truncated"},
		{name: "truncated after open", damage: func(b []byte) []byte { return b[:f1.Offset+10] }, afterOpen: true, what: "truncated"},
		{name: "bad footer crc", damage: func(b []byte) []byte { b[footerOff+3] ^= 1; return b }, off: footerOff, what: "bad footer: crc32c"},
		{name: "bad footer frame", damage: func(b []byte) []byte {
			// Frame 0's length in the index, checksum fixed: frames no longer tile.
			p := footerOff + 5*8 + 4
			for _, s := range seg.Footer.Shards {
				p += 2 + uint64(len(s))
			}
			p += 4 + 8
			le.PutUint32(b[p:], le.Uint32(b[p:])+1)
			refixFooter(b)
			return b
		}, off: footerOff, what: "bad footer: frame 1"},
		{name: "bad footer length", damage: func(b []byte) []byte { le.PutUint32(b[len(b)-TrailerSize:], uint32(len(b))); return b }, off: uint64(len(good)) - TrailerSize, what: "bad footer: length"},
		{name: "bad header", damage: func(b []byte) []byte { b[1] = 'X'; return b }, off: 0, what: "bad header: bad magic"},
	} {
		for _, mode := range []string{"mmap", "ranged"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				local, err := storage.OpenLocal(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				var st storage.Store = local
				if mode == "ranged" {
					st = struct{ storage.Store }{local}
				}
				put := func(b []byte) {
					if err := st.Put(ctx, seg.Key, bytes.NewReader(b)); err != nil {
						t.Fatal(err)
					}
				}
				bad := tc.damage(bytes.Clone(good))
				if tc.afterOpen {
					put(good)
				} else {
					put(bad)
				}
				opened, err := OpenSegment(ctx, st, seg.Key, -1)
				check := func(err error) {
					t.Helper()
					var ce *CorruptSegmentError
					if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
						t.Fatalf("err = %v, want a CorruptSegmentError", err)
					}
					msg := err.Error()
					if ce.Key != seg.Key || !strings.Contains(msg, seg.Key) || !strings.Contains(msg, tc.what) ||
						(!tc.afterOpen && (ce.Offset != tc.off || !strings.Contains(msg, fmt.Sprintf("at byte %d:", tc.off)))) {
						t.Fatalf("err = %q (offset %d), want %s at byte %d: %s", msg, ce.Offset, seg.Key, tc.off, tc.what)
					}
				}
				if !tc.frame && !tc.afterOpen {
					check(err)
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if tc.afterOpen {
					// Replaced by a shorter file behind the reader's back.
					if err := os.WriteFile(local.LocalPath(seg.Key), bad, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				segs := []*Segment{opened}
				splits := PlanSplits(segs, "org-mod-1", AllTime, 1<<30)
				for _, skip := range []bool{false, true} {
					r := NewPointReader(ctx, st, splits, Topics(segs), ReadOptions{SkipCorrupt: skip})
					n := 0
					for r.Next() {
						n += int(r.RecordBatch().NumRows())
					}
					if !skip || !tc.frame {
						check(r.Err())
					} else if r.Err() != nil || r.Stats().CorruptFrames != 1 || n != int(seg.Footer.Rows)-int(f1.Rows) {
						t.Fatalf("skip: err %v, stats %+v, %d rows, want %d", r.Err(), r.Stats(), n, int(seg.Footer.Rows)-int(f1.Rows))
					}
					r.Release()
				}
			})
		}
	}
}
