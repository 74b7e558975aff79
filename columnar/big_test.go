package columnar

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/storage"
)

// The big-segment test runs its reads in child processes, so that each one's peak RSS
// (VmHWM) is the read's alone.
const (
	bigDirEnv  = "TAILOR_TEST_BIG_SEGMENT_DIR"
	bigModeEnv = "TAILOR_TEST_BIG_SEGMENT_MODE"

	bigSize      = 3<<30 + 1 // past 2 GiB (int32) and at 3 GiB, the RSS test size
	bigTemplates = 8
	bigGroups    = 16
	bigGroupRows = 512
	bigTagBytes  = 50000
	bigRSSLimit  = 1 << 30
)

// bigTemplate is one distinct frame that the big segment repeats. Its groups carry Kafka
// offsets t·bigGroups+g, so a reader's rows name the template they came from.
type bigTemplate struct {
	info FrameInfo
	data []byte
	// valSum is the wrapping sum of the value bits of each group.
	valSum [bigGroups]uint64
}

// makeBigTemplates builds the frames deterministically, so the parent that writes and
// the children that read agree on them. Most of a frame is a random tag (which zstd
// cannot shrink and the reader does not decode unless asked), so the file is large
// without the test decoding hundreds of millions of rows.
func makeBigTemplates(t *testing.T) []bigTemplate {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, 42))
	tpls := make([]bigTemplate, bigTemplates)
	var raw []byte
	tag := make([]byte, bigTagBytes)
	for i := range tpls {
		var b frameBuilder
		for g := 0; g < bigGroups; g++ {
			for j := range tag {
				tag[j] = byte(rng.Uint32())
			}
			ts := make([]int64, bigGroupRows)
			vals := make([]float64, bigGroupRows)
			t0 := int64(1763942400000) + rng.Int64N(1e9)
			for j := range ts {
				t0 += 1 + rng.Int64N(10000)
				ts[j] = t0
				vals[j] = math.Float64frombits(rng.Uint64())
				tpls[i].valSum[g] += math.Float64bits(vals[j])
			}
			off := int64(i*bigGroups + g)
			b.add(SeriesKey{Org: uint32(i), Metric: uint64(g), Context: 1}, Source{Offset: off, Timestamp: off}, []string{string(tag)}, ts, vals)
		}
		info, data, err := b.encode(&raw)
		if err != nil {
			t.Fatal(err)
		}
		tpls[i].info, tpls[i].data = info, data
	}
	return tpls
}

