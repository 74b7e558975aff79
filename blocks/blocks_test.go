package blocks

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/internal/promtools"
	"github.com/tailor-metrics/tailor/storage"
)

// sliceSource serves series from a slice, as query.SeriesMerger serves a store's.
type sliceSource struct {
	s []encoder.Series
	i int
}

func (s *sliceSource) Next() bool          { s.i++; return s.i <= len(s.s) }
func (s *sliceSource) At() *encoder.Series { return &s.s[s.i-1] }
func (s *sliceSource) Err() error          { return nil }

const t0 = int64(1763942400000) // 2025-11-24T00:00:00Z, a multiple of 2h

var (
	stale  = math.Float64frombits(0x7ff0000000000002) // Prometheus' stale marker
	oddNaN = math.Float64frombits(0xfff8dead00000001)
)

// rwSeries makes a series as the sink stores a remote-write series with these labels
// (the tenant is org).
func rwSeries(t *testing.T, org uint32, kv ...string) encoder.Series {
	t.Helper()
	ls := []payload.Label{{Name: payload.TenantLabel, Value: fmt.Sprint(org)}}
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, payload.Label{Name: kv[i], Value: kv[i+1]})
	}
	var d payload.Decoder
	var p columnar.Payload
	if err := d.MapLabels(ls, &p); err != nil {
		t.Fatal(err)
	}
	return encoder.Series{Key: p.SeriesKey, Tags: slices.Clone(p.Tags)}
}

// testSeries is a mix: many samples across block boundaries, special values, two
// orgs, sorted by key as a store yields them.
func testSeries(t *testing.T) []encoder.Series {
	rng := rand.New(rand.NewPCG(3, 4))
	var out []encoder.Series
	for org := uint32(1); org <= 2; org++ {
		for i := 0; i < 20; i++ {
			s := rwSeries(t, org, "__name__", fmt.Sprintf("metric_%d", i%3), "job", "api", "instance", fmt.Sprint(i))
			step := int64(15000)
			for k := 0; k < 1000+i*37; k++ { // 15 s steps: 1000 points span 4h10m, 3 blocks
				ts := t0 + int64(k)*step
				v := math.Round(rng.NormFloat64()*1e4) / 100
				switch k % 97 {
				case 5:
					v = math.NaN()
				case 6:
					v = stale
				case 7:
					v = oddNaN
				case 8:
					v = math.Copysign(0, -1)
				case 9:
					v = math.Inf(-1)
				case 10:
					v = 5e-324
				}
				s.Ts, s.Values = append(s.Ts, ts), append(s.Values, v)
			}
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b encoder.Series) int { return a.Key.Compare(b.Key) })
	return out
}

type point struct {
	k  columnar.SeriesKey
	ts int64
}

