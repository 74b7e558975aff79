//go:build duckdb_arrow

package run

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// lifeStore is a store of the late workload with every window run (1 h windows, 20 min
// lateness) and rollups at 5 and 15 minutes.
func lifeStore(t *testing.T, seed uint64) (*storage.Mem, []segSpec) {
	t.Helper()
	st := storage.NewMem("life")
	specs := lateWorkload(t, st, seed, 16)
	runAllLife(t, st)
	return st, specs
}

func runAllLife(t *testing.T, st storage.Store) []*Report {
	t.Helper()
	reps, err := RunAll(context.Background(), AllOptions{RunOptions: RunOptions{
		Store: st, Arrival: testArrival(), Engine: query.Options{Threads: 1}, PartBytes: 4 << 10,
		Rollups: &RollupConfig{ResolutionsMs: []int64{5 * 60_000, 15 * 60_000}, CounterTags: []string{"seg:3"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return reps
}

// readAll reads what users read through OpenSeries, every point by (series, ts), with
// its value's bits; it checks the merger's order.
func readAll(t *testing.T, st storage.Store, scope query.Scope) map[outPoint]uint64 {
	t.Helper()
	m, err := OpenSeries(context.Background(), st, scope)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got := map[outPoint]uint64{}
	var prev *outPoint
	for m.Next() {
		s := m.At()
		for i, ts := range s.Ts {
			op := outPoint{s.Key, ts}
			if prev != nil && (op.k.Compare(prev.k) < 0 || op.k == prev.k && ts <= prev.ts) {
				t.Fatalf("%+v after %+v: not in (series, ts) order, or repeated", op, *prev)
			}
			prev = &op
			got[op] = math.Float64bits(s.Values[i])
		}
	}
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func samePoints(t *testing.T, what string, got, want map[outPoint]uint64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d points, want %d", what, len(got), len(want))
	}
	for op, bits := range want {
		if g, ok := got[op]; !ok || g != bits {
			t.Fatalf("%s: %+v: bits %x (present %v), want %x", what, op, g, ok, bits)
		}
	}
}

// scopes are the reads the compaction tests compare: everything, and one shard's
// windows at the edges of compaction targets.
func scopes(specs []segSpec) []query.Scope {
	shard := columnar.DefaultShardMap().Shard(specs[0].payloads[0].Org, specs[0].payloads[0].Metric)
	base := int64(1763942400000)
	out := []query.Scope{{}}
	for _, w := range [][2]int64{{0, 1}, {1, 3}, {2, 4}, {5, 7}, {-2, 1}} {
		out = append(out, query.Scope{Shard: shard, Window: columnar.TimeRange{From: base + w[0]*hourMs, To: base + w[1]*hourMs}})
	}
	return out
}

func compactLife(t *testing.T, st storage.Store, levels ...time.Duration) *CompactReport {
	t.Helper()
	rep, err := Compact(context.Background(), CompactOptions{Store: st, Levels: levels, PartBytes: 4 << 10, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestCompactionReadsTheSame: after compacting 1 h windows into 2 h and 6 h ones, every
// reader gets exactly the points it got before, bit for bit, scoped or not; the
// compacted runs name what they supersede, and readers open far fewer files.
func TestCompactionReadsTheSame(t *testing.T) {
	ctx := context.Background()
	st, specs := lifeStore(t, 5)
	sc := scopes(specs)
	before := make([]map[outPoint]uint64, len(sc))
	for i, s := range sc {
		before[i] = readAll(t, st, s)
	}
	runsBefore, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	rep := compactLife(t, st, 2*time.Hour, 6*time.Hour)
	n := 0
	for _, s := range rep.Shards {
		n += len(s.Runs)
	}
	if n == 0 {
		t.Fatal("nothing compacted")
	}
	for i, s := range sc {
		samePoints(t, fmt.Sprintf("after compaction %+v", s), readAll(t, st, s), before[i])
	}
	runsAfter, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	files := func(ms []*Manifest) int {
		n := 0
		for _, m := range ms {
			n += len(m.Parts) + len(m.LateParts)
		}
		return n
	}
	for _, m := range runsAfter {
		if m.Window[len(m.Window)-2:] != "6h" || m.Derived == nil || len(m.Supersedes) == 0 {
			t.Fatalf("run %s %s after compaction: not a 6 h compacted run", m.Shard, m.Window)
		}
	}
	if files(runsAfter)*3 > files(runsBefore) {
		t.Fatalf("%d files before compaction, %d after", files(runsBefore), files(runsAfter))
	}
	// Compacting again does nothing.
	again := compactLife(t, st, 2*time.Hour, 6*time.Hour)
	for _, s := range again.Shards {
		if len(s.Runs) != 0 {
			t.Fatalf("second compaction of %s made %d runs", s.Shard, len(s.Runs))
		}
	}
}

// TestCompactionIsDeterministic: two compactors of copies of one store write the same
// keys and bytes, one level at a time or both levels in one go; and a run of every
// window after compaction finds everything covered.
func TestCompactionIsDeterministic(t *testing.T) {
	st, _ := lifeStore(t, 6)
	a, b := copyStore(t, st, "a"), copyStore(t, st, "b")
	compactLife(t, a, 2*time.Hour, 6*time.Hour)
	compactLife(t, b, 2*time.Hour)
	compactLife(t, b, 2*time.Hour, 6*time.Hour)
	sa, sb := snapshot(t, a), snapshot(t, b)
	if len(sa) != len(sb) {
		t.Fatalf("%d objects and %d", len(sa), len(sb))
	}
	for k, v := range sa {
		if sb[k] != v {
			t.Fatalf("%s differs", k)
		}
	}
	for _, r := range runAllLife(t, a) {
		if !r.Skipped {
			t.Fatalf("run %s %s after compaction was not skipped as covered", r.Shard, r.Window)
		}
	}
}

// TestCompactionOverlapFailsOneShard: a run whose window crosses a target's edge fails
// its shard with ErrOverlap, naming it; the other shards compact.
func TestCompactionOverlapFailsOneShard(t *testing.T) {
	ctx := context.Background()
	st, _ := lifeStore(t, 7)
	runs, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	// A 90 min window of one shard, published by hand over its own 1 h run.
	bad := *runs[0]
	w, _ := ParseWindowName(bad.Window)
	w.Size = 90 * time.Minute
	bad.Window, bad.To, bad.RunID = w.Name(), bad.From+w.Size.Milliseconds(), "overlapping"
	if err := Publish(ctx, st, &bad, PublishOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := Compact(ctx, CompactOptions{Store: st, Levels: []time.Duration{2 * time.Hour}, TempDir: t.TempDir()})
	if !errors.Is(err, ErrOverlap) || !strings.Contains(err.Error(), bad.Shard) {
		t.Fatalf("err %v, want an overlap naming %s", err, bad.Shard)
	}
	ok := 0
	for _, s := range rep.Shards {
		switch {
		case s.Shard == bad.Shard && s.Err == "":
			t.Fatalf("shard %s: no error", s.Shard)
		case s.Shard != bad.Shard && (s.Err != "" || len(s.Runs) == 0):
			t.Fatalf("shard %s: %q, %d runs", s.Shard, s.Err, len(s.Runs))
		case s.Shard != bad.Shard:
			ok++
		}
	}
	if ok == 0 {
		t.Fatal("no other shard")
	}
}

// modelPoints is what readers must return for specs under testArrival: of each
// (series, ts), the copy from the latest segment start (docs/run.md), written out
// independently of the run and the merger.
func modelPoints(specs []segSpec) map[outPoint]uint64 {
	a := testArrival()
	want := map[outPoint]arrival{}
	for _, m := range expectedArrivals(specs, a.Size.Milliseconds(), a.Lateness.Milliseconds(), a.FlushAge.Milliseconds()) {
		for op, ar := range m {
			if cur, ok := want[op]; ok && cur.segStart > ar.segStart {
				continue
			}
			want[op] = ar
		}
	}
	out := map[outPoint]uint64{}
	for op, ar := range want {
		out[op] = ar.bits
	}
	return out
}

// lateSegment writes a segment that starts inside an already compacted range: copies of
// earlier payloads with new values, some on time and some late for the windows that read
// it, as a replayed or restored segment brings.
func lateSegment(t *testing.T, st storage.Store, specs []segSpec, part int32, startTs int64) segSpec {
	t.Helper()
	s := segSpec{part: part, startTs: startTs}
	for i := 0; i < len(specs); i += 3 {
		p := specs[i].payloads[0]
		p.Values = append([]float64(nil), p.Values...)
		for j := range p.Values {
			p.Values[j] += 1000 + float64(i)
		}
		s.payloads = append(s.payloads, p)
		s.recTs = append(s.recTs, startTs+int64(len(s.recTs))*1000)
	}
	writeSeg(t, st, s, 16)
	return s
}

// TestRunsAfterCompaction: segments that arrive inside a compacted range make runs of
// their windows again; readers merge those with the compacted run exactly as the arrival
// rule says (the compacted run's arrival parts rank its folded copies), and compacting
// again folds them in with the same answer.
func TestRunsAfterCompaction(t *testing.T) {
	st, specs := lifeStore(t, 8)
	compactLife(t, st, 2*time.Hour, 6*time.Hour)
	base := int64(1763942400000)
	specs = append(specs, lateSegment(t, st, specs, 9, base+2*hourMs+10*60_000))
	specs = append(specs, lateSegment(t, st, specs[:12], 10, base+4*hourMs+15*60_000))
	// Older copies of points that arrived ahead of their time late in the compacted
	// range (the compacted run's late output holds them): the runs of the new segment's
	// windows hold these copies too, and must lose to the compacted run's, whose arrival
	// parts record the later window they came from.
	var early segSpec
	for _, sp := range specs {
		for _, p := range sp.payloads {
			if sp.startTs >= base+4*hourMs+30*60_000 && p.Timestamps[len(p.Timestamps)-1] >= base+6*hourMs {
				p.Values = append([]float64(nil), p.Values...)
				for j := range p.Values {
					p.Values[j] = -p.Values[j] - 1
				}
				early.payloads = append(early.payloads, p)
			}
		}
	}
	if len(early.payloads) == 0 {
		t.Fatal("no early payload to copy")
	}
	early.part, early.startTs = 11, base+4*hourMs+15*60_000
	for i := range early.payloads {
		early.recTs = append(early.recTs, early.startTs+int64(i))
	}
	writeSeg(t, st, early, 16)
	specs = append(specs, early)
	want := modelPoints(specs)
	reran := 0
	for _, r := range runAllLife(t, st) {
		if !r.Skipped {
			reran++
		}
	}
	if reran == 0 {
		t.Fatal("no window ran again")
	}
	samePoints(t, "runs inside the compacted range", readAll(t, st, query.Scope{}), want)
	rep := compactLife(t, st, 2*time.Hour, 6*time.Hour)
	n := 0
	for _, s := range rep.Shards {
		for _, r := range s.Runs {
			if !strings.HasSuffix(r.Window, "-6h") {
				t.Fatalf("compacted %s again at %s: want the 6 h run compacted with the new runs inside it", s.Shard, r.Window)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("nothing compacted again")
	}
	samePoints(t, "compacted again", readAll(t, st, query.Scope{}), want)
	ms, err := Published(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if !strings.HasSuffix(m.Window, "-6h") {
			t.Fatalf("run %s %s serves after compacting again", m.Shard, m.Window)
		}
	}
}

// TestCompactionUnreadablePartFailsOneShard: a source part that does not decode fails
// its shard's compaction with an error naming the part; the other shards compact, and
// the damaged shard's runs keep serving.
func TestCompactionUnreadablePartFailsOneShard(t *testing.T) {
	ctx := context.Background()
	st, _ := lifeStore(t, 19)
	runs, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var bad *Manifest
	for _, m := range runs {
		if len(m.Parts) > 0 {
			bad = m
			break
		}
	}
	b := mustRead(t, st, bad.Parts[0].Key)
	b[len(b)/2] ^= 0xff
	mustPut(t, st, bad.Parts[0].Key, b)
	rep, err := Compact(ctx, CompactOptions{Store: st, Levels: []time.Duration{6 * time.Hour}, TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), bad.Parts[0].Key) {
		t.Fatalf("err %v, want one naming %s", err, bad.Parts[0].Key)
	}
	for _, s := range rep.Shards {
		if (s.Shard == bad.Shard) != (s.Err != "") || s.Shard != bad.Shard && len(s.Runs) == 0 {
			t.Fatalf("shard %s: error %q, %d runs", s.Shard, s.Err, len(s.Runs))
		}
	}
	after, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range after {
		if m.Shard == bad.Shard && m.Derived != nil {
			t.Fatalf("the damaged shard serves a compacted run %s", m.Window)
		}
	}
}
