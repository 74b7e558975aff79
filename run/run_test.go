//go:build duckdb_arrow

package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// segSpec is one segment to write: its partition, first offset and start time, and
// its payloads (one record each, offsets counting up from start).
type segSpec struct {
	part     int32
	start    int64
	startTs  int64
	payloads []columnar.Payload
	recTs    []int64
}

func writeSeg(t testing.TB, st storage.Store, s segSpec, frameRows int) {
	t.Helper()
	w := columnar.NewSegmentWriter(columnar.Header{Topic: "metrics", Partition: s.part, StartOffset: s.start, StartTimestamp: s.startTs}, columnar.DefaultShardMap(), frameRows)
	for i := range s.payloads {
		src := columnar.Source{Topic: "metrics", Partition: s.part, Offset: s.start + int64(i), Timestamp: s.recTs[i]}
		if err := w.Add(src, s.payloads[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(context.Background(), w.Key(), &buf); err != nil {
		t.Fatal(err)
	}
}

type outPoint struct {
	k  columnar.SeriesKey
	ts int64
}

// readOutputs reads every published run's parts, keyed by "window part|late".
func readOutputs(t *testing.T, st storage.Store) map[string]map[outPoint]uint64 {
	t.Helper()
	ctx := context.Background()
	ms, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[outPoint]uint64{}
	for _, m := range ms {
		for kind, parts := range map[string][]Part{"part": m.Parts, "late": m.LateParts} {
			name := m.Shard + " " + m.Window + " " + kind
			for _, p := range parts {
				b, err := storage.ReadAll(ctx, st, p.Key)
				if err != nil {
					t.Fatal(err)
				}
				r, err := encoder.Open(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					t.Fatal(err)
				}
				// The manifest's ranges of the part are its points' exact bounds.
				var ts []int64
				var orgs []uint32
				for i, e := range r.Index() {
					if i == 0 {
						ts, orgs = []int64{e.MinTs, e.MaxTs}, []uint32{e.Key.Org, e.Key.Org}
					}
					ts[0], ts[1], orgs[1] = min(ts[0], e.MinTs), max(ts[1], e.MaxTs), e.Key.Org
				}
				if !slices.Equal(p.Ts, ts) || !slices.Equal(p.Orgs, orgs) || ts == nil {
					t.Fatalf("%s: manifest ranges ts %v orgs %v, the part holds ts %v orgs %v", p.Key, p.Ts, p.Orgs, ts, orgs)
				}
				it := r.Iterator(nil)
				for it.Next() {
					s := it.At()
					if out[name] == nil {
						out[name] = map[outPoint]uint64{}
					}
					for i, ts := range s.Ts {
						op := outPoint{s.Key, ts}
						if _, dup := out[name][op]; dup {
							t.Fatalf("%s: (series, ts) %+v written twice", name, op)
						}
						out[name][op] = math.Float64bits(s.Values[i])
					}
				}
				if err := it.Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return out
}

// lateWorkload writes segments over six hours: most points arrive within minutes of
// their ts, some hours late, some ahead of their arrival, and some are redelivered.
// It returns the segments it wrote.
func lateWorkload(t testing.TB, st storage.Store, seed uint64, frameRows int) []segSpec {
	rng := rand.New(rand.NewPCG(seed, seed))
	base := int64(1763942400000) // 2025-11-24T00:00Z
	var specs []segSpec
	offsets := map[int32]int64{}
	for i := 0; i < 36; i++ {
		part := int32(i % 3)
		startTs := base + int64(i)*10*60_000 + rng.Int64N(60_000)
		s := segSpec{part: part, start: offsets[part], startTs: startTs}
		for j := 0; j < 40; j++ {
			k := columnar.SeriesKey{Org: uint32(rng.IntN(4)), Metric: uint64(rng.IntN(6)), Context: uint64(rng.IntN(3))}
			rec := startTs + int64(j)*1000
			// Mostly just before arrival; 10% hours late; 5% ahead of arrival.
			first := rec - rng.Int64N(20*60_000)
			switch r := rng.IntN(20); {
			case r < 2:
				first = rec - (1+rng.Int64N(4))*hourMs
			case r == 2:
				first = rec + (1+rng.Int64N(2))*hourMs
			}
			p := columnar.Payload{SeriesKey: k, Tags: []string{fmt.Sprintf("seg:%d", i)}}
			for n := 0; n < 1+rng.IntN(30); n++ {
				ts := first/1000*1000 + int64(n)*15_000
				p.Timestamps = append(p.Timestamps, ts)
				p.Values = append(p.Values, math.Round(rng.NormFloat64()*1000)/8)
			}
			s.payloads = append(s.payloads, p)
			s.recTs = append(s.recTs, rec)
			if rng.IntN(50) == 0 { // redelivered in the same segment: same points, later record
				s.payloads = append(s.payloads, p)
				s.recTs = append(s.recTs, rec+1)
			}
		}
		offsets[part] += int64(len(s.payloads))
		writeSeg(t, st, s, frameRows)
		specs = append(specs, s)
	}
	return specs
}

// expectedOutputs applies the arrival rule, written out independently of Arrival: a
// point of segment s goes to its own window W when W.start-flush <= s.start < W.end+late,
// else to the late output of the window holding s.start-late. Within one output the
// latest arrival of a (series, ts) wins.
func expectedOutputs(specs []segSpec, size, late, flush int64) map[string]map[outPoint]uint64 {
	out := map[string]map[outPoint]uint64{}
	for k, m := range expectedArrivals(specs, size, late, flush) {
		out[k] = map[outPoint]uint64{}
		for op, a := range m {
			out[k][op] = a.bits
		}
	}
	return out
}

// arrival is the copy of a point an output keeps: its provenance, its segment's start
// and its value.
type arrival struct {
	rec, off, segStart int64
	part               int32
	bits               uint64
}

// outputOf is the output a point of series k at ts, in a segment that started at
// segStart, goes to, by the arrival rule written out independently of Arrival: its own
// window W when W.start-flush <= segStart < W.end+late, else the late output of the
// window holding segStart-late. It returns the run ("shard window") and the output's
// kind, "part" or "late".
func outputOf(k columnar.SeriesKey, ts, segStart, size, late, flush int64) (run, kind string) {
	floor := func(x int64) int64 { return x - ((x%size)+size)%size }
	name := func(from int64) string {
		w := Window{From: time.UnixMilli(from).UTC(), Size: time.Duration(size) * time.Millisecond}
		return columnar.DefaultShardMap().Shard(k.Org, k.Metric) + " " + w.Name()
	}
	if w := floor(ts); segStart >= w-flush && segStart < w+size+late {
		return name(w), "part"
	}
	return name(floor(segStart - late)), "late"
}

// expectedArrivals is expectedOutputs with the kept copies' arrivals.
func expectedArrivals(specs []segSpec, size, late, flush int64) map[string]map[outPoint]arrival {
	best := map[string]map[outPoint]arrival{}
	for _, s := range specs {
		for i, p := range s.payloads {
			a := arrival{rec: s.recTs[i], off: s.start + int64(i), segStart: s.startTs, part: s.part}
			for j, ts := range p.Timestamps {
				run, kind := outputOf(p.SeriesKey, ts, s.startTs, size, late, flush)
				key := run + " " + kind
				if best[key] == nil {
					best[key] = map[outPoint]arrival{}
				}
				op := outPoint{p.SeriesKey, ts}
				a.bits = math.Float64bits(p.Values[j])
				cur, ok := best[key][op]
				if !ok || a.rec > cur.rec || a.rec == cur.rec && (a.part > cur.part || a.part == cur.part && a.off > cur.off) {
					best[key][op] = a
				}
			}
		}
	}
	return best
}

func compareOutputs(t *testing.T, got, want map[string]map[outPoint]uint64) {
	t.Helper()
	var names []string
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if len(got[k]) != len(want[k]) {
			t.Errorf("%s: %d points, want %d", k, len(got[k]), len(want[k]))
			continue
		}
		for op, bits := range want[k] {
			if g, ok := got[k][op]; !ok || g != bits {
				t.Errorf("%s: %+v: got bits %x (present %v), want %x", k, op, g, ok, bits)
				break
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && len(got[k]) > 0 {
			t.Errorf("unexpected output %s with %d points", k, len(got[k]))
		}
	}
}

// hourMs is an hour in ms: the test windows are an hour long.
const hourMs = 3_600_000

func testArrival() Arrival {
	return Arrival{Size: time.Hour, Closed: true, Lateness: 20 * time.Minute, FlushAge: 5 * time.Minute}
}

// TestLatePointsGoToExactlyOneOutput: with a lateness, every point is written by exactly
// one run, to its own window or to a later (or, for points ahead of their arrival, an
// earlier) window's late output, as docs/run.md states; the counts add up.
func TestLatePointsGoToExactlyOneOutput(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("late")
	specs := lateWorkload(t, st, 1, 64)
	a := testArrival()
	reps, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: a, Readers: 2, Engine: query.Options{Threads: 2}}, Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := expectedOutputs(specs, a.Size.Milliseconds(), a.Lateness.Milliseconds(), a.FlushAge.Milliseconds())
	compareOutputs(t, readOutputs(t, st), want)
	var c Counts
	for _, r := range reps {
		c.Add(r.Counts)
	}
	var lateWant int
	for k, m := range want {
		if k[len(k)-4:] == "late" {
			lateWant += len(m)
		}
	}
	if c.Late == 0 || c.Early == 0 || c.LatePointsOut != uint64(lateWant) {
		t.Fatalf("counts %+v: want late and early points, %d late points out", c, lateWant)
	}
	if c.PointsIn != c.PointsOut+c.Duplicates {
		t.Fatalf("counts %+v do not add up", c)
	}
}

// TestSeriesMergerTakesLatestArrival reads the outputs of a run with late and early
// points as users do (cat, the series view): every (series, ts) once, in order, from the
// output whose kept copy arrived in the latest segment; and, scoped to one window and
// shard, only that window's points.
func TestSeriesMergerTakesLatestArrival(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("merged")
	specs := lateWorkload(t, st, 3, 64)
	// One payload redelivered twice, hours late, with new values: its points are in the
	// late outputs of two windows, and the later one must win.
	base := int64(1763942400000)
	for i, h := range []int64{3, 5} {
		p := specs[0].payloads[0]
		p.Values = slices.Clone(p.Values)
		for j := range p.Values {
			p.Values[j] += float64(i + 1)
		}
		s := segSpec{part: 7, start: int64(i), startTs: base + h*hourMs, payloads: []columnar.Payload{p}, recTs: []int64{base + h*hourMs}}
		writeSeg(t, st, s, 64)
		specs = append(specs, s)
	}
	a := testArrival()
	if _, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: a, Engine: query.Options{Threads: 1}}}); err != nil {
		t.Fatal(err)
	}
	want := map[outPoint]arrival{}
	where := map[outPoint]string{}
	overlaps, lateLate := 0, 0
	for name, m := range expectedArrivals(specs, a.Size.Milliseconds(), a.Lateness.Milliseconds(), a.FlushAge.Milliseconds()) {
		for op, ar := range m {
			if cur, ok := want[op]; ok {
				overlaps++
				if strings.HasSuffix(name, "late") && strings.HasSuffix(where[op], "late") {
					lateLate++
				}
				if cur.segStart > ar.segStart {
					continue
				}
			}
			want[op], where[op] = ar, name
		}
	}
	if overlaps == 0 || lateLate == 0 {
		t.Fatalf("%d points in two outputs, %d in two late outputs: the test proves too little", overlaps, lateLate)
	}
	read := func(scope query.Scope) map[outPoint]uint64 { return readAll(t, st, scope) }
	got := read(query.Scope{})
	if len(got) != len(want) {
		t.Fatalf("%d points, want %d", len(got), len(want))
	}
	for op, ar := range want {
		if got[op] != ar.bits {
			t.Fatalf("%+v: bits %x, want %x", op, got[op], ar.bits)
		}
	}
	shard := columnar.DefaultShardMap().Shard(specs[0].payloads[0].Org, specs[0].payloads[0].Metric)
	win := columnar.TimeRange{From: 1763942400000 + 2*hourMs, To: 1763942400000 + 3*hourMs}
	scoped := read(query.Scope{Shard: shard, Window: win})
	n := 0
	for op, ar := range want {
		if columnar.DefaultShardMap().Shard(op.k.Org, op.k.Metric) != shard || !win.Contains(op.ts) {
			continue
		}
		n++
		if bits, ok := scoped[op]; !ok || bits != ar.bits {
			t.Fatalf("scoped %+v: bits %x (present %v), want %x", op, bits, ok, ar.bits)
		}
	}
	if n == 0 || len(scoped) != n {
		t.Fatalf("scoped read: %d points, want %d", len(scoped), n)
	}
}

// TestOpenWindowsTakeEveryPoint: without a lateness (the default), each point goes to
// its own window whenever it arrived, and no run has a late output.
func TestOpenWindowsTakeEveryPoint(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("open")
	specs := lateWorkload(t, st, 2, 0)
	a := Arrival{Size: time.Hour}
	if _, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: a, Engine: query.Options{Threads: 1}}}); err != nil {
		t.Fatal(err)
	}
	// An infinite lateness and flush age: every segment is read by every window.
	compareOutputs(t, readOutputs(t, st), expectedOutputs(specs, hourMs, math.MaxInt64/4, math.MaxInt64/4))
}

