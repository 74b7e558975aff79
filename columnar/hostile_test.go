package columnar

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

// Hostile segments are hand-made from the frozen fixture (testdata/segment-v1.tseg) as
// an attacker would make them from docs/format/segment.md: checksums are right, and a
// count or a length lies. They are frozen in testdata/hostile/ (rewritten with
// `go test ./columnar -run TestHostileSegments -update`), so that tests of other
// packages (the run under a memory limit, cmd/tailor-batch) and the fuzz seeds use the
// same bytes.
const hostileDir = "testdata/hostile"

// hostileCase is one hostile segment and the corrupt error it must give: when opened
// (open) or, for frame damage, when its frames are read.
type hostileCase struct {
	name string
	open bool
	what string
}

var hostileCases = []hostileCase{
	// Row and group counts that would size a reader's batches at 200 GiB.
	{"counts", true, "bad footer: frame 0 at offset 45: 4294967295 rows, more than max allowed 1048576"},
	// Counts in range, but more than the raw length can hold (16 bytes a row).
	{"rows-past-raw", true, "bad footer: frame 0 at offset 45: 1048576 rows in 1048576 groups need at least 58720264 raw bytes, raw length 92"},
	{"no-groups", true, "bad footer: frame 0 at offset 45: 2 rows in 0 groups"},
	// A raw length of 256 MiB for 71 compressed bytes: a reader would allocate it.
	{"raw-length", true, "bad footer: frame 0 at offset 45: raw length 268435456 is more than 71 compressed bytes can hold"},
	{"rows-sum", true, "bad footer: frames hold 6 rows, footer says 7"},
	// A zstd stream that says nothing of its size and expands to 255 MiB: the footer
	// claims 130 raw bytes.
	{"zstd-bomb", false, "at byte 45: frame: decompresses to more than the 130 bytes the footer says"},
	// The frame's own valid zstd frame, then such a stream behind it.
	{"zstd-bomb-tail", false, "at byte 45: frame: decompresses to more than the 92 bytes the footer says"},
}

// zstdRLEBomb is a zstd frame of n RLE blocks of 128 KiB each: 4 bytes a block, the
// densest zstd there is, and no content size in its header.
func zstdRLEBomb(n int) []byte {
	// Magic, a frame header descriptor without content size, a 128 KiB window.
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38}
	for i := range n {
		h := uint32(128<<10)<<3 | 1<<1 // block size | RLE
		if i == n-1 {
			h |= 1 // last block
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0x5a)
	}
	return b
}

