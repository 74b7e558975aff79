package columnar

import (
	"bytes"
	"context"
	"flag"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

var update = flag.Bool("update", false, "rewrite testdata/segment-v2.tseg, the current version's fixture, from fixtureSegment")

// The frozen fixtures: version 1, written by the writer of its day, and the current
// version, which today's writer must still produce.
const (
	fixturePath   = "testdata/segment-v1.tseg"
	fixtureV2Path = "testdata/segment-v2.tseg"
)

// fixtureSegment builds the segment that testdata/segment-v2.tseg freezes, from the
// payloads that testdata/segment-v1.tseg holds (docs/format/segment.md walks through
// both byte by byte): two shards, three frames (two rows a frame), tags, a payload that
// the writer sorts and collapses, a rejected record, and NaN, -0 and +Inf values.
func fixtureSegment(t *testing.T) []byte {
	t.Helper()
	w := NewSegmentWriter(Header{Topic: "metrics", Partition: 2, StartOffset: 100, StartTimestamp: 1763942400000}, DefaultShardMap(), 2)
	add := func(off int64, p Payload) {
		t.Helper()
		if err := w.Add(Source{Topic: "metrics", Partition: 2, Offset: off, Timestamp: 1763942400000 + off}, []Payload{p}); err != nil {
			t.Fatal(err)
		}
	}
	add(100, Payload{SeriesKey: SeriesKey{Org: 1, Metric: 10}, Tags: []string{"env:prod"}, Timestamps: []int64{1000, 2000, 3000}, Values: []float64{1.5, math.NaN(), math.Copysign(0, -1)}})
	add(101, Payload{SeriesKey: SeriesKey{Org: 2, Metric: 20, Context: 5}, Timestamps: []int64{1000, 1000, 500}, Values: []float64{1, 2, 3}})
	if err := w.Skip(102, true); err != nil {
		t.Fatal(err)
	}
	add(103, Payload{SeriesKey: SeriesKey{Org: 1, Metric: 10}, Timestamps: []int64{4000}, Values: []float64{math.Inf(1)}})
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFormatV1Fixture reads the frozen version-1 segment, written before version 2, and
// checks every point and footer field: readers keep reading every version they have met.
func TestFormatV1Fixture(t *testing.T) {
	frozen, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	checkFixture(t, frozen, 1)
}

// TestFormatV2Fixture checks that today's writer still produces the frozen current
// segment (`go test ./columnar -run TestFormatV2Fixture -update` rewrites it): a change
// that alters its layout is a format change and needs a new version. Its points are the
// version-1 fixture's, and its raw payloads are byte for byte version 1's.
func TestFormatV2Fixture(t *testing.T) {
	got := fixtureSegment(t)
	if *update {
		if err := os.WriteFile(fixtureV2Path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	frozen, err := os.ReadFile(fixtureV2Path)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := layoutOf(t, got), layoutOf(t, frozen); !slices.EqualFunc(a, b, bytes.Equal) {
		t.Fatalf("the writer no longer produces the layout of %s: bump SegmentVersion and keep a reader for version %d", fixtureV2Path, SegmentVersion)
	}
	if !bytes.Equal(got, frozen) {
		t.Fatalf("the writer's bytes differ from %s", fixtureV2Path)
	}
	checkFixture(t, frozen, 2)
	v1, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	// Everything but the header's version and checksum, and the frames' bytes.
	a, b := layoutOf(t, v1), layoutOf(t, frozen)
	for i := 1; i < len(a)-1; i++ {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("frame %d: version 2 decodes to a raw payload other than version 1's", i-1)
		}
	}
}

// checkFixture reads a fixture segment and checks its header, footer and every point.
func checkFixture(t *testing.T, frozen []byte, version uint16) {
	t.Helper()
	st, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := SegmentKey("metrics", 2, 100, 1763942400000)
	if err := st.Put(context.Background(), key, bytes.NewReader(frozen)); err != nil {
		t.Fatal(err)
	}
	seg, err := OpenSegment(context.Background(), st, key, -1)
	if err != nil {
		t.Fatal(err)
	}
	ft := seg.Footer
	if seg.Header != (Header{Version: version, ShardMapVersion: DefaultShardMap().Version, Topic: "metrics", Partition: 2, StartOffset: 100, StartTimestamp: 1763942400000}) ||
		ft.EndOffset != 104 || ft.Records != 4 || ft.Rejected != 1 || ft.Collapsed != 1 || ft.Rows != 6 || len(ft.Shards) != 2 || len(ft.Frames) != 3 {
		t.Fatalf("header %+v footer %+v", seg.Header, ft)
	}
	var rows []row
	for _, shard := range ft.Shards {
		rs, _ := readAll(t, st, []*Segment{seg}, shard, AllTime, 1<<20, 1)
		rows = append(rows, rs...)
	}
	sortRows(rows)
	k1, k2 := SeriesKey{Org: 1, Metric: 10}, SeriesKey{Org: 2, Metric: 20, Context: 5}
	want := []row{
		{k1, 1000, math.Float64bits(1.5), 1763942400100, 100},
		{k1, 2000, math.Float64bits(math.NaN()), 1763942400100, 100},
		{k1, 3000, math.Float64bits(math.Copysign(0, -1)), 1763942400100, 100},
		{k1, 4000, math.Float64bits(math.Inf(1)), 1763942400103, 103},
		{k2, 500, math.Float64bits(3), 1763942400101, 101},
		{k2, 1000, math.Float64bits(2), 1763942400101, 101},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Fatalf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
}

// layoutOf is what must not change within a version: header bytes, the footer with
// each frame's offset and compressed length cleared (a zstd upgrade may compress
// differently), and each frame's decompressed payload.
func layoutOf(t *testing.T, b []byte) [][]byte {
	t.Helper()
	seg, err := parseSegment("fixture", int64(len(b)), func(off, n int64) ([]byte, error) { return b[off : off+n], nil })
	if err != nil {
		t.Fatal(err)
	}
	out := [][]byte{b[:seg.Header.headerSize()]}
	ft := seg.Footer
	ft.Frames = slices.Clone(ft.Frames)
	dec := NewFrameDecoder()
	defer dec.Close()
	for i := range ft.Frames {
		f := &ft.Frames[i]
		if _, err := dec.decode("fixture", seg.Header.Version, *f, b[f.Offset:f.Offset+uint64(f.Length)], &ReadTimers{}); err != nil {
			t.Fatal(err)
		}
		out = append(out, slices.Clone(dec.raw))
		f.Offset, f.Length = 0, 0
	}
	return append(out, ft.Marshal(nil))
}