// snapshot returns every object under series/ with its bytes.
func snapshot(t *testing.T, st storage.Store) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	if err := st.List(ctx, SeriesPrefix, func(a storage.Attrs) error {
		b, err := storage.ReadAll(ctx, st, a.Key)
		out[a.Key] = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// shuffledStore lists in a random order, as an object store's listing order is not
// something a run may depend on.
type shuffledStore struct {
	storage.Store
	rng *rand.Rand
}

func (s shuffledStore) List(ctx context.Context, prefix string, fn func(storage.Attrs) error) error {
	var all []storage.Attrs
	if err := s.Store.List(ctx, prefix, func(a storage.Attrs) error { all = append(all, a); return nil }); err != nil {
		return err
	}
	s.rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, a := range all {
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

// copyStore copies every object of src into a new in-memory store.
func copyStore(t *testing.T, src storage.Store, name string) *storage.Mem {
	t.Helper()
	ctx := context.Background()
	dst := storage.NewMem(name)
	if err := src.List(ctx, "", func(a storage.Attrs) error {
		b, err := storage.ReadAll(ctx, src, a.Key)
		if err != nil {
			return err
		}
		return dst.Put(ctx, a.Key, bytes.NewReader(b))
	}); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestOutputIsByteIdentical: the same inputs give the same keys and bytes whatever the
// split size, reader and DuckDB thread counts, batch size, part size or listing order.
func TestOutputIsByteIdentical(t *testing.T) {
	ctx := context.Background()
	seed := storage.NewMem("seed")
	lateWorkload(t, seed, 3, 16)
	var ref map[string]string
	for i, c := range []struct {
		split            int64
		readers, threads int
		batch            int
	}{
		{0, 1, 1, 0},
		{1, 3, 2, 7},
		{4096, 2, 1, 100},
		{777, 4, 2, 1},
	} {
		st := shuffledStore{copyStore(t, seed, fmt.Sprint(i)), rand.New(rand.NewPCG(uint64(i), 9))}
		opt := AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), SplitBytes: c.split, Readers: c.readers, BatchRows: c.batch, PartBytes: 2000, Engine: query.Options{Threads: c.threads}}, Parallel: 1 + i%2}
		if _, err := RunAll(ctx, opt); err != nil {
			t.Fatal(err)
		}
		got := snapshot(t, st)
		if ref == nil {
			ref = got
			var parts int
			for k := range got {
				if filepath.Ext(k) == ".tsf" {
					parts++
				}
			}
			if parts < 10 {
				t.Fatalf("only %d part files: the test should roll parts", parts)
			}
			continue
		}
		if len(got) != len(ref) {
			t.Fatalf("case %+v: %d objects, want %d", c, len(got), len(ref))
		}
		for k, v := range ref {
			if got[k] != v {
				t.Fatalf("case %+v: %s differs", c, k)
			}
		}
	}
}

var errKilled = errors.New("killed")

// TestKilledRunLeavesNothingVisible: a run cancelled while it uploads parts publishes
// no manifest and no _CURRENT; the next run completes it with the same bytes as a run
// that never failed.
func TestKilledRunLeavesNothingVisible(t *testing.T) {
	ctx := context.Background()
	seed := storage.NewMem("seed")
	lateWorkload(t, seed, 4, 16)
	opt := func(st storage.Store) AllOptions {
		return AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), PartBytes: 1500, Engine: query.Options{Threads: 1}}}
	}
	clean := copyStore(t, seed, "clean")
	if _, err := RunAll(ctx, opt(clean)); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, clean)

	for _, killAt := range []int64{1, 5, 17} {
		st := copyStore(t, seed, "killed")
		cctx, cancel := context.WithCancel(ctx)
		ks := &killStore{Store: st, left: killAt, cancel: cancel}
		o := opt(ks)
		reps, err := RunAll(cctx, o)
		cancel()
		if err == nil {
			t.Fatalf("kill after %d puts: run did not fail", killAt)
		}
		// Runs that finished before the kill are published and complete; the others
		// are not current, so nothing of them is visible. (A kill between a run's
		// manifest and its _CURRENT leaves the manifest, which no reader follows.)
		ms, perr := Published(ctx, st)
		if perr != nil {
			t.Fatal(perr)
		}
		failed := 0
		for _, r := range reps {
			if r.Err == "" {
				continue
			}
			failed++
			w, _ := ParseWindowName(r.Window)
			if cur, err := CurrentRun(ctx, st, r.Shard, w); !errors.Is(err, storage.ErrNotExist) {
				t.Fatalf("kill after %d puts: killed run %s %s is current (%v, %v)", killAt, r.Shard, r.Window, cur, err)
			}
		}
		if failed == 0 || len(ms)+failed != len(reps) {
			t.Fatalf("kill after %d puts: %d failed, %d published of %d", killAt, failed, len(ms), len(reps))
		}
		for _, m := range ms {
			for _, p := range append(m.Parts, m.LateParts...) {
				if b, err := storage.ReadAll(ctx, st, p.Key); err != nil || int64(len(b)) != p.Size {
					t.Fatalf("published run %s %s: part %s incomplete (%v)", m.Shard, m.Window, p.Key, err)
				}
			}
		}
		if _, err := RunAll(ctx, opt(st)); err != nil {
			t.Fatalf("rerun after kill at %d: %v", killAt, err)
		}
		got := snapshot(t, st)
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("kill after %d puts, rerun: %s differs or is missing", killAt, k)
			}
		}
		// A re-run of complete inputs is skipped.
		reps, err = RunAll(ctx, opt(st))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reps {
			if !r.Skipped {
				t.Fatalf("second rerun of %s %s was not skipped", r.Shard, r.Window)
			}
		}
	}
}