func pointsOf(t *testing.T, src encoder.SeriesSource) map[point]uint64 {
	t.Helper()
	out := map[point]uint64{}
	for src.Next() {
		s := src.At()
		for i, ts := range s.Ts {
			p := point{s.Key, ts}
			if _, dup := out[p]; dup {
				t.Fatalf("point %+v twice", p)
			}
			out[p] = math.Float64bits(s.Values[i])
		}
	}
	if err := src.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExportReadRoundTrip(t *testing.T) {
	series := testSeries(t)
	dir := t.TempDir()
	st, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stats, err := Export(ctx, &sliceSource{s: series}, st, ExportOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// The longest series: 1703 points of 15 s, 7.1 h: four 2h blocks per org.
	if stats.Orgs != 2 || stats.Blocks != 8 {
		t.Errorf("stats %+v: want 2 orgs × 4 blocks", stats)
	}
	want := pointsOf(t, &sliceSource{s: series})
	if stats.Samples != uint64(len(want)) {
		t.Errorf("exported %d samples, want %d", stats.Samples, len(want))
	}
	r, err := Open(ctx, st, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := pointsOf(t, r)
	if len(got) != len(want) {
		t.Fatalf("read %d points, want %d", len(got), len(want))
	}
	for p, w := range want {
		if g, ok := got[p]; !ok || g != w {
			t.Fatalf("point %+v: got %x (%v), want %x", p, g, ok, w)
		}
	}
	// The layout: <org>/<ulid>/ with the standard files, meta.json consistent, and
	// blocks inside their 2h ranges.
	for _, b := range r.Blocks() {
		m := b.Meta
		if b.Tenant != "1" && b.Tenant != "2" || m.Thanos.Labels[TenantExternalLabel] != b.Tenant {
			t.Errorf("block %s: tenant %q, labels %v", b.Dir, b.Tenant, m.Thanos.Labels)
		}
		start := floorDiv(m.MinTime, 2*3600*1000) * 2 * 3600 * 1000
		if m.MaxTime > start+2*3600*1000 || m.Stats.NumSamples == 0 || m.Stats.NumChunks < m.Stats.NumSeries {
			t.Errorf("block %s: meta %+v", b.Dir, m)
		}
		ms, err := parseULID(m.ULID)
		if err != nil || ms != m.MinTime {
			t.Errorf("block %s: ulid time %d, %v; want minTime %d", b.Dir, ms, err, m.MinTime)
		}
		for _, f := range []string{"index", "tombstones", "chunks/000001", "meta.json"} {
			if _, err := os.Stat(filepath.Join(dir, b.Dir, f)); err != nil {
				t.Errorf("block %s: %v", b.Dir, err)
			}
		}
	}

	// Exporting the same series again writes nothing: same content, same ULIDs.
	again, err := Export(ctx, &sliceSource{s: series}, st, ExportOptions{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if again.Blocks != 0 || again.BlocksExisting != 8 {
		t.Errorf("second export: %+v, want 8 existing blocks and none written", again)
	}

	// --from/--to and --org cut the same way.
	cut, err := Export(ctx, &sliceSource{s: series}, mustLocal(t), ExportOptions{Window: columnar.TimeRange{From: t0 + 3600_000, To: t0 + 3*3600_000}, Orgs: map[uint32]bool{2: true}, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for p := range want {
		if p.k.Org == 2 && p.ts >= t0+3600_000 && p.ts < t0+3*3600_000 {
			n++
		}
	}
	if cut.Orgs != 1 || cut.Blocks != 2 || cut.Samples != uint64(n) {
		t.Errorf("cut export %+v, want 1 org, 2 blocks, %d samples", cut, n)
	}
}

func mustLocal(t *testing.T) storage.Store {
	t.Helper()
	st, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestExportLabels(t *testing.T) {
	var m labelMaker
	f := func(tags []string, metric uint64, want string) {
		t.Helper()
		got := m.seriesLabels(&encoder.Series{Key: columnar.SeriesKey{Metric: metric}, Tags: tags}).String()
		if got != want {
			t.Errorf("tags %q: got %s, want %s", tags, got, want)
		}
	}
	f([]string{"__name__:up", "job:api"}, 1, `{__name__="up", job="api"}`)
	f([]string{"job:api"}, 0xabc, `{__name__="tailor_metric_0000000000000abc", job="api"}`)
	f([]string{"url:http://x:80/"}, 1, `{__name__="tailor_metric_0000000000000001", url="http://x:80/"}`)
	f([]string{"env:a", "prod", "env:b", ":x", "k:"}, 1, `{__name__="tailor_metric_0000000000000001", env="a,b", tailor_tags="prod,:x,k:"}`)
	f([]string{"é:ü", "Z:1"}, 1, `{Z="1", __name__="tailor_metric_0000000000000001", "é"="ü"}`)
}

func TestExportOptions(t *testing.T) {
	for _, d := range []time.Duration{time.Minute, 5 * time.Hour, 36 * time.Hour, -time.Hour} {
		o := ExportOptions{BlockDuration: d}
		if err := o.defaults(); err == nil || !strings.Contains(err.Error(), "block duration") {
			t.Errorf("%s: err %v", d, err)
		}
	}
	for _, d := range []time.Duration{time.Hour, 2 * time.Hour, 12 * time.Hour, 24 * time.Hour, 14 * 24 * time.Hour} {
		o := ExportOptions{BlockDuration: d}
		if err := o.defaults(); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	o := ExportOptions{Window: columnar.TimeRange{From: 5, To: 5}}
	if err := o.defaults(); err == nil {
		t.Error("empty range accepted")
	}
}

func TestExportDuplicateLabelsFail(t *testing.T) {
	s := []encoder.Series{
		{Key: columnar.SeriesKey{Org: 1, Metric: 1, Context: 1}, Tags: []string{"__name__:a", "x:1"}, Ts: []int64{1}, Values: []float64{1}},
		{Key: columnar.SeriesKey{Org: 1, Metric: 1, Context: 2}, Tags: []string{"__name__:a", "x:1"}, Ts: []int64{1}, Values: []float64{2}},
	}
	_, err := Export(context.Background(), &sliceSource{s: s}, mustLocal(t), ExportOptions{TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "two series have the labels") {
		t.Fatalf("err = %v", err)
	}
}

func TestULID(t *testing.T) {
	id := makeULID(1469918176385, []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	if id[:10] != "01ARYZ6S41" { // the spec's example time, 1469918176385
		t.Errorf("ulid %s: time part %s, want 01ARYZ6S41", id, id[:10])
	}
	ms, err := parseULID(id)
	if err != nil || ms != 1469918176385 {
		t.Errorf("parse %s: %d, %v", id, ms, err)
	}
	if r := makeULID(42, nil); !IsULID(r) || r == makeULID(42, nil) {
		t.Errorf("random ulids %s", r)
	}
	for _, bad := range []string{"", "01ARYZ6S41", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "01ARYZ6S41000000000000000U"} {
		if IsULID(bad) {
			t.Errorf("%q taken for a ULID", bad)
		}
	}
}

// TestPenaltyDedup checks the port of Thanos' dedupSeriesIterator: the three-replica
// case of Thanos' TestDedupSeriesSet (pkg/dedup/iter_test.go: replicas with disjoint
// samples, all kept), and cases worked through the algorithm by hand. (That test's
// next case, for issue 2645, keeps a sample only because its mocked iterator's Seek can
// move backwards, which chunkenc iterators never do; with real iterators, as here, the
// penalty skips it: see "late third replica".)
func TestPenaltyDedup(t *testing.T) {
	mk := func(ts ...int64) stream {
		s := stream{ts: ts}
		for _, x := range ts {
			s.values = append(s.values, float64(x))
		}
		return s
	}
	for _, tc := range []struct {
		name     string
		replicas []stream
		want     []int64
	}{
		{"thanos: single dedup label", []stream{mk(10000, 20000), mk(60000, 70000), mk(200000, 210000)}, []int64{10000, 20000, 60000, 70000, 200000, 210000}},
		// After 60000 (taken 40 s after 20000) the third replica is penalized 80 s, so
		// its 100000 is skipped.
		{"late third replica", []stream{mk(10000, 20000), mk(60000, 70000), mk(100000, 150000)}, []int64{10000, 20000, 60000, 70000, 150000}},
		{"one empty", []stream{mk(), mk(10000, 20000, 30000)}, []int64{10000, 20000, 30000}},
		{"same timestamps", []stream{mk(10000, 20000, 30000), mk(10000, 20000, 30000)}, []int64{10000, 20000, 30000}},
		// a has a gap from 50 s to 100 s. b is penalized by twice a's interval
		// (20 s) after each a sample, so its 60001 is skipped and 70001 taken; then a
		// is penalized by 2×(70001-50000) and b's samples are taken to the end.
		{
			"gap in a",
			[]stream{
				mk(10000, 20000, 30000, 40000, 50000, 100000, 110000, 120000, 130000, 140000),
				mk(10001, 20001, 30001, 40001, 50001, 60001, 70001, 80001, 90001, 100001, 110001, 120001),
			},
			[]int64{10000, 20000, 30000, 40000, 50000, 70001, 80001, 90001, 100001, 110001, 120001},
		},
		// b starts earlier and is taken; a's 2000 falls in the initial 5 s penalty.
		{"b first", []stream{mk(2000, 12000, 22000), mk(0, 10000, 20000)}, []int64{0, 10000, 20000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := dedupReplicas(tc.replicas)
			if !slices.Equal(out.ts, tc.want) {
				t.Errorf("got %v\nwant %v", out.ts, tc.want)
			}
			for i, ts := range out.ts {
				if out.values[i] != float64(ts) {
					t.Errorf("sample %d: value %v from another timestamp", ts, out.values[i])
				}
			}
		})
	}
}

// writeBlock exports series of one org into dir/<org>/<ulid> and then rewrites the
// block's meta.json with the given external labels, as Thanos sidecars label blocks.
func writeLabelled(t *testing.T, st storage.Store, series []encoder.Series, ext map[string]string) {
	t.Helper()
	before := map[string]bool{}
	bs, _, _ := List(context.Background(), st)
	for _, b := range bs {
		before[b.Dir] = true
	}
	if _, err := Export(context.Background(), &sliceSource{s: series}, st, ExportOptions{TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	bs, _, err := List(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if before[b.Dir] {
			continue
		}
		b.Meta.Thanos.Labels = ext
		mb, _ := json.Marshal(b.Meta)
		p := filepath.Join(st.(storage.LocalFiler).LocalPath(b.Dir), metaFile)
		if err := os.WriteFile(p, mb, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadReplicasAndOverlaps: two replicas of one Prometheus HA pair (external label
// replica=a/b, scraped 1 s apart, b with a gap) and an overlapping block of replica a
// are read as one series, by the rule of docs/prometheus.md.
func TestReadReplicasAndOverlaps(t *testing.T) {
	dir := t.TempDir()
	st, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	base := rwSeries(t, 7, "__name__", "up", "job", "node")
	mk := func(from, to, step, offset int64) encoder.Series {
		s := base
		s.Ts, s.Values = nil, nil
		for ts := from; ts < to; ts += step {
			s.Ts, s.Values = append(s.Ts, t0+ts+offset), append(s.Values, float64(ts+offset))
		}
		return s
	}
	a := mk(0, 600_000, 15_000, 0)              // 40 samples
	b := mk(0, 300_000, 15_000, 1000)           // b: the first 5 minutes
	b2 := mk(450_000, 600_000, 15_000, 1000)    // … and the last 2.5
	aOverlap := mk(300_000, 900_000, 15_000, 0) // replica a again, overlapping its first block
	aOverlap.Values[0] = -1                     // at a timestamp the first block holds: the earlier block's value stays
	bAll := base                                // replica b: both parts in one block
	bAll.Ts, bAll.Values = append(b.Ts, b2.Ts...), append(b.Values, b2.Values...)
	writeLabelled(t, st, []encoder.Series{a}, map[string]string{"replica": "a", "cluster": "eu", TenantExternalLabel: "7"})
	writeLabelled(t, st, []encoder.Series{bAll}, map[string]string{"replica": "b", "cluster": "eu", TenantExternalLabel: "7"})
	writeLabelled(t, st, []encoder.Series{aOverlap}, map[string]string{"replica": "a", "cluster": "eu", TenantExternalLabel: "7"})

	// Move the blocks to the bucket root, Thanos' layout: the tenant comes from the
	// external label.
	bs, _, _ := List(context.Background(), st)
	if len(bs) != 3 {
		t.Fatalf("%d blocks", len(bs))
	}
	for _, blk := range bs {
		if err := os.Rename(filepath.Join(dir, blk.Dir), filepath.Join(dir, blk.Meta.ULID)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(context.Background(), st, ReadOptions{ReplicaLabels: []string{"replica"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.Next() {
		t.Fatalf("no series: %v", r.Err())
	}
	s := r.At()
	// The key: the labels plus the external label cluster, less replica and tenant.
	want := rwSeries(t, 7, "__name__", "up", "job", "node", "cluster", "eu")
	if s.Key != want.Key {
		t.Errorf("key %+v, want %+v", s.Key, want.Key)
	}
	// Expected: replica a merged (its own samples, then the overlap block's later
	// ones), then the penalty merge with b, which never takes b since a has no gap.
	var wantTs []int64
	for ts := int64(0); ts < 900_000; ts += 15_000 {
		wantTs = append(wantTs, t0+ts)
	}
	if !slices.Equal(s.Ts, wantTs) {
		t.Errorf("ts %v\nwant %v", s.Ts, wantTs)
	}
	for i, ts := range s.Ts {
		if s.Values[i] != float64(ts-t0) {
			t.Errorf("ts %d: value %v", ts, s.Values[i])
		}
	}
	if r.Next() {
		t.Errorf("a second series %+v", r.At().Key)
	}

	// Without replica labels, the replicas are two series (as in Thanos without
	// --query.replica-label).
	r2, err := Open(context.Background(), st, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	n := 0
	for r2.Next() {
		n++
	}
	if n != 2 {
		t.Errorf("%d series without replica labels, want 2", n)
	}
}

func TestListSkipsPartialAndDeleted(t *testing.T) {
	dir := t.TempDir()
	st, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	series := testSeries(t)[:3]
	if _, err := Export(context.Background(), &sliceSource{s: series}, st, ExportOptions{TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	bs, skipped, err := List(context.Background(), st)
	if err != nil || skipped != 0 || len(bs) == 0 {
		t.Fatalf("%d blocks, %d skipped, %v", len(bs), skipped, err)
	}
	// One block loses its meta.json (an upload in progress), one is marked for
	// deletion.
	if err := os.Remove(filepath.Join(dir, bs[0].Dir, metaFile)); err != nil {
		t.Fatal(err)
	}
	if len(bs) > 1 {
		if err := os.WriteFile(filepath.Join(dir, bs[1].Dir, deletionMarkFile), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bs2, skipped, err := List(context.Background(), st)
	if err != nil || skipped != min(2, len(bs)) || len(bs2) != len(bs)-skipped {
		t.Errorf("after: %d blocks, %d skipped, %v", len(bs2), skipped, err)
	}
	_ = labels.EmptyLabels()
}

// TestPromtoolAcceptsExport runs Prometheus' promtool (built from the module proxy by
// scripts/prometheus.sh) over exported blocks: tsdb analyze must accept them, and tsdb
// dump must print exactly the points that cat prints for the same series, line for
// line. promtool prints values with %g, the same shortest form as cat, so every value
// but a NaN's payload is compared bit for bit in the text; NaN payloads (stale markers
// included) are compared through Prometheus' chunk decoder in TestExportReadRoundTrip.
func TestPromtoolAcceptsExport(t *testing.T) {
	promtool, err := promtools.Path("promtool")
	if err != nil {
		t.Fatal(err)
	}
	series := testSeries(t)
	dir := t.TempDir()
	st, err := storage.OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Export(context.Background(), &sliceSource{s: series}, st, ExportOptions{TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	for _, org := range []uint32{1, 2} {
		db := filepath.Join(dir, fmt.Sprint(org))
		ents, err := os.ReadDir(db)
		if err != nil {
			t.Fatal(err)
		}
		analyzed := 0
		for _, ent := range ents {
			if !IsULID(ent.Name()) {
				continue
			}
			out, err := exec.Command(promtool, "tsdb", "analyze", db, ent.Name()).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool tsdb analyze %s %s: %v\n%s", db, ent.Name(), err, out)
			}
			if !strings.Contains(string(out), "Block ID: "+ent.Name()) || !strings.Contains(string(out), "Series: ") {
				t.Errorf("analyze output:\n%s", out)
			}
			analyzed++
		}
		if analyzed != 4 {
			t.Errorf("org %d: analyzed %d blocks, want 4", org, analyzed)
		}
		var out []byte
		cmd := exec.Command(promtool, "tsdb", "dump", "--sandbox-dir-root", t.TempDir(), db)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err != nil {
			t.Fatalf("promtool tsdb dump %s: %v\n%s\n%.2000s", db, err, stderr.String(), out)
		}
		var dump []string
		var dec payload.Decoder
		var p columnar.Payload
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			ls, v, ts, err := promtools.ParseDump(line)
			if err != nil {
				t.Fatal(err)
			}
			// The org is the block directory; the labels map back by the remote-write
			// rule to the series' own key.
			ls = append(ls, payload.Label{Name: payload.TenantLabel, Value: fmt.Sprint(org)})
			if err := dec.MapLabels(ls, &p); err != nil {
				t.Fatal(err)
			}
			dump = append(dump, fmt.Sprintf("%d,%d,%d,%s,%s", p.Org, p.Metric, p.Context, ts, v))
		}
		var cat []string
		for _, s := range series {
			if s.Key.Org != org {
				continue
			}
			for i, ts := range s.Ts {
				cat = append(cat, strings.TrimSuffix(string(columnar.AppendCSVPoint(nil, s.Key, ts, s.Values[i])), "\n"))
			}
		}
		slices.Sort(dump)
		slices.Sort(cat)
		if !slices.Equal(dump, cat) {
			n := 0
			for i := 0; i < min(len(dump), len(cat)) && n < 5; i++ {
				if dump[i] != cat[i] {
					t.Errorf("line %d: dump %s, cat %s", i, dump[i], cat[i])
					n++
				}
			}
			t.Fatalf("org %d: dump has %d lines, cat %d", org, len(dump), len(cat))
		}
	}
}
