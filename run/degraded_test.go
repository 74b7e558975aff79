//go:build duckdb_arrow

package run

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"math"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// flipFrame flips the last byte of frame i of the segment key (inside its compressed
// bytes, so its crc fails) and returns the frame and the segment's good bytes.
func flipFrame(t *testing.T, st storage.Store, seg *columnar.Segment, i int) (columnar.FrameInfo, []byte) {
	t.Helper()
	ctx := context.Background()
	b, err := storage.ReadAll(ctx, st, seg.Key)
	if err != nil {
		t.Fatal(err)
	}
	good := bytes.Clone(b)
	f := seg.Footer.Frames[i]
	b[f.Offset+uint64(f.Length)-1] ^= 0xff
	if err := st.Put(ctx, seg.Key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	return f, good
}

func currentRuns(t *testing.T, st storage.Store) map[string]*Manifest {
	t.Helper()
	ms, err := Published(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*Manifest{}
	for _, m := range ms {
		out[m.Shard+" "+m.Window] = m
	}
	return out
}

// TestDegradedRunNeverReplacesBetter is the defect of issue 15: a byte flip in a
// segment, then run --all --force --skip-corrupt, replaced a complete manifest with one
// that had lost the frame's points, and exited 0. Now the degraded runs are published
// under run ids of their own, the complete runs keep serving (bit for bit the same
// points), RunAll fails naming what it kept, and only --accept-degraded serves them.
func TestDegradedRunNeverReplacesBetter(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("degraded")
	lateWorkload(t, st, 6, 64)
	opt := AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), Engine: query.Options{Threads: 1}}, Parallel: 2}
	if _, err := RunAll(ctx, opt); err != nil {
		t.Fatal(err)
	}
	before, points := currentRuns(t, st), readOutputs(t, st)
	segs, err := ListWindowSegments(ctx, st, nil, Arrival{}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seg := segs[len(segs)/2]
	f, good := flipFrame(t, st, seg, 0)

	opt.Force, opt.SkipCorrupt = true, true
	reps, err := RunAll(ctx, opt)
	var worse *WorseRunError
	if !errors.As(err, &worse) || !strings.Contains(err.Error(), "keeps serving") || !strings.Contains(err.Error(), "accept the degraded run") {
		t.Fatalf("RunAll over a corrupt frame with --force --skip-corrupt: error %v, want a WorseRunError", err)
	}
	var degradedIDs []string
	for _, r := range reps {
		if r.Degraded == nil {
			continue
		}
		if !r.Published || r.Serving || r.RunID == before[r.Shard+" "+r.Window].RunID {
			t.Fatalf("degraded run %s %s: published %v, serving %v, id %s", r.Shard, r.Window, r.Published, r.Serving, r.RunID)
		}
		degradedIDs = append(degradedIDs, r.Shard+" "+r.Window+" "+r.RunID)
		w, _ := ParseWindowName(r.Window)
		m, err := ReadManifest(ctx, st, r.Shard, w, r.RunID)
		if err != nil {
			t.Fatalf("the degraded run's manifest: %v", err)
		}
		sf := m.Degraded.SkippedFrames
		if len(sf) != 1 || sf[0].Segment != seg.Key || sf[0].Offset != f.Offset || sf[0].Rows != f.Rows || m.Degraded.Points != uint64(f.Rows) {
			t.Fatalf("degraded manifest lists %+v, want the frame at %d of %s with %d rows", m.Degraded, f.Offset, seg.Key, f.Rows)
		}
	}
	if len(degradedIDs) == 0 {
		t.Fatal("no run read the corrupt frame: the test proves nothing")
	}
	after := currentRuns(t, st)
	for k, m := range before {
		if after[k].RunID != m.RunID {
			t.Fatalf("%s: the current run changed from %s to %s", k, m.RunID, after[k].RunID)
		}
	}
	if got := readOutputs(t, st); !maps.EqualFunc(got, points, maps.Equal) {
		t.Fatal("the points served changed")
	}

	// Run again without --force: the complete runs cover the plans, nothing is read.
	opt.Force = false
	reps, err = RunAll(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if !r.Skipped || r.Degraded != nil {
			t.Fatalf("run %s %s was redone (degraded %v) although a complete run covers it", r.Shard, r.Window, r.Degraded)
		}
	}

	// The user chooses the degraded runs.
	opt.Force, opt.AcceptDegraded = true, true
	if _, err := RunAll(ctx, opt); err != nil {
		t.Fatal(err)
	}
	now := currentRuns(t, st)
	for _, id := range degradedIDs {
		k := id[:strings.LastIndex(id, " ")]
		if now[k].RunID != id[len(k)+1:] || now[k].Degraded == nil {
			t.Fatalf("%s: current run %s, want the accepted degraded run %s", k, now[k].RunID, id)
		}
	}

	// The segment is restored: a plain run finds the complete runs published and serves
	// them again, bit for bit the first points.
	if err := st.Put(ctx, seg.Key, bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	opt.Force, opt.AcceptDegraded, opt.SkipCorrupt = false, false, false
	if _, err := RunAll(ctx, opt); err != nil {
		t.Fatal(err)
	}
	for k, m := range currentRuns(t, st) {
		if m.RunID != before[k].RunID || m.Degraded != nil {
			t.Fatalf("%s: current run %s after the restore, want %s", k, m.RunID, before[k].RunID)
		}
	}
	if got := readOutputs(t, st); !maps.EqualFunc(got, points, maps.Equal) {
		t.Fatal("the points served after the restore differ from the first run's")
	}
}

// TestDegradedRunServesWhenNothingBetter: with nothing published, a run that skipped a
// corrupt frame serves, and says so.
func TestDegradedRunServesWhenNothingBetter(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("degraded-first")
	lateWorkload(t, st, 7, 64)
	segs, err := ListWindowSegments(ctx, st, nil, Arrival{}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	flipFrame(t, st, segs[3], 0)
	reps, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), SkipCorrupt: true, Engine: query.Options{Threads: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range reps {
		if r.Degraded != nil {
			n++
			if !r.Serving || currentRuns(t, st)[r.Shard+" "+r.Window].Degraded == nil {
				t.Fatalf("degraded run %s %s does not serve", r.Shard, r.Window)
			}
		}
	}
	if n == 0 {
		t.Fatal("no run was degraded")
	}
}

// TestSkipCorruptWhenPlanning: a corrupt frame whose ts span decades is decoded to find
// its windows; with skipping on, planning skips it (and says so) instead of failing the
// whole --all, and every other window still runs. Without skipping it fails naming it.
func TestSkipCorruptWhenPlanning(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("decades")
	lateWorkload(t, st, 8, 64)
	// One more segment whose only payload spans 1990 to 2025 in yearly steps, between two
	// ordinary payloads, each in a frame of its own.
	base := int64(1763942400000)
	wide := columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 5, Metric: 1}}
	for ts := int64(631152000000); ts < base; ts += 365 * 86_400_000 {
		wide.Timestamps = append(wide.Timestamps, ts)
		wide.Values = append(wide.Values, math.Pi)
	}
	plain := func(org uint32) columnar.Payload {
		return columnar.Payload{SeriesKey: columnar.SeriesKey{Org: org}, Timestamps: []int64{base + 60_000}, Values: []float64{1}}
	}
	spec := segSpec{part: 7, startTs: base + 3*hourMs, payloads: []columnar.Payload{plain(1), wide, plain(2)}, recTs: []int64{base + 3*hourMs, base + 3*hourMs + 1, base + 3*hourMs + 2}}
	writeSeg(t, st, spec, 1000)
	segs, err := ListWindowSegments(ctx, st, nil, Arrival{}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seg *columnar.Segment
	for _, s := range segs {
		if s.Header.Partition == 7 {
			seg = s
		}
	}
	wi := -1
	for i, f := range seg.Footer.Frames {
		if f.MinTs < base-100*24*hourMs {
			wi = i
		}
	}
	if wi < 0 || len(seg.Footer.Frames) != 3 {
		t.Fatalf("frames %+v: want three, one of them decades wide", seg.Footer.Frames)
	}
	flipFrame(t, st, seg, wi)
	a := Arrival{Size: hourMs * 1e6, Closed: false}
	a.Size = testArrival().Size

	if _, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Engine: query.Options{Threads: 1}}, WindowSize: a.Size}); err == nil || !strings.Contains(err.Error(), seg.Key) {
		t.Fatalf("without skipping: error %v, want one naming %s", err, seg.Key)
	}
	var skipped []error
	reps, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, SkipCorrupt: true, Engine: query.Options{Threads: 1}}, WindowSize: a.Size, Corrupt: func(err error) { skipped = append(skipped, err) }})
	if err != nil {
		t.Fatalf("with skipping: %v", err)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), seg.Key) {
		t.Fatalf("planning reported %v, want the one corrupt frame of %s", skipped, seg.Key)
	}
	if len(reps) < 10 {
		t.Fatalf("%d runs: the windows of the good segments must still run", len(reps))
	}
	// The corrupt frame's neighbours are in the output.
	var got int
	for _, m := range currentRuns(t, st) {
		got += int(m.Counts.PointsOut)
	}
	if got == 0 {
		t.Fatal("nothing was written")
	}
}