// killStore cancels the run's context once it has stored left objects, and from then on
// fails, as a killed process stores nothing more.
type killStore struct {
	storage.Store
	left   int64
	cancel context.CancelFunc
	n      atomic.Int64
}

func (s *killStore) Put(ctx context.Context, key string, r io.Reader) error {
	if s.n.Add(1) > s.left {
		s.cancel()
		return errKilled
	}
	return s.Store.Put(ctx, key, r)
}

// TestDryRunPlansWithoutReading: --dry-run reads footers only, and its plan matches what
// the real run then reads.
func TestDryRunPlansWithoutReading(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("dry")
	lateWorkload(t, st, 5, 32)
	o := AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), DryRun: true}}
	plans, err := RunAll(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := Published(ctx, st); len(ms) != 0 {
		t.Fatal("dry run published")
	}
	o.DryRun = false
	o.Engine.Threads = 1
	reps, err := RunAll(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != len(reps) || len(plans) == 0 {
		t.Fatalf("%d plans, %d runs", len(plans), len(reps))
	}
	for i, p := range plans {
		r := reps[i]
		if !p.DryRun || p.RunID != r.RunID || p.Plan.Frames != int(r.Frames) || p.Plan.EstPoints < r.Counts.PointsIn {
			t.Fatalf("plan %+v does not match run %+v", p.Plan, r)
		}
	}
}

// TestFailedShardDoesNotStopOthers: a corrupt frame fails the runs that read it, names
// the file, and every other run is published.
func TestFailedShardDoesNotStopOthers(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("corrupt")
	lateWorkload(t, st, 6, 64)
	segs, err := ListWindowSegments(ctx, st, nil, Arrival{}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seg := segs[len(segs)/2]
	f := seg.Footer.Frames[0]
	b, err := storage.ReadAll(ctx, st, seg.Key)
	if err != nil {
		t.Fatal(err)
	}
	b[f.Offset+uint64(f.Length)-1] ^= 0xff // inside the compressed bytes: the crc fails
	if err := st.Put(ctx, seg.Key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	reps, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), Engine: query.Options{Threads: 1}}, Parallel: 2})
	if err == nil {
		t.Fatal("a corrupt frame did not fail the run")
	}
	var ce *columnar.CorruptSegmentError
	if !errors.As(err, &ce) || ce.Key != seg.Key {
		t.Fatalf("RunAll's error %v does not wrap the corrupt frame's error", err)
	}
	var failed int
	for _, r := range reps {
		if r.Err != "" {
			failed++
			if !strings.Contains(r.Err, seg.Key) {
				t.Fatalf("error %q does not name the segment %s", r.Err, seg.Key)
			}
		}
	}
	ms, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if failed == 0 || len(ms) != len(reps)-failed || len(ms) == 0 {
		t.Fatalf("%d runs, %d failed, %d published", len(reps), failed, len(ms))
	}
}

