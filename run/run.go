//go:build duckdb_arrow

package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/rollup"
	"github.com/tailor-metrics/tailor/storage"
)

// RunOptions configures one shard run. Zero fields take the documented defaults.
type RunOptions struct {
	Store  storage.Store
	Shard  string
	Window Window
	// Arrival is the late-data rule; its Size is taken from Window. Callers normally
	// start from DefaultArrival (the zero value closes windows at their end).
	Arrival Arrival
	// Segments are the store's segments (listed once by the caller, shared by runs).
	Segments []*columnar.Segment
	// Readers decode splits in parallel (default 1); SplitBytes caps a split (default
	// 1 GiB); BatchRows sizes the Arrow batches fed to DuckDB.
	Readers    int
	SplitBytes int64
	BatchRows  int
	// SkipCorrupt counts and skips corrupt frames instead of failing the run.
	SkipCorrupt bool
	Engine      query.Options
	// PartBytes starts a new part file once a part reaches this size (default 256 MiB).
	PartBytes int64
	// Rollups, when set, also writes each own part's rollups at these resolutions
	// (each must divide the window size; docs/format/rollup.md).
	Rollups *RollupConfig
	// Tombstones are the deletes whose points the run leaves out (docs/lifecycle.md);
	// nil reads the store's.
	Tombstones *Tombstones
	// Force re-runs even if a complete run for the same inputs exists.
	Force bool
	// AcceptDegraded lets a run that covers less than the published run of its shard
	// and window (it skipped corrupt frames the published run read, or lacks one of its
	// inputs) replace it. Without it such a run is kept under its own run id, marked
	// degraded, and the better run keeps serving (docs/run.md, "Never worse").
	AcceptDegraded bool
	// DryRun plans the run and stops: the report carries the plan, nothing is read.
	DryRun bool
	// DB, when not nil, is used instead of opening a DuckDB per run (RunAll keeps one
	// per worker: opening one costs tens of milliseconds).
	DB *query.Engine
	// Stage, when not nil, is called as the run enters each stage, for progress output.
	Stage  func(shard, window, stage string)
	Logger *slog.Logger
}

