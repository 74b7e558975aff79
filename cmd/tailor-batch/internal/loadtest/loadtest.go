// Package loadtest runs the whole pipeline (produce → sink → run → check) on a
// reproducible workload at scale 1 and at scale K, measures each stage's time, CPU,
// memory, output bytes and object-store requests, reports how they grew, names the
// slowest and most skewed shards, and forecasts the cost from public list prices.
// See docs/loadtest.md.
package loadtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"time"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/pipeline"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// Stages in pipeline order, then the history's life: compaction into days and gc (two
// passes, the second after the grace and the replay retention).
var Stages = []string{"produce", "sink", "run", "check", "compact", "gc"}

// SuperLinear is the growth, relative to the growth in points, above which a stage is
// flagged: 1.25 leaves room for noise on a shared machine while catching n log n with a
// large n and anything worse.
const SuperLinear = 1.25

// Options configures a load test.
type Options struct {
	// Scale is K: the second run has K times the series (and points) of the first.
	Scale int
	// BaseSeries is the series at scale 1 (500 points each; default 2,000 = 1M points).
	BaseSeries int
	Seed       uint64
	Parallel   int
	// Dir holds the stores (default: a temporary directory, removed).
	Dir string
	// Prices of the cost forecast; IngestRate (points/s) sizes the monthly figures.
	Prices     Prices
	IngestRate float64
	Say        func(format string, args ...any)
}

// ShardTime is one shard window's run.
type ShardTime struct {
	Shard, Window string
	Seconds       float64
	Points        uint64
}

// Measure is one scale's run.
type Measure struct {
	Scale, Series int
	// Points are the distinct points; Produced counts redeliveries too.
	Points, Produced int64
	Stages           map[string]*StageMeasure
	Shards           []ShardTime
	Check            string
	Mismatches       []string
	PeakResets       bool
	Life             Life
}

// Life is what compaction and gc changed, measured by reading every point before and
// after (docs/lifecycle.md).
type Life struct {
	// ReadBefore and ReadAfter are the requests of one read of every point (cat, a
	// series view) before compaction and after compaction and gc.
	ReadBefore, ReadAfter Requests
	// SeriesBytesBefore and After are the bytes of the serving series files (own and late
	// parts); RunsBefore and After the serving runs.
	SeriesBytesBefore, SeriesBytesAfter int64
	RunsBefore, RunsAfter               int
	// SegmentBytesCollected are the segments gc removed once covered and past the
	// replay retention; FilesCollected the superseded files it removed.
	SegmentBytesCollected int64
	FilesCollected        int
}

// Report is the whole load test.
type Report struct {
	Cores    int
	Base, K  *Measure
	Growth   []Growth
	Slowest  []ShardTime
	Skewed   Skew
	Forecast Forecast
}

// Run runs scale 1 and scale K and builds the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Scale < 2 {
		return nil, fmt.Errorf("loadtest: --scale %d must be at least 2", o.Scale)
	}
	if o.BaseSeries <= 0 {
		o.BaseSeries = 2000
	}
	say := o.Say
	if say == nil {
		say = func(string, ...any) {}
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "tailor-loadtest-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	rep := &Report{Cores: runtime.NumCPU()}
	for _, k := range []int{1, o.Scale} {
		spec := workload.Mix(o.BaseSeries * k)
		if o.Seed != 0 {
			spec.Seed = o.Seed
		}
		m, err := runScale(ctx, spec, k, filepath.Join(dir, fmt.Sprintf("scale-%d", k)), o.Parallel, say)
		if err != nil {
			return nil, fmt.Errorf("loadtest at scale %d: %w", k, err)
		}
		if k == 1 {
			rep.Base = m
		} else {
			rep.K = m
		}
	}
	rep.Growth = growth(rep.Base, rep.K)
	rep.Slowest, rep.Skewed = shards(rep.K.Shards)
	rep.Forecast = forecast(rep.K, o.Prices, o.IngestRate)
	return rep, nil
}