// TestCorruptFrameCountedOnce: with --skip-corrupt, a run that reads the corrupt frame
// for its own points and again for its late output counts it once, and every run whose
// outputs the frame's points belong to counts it, and no other. Which runs those are is
// worked out from the frame's points (decoded directly) by the rule written out in
// outputOf, not from the run's plan.
func TestCorruptFrameCountedOnce(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("corrupt-once")
	lateWorkload(t, st, 6, 64)
	segs, err := ListWindowSegments(ctx, st, nil, Arrival{}, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := testArrival()
	size, late, flush := a.Size.Milliseconds(), a.Lateness.Milliseconds(), a.FlushAge.Milliseconds()
	dec := columnar.NewFrameDecoder()
	defer dec.Close()
	// A frame whose points go both to a run's own output and to the same run's late one.
	var (
		target columnar.FrameInfo
		seg    *columnar.Segment
		runs   map[string]map[string]bool // run → kinds the frame's points go to
	)
	for _, s := range segs {
		for _, f := range s.Footer.Frames {
			sp := columnar.Split{Seg: s, Frames: []columnar.FrameInfo{f}}
			b, err := columnar.ReadSplitBytes(ctx, st, &sp, nil)
			if err != nil {
				t.Fatal(err)
			}
			var cols columnar.Columns
			var fs columnar.FrameStats
			if err := dec.DecodeFrame(&sp, f, b, columnar.DecodeOptions{}, &cols, &fs); err != nil {
				t.Fatal(err)
			}
			rs := map[string]map[string]bool{}
			both := false
			for i, ts := range cols.Ts {
				k := columnar.SeriesKey{Org: cols.Org[i], Metric: cols.Metric[i], Context: cols.Context[i]}
				run, kind := outputOf(k, ts, s.Header.StartTimestamp, size, late, flush)
				if rs[run] == nil {
					rs[run] = map[string]bool{}
				}
				rs[run][kind] = true
				both = both || len(rs[run]) == 2
			}
			if both && seg == nil {
				target, seg, runs = f, s, rs
			}
		}
	}
	if seg == nil {
		t.Fatal("no frame feeds both outputs of one run: the workload proves nothing")
	}
	b, err := storage.ReadAll(ctx, st, seg.Key)
	if err != nil {
		t.Fatal(err)
	}
	b[target.Offset+uint64(target.Length)-1] ^= 0xff
	if err := st.Put(ctx, seg.Key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	reps, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: a, SkipCorrupt: true, Engine: query.Options{Threads: 1}}, Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	counted := 0
	for _, r := range reps {
		want := uint64(0)
		if runs[r.Shard+" "+r.Window] != nil {
			want = 1
		}
		if r.Counts.CorruptFrames != want {
			t.Fatalf("run %s %s counted %d corrupt frames, want %d", r.Shard, r.Window, r.Counts.CorruptFrames, want)
		}
		counted += int(want)
	}
	if counted != len(runs) {
		t.Fatalf("%d runs counted the frame, its points belong to %d", counted, len(runs))
	}
}
