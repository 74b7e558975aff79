//go:build duckdb_arrow

package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// Compaction (docs/lifecycle.md, "Compaction") merges a shard's published runs into
// runs of larger windows, level by level (for example 4h → 1d → 7d), folding each
// window's late output in under the arrival rule, and publishes each result like a run:
// parts, then the manifest, which names every run it supersedes, then _CURRENT.

// CompactOptions configures Compact.
type CompactOptions struct {
	Store storage.Store
	// Levels are the window sizes to compact into, ascending; each a whole multiple of
	// the one before (and of the runs' window size).
	Levels []time.Duration
	// Shard, when set, compacts only that shard.
	Shard string
	// Now and Settle decide when a target window is due: once Now is past its end plus
	// the runs' lateness and flush age (when windows close) plus Settle, so that no run
	// of it is still to come. Now defaults to the wall clock.
	Now    time.Time
	Settle time.Duration
	// Rollups adds resolutions (and counter tags) to those of the sources.
	Rollups *RollupConfig
	// PartBytes starts a new part once a part reaches it (default 256 MiB); TempDir
	// holds the parts until they are uploaded.
	PartBytes int64
	TempDir   string
	// Parallel compacts this many shards at once (default 1).
	Parallel int
	// DryRun plans and stops.
	DryRun bool
	Logger *slog.Logger
	// Progress, when not nil, is called after each compacted run.
	Progress func(shard string, r *CompactedRun)
}

// CompactReport is what Compact did, per shard.
type CompactReport struct {
	Shards []*ShardCompaction `json:"shards"`
	// Deletes is the apply of the tombstones not yet applied that followed.
	Deletes *ApplyReport `json:"deletes,omitempty"`
}

// ShardCompaction is one shard's compaction.
type ShardCompaction struct {
	Shard string          `json:"shard"`
	Runs  []*CompactedRun `json:"runs"`
	// Waiting are targets not due yet.
	Waiting []string `json:"waiting,omitempty"`
	Err     string   `json:"error,omitempty"`
}

// CompactedRun is one derived run: a compaction of Sources runs into Window.
type CompactedRun struct {
	Window  string `json:"window"`
	RunID   string `json:"run_id"`
	Sources int    `json:"sources"`
	// Done is set when the run was published already (by an earlier or a concurrent
	// compaction): nothing was read.
	Done    bool    `json:"done,omitempty"`
	DryRun  bool    `json:"dry_run,omitempty"`
	Counts  Counts  `json:"counts"`
	Parts   int     `json:"parts"`
	BytesIn int64   `json:"bytes_in"`
	Seconds float64 `json:"seconds"`
}

// ErrOverlap is wrapped by the error of a shard whose runs overlap in a way compaction
// cannot merge (a run that straddles a target window's edge).
var ErrOverlap = errors.New("runs overlap")

// validateLevels checks that levels ascend, each a whole multiple of the one before.
func validateLevels(levels []time.Duration) error {
	if len(levels) == 0 {
		return errors.New("compaction levels: none given (for example 1d,7d)")
	}
	for i, l := range levels {
		if l <= 0 || l%time.Second != 0 {
			return fmt.Errorf("compaction level %s: want a positive whole number of seconds", l)
		}
		if i > 0 && (l <= levels[i-1] || l%levels[i-1] != 0) {
			return fmt.Errorf("compaction level %s: want a whole multiple of the level before it, %s", l, levels[i-1])
		}
	}
	return nil
}