func runScale(ctx context.Context, spec workload.Spec, k int, dir string, parallel int, say func(string, ...any)) (*Measure, error) {
	gen, err := workload.New(spec)
	if err != nil {
		return nil, err
	}
	local, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		return nil, err
	}
	defer local.Close()
	st := &countingStore{Store: local}
	// Start each scale from the same clean heap, so its peaks are its own.
	runtime.GC()
	debug.FreeOSMemory()
	m := &Measure{Scale: k, Series: spec.Series, Points: spec.Points()}
	mt := newMeter(st)
	var (
		last   = time.Now()
		shards []ShardTime
	)
	say("scale %d×: %d series, %d points", k, spec.Series, spec.Points())
	res, err := pipeline.Run(ctx, pipeline.Options{
		Gen: gen, Store: st, FlushPayloads: 2000, Parallel: parallel, TempDir: filepath.Join(dir, "duckdb"),
		Produce: pipeline.ProduceOptions{JSONShare: 0.1},
		Say:     func(format string, args ...any) { say(fmt.Sprintf("scale %d×: ", k)+format, args...) },
		Stage: func(name string) func() {
			if name == "run" {
				last = time.Now()
			}
			return mt.stage(name)
		},
		OnReport: func(done, total int, rep *run.Report) {
			// With one run at a time, the time between completions is the run's wall time.
			now := time.Now()
			if rep.Err == "" && !rep.Skipped {
				shards = append(shards, ShardTime{rep.Shard, rep.Window, now.Sub(last).Seconds(), rep.Counts.PointsOut})
			}
			last = now
		},
	})
	if err != nil {
		return nil, err
	}
	m.Produced, m.Stages, m.PeakResets = res.PointsProduced, mt.stages, mt.peakResets
	var seriesBytes int64
	for _, r := range res.Reports {
		seriesBytes += r.Counts.BytesOut
	}
	m.Stages["produce"].OutBytes = res.ProducedBytes
	m.Stages["sink"].OutBytes = res.Sink.Bytes
	m.Stages["run"].OutBytes = seriesBytes
	if parallel <= 1 {
		m.Shards = shards
	}
	m.Check = "passed"
	if !res.Check.Passed() {
		m.Check, m.Mismatches = "FAILED", res.Check.Mismatches
	}
	if err := life(ctx, st, mt, m, filepath.Join(dir, "compact")); err != nil {
		return nil, err
	}
	return m, nil
}

// life compacts the runs into days and collects what that leaves behind, measuring both
// as stages, and reads every point before and after: the points must be the same.
func life(ctx context.Context, st *countingStore, mt *meter, m *Measure, tmp string) error {
	read := func() (Requests, uint64, int64, int, error) {
		req0 := st.snapshot()
		ms, err := run.Published(ctx, st)
		if err != nil {
			return Requests{}, 0, 0, 0, err
		}
		var bytes int64
		for _, r := range ms {
			for _, p := range append(append([]run.Part(nil), r.Parts...), r.LateParts...) {
				bytes += p.Size
			}
		}
		_, sum, err := run.Digest(ctx, st, query.Scope{})
		return st.snapshot().sub(req0), sum, bytes, len(ms), err
	}
	l := &m.Life
	var before, after uint64
	var err error
	if l.ReadBefore, before, l.SeriesBytesBefore, l.RunsBefore, err = read(); err != nil {
		return fmt.Errorf("read before compaction: %w", err)
	}
	end := mt.stage("compact")
	cr, err := run.Compact(ctx, run.CompactOptions{Store: st, Levels: []time.Duration{24 * time.Hour}, TempDir: tmp, Parallel: 1})
	end()
	if err != nil {
		return err
	}
	for _, s := range cr.Shards {
		for _, r := range s.Runs {
			m.Stages["compact"].OutBytes += r.Counts.BytesOut
		}
	}
	// Two passes: the first marks what the compaction superseded, the second runs once
	// the grace and the replay retention are over.
	now := time.Now()
	end = mt.stage("gc")
	for _, at := range []time.Time{now, now.Add(run.DefaultGrace + run.DefaultReplayRetention)} {
		g, err := run.GC(ctx, run.GCOptions{Store: st, Now: at})
		if err != nil {
			end()
			return err
		}
		l.SegmentBytesCollected += g.SegmentBytes
		l.FilesCollected += g.Files
	}
	end()
	if l.ReadAfter, after, l.SeriesBytesAfter, l.RunsAfter, err = read(); err != nil {
		return fmt.Errorf("read after compaction and gc: %w", err)
	}
	if after != before {
		m.Check = "FAILED"
		m.Mismatches = append(m.Mismatches, "compaction and gc changed the points readers read")
	}
	return nil
}

