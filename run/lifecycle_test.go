//go:build duckdb_arrow

package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// far is a clock long after the late workload: every window is due, every segment past
// the replay retention.
var far = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func verifyOK(t *testing.T, st storage.Store, what string) *VerifyReport {
	t.Helper()
	rep := verifyStore(t, st, VerifyOptions{})
	if !rep.OK() {
		t.Fatalf("%s: verify: %v", what, rep.Problems)
	}
	return rep
}

func without(pts map[outPoint]uint64, org uint32) map[outPoint]uint64 {
	out := map[outPoint]uint64{}
	for op, b := range pts {
		if op.k.Org != org {
			out[op] = b
		}
	}
	return out
}

func recordDelete(t *testing.T, st storage.Store, org uint32) *Tombstone {
	t.Helper()
	ts, created, err := RecordTombstone(context.Background(), st, Tombstone{Org: org, From: math.MinInt64, To: math.MaxInt64, Created: far})
	if err != nil || !created {
		t.Fatalf("record delete: %v (created %v)", err, created)
	}
	return ts
}

// TestDeleteOneOrg: a delete of one org out of four hides its points at once; applied,
// it rewrites every run that held them and drops the segments that held them; every
// other point is untouched, bit for bit, verify proves no deleted point remains, and gc
// then removes the superseded runs without changing what readers read.
func TestDeleteOneOrg(t *testing.T) {
	ctx := context.Background()
	st, _ := lifeStore(t, 11)
	before := readAll(t, st, query.Scope{})
	want := without(before, 2)
	if len(want) == len(before) || len(want) == 0 {
		t.Fatal("org 2 holds no point, or every point")
	}
	tomb := recordDelete(t, st, 2)
	if _, created, err := RecordTombstone(ctx, st, Tombstone{Org: 2, From: math.MinInt64, To: math.MaxInt64}); err != nil || created {
		t.Fatalf("the same delete again: created %v, %v", created, err)
	}
	samePoints(t, "hidden at once", readAll(t, st, query.Scope{}), want)

	rep, err := ApplyTombstones(ctx, ApplyOptions{Store: st, TempDir: t.TempDir(), Now: far})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) == 0 || len(rep.Segments) == 0 || len(rep.Applied) != 1 || len(rep.Pending) != 0 || len(rep.Waiting) != 0 {
		t.Fatalf("apply: %d runs, %d segments dropped, %d waiting, applied %v, pending %v", len(rep.Runs), len(rep.Segments), len(rep.Waiting), rep.Applied, rep.Pending)
	}
	samePoints(t, "applied", readAll(t, st, query.Scope{}), want)
	v := verifyOK(t, st, "after apply")
	if v.Applied != 1 || v.CollectedRanges == 0 || v.Derived == 0 {
		t.Fatalf("verify after apply: %+v", v)
	}
	// A run of every window finds the rewritten runs cover what is left.
	for _, r := range runAllLife(t, st) {
		if !r.Skipped {
			t.Fatalf("run %s %s after the delete was not skipped", r.Shard, r.Window)
		}
	}
	g, err := GC(ctx, GCOptions{Store: st, Now: far})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Runs) != 0 || g.Waiting == 0 {
		t.Fatalf("first gc pass: %d runs collected, %d waiting: the grace must hold them", len(g.Runs), g.Waiting)
	}
	if g, err = GC(ctx, GCOptions{Store: st, Now: far.Add(DefaultGrace)}); err != nil {
		t.Fatal(err)
	}
	if len(g.Runs) == 0 || g.Bytes == 0 {
		t.Fatalf("gc after the grace: %+v", g)
	}
	samePoints(t, "after gc", readAll(t, st, query.Scope{}), want)
	verifyOK(t, st, "after gc")

	if !strings.Contains(tomb.String(), "org 2") {
		t.Fatalf("tombstone %s", tomb)
	}
}