// TestSegmentOver2GiB writes a 3 GiB segment with 64-bit offsets, streaming it to disk,
// then reads it back in child processes, mapped and through ranged reads, with splits
// cut past 2 GiB. Every frame must be read exactly once, values bit for bit, and each
// read's peak RSS must stay under 1 GiB.
func TestSegmentOver2GiB(t *testing.T) {
	if dir := os.Getenv(bigDirEnv); dir != "" {
		readBigSegment(t, dir, os.Getenv(bigModeEnv))
		return
	}
	if testing.Short() {
		t.Skip("writes a 3 GiB segment; make test runs it")
	}
	dir := t.TempDir()
	st, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	tpls := makeBigTemplates(t)
	hdr := Header{Version: SegmentVersion, Topic: "big", Partition: 0}
	key := SegmentKey(hdr.Topic, hdr.Partition, hdr.StartOffset, hdr.StartTimestamp)
	// Written straight into the store's directory: going through Store.Create would
	// only add an fsync of 3 GiB.
	path := st.LocalPath(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	ss, err := newSegmentStream(w, &hdr)
	if err != nil {
		t.Fatal(err)
	}
	ss.ft.Shards = []string{"s"}
	n := 0
	for ; ss.off < bigSize; n++ {
		if err := ss.frame(tpls[n%bigTemplates].info, tpls[n%bigTemplates].data); err != nil {
			t.Fatal(err)
		}
		ss.ft.Rows += uint64(tpls[n%bigTemplates].info.Rows)
	}
	ss.ft.EndOffset, ss.ft.Records = bigTemplates*bigGroups, bigTemplates*bigGroups
	size, err := ss.finish()
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if last := ss.ft.Frames[n-1].Offset; last <= math.MaxUint32 && last <= 2<<30 {
		t.Fatalf("last frame at %d: the segment does not reach past 2 GiB", last)
	}
	t.Logf("wrote %d frames, %d bytes", n, size)

	for _, mode := range []string{"mmap", "ranged"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSegmentOver2GiB$", "-test.v")
		cmd.Env = append(os.Environ(), bigDirEnv+"="+dir, bigModeEnv+"="+mode)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s read: %v\n%s", mode, err, out)
		}
		m := regexp.MustCompile(`BIGSEG rows=(\d+) peak_rss=(\d+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("%s read printed no result:\n%s", mode, out)
		}
		rows, _ := strconv.ParseUint(string(m[1]), 10, 64)
		rss, _ := strconv.ParseInt(string(m[2]), 10, 64)
		if rows != ss.ft.Rows {
			t.Fatalf("%s read %d rows, wrote %d", mode, rows, ss.ft.Rows)
		}
		if rss >= bigRSSLimit {
			t.Fatalf("%s read of a %d-byte segment peaked at %d bytes RSS, limit %d", mode, size, rss, bigRSSLimit)
		}
		t.Logf("%s: %s", mode, bytes.TrimSpace(out))
	}
}

// readBigSegment is the child: it reads the segment in dir and prints the rows it read
// and its peak RSS, after checking every template's rows and values.
func readBigSegment(t *testing.T, dir, mode string) {
	local, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	var st storage.Store = local
	if mode == "ranged" {
		st = struct{ storage.Store }{local} // hides LocalFiler: ranged reads, as on S3
	}
	ctx := context.Background()
	segs, err := ListSegments(ctx, st)
	if err != nil || len(segs) != 1 {
		t.Fatalf("list: %d segments, %v", len(segs), err)
	}
	seg := segs[0]
	splits := PlanSplits(segs, "s", AllTime, 512<<20)
	if len(splits) < 6 || splits[len(splits)-1].From <= math.MaxInt32 {
		t.Fatalf("%d splits, last from %d: want splits past 2 GiB", len(splits), splits[len(splits)-1].From)
	}
	r := NewPointReader(ctx, st, splits, Topics(segs), ReadOptions{Readers: 2})
	defer r.Release()
	var rows [bigTemplates * bigGroups]uint64
	var sums [bigTemplates * bigGroups]uint64
	var total uint64
	for r.Next() {
		rec := r.RecordBatch()
		offs := rec.Column(8).(*array.Int64).Int64Values()
		vals := rec.Column(4).(*array.Float64).Float64Values()
		for i, o := range offs {
			if o < 0 || o >= int64(len(rows)) {
				t.Fatalf("row with offset %d", o)
			}
			rows[o]++
			sums[o] += math.Float64bits(vals[i])
		}
		total += uint64(len(offs))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	tpls := makeBigTemplates(t)
	nframes := len(seg.Footer.Frames)
	for i := range tpls {
		copies := uint64(nframes / bigTemplates)
		if i < nframes%bigTemplates {
			copies++
		}
		for g := 0; g < bigGroups; g++ {
			o := i*bigGroups + g
			if rows[o] != copies*bigGroupRows || sums[o] != copies*tpls[i].valSum[g] {
				t.Fatalf("template %d group %d: %d rows (value sum %x), want %d copies of %d rows (sum %x)", i, g, rows[o], sums[o], copies, bigGroupRows, copies*tpls[i].valSum[g])
			}
		}
	}
	rs := r.ReadStats()
	if rs.Frames != uint64(nframes) || rs.Memory.PeakBytes > rs.Memory.BoundBytes {
		t.Fatalf("stats: %d frames of %d, memory %+v", rs.Frames, nframes, rs.Memory)
	}
	fmt.Printf("BIGSEG rows=%d peak_rss=%d\n%s\n", total, peakRSS(t), rs)
}

// peakRSS is the process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("peak RSS needs /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