// Growth is how one stage grew from scale 1 to scale K.
type Growth struct {
	Stage string
	// Points is the growth in points; the others are ratios K/1 of the same stage.
	Points, Wall, CPU, PeakRSS, OutBytes float64
	// PointsPerCoreSec is points per CPU-second (points/s on one busy core), 1 and K.
	PointsPerCoreSec [2]float64
	// SuperLinear is set when wall or CPU time grew more than SuperLinear × points.
	SuperLinear bool
}

func ratio(a, b float64) float64 {
	if a <= 0 {
		return 0
	}
	return b / a
}

func growth(b, k *Measure) []Growth {
	var out []Growth
	pts := ratio(float64(b.Points), float64(k.Points))
	for _, name := range Stages {
		sb, sk := b.Stages[name], k.Stages[name]
		g := Growth{
			Stage: name, Points: pts,
			Wall: ratio(sb.Wall, sk.Wall), CPU: ratio(sb.CPU, sk.CPU),
			PeakRSS: ratio(float64(sb.PeakRSS), float64(sk.PeakRSS)), OutBytes: ratio(float64(sb.OutBytes), float64(sk.OutBytes)),
			PointsPerCoreSec: [2]float64{float64(b.Points) / max(sb.CPU, 1e-9), float64(k.Points) / max(sk.CPU, 1e-9)},
		}
		g.SuperLinear = g.Wall > SuperLinear*pts || g.CPU > SuperLinear*pts
		out = append(out, g)
	}
	return out
}

// Skew is the most unbalanced shard: its points against the mean shard window's.
type Skew struct {
	Shard       string
	Points      uint64
	MeanPoints  float64
	Ratio       float64
	Seconds     float64
	MeanSeconds float64
}

// shards returns the three slowest shard windows and the most skewed shard (points
// summed over its windows).
func shards(ts []ShardTime) ([]ShardTime, Skew) {
	if len(ts) == 0 {
		return nil, Skew{}
	}
	s := append([]ShardTime(nil), ts...)
	sort.Slice(s, func(i, j int) bool { return s[i].Seconds > s[j].Seconds })
	slow := s[:min(3, len(s))]
	byShard := map[string]*ShardTime{}
	for _, t := range ts {
		a := byShard[t.Shard]
		if a == nil {
			a = &ShardTime{Shard: t.Shard}
			byShard[t.Shard] = a
		}
		a.Points += t.Points
		a.Seconds += t.Seconds
	}
	var sk Skew
	var totP, totS float64
	for _, a := range byShard {
		totP += float64(a.Points)
		totS += a.Seconds
		if a.Points > sk.Points || a.Points == sk.Points && a.Shard < sk.Shard {
			sk.Shard, sk.Points, sk.Seconds = a.Shard, a.Points, a.Seconds
		}
	}
	sk.MeanPoints, sk.MeanSeconds = totP/float64(len(byShard)), totS/float64(len(byShard))
	sk.Ratio = float64(sk.Points) / sk.MeanPoints
	return slow, sk
}