// TestDeleteWaitsForRuns: a delete applied while a window still waits for its run
// leaves the segment that holds its points, and the tombstone pending; once the window
// is run, the next apply finishes.
func TestDeleteWaitsForRuns(t *testing.T) {
	ctx := context.Background()
	st, specs := lifeStore(t, 12)
	base := int64(1763942400000)
	// A segment that arrives after every window was run (its windows have no run yet).
	s := lateSegment(t, st, specs, 5, base+7*hourMs+10*60_000)
	org := s.payloads[0].Org
	recordDelete(t, st, org)
	rep, err := ApplyTombstones(ctx, ApplyOptions{Store: st, TempDir: t.TempDir(), Now: far})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Pending) != 1 || len(rep.Waiting) == 0 {
		t.Fatalf("apply with a window not run: pending %v, waiting %v", rep.Pending, rep.Waiting)
	}
	runAllLife(t, st)
	rep, err = ApplyTombstones(ctx, ApplyOptions{Store: st, TempDir: t.TempDir(), Now: far})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Applied) != 1 || len(rep.Waiting) != 0 {
		t.Fatalf("apply after the run: applied %v, waiting %v", rep.Applied, rep.Waiting)
	}
	for op := range readAll(t, st, query.Scope{}) {
		if op.k.Org == org {
			t.Fatalf("point %+v of the deleted org is read", op)
		}
	}
	verifyOK(t, st, "after apply")
}