// Compact compacts every shard of opt.Store (or opt.Shard). A shard that fails (an
// overlap, an unreadable source) does not stop the others: its report carries the error,
// and Compact returns an error naming every failed shard.
func Compact(ctx context.Context, opt CompactOptions) (*CompactReport, error) {
	if err := validateLevels(opt.Levels); err != nil {
		return nil, err
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.PartBytes <= 0 {
		opt.PartBytes = 256 << 20
	}
	if opt.Parallel <= 0 {
		opt.Parallel = 1
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	runs, err := Published(ctx, opt.Store)
	if err != nil {
		return nil, err
	}
	tomb, err := LoadTombstones(ctx, opt.Store)
	if err != nil {
		return nil, err
	}
	byShard := map[string][]*Manifest{}
	for _, m := range runs {
		if opt.Shard == "" || m.Shard == opt.Shard {
			byShard[m.Shard] = append(byShard[m.Shard], m)
		}
	}
	shards := make([]string, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	rep := &CompactReport{Shards: make([]*ShardCompaction, len(shards))}
	errs := make([]error, len(shards))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(opt.Parallel, max(1, len(shards))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				sc := &ShardCompaction{Shard: shards[i], Runs: []*CompactedRun{}}
				if err := compactShard(ctx, &opt, sc, byShard[shards[i]], tomb); err != nil {
					errs[i] = fmt.Errorf("%s: %w", shards[i], err)
					sc.Err = err.Error()
					opt.Logger.Error("compaction of a shard failed; the other shards go on", "shard", shards[i], "err", err)
				}
				rep.Shards[i] = sc
			}
		}()
	}
	for i := range shards {
		next <- i
	}
	close(next)
	wg.Wait()
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	// The runs compaction did not touch may hold points of a delete too: the same
	// pass rewrites them (docs/lifecycle.md, "Deletes").
	if !opt.DryRun && len(tomb) > 0 {
		ar, err := ApplyTombstones(ctx, ApplyOptions{Store: opt.Store, Shard: opt.Shard, TempDir: opt.TempDir, Now: opt.Now, Logger: opt.Logger})
		rep.Deletes = ar
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("compaction failed for %d of %d shards, or its deletes (the others are compacted): %w", len(failed), len(shards), errors.Join(failed...))
	}
	return rep, nil
}

// compactShard compacts one shard's visible runs level by level.
func compactShard(ctx context.Context, opt *CompactOptions, sc *ShardCompaction, vis []*Manifest, tomb Tombstones) error {
	for _, level := range opt.Levels {
		targets, err := planLevel(sc.Shard, vis, level)
		if err != nil {
			return err
		}
		for _, t := range targets {
			due := t.w.From.Add(t.w.Size).Add(settleOf(t.srcs) + opt.Settle)
			if opt.Now.Before(due) {
				sc.Waiting = append(sc.Waiting, fmt.Sprintf("%s (due %s)", t.w.Name(), due.UTC().Format(time.RFC3339)))
				continue
			}
			if err := checkSources(t.w, t.srcs); err != nil {
				return err
			}
			start := time.Now()
			cr, m, err := compactTarget(ctx, opt, sc.Shard, t.w, t.srcs, tomb)
			if err != nil {
				return fmt.Errorf("compact %s into %s: %w", sc.Shard, t.w.Name(), err)
			}
			cr.Seconds = time.Since(start).Seconds()
			sc.Runs = append(sc.Runs, cr)
			if opt.Progress != nil {
				opt.Progress(sc.Shard, cr)
			}
			if m == nil {
				continue // dry run
			}
			// The next level sees the new run instead of its sources.
			gone := map[*Manifest]bool{}
			for _, s := range t.srcs {
				gone[s] = true
			}
			out := vis[:0:0]
			for _, v := range vis {
				if !gone[v] {
					out = append(out, v)
				}
			}
			vis = append(out, m)
		}
	}
	return nil
}

// target is one window to compact and the visible runs it takes.
type target struct {
	w    Window
	srcs []*Manifest
}

// planLevel groups the runs smaller than level by the window of size level that holds
// them. A window inside a visible run larger than level is left to that run's level (it
// compacts the larger run again with the new runs inside it); a visible run of exactly
// level's size at the window is taken too (compacted again with the runs that came
// after it). A run that crosses a target's edge is an overlap: the shard fails.
func planLevel(shard string, vis []*Manifest, level time.Duration) ([]target, error) {
	ms := level.Milliseconds()
	by := map[int64][]*Manifest{}
	for _, m := range vis {
		if m.To-m.From >= ms {
			continue
		}
		t := WindowOf(m.From, level)
		if end := t.From.Add(level).UnixMilli(); m.To > end {
			return nil, fmt.Errorf("%w: shard %s run %s of %s crosses the end of the %s window %s, so it cannot be compacted into one (its window size does not divide %s)",
				ErrOverlap, shard, m.RunID, m.Window, level, t.Name(), level)
		}
		by[t.From.UnixMilli()] = append(by[t.From.UnixMilli()], m)
	}
	var out []target
	for from, srcs := range by {
		to := from + ms
		inside := false
		for _, m := range vis {
			switch size := m.To - m.From; {
			case size > ms && m.From <= from && m.To >= to:
				inside = true
			case size == ms && m.From == from:
				srcs = append(srcs, m)
			case size >= ms && m.From < to && from < m.To && !(m.From <= from && m.To >= to):
				return nil, fmt.Errorf("%w: shard %s run %s of %s overlaps the %s window at %s without holding it", ErrOverlap, shard, m.RunID, m.Window, level, time.UnixMilli(from).UTC().Format(time.RFC3339))
			}
		}
		if inside {
			continue
		}
		out = append(out, target{w: Window{From: time.UnixMilli(from).UTC(), Size: level}, srcs: srcs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].w.From.Before(out[j].w.From) })
	for _, t := range out {
		sort.Slice(t.srcs, func(i, j int) bool {
			a, b := t.srcs[i], t.srcs[j]
			return a.From < b.From || a.From == b.From && a.To > b.To
		})
	}
	return out, nil
}

// settleOf is how long after a window's end its runs may still change: the sources'
// lateness plus flush age when windows close, none when they stay open.
func settleOf(srcs []*Manifest) time.Duration {
	var d time.Duration
	for _, m := range srcs {
		if m.LatenessMs >= 0 {
			d = max(d, time.Duration(m.LatenessMs+m.FlushAgeMs)*time.Millisecond)
		}
	}
	return d
}

// checkSources refuses sources that one derived run cannot hold: different arrival
// rules or algorithms, or one segment read at two sizes.
func checkSources(w Window, srcs []*Manifest) error {
	first := srcs[0]
	sizes := map[string]int64{}
	for _, m := range srcs {
		if m.Algo != first.Algo || m.LatenessMs != first.LatenessMs || m.FlushAgeMs != first.FlushAgeMs || m.runWindow() != first.runWindow() {
			return fmt.Errorf("compact into %s: run %s of %s was made with %s, lateness %d ms, flush age %d ms and %d ms windows, run %s of %s with %s, %d ms, %d ms and %d ms: one compacted run needs one rule (run those windows again with one rule)",
				w.Name(), first.RunID, first.Window, first.Algo, first.LatenessMs, first.FlushAgeMs, first.runWindow(), m.RunID, m.Window, m.Algo, m.LatenessMs, m.FlushAgeMs, m.runWindow())
		}
		if m.rawExpired() {
			return fmt.Errorf("compact into %s: run %s of %s lost its raw points to retention, and compaction makes rollups from raw points: compact before raw retention ends", w.Name(), m.RunID, m.Window)
		}
		for _, in := range m.Inputs {
			if s, ok := sizes[in.Key]; ok && s != in.Size {
				return fmt.Errorf("compact into %s: segment %s was read at %d and at %d bytes by different runs: run the windows again", w.Name(), in.Key, s, in.Size)
			}
			sizes[in.Key] = in.Size
		}
	}
	return nil
}

// rawExpired reports whether retention dropped the run's raw points.
func (m *Manifest) rawExpired() bool {
	if m.Derived == nil {
		return false
	}
	for _, e := range m.Derived.Retention {
		if e.Resolution == RawResolution && e.All {
			return true
		}
	}
	return false
}

// RawResolution names the raw points in retention policies and expiries.
const RawResolution = "raw"

// mayMatch returns the tombstones that may delete a point of one of runs: those of an
// org the runs' shard holds whose range meets the runs' ts. The check uses manifests
// only (a tombstone of another shard's org that meets the range is kept: harmless).
func mayMatch(tomb Tombstones, srcs []*Manifest) Tombstones {
	var out Tombstones
	for _, t := range tomb {
		for _, m := range srcs {
			if m.holdsTs(t.From, t.To) {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// holdsTs reports whether a part of m may hold a ts in [from, to).
func (m *Manifest) holdsTs(from, to int64) bool {
	w := columnar.TimeRange{From: from, To: to}
	if len(m.Parts) > 0 && w.Overlaps(m.From, m.To-1) {
		return true
	}
	for i := range m.LateParts {
		if m.LateParts[i].overlaps(w) {
			return true
		}
	}
	return false
}

// compactTarget makes (or finds) the compacted run of srcs into w and publishes it.
func compactTarget(ctx context.Context, opt *CompactOptions, shard string, w Window, srcs []*Manifest, tomb Tombstones) (*CompactedRun, *Manifest, error) {
	tomb = mayMatch(tomb, srcs)
	cfg := mergeRollupConfigs(w.Size.Milliseconds(), opt.Rollups, srcs)
	id := derivedID("compact", shard, w, srcs, "tombstones="+strings.Join(tomb.ids(), ","), "rollups="+cfg.String())
	cr := &CompactedRun{Window: w.Name(), RunID: id, Sources: len(srcs)}
	for _, m := range srcs {
		for _, p := range m.AllParts() {
			cr.BytesIn += p.Size
		}
	}
	if opt.DryRun {
		cr.DryRun = true
		return cr, nil, nil
	}
	if m, err := ReadManifest(ctx, opt.Store, shard, w, id); err == nil {
		// Published already (a compaction killed before _CURRENT, or one running at
		// the same time): make it current under the rule of Publish.
		if err := promote(ctx, opt.Store, m, w, PublishOptions{}); err != nil {
			return nil, nil, err
		}
		cr.Done, cr.Counts, cr.Parts = true, m.Counts, len(m.Parts)
		return cr, m, nil
	} else if !errors.Is(err, storage.ErrNotExist) {
		return nil, nil, err
	}
	m, err := deriveMerged(ctx, derivedRecipe{
		store: opt.Store, shard: shard, w: w, id: id, kind: "compact", srcs: srcs, tomb: tomb,
		rollups: cfg, partBytes: opt.PartBytes, tempDir: opt.TempDir,
	})
	if err != nil {
		return nil, nil, err
	}
	cr.Counts, cr.Parts = m.Counts, len(m.Parts)
	return cr, m, nil
}

// derivedRecipe is what a derived run is made from.
type derivedRecipe struct {
	store     storage.Store
	shard     string
	w         Window
	id        string
	kind      string
	srcs      []*Manifest
	tomb      Tombstones
	rollups   *RollupConfig
	partBytes int64
	tempDir   string
}

// deriveMerged merges the outputs of r.srcs under the arrival rule (SeriesMerger, with
// exact arrivals), leaves out what r.tomb deletes, and writes the result as run r.id of
// r.w: points inside the window to its own parts, the others to its late output, and
// the arrival of every point whose copy came from another window than its own to its
// arrival parts. Then it uploads and publishes the run.
func deriveMerged(ctx context.Context, r derivedRecipe) (m *Manifest, err error) {
	mg, err := openMerger(ctx, r.store, r.srcs, mergeOptions{window: columnar.AllTime, tomb: r.tomb, exact: true, keepArrivals: true})
	if err != nil {
		return nil, err
	}
	defer mg.Close()
	base := r.srcs[0].runWindow()
	win := r.w.TsRange()
	own := &partWriter{dir: r.tempDir, partBytes: r.partBytes}
	late := &partWriter{dir: r.tempDir, partBytes: r.partBytes}
	arr := &partWriter{dir: r.tempDir, partBytes: r.partBytes}
	var rolled [][]*tempPart
	defer func() {
		err = errors.Join(err, own.close(), late.close(), arr.close())
	}()
	rollDone := func() error {
		for len(rolled) < len(own.done) {
			t := own.done[len(rolled)]
			rs, err := rollupsOf(t.readerAt(), t.part.Size, r.rollups)
			if err != nil {
				return err
			}
			rolled = append(rolled, rs)
		}
		return nil
	}
	var (
		c                  Counts
		oTs, lTs, aTs      []int64
		oV, lV, aV         []float64
		ownSeries, lateSer uint64
	)
	for mg.Next() {
		s := mg.At()
		oTs, oV, lTs, lV, aTs, aV = oTs[:0], oV[:0], lTs[:0], lV[:0], aTs[:0], aV[:0]
		for i, ts := range s.Ts {
			a := mg.arr[i]
			if win.Contains(ts) {
				oTs, oV = append(oTs, ts), append(oV, s.Values[i])
				if a != floorTs(ts, base) {
					aTs, aV = append(aTs, ts), append(aV, float64(a))
				}
				continue
			}
			lTs, lV = append(lTs, ts), append(lV, s.Values[i])
			if a != win.From {
				aTs, aV = append(aTs, ts), append(aV, float64(a))
			}
		}
		if len(oTs) > 0 {
			ownSeries++
			if err := own.add(s.Key, s.Tags, oTs, oV); err != nil {
				return nil, err
			}
			if err := rollDone(); err != nil {
				return nil, err
			}
		}
		if len(lTs) > 0 {
			lateSer++
			if err := late.add(s.Key, s.Tags, lTs, lV); err != nil {
				return nil, err
			}
		}
		if err := arr.add(s.Key, nil, aTs, aV); err != nil {
			return nil, err
		}
		c.PointsOut += uint64(len(oTs) + len(lTs))
		c.LatePointsOut += uint64(len(lTs))
	}
	if err := mg.Err(); err != nil {
		return nil, fmt.Errorf("read the sources: %w", err)
	}
	for _, p := range []*partWriter{own, late, arr} {
		if err := p.finish(); err != nil {
			return nil, err
		}
	}
	if err := rollDone(); err != nil {
		return nil, err
	}
	c.PointsIn, c.Deleted = mg.copies, mg.deleted
	c.Duplicates = c.PointsIn - c.PointsOut - c.Deleted
	c.Series, c.LateSeries = ownSeries+lateSer, lateSer
	m = newDerived(r, unionInputs(r.srcs))
	m.Counts = c
	st, shard, w, id := r.store, r.shard, r.w, r.id
	if m.Parts, err = upload(ctx, st, own.done, func(i int) string { return PartKey(shard, w, id, i) }); err != nil {
		return nil, err
	}
	if m.LateParts, err = upload(ctx, st, late.done, func(i int) string { return LatePartKey(shard, w, id, i) }); err != nil {
		return nil, err
	}
	if m.ArrivalParts, err = upload(ctx, st, arr.done, func(i int) string { return ArrivalPartKey(shard, w, id, i) }); err != nil {
		return nil, err
	}
	if m.Rollups, err = uploadRollups(ctx, st, r.rollups, rolled, func(res int64, i int) string { return RollupPartKey(shard, w, id, res, i) }); err != nil {
		return nil, err
	}
	return m, publishDerived(ctx, st, m, r.srcs)
}

// newDerived is the manifest of a derived run of recipe r over inputs, without its
// files and counts.
func newDerived(r derivedRecipe, inputs []Input) *Manifest {
	first := r.srcs[0]
	win := r.w.TsRange()
	m := &Manifest{
		RunID: r.id, Algo: first.Algo, Shard: r.shard, Window: r.w.Name(), From: win.From, To: win.To,
		LatenessMs: first.LatenessMs, FlushAgeMs: first.FlushAgeMs, Inputs: inputs,
		Parts: []Part{}, LateParts: []Part{}, RollupConfig: r.rollups,
		Derived: &Derivation{Kind: r.kind, Algo: deriveAlgo}, Tombstones: r.tomb.ids(),
	}
	if base := first.runWindow(); base != win.To-win.From {
		m.RunWindowMs = base
	}
	if len(m.Tombstones) == 0 {
		m.Tombstones = nil
	}
	// The skipped frames of every source: the derived run covers no more than they did.
	seen := map[SkippedFrame]bool{}
	for _, s := range r.srcs {
		if s.Degraded == nil {
			continue
		}
		if m.Degraded == nil {
			m.Degraded = &Degraded{}
		}
		for _, f := range s.Degraded.SkippedFrames {
			if !seen[f] {
				seen[f] = true
				m.Degraded.SkippedFrames = append(m.Degraded.SkippedFrames, f)
				m.Degraded.Points += uint64(f.Rows)
				m.Degraded.Bytes += uint64(f.Length)
			}
		}
	}
	if m.Degraded != nil {
		sort.Slice(m.Degraded.SkippedFrames, func(i, j int) bool {
			a, b := m.Degraded.SkippedFrames[i], m.Degraded.SkippedFrames[j]
			return a.Segment < b.Segment || a.Segment == b.Segment && a.Offset < b.Offset
		})
	}
	return m
}

// publishDerived fills m's supersedes and byte count and publishes it.
func publishDerived(ctx context.Context, st storage.Store, m *Manifest, srcs []*Manifest) error {
	sup, err := flattenSupersedes(srcs, m.Inputs)
	if err != nil {
		return err
	}
	m.Supersedes = sup
	m.Counts.BytesOut = 0
	for _, p := range m.AllParts() {
		m.Counts.BytesOut += p.Size
	}
	return Publish(ctx, st, m, PublishOptions{})
}