// Report describes one shard run.
type Report struct {
	Shard   string `json:"shard"`
	Window  string `json:"window"`
	RunID   string `json:"run_id"`
	Skipped bool   `json:"skipped,omitempty"`
	// NoData is set when no segment holds points for the run.
	NoData bool   `json:"no_data,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
	Plan   *Plan  `json:"plan,omitempty"`
	Frames uint64 `json:"frames"`
	// BytesIn is what the readers fetched.
	BytesIn   uint64 `json:"bytes_in"`
	Parts     int    `json:"parts"`
	LateParts int    `json:"late_parts"`
	Counts    Counts `json:"counts"`
	// Degraded lists the frames the run skipped as corrupt (nil when it read them all).
	Degraded *Degraded `json:"degraded,omitempty"`
	// Published is set once the run's manifest is written; Serving once it is the run
	// readers use. A run that covers less than the published run is published but not
	// serving (WorseRunError).
	Published  bool  `json:"published"`
	Serving    bool  `json:"serving"`
	ReaderPeak int64 `json:"reader_peak_bytes"`
	// PointStore sums the point stores of the run's outputs (their peaks: the larger).
	PointStore PointStoreStats `json:"point_store"`
	// Seconds times each stage: list, plan, fetch, verify, zstd, decode (reader steps,
	// summed over reader goroutines), duckdb (the query's wall time, which includes
	// the scan that drives the readers), encode, upload and publish.
	Seconds map[string]float64 `json:"seconds"`
	Err     string             `json:"error,omitempty"`

	skipped map[columnar.FrameRef]bool // corrupt frames, counted once however often read
}

func (r *Report) add(stage string, d time.Duration) {
	if r.Seconds == nil {
		r.Seconds = map[string]float64{}
	}
	r.Seconds[stage] += d.Seconds()
}

func (r *Report) time(stage string, start time.Time) { r.add(stage, time.Since(start)) }

// RunShard reads one shard's points of one window, de-duplicates and sorts them in
// DuckDB, encodes them into series files, and publishes them with a manifest. Points that
// arrived too late for their own window go to this run's late output (see Arrival).
func RunShard(ctx context.Context, opt RunOptions) (rep *Report, err error) {
	if opt.Readers <= 0 {
		opt.Readers = 1
	}
	if opt.SplitBytes <= 0 {
		opt.SplitBytes = columnar.DefaultSplitBytes
	}
	if opt.PartBytes <= 0 {
		opt.PartBytes = 256 << 20
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	opt.Arrival.Size = opt.Window.Size
	stage := func(s string) {
		if opt.Stage != nil {
			opt.Stage(opt.Shard, opt.Window.Name(), s)
		}
	}
	rep = &Report{Shard: opt.Shard, Window: opt.Window.Name()}
	if err := opt.Arrival.validate(); err != nil {
		return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), err)
	}
	if err := opt.Rollups.validate(opt.Window.Size); err != nil {
		return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), err)
	}
	stage("plan")
	start := time.Now()
	plan := PlanRun(opt.Segments, opt.Shard, opt.Window, opt.Arrival, opt.SplitBytes)
	rep.RunID, rep.Plan = plan.RunID, plan
	rep.time("plan", start)
	if plan.Empty() {
		rep.Skipped, rep.NoData = true, true
		return rep, nil
	}
	if opt.DryRun {
		rep.DryRun = true
		return rep, nil
	}
	if !opt.Force {
		done, err := alreadyCovered(ctx, opt.Store, opt.Shard, opt.Window, opt.Arrival, plan, opt.AcceptDegraded)
		if err != nil {
			return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), err)
		}
		if done != nil {
			rep.Skipped, rep.Published, rep.Serving, rep.RunID = true, true, true, done.RunID
			rep.Counts, rep.Parts, rep.LateParts, rep.Degraded = done.Counts, len(done.Parts), len(done.LateParts), done.Degraded
			return rep, nil
		}
	}
	if opt.Tombstones == nil {
		ts, err := LoadTombstones(ctx, opt.Store)
		if err != nil {
			return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), err)
		}
		opt.Tombstones = &ts
	}
	duck, pointsMem, err := RunMemory(opt.Engine)
	if err != nil {
		return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), err)
	}
	eng := opt.DB
	if eng == nil {
		if eng, err = query.Open(ctx, duck); err != nil {
			return rep, err
		}
		defer func() { err = errors.Join(err, eng.Close()) }()
	}
	fail := func(err error) (*Report, error) {
		if strings.Contains(err.Error(), "Out of Memory") {
			// DuckDB's own hints name SQL settings; the command names its flags.
			err = &ResourceError{Err: err}
		}
		return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), err)
	}

	// The window's own points.
	stage("read+sort")
	win := opt.Window.TsRange()
	// The window's own points and the late output are read one after the other, so each
	// store may keep the whole point memory.
	own := newOutput(&opt, rep, columnar.LayoutFor(win), pointsMem)
	own.rollups = opt.Rollups
	defer func() { err = errors.Join(err, own.close()) }()
	var ownStats columnar.FrameStats
	if len(plan.own) > 0 {
		rd := own.reader(ctx)
		rd.add(plan.own, win)
		if err := own.encode(ctx, eng, rd, stage); err != nil {
			return fail(err)
		}
		ownStats = rd.stats()
		rep.Counts.OutOfWindow = ownStats.OutOfWindow
	}

	// The late output: points of owned segments outside the windows that read them.
	late := newOutput(&opt, rep, columnar.KeyLayout{Wide: true}, pointsMem)
	defer func() { err = errors.Join(err, late.close()) }()
	var lateRows, earlyRows uint64
	if len(plan.late) > 0 || len(plan.early) > 0 {
		stage("late")
		rd := late.reader(ctx)
		if len(plan.late) > 0 {
			rd.add(plan.late, columnar.TimeRange{From: math.MinInt64, To: win.From})
		}
		for _, e := range plan.early {
			rd.add(e.splits, columnar.TimeRange{From: e.from, To: math.MaxInt64})
		}
		if err := late.encode(ctx, eng, rd, stage); err != nil {
			return fail(err)
		}
		for i, r := range rd.done {
			if i == 0 && len(plan.late) > 0 {
				lateRows = r.Stats().RowsOut
			} else {
				earlyRows += r.Stats().RowsOut
			}
		}
	}
	rep.Counts.Late, rep.Counts.Early = lateRows, earlyRows
	rep.Counts.PointsIn = ownStats.RowsOut + lateRows + earlyRows
	ws, ls := own.stream, late.stream
	rep.Counts.Duplicates = uint64(ws.Duplicates + ls.Duplicates)
	rep.Counts.Deleted = own.deleted + late.deleted
	rep.Counts.Series = uint64(ws.Series+ls.Series) - own.deletedSeries - late.deletedSeries
	rep.Counts.LateSeries = uint64(ls.Series) - late.deletedSeries
	rep.Counts.PointsOut = uint64(ws.PointsOut+ls.PointsOut) - rep.Counts.Deleted
	rep.Counts.LatePointsOut = uint64(ls.PointsOut) - late.deleted

	// Every frame is read now, so the run knows whether it skipped any: a degraded run
	// gets a run id of its own, so its parts never overwrite those of the run that read
	// everything (docs/run.md, "Never worse").
	if len(rep.skipped) > 0 {
		rep.Degraded = degraded(plan, rep.skipped)
		rep.RunID = degradedRunID(plan.RunID, rep.Degraded)
	}
	// So does a run that left deleted points out: its output is not what the inputs
	// alone give.
	tombIDs := unionIDs(own.matched(), late.matched())
	if len(tombIDs) > 0 {
		rep.RunID = tombstonedRunID(rep.RunID, tombIDs)
	}
	stage("upload")
	own.rollupKey = func(res int64, i int) string { return RollupPartKey(opt.Shard, opt.Window, rep.RunID, res, i) }
	if err := own.upload(ctx, func(i int) string { return PartKey(opt.Shard, opt.Window, rep.RunID, i) }); err != nil {
		return fail(err)
	}
	if err := late.upload(ctx, func(i int) string { return LatePartKey(opt.Shard, opt.Window, rep.RunID, i) }); err != nil {
		return fail(err)
	}
	for _, p := range append(append([]Part(nil), own.parts...), late.parts...) {
		rep.Counts.BytesOut += p.Size
	}
	for _, r := range own.rolled {
		for _, p := range r.Parts {
			rep.Counts.BytesOut += p.Size
		}
	}
	rep.Parts, rep.LateParts = len(own.parts), len(late.parts)
	if got := rep.Counts.PointsOut + rep.Counts.Duplicates + rep.Counts.Deleted; got != rep.Counts.PointsIn {
		return fail(fmt.Errorf("BUG: %d points out + %d duplicates + %d deleted != %d points taken", rep.Counts.PointsOut, rep.Counts.Duplicates, rep.Counts.Deleted, rep.Counts.PointsIn))
	}

	// Publish: every part is uploaded; now the manifest inside the run directory, which
	// makes the run complete, and last _CURRENT, which points readers at it, unless the
	// published run covers more.
	stage("publish")
	start = time.Now()
	m := Manifest{
		RunID: rep.RunID, Algo: algoVersion, Shard: opt.Shard, Window: opt.Window.Name(),
		From: win.From, To: win.To, LatenessMs: latenessMs(opt.Arrival), FlushAgeMs: opt.Arrival.FlushAge.Milliseconds(),
		Inputs: plan.inputs, Parts: nonNil(own.parts), LateParts: nonNil(late.parts), Counts: rep.Counts,
		Degraded: rep.Degraded, Rollups: own.rolled, RollupConfig: opt.Rollups, Tombstones: tombIDs,
	}
	err = Publish(ctx, opt.Store, &m, PublishOptions{AcceptDegraded: opt.AcceptDegraded})
	rep.time("publish", start)
	if worse := (*WorseRunError)(nil); errors.As(err, &worse) {
		rep.Published = true
	}
	if err != nil {
		return fail(err)
	}
	rep.Published, rep.Serving = true, true
	return rep, nil
}

func (p *PointStoreStats) add(o PointStoreStats) {
	p.Bytes += o.Bytes
	p.SpilledBytes += o.SpilledBytes
	p.PeakMemory = max(p.PeakMemory, o.PeakMemory)
}

func latenessMs(a Arrival) int64 {
	if !a.Bounded() {
		return -1
	}
	return a.Lateness.Milliseconds()
}

func nonNil(p []Part) []Part {
	if p == nil {
		return []Part{}
	}
	return p
}

// output group-sorts one reader's points and streams them into part files.
type output struct {
	opt    *RunOptions
	rep    *Report
	layout columnar.KeyLayout
	groups IDTable
	points *PointStore    // the groups' points while DuckDB sorts the groups
	spool  *encoder.Spool // the encoded series, until the run id is known

	parts  []Part
	stream StreamStats

	// deleted counts the points tombstones left out, deletedSeries the series left
	// with none; hit are the ids of the tombstones that left a point out.
	deleted       uint64
	deletedSeries uint64
	hit           map[string]bool

	// rollups, when set, rolls each part up as it is uploaded, under rollupKey.
	rollups   *RollupConfig
	rollupKey func(res int64, i int) string
	rolled    []RollupSet
}

func newOutput(opt *RunOptions, rep *Report, l columnar.KeyLayout, pointsMem int64) *output {
	return &output{opt: opt, rep: rep, layout: l, points: NewPointStore(opt.Engine.TempDir, pointsMem)}
}

// reader returns a reader of keyed rows for this output, numbering series and groups.
func (o *output) reader(ctx context.Context) *runReader {
	return &runReader{ctx: ctx, opt: o.opt, tags: o.groups.Tags, groups: o.groups.Assign, points: o.points, layout: o.layout, refs: 1}
}

// spoolMemory is how many bytes of encoded series a run keeps in memory before the
// spool moves them to a file in the temp directory.
const spoolMemory = 64 << 20

// encode group-sorts rd's rows and encodes the series into the output's spool.
func (o *output) encode(ctx context.Context, eng *query.Engine, rd *runReader, stage func(string)) (err error) {
	defer func() {
		o.rep.PointStore.add(o.points.Stats())
		err = errors.Join(err, o.points.Close())
	}()
	defer rd.Release()
	start := time.Now()
	sorted, err := eng.GroupSort(ctx, o.layout, rd)
	if rerr := rd.Err(); rerr != nil {
		// DuckDB only sees "stream error"; the reader knows the file and offset.
		if sorted != nil {
			sorted.Release()
		}
		return rerr
	}
	if err != nil {
		return err
	}
	defer sorted.Release()
	o.rep.time("duckdb", start)
	rd.report(o.rep)
	stage("encode")

	// The sort orders series by the ids the readers gave them; the spool puts them back
	// in key order.
	start = time.Now()
	spool := encoder.NewSpool(o.opt.Engine.TempDir, spoolMemory)
	o.spool = spool
	tomb := *o.opt.Tombstones
	var rs []tsRange
	s := NewKeyedStream(o.layout, o.groups.Later, o.points.Points, func(sid uint32, ts []int64, vals []float64) error {
		k, tags := o.groups.Series(sid)
		if len(tomb) > 0 {
			if rs = tomb.ranges(k, rs); len(rs) > 0 {
				o.noteMatch(k, ts, tomb)
				var n int
				ts, vals, n = filterPoints(rs, ts, vals)
				o.deleted += uint64(n)
				if len(ts) == 0 {
					o.deletedSeries++
					return nil
				}
			}
		}
		return spool.Add(k, tags, ts, vals)
	})
	for sorted.Next() {
		if err := s.Write(sorted.RecordBatch()); err != nil {
			return err
		}
	}
	if err := sorted.Err(); err != nil {
		return fmt.Errorf("read group-sort result: %w", err)
	}
	if err := s.Close(); err != nil {
		return err
	}
	o.stream = s.Stats()
	o.rep.add("encode", time.Since(start))
	return nil
}

// noteMatch records the tombstones that delete a point of series k (ts ascending).
func (o *output) noteMatch(k columnar.SeriesKey, ts []int64, tomb Tombstones) {
	for i := range tomb {
		t := &tomb[i]
		if t.Org != k.Org || t.Metric != nil && *t.Metric != k.Metric {
			continue
		}
		if j, _ := slices.BinarySearch(ts, t.From); j < len(ts) && ts[j] < t.To {
			if o.hit == nil {
				o.hit = map[string]bool{}
			}
			o.hit[t.ID] = true
		}
	}
}

func (o *output) matched() []string {
	out := make([]string, 0, len(o.hit))
	for id := range o.hit {
		out = append(out, id)
	}
	return out
}

// upload writes the spool's series as part files, key(i) naming part i.
func (o *output) upload(ctx context.Context, key func(i int) string) error {
	if o.spool == nil {
		return nil
	}
	start := time.Now()
	var upload time.Duration
	err := o.spool.WriteSorted(o.opt.PartBytes, func(file []byte, series, points int64) error {
		t := time.Now()
		defer func() { upload += time.Since(t) }()
		return o.put(ctx, key(len(o.parts)), file, series, points)
	})
	o.rep.add("encode", time.Since(start)-upload)
	o.rep.add("upload", upload)
	return err
}

// close releases the spool.
func (o *output) close() error {
	if o.spool == nil {
		return nil
	}
	err := o.spool.Close()
	o.spool = nil
	return err
}

// put stores one part file under key.
func (o *output) put(ctx context.Context, key string, file []byte, series, points int64) error {
	p, err := DescribePart(key, file)
	if err != nil {
		return fmt.Errorf("BUG: part %s as written does not open: %w", key, err)
	}
	if p.Series != uint64(series) || p.Points != uint64(points) {
		return fmt.Errorf("BUG: part %s holds %d series and %d points, the spool wrote %d and %d", key, p.Series, p.Points, series, points)
	}
	if err := o.opt.Store.Put(ctx, key, bytes.NewReader(file)); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	o.parts = append(o.parts, p)
	return o.rollUp(ctx, file)
}

// rollUp writes the rollups of the part just uploaded (file), when the output has any.
func (o *output) rollUp(ctx context.Context, file []byte) error {
	if o.rollups == nil {
		return nil
	}
	rs, err := rollupsOf(bytes.NewReader(file), int64(len(file)), o.rollups)
	if err != nil {
		return err
	}
	if o.rolled == nil {
		for _, res := range o.rollups.ResolutionsMs {
			o.rolled = append(o.rolled, RollupSet{Resolution: rollup.Name(res), ResolutionMs: res, Parts: []Part{}})
		}
	}
	for i, t := range rs {
		if t == nil {
			continue
		}
		set := &o.rolled[i]
		ps, err := upload(ctx, o.opt.Store, []*tempPart{t}, func(int) string { return o.rollupKey(set.ResolutionMs, len(set.Parts)) })
		if err != nil {
			return err
		}
		set.Parts = append(set.Parts, ps...)
	}
	return nil
}

// runReader chains point readers, each over its own splits and ts range, into one
// record reader for one DuckDB query. Each is started when the previous one is drained,
// and all are released together (DuckDB may still hold a batch of the previous one).
type runReader struct {
	ctx    context.Context
	opt    *RunOptions
	tags   func(columnar.SeriesKey, columnar.Provenance, []string)
	groups columnar.GroupFunc
	points *PointStore
	layout columnar.KeyLayout
	refs   int64
	mu     sync.Mutex

	todo []func() *columnar.PointReader
	cur  *columnar.PointReader
	done []*columnar.PointReader
	err  error
}

var _ array.RecordReader = (*runReader)(nil)

func (r *runReader) add(splits []columnar.Split, win columnar.TimeRange) {
	r.todo = append(r.todo, func() *columnar.PointReader {
		return columnar.NewPointReader(r.ctx, r.opt.Store, splits, columnar.Topics(r.opt.Segments), columnar.ReadOptions{
			Readers: r.opt.Readers, BatchRows: r.opt.BatchRows, Window: win, SkipCorrupt: r.opt.SkipCorrupt, Tags: r.tags,
			Groups: r.groups, Layout: r.layout, Points: r.points,
		})
	})
}

func (r *runReader) Schema() *arrow.Schema { return r.layout.Schema() }

func (r *runReader) Next() bool {
	for r.err == nil {
		if r.cur == nil {
			if len(r.todo) == 0 {
				return false
			}
			r.cur = r.todo[0]()
			r.todo = r.todo[1:]
		}
		if r.cur.Next() {
			return true
		}
		r.err = r.cur.Err()
		r.done = append(r.done, r.cur)
		r.cur = nil
	}
	return false
}

func (r *runReader) RecordBatch() arrow.RecordBatch { return r.cur.RecordBatch() }

// Record implements array.RecordReader (deprecated name of RecordBatch).
func (r *runReader) Record() arrow.RecordBatch { return r.cur.RecordBatch() }

func (r *runReader) Err() error { return r.err }

func (r *runReader) Retain() {
	r.mu.Lock()
	r.refs++
	r.mu.Unlock()
}

func (r *runReader) Release() {
	r.mu.Lock()
	r.refs--
	last := r.refs == 0
	r.mu.Unlock()
	if !last {
		return
	}
	if r.cur != nil {
		r.done = append(r.done, r.cur)
		r.cur = nil
	}
	for _, p := range r.done {
		p.Release()
	}
}

// stats sums the counts of the drained readers.
func (r *runReader) stats() columnar.FrameStats {
	var s columnar.FrameStats
	for _, p := range r.done {
		s.Add(p.Stats())
	}
	return s
}

// report adds the readers' fetch counts, step timers and memory peak to rep.
func (r *runReader) report(rep *Report) {
	for _, p := range r.done {
		s := p.ReadStats()
		rep.Frames += s.Frames
		rep.BytesIn += s.Bytes
		for _, f := range s.Skipped {
			if rep.skipped == nil {
				rep.skipped = map[columnar.FrameRef]bool{}
			}
			rep.skipped[f] = true
		}
		rep.Counts.CorruptFrames = uint64(len(rep.skipped))
		rep.add("fetch", s.Timers.Fetch)
		rep.add("verify", s.Timers.Verify)
		rep.add("zstd", s.Timers.Decompress)
		rep.add("decode", s.Timers.Decode)
		rep.ReaderPeak = max(rep.ReaderPeak, s.Memory.PeakBytes)
	}
}