// TestVerifyFindsDeletedPoint: a part of a serving run that holds a point of an applied
// delete is deleted_remains.
func TestVerifyFindsDeletedPoint(t *testing.T) {
	ctx := context.Background()
	st, _ := lifeStore(t, 13)
	recordDelete(t, st, 1)
	if _, err := ApplyTombstones(ctx, ApplyOptions{Store: st, TempDir: t.TempDir(), Now: far}); err != nil {
		t.Fatal(err)
	}
	// Serve a rewritten run's source again: its parts still hold org 1.
	ms, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var src *Manifest
	for _, m := range ms {
		if m.Derived != nil && len(m.Supersedes) > 0 && m.Counts.Deleted > 0 {
			w := mustWindow(m.Window)
			if src, err = ReadManifest(ctx, st, m.Shard, w, m.Supersedes[0].RunID); err != nil {
				t.Fatal(err)
			}
			if err := setCurrent(ctx, st, src.Shard, w, src.RunID); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if src == nil {
		t.Fatal("no rewritten run")
	}
	rep := verifyStore(t, st, VerifyOptions{})
	if rep.Count(DeletedRemains) == 0 {
		t.Fatalf("verify: %v", rep.Problems)
	}
	// --recheck rewrites it again.
	if _, err := ApplyTombstones(ctx, ApplyOptions{Store: st, TempDir: t.TempDir(), Now: far, Recheck: true}); err != nil {
		t.Fatal(err)
	}
	verifyOK(t, st, "after --recheck")
}

// TestGCCollects: gc keeps everything that serves, and after its grace removes the runs
// compaction superseded, orphaned files, and the segments every window's run covers
// once past the replay retention; records them, so verify stays clean; and a committed
// offset past every collected segment is still accounted for.
func TestGCCollects(t *testing.T) {
	ctx := context.Background()
	st, _ := lifeStore(t, 14)
	compactLife(t, st, 2*time.Hour, 6*time.Hour)
	want := readAll(t, st, query.Scope{})
	// An orphan: parts of a run killed before its manifest.
	mustPut(t, st, SeriesPrefix+"org-mod-1/20251124T0100Z-1h/deadbeefdeadbeef/part-00000.tsf", []byte("orphan"))
	dry, err := GC(ctx, GCOptions{Store: st, Now: far, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Files != 0 || dry.Waiting == 0 || len(dry.Segments) == 0 {
		t.Fatalf("dry run before any mark: %+v", dry)
	}
	snap := snapshot(t, st)
	g, err := GC(ctx, GCOptions{Store: st, Now: far})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Segments) == 0 || g.Files != 0 {
		t.Fatalf("first pass: %d segments, %d files", len(g.Segments), g.Files)
	}
	for k := range snap {
		if _, err := st.Stat(ctx, k); err != nil {
			t.Fatalf("the first pass deleted %s inside the grace", k)
		}
	}
	samePoints(t, "after the first pass", readAll(t, st, query.Scope{}), want)
	verifyOK(t, st, "after the first pass")
	dry, err = GC(ctx, GCOptions{Store: st, Now: far.Add(DefaultGrace), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err = GC(ctx, GCOptions{Store: st, Now: far.Add(DefaultGrace)})
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Runs) == 0 || g.Files != dry.Files || g.Bytes != dry.Bytes || g.Waiting != 0 {
		t.Fatalf("after the grace: %d runs, %d files and %d bytes (dry run said %d and %d), %d waiting", len(g.Runs), g.Files, g.Bytes, dry.Files, dry.Bytes, g.Waiting)
	}
	if _, err := st.Stat(ctx, SeriesPrefix+"org-mod-1/20251124T0100Z-1h/deadbeefdeadbeef/part-00000.tsf"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("orphan still there: %v", err)
	}
	samePoints(t, "after gc", readAll(t, st, query.Scope{}), want)
	v := verifyOK(t, st, "after gc")
	if v.Segments != 0 || v.CollectedRanges == 0 || v.Superseded != 0 {
		t.Fatalf("verify after gc: %d segments left, %d records, %d superseded", v.Segments, v.CollectedRanges, v.Superseded)
	}
	// Every segment is gone; the records still show each partition up to its end.
	committed := map[string]map[int32]int64{"metrics": {}}
	for _, p := range v.Partitions {
		committed["metrics"][p.Partition] = p.To
	}
	if r := verifyStore(t, st, VerifyOptions{Committed: committed}); !r.OK() {
		t.Fatalf("committed offsets after gc collected every segment: %v", r.Problems)
	}
	committed["metrics"][0]++
	if r := verifyStore(t, st, VerifyOptions{Committed: committed}); r.Count(CommittedGap) != 1 {
		t.Fatalf("a committed offset past the records: %v", r.Problems)
	}
	// A run of every window after gc makes nothing again.
	for _, r := range runAllLife(t, st) {
		if !r.Skipped && !r.NoData {
			t.Fatalf("run %s %s after gc was not skipped", r.Shard, r.Window)
		}
	}
	// Nothing more to do.
	if g, err = GC(ctx, GCOptions{Store: st, Now: far.Add(2 * DefaultGrace)}); err != nil || g.Files != 0 || len(g.Segments) != 0 {
		t.Fatalf("third pass: %+v, %v", g, err)
	}
}

// TestGCKeepsWhatServes: with the segments of windows not yet run, gc collects no
// segment a run still needs, and nothing of a serving run.
func TestGCKeepsWhatServes(t *testing.T) {
	ctx := context.Background()
	st, specs := lifeStore(t, 15)
	base := int64(1763942400000)
	s := lateSegment(t, st, specs, 6, base+7*hourMs+30*60_000)
	for _, now := range []time.Time{far, far.Add(DefaultGrace)} {
		if _, err := GC(ctx, GCOptions{Store: st, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	w := columnar.NewSegmentWriter(columnar.Header{Topic: "metrics", Partition: s.part, StartOffset: s.start, StartTimestamp: s.startTs}, columnar.DefaultShardMap(), 16)
	if _, err := st.Stat(ctx, w.Key()); err != nil {
		t.Fatalf("gc collected %s, which a window not yet run needs: %v", w.Key(), err)
	}
	runAllLife(t, st)
	rep := verifyStore(t, st, VerifyOptions{})
	for _, p := range rep.Problems {
		if p.Kind != InputLost { // the first pass collected old runs' inputs? never
			continue
		}
		t.Fatalf("verify: %v", p)
	}
	verifyOK(t, st, "after gc and the run")
}

// TestGCKeepsInputsOfPendingWindows: a segment stored late into windows that already
// ran makes them run again, and that run reads the old segments it served from too; gc
// must keep those, so that the run after gc serves what a run without gc serves.
func TestGCKeepsInputsOfPendingWindows(t *testing.T) {
	ctx := context.Background()
	base := int64(1763942400000)
	build := func() *storage.Mem {
		st, specs := lifeStore(t, 17)
		lateSegment(t, st, specs, 9, base+2*hourMs+10*60_000)
		return st
	}
	oracle := build()
	runAllLife(t, oracle)
	want := readAll(t, oracle, query.Scope{})

	st := build()
	var collected int
	for _, now := range []time.Time{far, far.Add(DefaultGrace)} {
		g, err := GC(ctx, GCOptions{Store: st, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		collected += len(g.Segments)
	}
	if collected == 0 {
		t.Fatal("gc collected no segment: the windows the late segment does not reach should go")
	}
	runAllLife(t, st)
	samePoints(t, "a run of the late segment's windows after gc", readAll(t, st, query.Scope{}), want)
	verifyOK(t, st, "after gc and the run")
}

// TestRetention: raw points expire before their rollups, per org first; a run whose
// every resolution expired is retired; readers never see a half-deleted run; a dry run
// changes nothing.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	st, _ := lifeStore(t, 16)
	before := readAll(t, st, query.Scope{})
	// The windows ended about 189 days before far.
	pol, err := ParseRetentionPolicy([]byte(`
grace: 1d
default:
  raw: 400d
  5m: 2y
  15m: 2y
orgs:
  3:
    raw: 30d
    5m: 90d
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshot(t, st)
	dry, err := Retain(ctx, RetainOptions{Store: st, Policy: pol, Now: far, DryRun: true, TempDir: t.TempDir()})
	if err != nil || len(dry.Runs) == 0 {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	if after := snapshot(t, st); len(after) != len(snap) {
		t.Fatalf("dry run changed the store: %d objects, %d before", len(after), len(snap))
	}
	rep, err := Retain(ctx, RetainOptions{Store: st, Policy: pol, Now: far, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != len(dry.Runs) || rep.Totals.Points == 0 {
		t.Fatalf("retain: %d runs (dry run %d), %d points", len(rep.Runs), len(dry.Runs), rep.Totals.Points)
	}
	samePoints(t, "org 3's raw points expired", readAll(t, st, query.Scope{}), without(before, 3))
	if again, err := Retain(ctx, RetainOptions{Store: st, Policy: pol, Now: far, TempDir: t.TempDir()}); err != nil || len(again.Runs) != 0 {
		t.Fatalf("retain again: %+v, %v", again, err)
	}
	// Org 3's 5m rollups went too, the others' stayed.
	e, err := query.Open(ctx, query.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	count := func(stmt string) int64 {
		t.Helper()
		r, err := e.QueryViews(ctx, stmt, RollupViews(st, query.Scope{}), query.Scope{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Release()
		var n int64
		for r.Next() {
			n = r.RecordBatch().Column(0).(interface{ Value(int) int64 }).Value(0)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM rollup WHERE org_id = 3 AND resolution = '5m'`); n != 0 {
		t.Fatalf("%d 5m buckets of org 3 left", n)
	}
	if n := count(`SELECT count(*) FROM rollup WHERE org_id <> 3 AND resolution = '5m'`); n == 0 {
		t.Fatal("no 5m bucket of the other orgs left")
	}
	verifyOK(t, st, "after retain")
	// A year later every raw point expired; the 5m rollups (2 years) remain.
	if _, err := Retain(ctx, RetainOptions{Store: st, Policy: pol, Now: far.AddDate(1, 0, 0), TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if len(readAll(t, st, query.Scope{})) != 0 {
		t.Fatal("raw points left after their retention")
	}
	if n := count(`SELECT count(*) FROM rollup WHERE resolution = '5m'`); n == 0 {
		t.Fatal("the rollups went with the raw points")
	}
	// Two more years: everything expired, every run retired, and a run of the windows
	// brings nothing back.
	rep, err = Retain(ctx, RetainOptions{Store: st, Policy: pol, Now: far.AddDate(3, 0, 0), TempDir: t.TempDir()})
	if err != nil || rep.Totals.Retired == 0 {
		t.Fatalf("retain after every retention: %+v, %v", rep, err)
	}
	ms, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if !m.Retired {
			t.Fatalf("run %s %s is not retired", m.Shard, m.Window)
		}
	}
	for _, r := range runAllLife(t, st) {
		if !r.Skipped {
			t.Fatalf("run %s %s brought retired data back", r.Shard, r.Window)
		}
	}
	verifyOK(t, st, "after retiring")
}

// killAfter fails every write and delete once n have been made, as a killed process
// stores and deletes nothing more.
type killAfter struct {
	storage.Store
	left int64
	n    atomic.Int64
}

var errKilledStore = errors.New("killed")

func (s *killAfter) ok() bool { return s.n.Add(1) <= s.left }

func (s *killAfter) Put(ctx context.Context, key string, r io.Reader) error {
	if !s.ok() {
		return errKilledStore
	}
	return s.Store.Put(ctx, key, r)
}

func (s *killAfter) Create(ctx context.Context, key string, r io.Reader) error {
	if !s.ok() {
		return errKilledStore
	}
	return s.Store.Create(ctx, key, r)
}

func (s *killAfter) Delete(ctx context.Context, key string) error {
	if !s.ok() {
		return errKilledStore
	}
	return s.Store.Delete(ctx, key)
}

// killEveryStep runs step on a copy of base killed after 1, 2, … writes, checks after
// each kill that readers read every point of after and nothing that is not in before
// (each run changes whole: a kill between two runs leaves some done), bit for bit, and
// that verify finds nothing broken; then runs it again unkilled and checks the store
// ends exactly as an unkilled run leaves it. The kills are parallel subtests, each on
// its own copy: they are independent, and one after another they made this the longest
// test of make ci under -race.
func killEveryStep(t *testing.T, base storage.Store, step func(st storage.Store) error, read func(t *testing.T, st storage.Store) map[outPoint]uint64, before, after map[outPoint]uint64) {
	t.Helper()
	clean := &killAfter{Store: copyStore(t, base, "clean"), left: math.MaxInt64}
	if err := step(clean); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, clean)
	writes := clean.n.Load()
	if writes < 2 {
		t.Fatalf("the step made %d writes: the test proves too little", writes)
	}
	for n := int64(1); n < writes; n++ {
		t.Run(fmt.Sprintf("killed after %d writes", n), func(t *testing.T) {
			t.Parallel()
			st := copyStore(t, base, "killed")
			err := step(&killAfter{Store: st, left: n})
			if !errors.Is(err, errKilledStore) {
				t.Fatalf("killed after %d of %d writes: %v, want the kill", n, writes, err)
			}
			got := read(t, st)
			for op, bits := range got {
				if b, ok := before[op]; !ok || b != bits {
					t.Fatalf("readers see %+v, which was not there before (or had other bits)", op)
				}
			}
			for op := range after {
				if _, ok := got[op]; !ok {
					t.Fatalf("readers miss %+v", op)
				}
			}
			if rep := verifyStore(t, st, VerifyOptions{}); !rep.OK() {
				t.Fatalf("verify: %v", rep.Problems)
			}
			if err := step(st); err != nil {
				t.Fatalf("again: %v", err)
			}
			if got := snapshot(t, st); !sameSnapshot(got, want) {
				t.Fatal("run again, the store differs from an unkilled run's")
			}
		})
	}
}

// sameSnapshot compares two snapshots, ignoring gc's marks (they hold gc's clock).
func sameSnapshot(a, b map[string]string) bool {
	strip := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			if !strings.HasSuffix(k, gcMarkName) {
				out[k] = v
			}
		}
		return out
	}
	a, b = strip(a), strip(b)
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestKilledLifecycleSteps: compact, retain, delete --apply and gc killed after every
// number of writes leave a store readers read as before or as after and verify finds
// intact; run again, each ends exactly where an unkilled run does.
func TestKilledLifecycleSteps(t *testing.T) {
	ctx := context.Background()
	base, _ := lifeStore(t, 17)
	read := func(t *testing.T, st storage.Store) map[outPoint]uint64 { return readAll(t, st, query.Scope{}) }
	all := read(t, base)
	dir := t.TempDir()
	t.Run("compact", func(t *testing.T) {
		killEveryStep(t, base, func(st storage.Store) error {
			_, err := Compact(ctx, CompactOptions{Store: st, Levels: []time.Duration{2 * time.Hour, 6 * time.Hour}, TempDir: dir})
			return err
		}, read, all, all)
	})
	t.Run("delete --apply", func(t *testing.T) {
		st := copyStore(t, base, "tomb")
		recordDelete(t, st, 0)
		killEveryStep(t, st, func(st storage.Store) error {
			_, err := ApplyTombstones(ctx, ApplyOptions{Store: st, TempDir: dir, Now: far})
			return err
		}, read, without(all, 0), without(all, 0))
	})
	t.Run("retain", func(t *testing.T) {
		pol := &RetentionPolicy{Grace: Duration(time.Hour), Default: map[string]Duration{"raw": Duration(300 * 24 * time.Hour)}, Orgs: map[uint32]map[string]Duration{1: {"raw": Duration(24 * time.Hour)}}}
		killEveryStep(t, base, func(st storage.Store) error {
			_, err := Retain(ctx, RetainOptions{Store: st, Policy: pol, Now: far, TempDir: dir})
			return err
		}, read, all, without(all, 1))
	})
	t.Run("gc", func(t *testing.T) {
		st := copyStore(t, base, "gc")
		if _, err := Compact(ctx, CompactOptions{Store: st, Levels: []time.Duration{6 * time.Hour}, TempDir: dir}); err != nil {
			t.Fatal(err)
		}
		if _, err := GC(ctx, GCOptions{Store: st, Now: far}); err != nil {
			t.Fatal(err)
		}
		killEveryStep(t, st, func(st storage.Store) error {
			_, err := GC(ctx, GCOptions{Store: st, Now: far.Add(DefaultGrace)})
			return err
		}, read, all, all)
	})
}