// rebuildSegment writes the segment b again, with frame i's compressed bytes replaced
// by comp[i] (its footer entry's length follows) and the footer changed by edit; every
// checksum is computed anew.
func rebuildSegment(t testing.TB, b []byte, comp map[int][]byte, edit func(*Footer)) []byte {
	t.Helper()
	seg := parsedSegment(t, b)
	var out bytes.Buffer
	ss, err := newSegmentStream(&out, &seg.Header)
	if err != nil {
		t.Fatal(err)
	}
	ss.ft = seg.Footer
	ss.ft.Frames = nil
	for i, f := range seg.Footer.Frames {
		data := b[f.Offset : f.Offset+uint64(f.Length)]
		if c, ok := comp[i]; ok {
			data = append(le32(le32(nil, uint32(len(c))), crc(c)), c...)
			f.Length = uint32(len(data))
		}
		if err := ss.frame(f, data); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(&ss.ft)
	}
	if _, err := ss.finish(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func le32(dst []byte, v uint32) []byte {
	return append(dst, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}

// hostileSegment makes the named hostile segment from the frozen fixture.
func hostileSegment(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	frame0 := func(edit func(*FrameInfo)) func(*Footer) {
		return func(ft *Footer) {
			old := ft.Frames[0].Rows
			edit(&ft.Frames[0])
			ft.Rows += uint64(ft.Frames[0].Rows) - uint64(old) // only the frame entry lies
		}
	}
	switch name {
	case "counts":
		return rebuildSegment(t, b, nil, frame0(func(f *FrameInfo) { f.Rows, f.Groups = math.MaxUint32, math.MaxUint32 }))
	case "rows-past-raw":
		return rebuildSegment(t, b, nil, frame0(func(f *FrameInfo) { f.Rows, f.Groups = MaxFrameRows, MaxFrameRows }))
	case "no-groups":
		return rebuildSegment(t, b, nil, frame0(func(f *FrameInfo) { f.Groups = 0 }))
	case "raw-length":
		return rebuildSegment(t, b, nil, frame0(func(f *FrameInfo) { f.RawLength = MaxFrameBytes }))
	case "rows-sum":
		return rebuildSegment(t, b, nil, func(ft *Footer) { ft.Rows++ })
	case "zstd-bomb":
		// 2040 blocks: 255 MiB, just under the decoder's own MaxFrameBytes cap.
		return rebuildSegment(t, b, map[int][]byte{0: zstdRLEBomb(2040)}, frame0(func(f *FrameInfo) { f.RawLength, f.Rows, f.Groups = 130, 1, 1 }))
	case "zstd-bomb-tail":
		f := parsedSegment(t, b).Footer.Frames[0]
		comp := slices.Concat(b[f.Offset+FrameHeaderSize:f.Offset+uint64(f.Length)], zstdRLEBomb(2040))
		return rebuildSegment(t, b, map[int][]byte{0: comp}, nil)
	}
	t.Fatalf("BUG: no hostile segment %q", name)
	return nil
}

// TestHostileSegments: every hostile segment fails with a CorruptSegmentError that names the
// file, the offset and the lie, on the point and the keyed read, without allocating
// by what the lie claims: at most a few MiB beyond a read of the fixture itself.
func TestHostileSegments(t *testing.T) {
	ctx := context.Background()
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			b := hostileSegment(t, tc.name)
			path := filepath.Join(hostileDir, tc.name+".tseg")
			if *update {
				if err := os.MkdirAll(hostileDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			frozen, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(frozen, b) {
				t.Fatalf("%s differs from what hostileSegment makes: rewrite it with -update", path)
			}
			st := storage.NewMem("hostile")
			key := SegmentKey("metrics", 2, 100, 1763942400000)
			if err := st.Put(ctx, key, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
			check := func(err error) {
				t.Helper()
				var ce *CorruptSegmentError
				if !errors.As(err, &ce) || ce.Key != key || !strings.Contains(err.Error(), tc.what) {
					t.Fatalf("err = %v, want a CorruptSegmentError of %s with %q", err, key, tc.what)
				}
			}
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			seg, err := OpenSegment(ctx, st, key, -1)
			if tc.open {
				check(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, keyed := range []bool{false, true} {
				err := readHostile(ctx, st, seg, keyed)
				check(err)
			}
			runtime.ReadMemStats(&m1)
			if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 32<<20 {
				t.Fatalf("reading it allocated %d MiB", alloc>>20)
			}
		})
	}
}

// readHostile reads every frame of seg with a PointReader, points or keyed rows, and
// returns the reader's error.
func readHostile(ctx context.Context, st storage.Store, seg *Segment, keyed bool) error {
	segs := []*Segment{seg}
	var splits []Split
	for _, sh := range seg.Footer.Shards {
		splits = append(splits, PlanSplits(segs, sh, AllTime, 0)...)
	}
	opt := ReadOptions{BatchRows: 1 << 10}
	if keyed {
		var ids testIDs
		opt.Groups, opt.Layout, opt.Points, opt.Tags = ids.Assign, KeyLayout{Wide: true}, &memSink{}, func(SeriesKey, Provenance, []string) {}
	}
	r := NewPointReader(ctx, st, splits, Topics(segs), opt)
	defer r.Release()
	rows := uint64(0)
	for r.Next() {
		rows += uint64(r.RecordBatch().NumRows())
	}
	if err := r.Err(); err != nil {
		return err
	}
	if want := seg.Footer.Rows; !keyed && rows != want {
		return fmt.Errorf("read %d rows, footer says %d", rows, want)
	}
	return nil
}

// TestDecodeShortFrame: a caller's own FrameInfo whose length leaves no room for the
// frame header is a CorruptSegmentError, not a panic on the missing header bytes.
func TestDecodeShortFrame(t *testing.T) {
	dec := NewFrameDecoder()
	defer dec.Close()
	for version := uint16(1); version <= SegmentVersion; version++ {
		// Version 2 frames also start with a zstd length: a body of up to 3 bytes lacks it.
		for n := range FrameHeaderSize + 4 {
			info := FrameInfo{Offset: 9, Length: uint32(n), RawLength: 64, Rows: 1, Groups: 1}
			sp := Split{Seg: &Segment{Key: "x.tseg", Header: Header{Version: version}}, Frames: []FrameInfo{info}}
			b := make([]byte, n)
			if n >= FrameHeaderSize {
				binary.LittleEndian.PutUint32(b, uint32(n-FrameHeaderSize))
				binary.LittleEndian.PutUint32(b[4:], crc(b[FrameHeaderSize:]))
			}
			var c Columns
			var fs FrameStats
			err := dec.DecodeFrame(&sp, info, b, DecodeOptions{}, &c, &fs)
			var ce *CorruptSegmentError
			if !errors.As(err, &ce) || ce.Offset != 9 {
				t.Fatalf("version %d, a %d-byte frame: err = %v, want a CorruptSegmentError at byte 9", version, n, err)
			}
		}
	}
}
