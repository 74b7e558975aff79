//go:build duckdb_arrow

package run

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// maxEnumeratedWindows bounds how many windows a frame's ts range may span before its
// windows are found by decoding its timestamps instead of enumerating.
const maxEnumeratedWindows = 64

// ShardWindows lists every (shard, window) that segs give points to under the arrival
// rule a: the windows a frame's [min ts, max ts] reaches inside its segment's on-time
// range, and the owner's late output when the frame reaches outside it. Shards are
// sorted by name and windows by time. A frame whose range spans few windows contributes
// all of them (a window may turn out empty, and its run publishes an empty manifest);
// a wider one is decoded to find its exact windows. With skipCorrupt, a wide frame that
// is corrupt gives no window of its own (the runs that read it skip and count it) and its
// error goes to onCorrupt (when not nil); without it, it fails the listing.
func ShardWindows(ctx context.Context, st storage.Store, segs []*columnar.Segment, a Arrival, skipCorrupt bool, onCorrupt func(error)) (map[string][]Window, error) {
	seen := map[string]map[int64]bool{}
	dec := columnar.NewFrameDecoder()
	defer dec.Close()
	var buf []byte
	var cols columnar.Columns
	for _, s := range segs {
		start := s.Header.StartTimestamp
		on := a.OnTime(start)
		for _, f := range s.Footer.Frames {
			shard := s.Footer.Shards[f.Shard]
			if seen[shard] == nil {
				seen[shard] = map[int64]bool{}
			}
			if a.Bounded() && (f.MinTs < on.From || f.MaxTs >= on.To) {
				seen[shard][a.Owner(start).From.UnixMilli()] = true
			}
			lo, hi := max(f.MinTs, on.From), f.MaxTs
			if on.To != columnar.AllTime.To {
				hi = min(hi, on.To-1)
			}
			if lo > hi {
				continue
			}
			first, last := WindowOf(lo, a.Size), WindowOf(hi, a.Size)
			if n := last.From.Sub(first.From) / a.Size; n < maxEnumeratedWindows {
				for w := first; !w.From.After(last.From); w.From = w.From.Add(a.Size) {
					seen[shard][w.From.UnixMilli()] = true
				}
				continue
			}
			sp := columnar.Split{Seg: s, Frames: []columnar.FrameInfo{f}}
			var err error
			if buf, err = columnar.ReadSplitBytes(ctx, st, &sp, buf); err != nil {
				return nil, err
			}
			cols.Reset()
			var fs columnar.FrameStats
			if err := dec.DecodeFrame(&sp, f, buf, columnar.DecodeOptions{Window: on}, &cols, &fs); err != nil {
				if !skipCorrupt || !errors.Is(err, columnar.ErrCorrupt) {
					return nil, err
				}
				if onCorrupt != nil {
					onCorrupt(err)
				}
				continue
			}
			for _, ts := range cols.Ts {
				seen[shard][WindowOf(ts, a.Size).From.UnixMilli()] = true
			}
		}
	}
	out := map[string][]Window{}
	for shard, ws := range seen {
		for from := range ws {
			out[shard] = append(out[shard], Window{From: time.UnixMilli(from).UTC(), Size: a.Size})
		}
		sort.Slice(out[shard], func(i, j int) bool { return out[shard][i].From.Before(out[shard][j].From) })
	}
	return out, nil
}

// ListWindowSegments opens the segments under segments/ that a run of one of windows reads
// under the arrival rule a, or every segment when windows is empty. The hour in a
// segment's key prunes before any footer is opened; a key without a readable hour is
// opened anyway. With skipCorrupt, a segment whose footer is corrupt is left out and its
// error handed to onCorrupt (when not nil). The result is sorted by key.
func ListWindowSegments(ctx context.Context, st storage.Store, windows []Window, a Arrival, skipCorrupt bool, onCorrupt func(error)) ([]*columnar.Segment, error) {
	if !a.Bounded() {
		windows = nil // every segment may hold points of any window
	}
	segs, err := columnar.ListSegmentsWith(ctx, st, columnar.ListOptions{
		Keep:        func(key string) bool { return len(windows) == 0 || hourMayMatch(key, windows, a) },
		SkipCorrupt: skipCorrupt, OnCorrupt: onCorrupt,
	})
	if err != nil {
		return nil, err
	}
	out := segs[:0]
	for _, s := range segs {
		if len(windows) == 0 || readByAny(s.Header.StartTimestamp, windows, a) {
			out = append(out, s)
		}
	}
	return out, nil
}

func readByAny(start int64, windows []Window, a Arrival) bool {
	for _, w := range windows {
		if a.Reads(w, start) {
			return true
		}
	}
	return false
}

// hourMayMatch reads the hour from segments/<h>/<hour>/… and reports whether a segment
// that started in that hour may be read by one of windows.
func hourMayMatch(key string, windows []Window, a Arrival) bool {
	parts := strings.Split(key, "/")
	if len(parts) < 4 {
		return true
	}
	h, err := time.Parse("2006010215", parts[2])
	if err != nil {
		return true
	}
	lo, hi := h.UnixMilli(), h.Add(time.Hour).UnixMilli()
	for _, w := range windows {
		if s, e := a.startRange(w); lo < e && hi > s {
			return true
		}
	}
	return false
}

// AllOptions configures RunAll.
type AllOptions struct {
	RunOptions
	// WindowSize, when set, is the window size (Arrival.Size), else 4 h.
	WindowSize time.Duration
	// Shard, when set, limits the run to that shard's windows.
	Shard string
	// Windows, when set, limits the run to these windows (of Arrival.Size).
	Windows []Window
	// Parallel runs this many shard runs at once (default 1).
	Parallel int
	// Progress, when not nil, is called after each shard run.
	Progress func(done, total int, rep *Report)
	// Corrupt, when not nil, is called with every corrupt segment footer and frame that
	// listing and window discovery skip under SkipCorrupt. (The runs count the frames
	// they skip in their own reports.)
	Corrupt func(err error)
}

// RunAll runs every (shard, window) that has data. A failed run does not stop the
// others: its report carries the error, and RunAll returns an error naming the failures.
func RunAll(ctx context.Context, opt AllOptions) ([]*Report, error) {
	if opt.WindowSize > 0 {
		opt.Arrival.Size = opt.WindowSize
	}
	if opt.Arrival.Size <= 0 {
		opt.Arrival.Size = DefaultWindowSize
	}
	if err := opt.Arrival.validate(); err != nil {
		return nil, err
	}
	if opt.Parallel <= 0 {
		opt.Parallel = 1
	}
	listStart := time.Now()
	var corruptMu sync.Mutex
	onCorrupt := func(err error) {
		corruptMu.Lock()
		defer corruptMu.Unlock()
		if opt.Logger != nil {
			opt.Logger.Warn("skipping corrupt data while planning", "err", err)
		}
		if opt.Corrupt != nil {
			opt.Corrupt(err)
		}
	}
	segs, err := ListWindowSegments(ctx, opt.Store, opt.Windows, opt.Arrival, opt.SkipCorrupt, onCorrupt)
	if err != nil {
		return nil, err
	}
	opt.Segments = segs
	if opt.Tombstones == nil {
		ts, err := LoadTombstones(ctx, opt.Store)
		if err != nil {
			return nil, err
		}
		opt.Tombstones = &ts
	}
	sw, err := ShardWindows(ctx, opt.Store, segs, opt.Arrival, opt.SkipCorrupt, onCorrupt)
	if err != nil {
		return nil, err
	}
	listSecs := time.Since(listStart).Seconds()
	type job struct {
		shard string
		w     Window
	}
	var jobs []job
	shards := make([]string, 0, len(sw))
	for s := range sw {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	for _, s := range shards {
		if opt.Shard != "" && s != opt.Shard {
			continue
		}
		for _, w := range sw[s] {
			if len(opt.Windows) > 0 && !containsWindow(opt.Windows, w) {
				continue
			}
			jobs = append(jobs, job{s, w})
		}
	}
	reports := make([]*Report, len(jobs))
	var (
		mu     sync.Mutex
		done   int
		failed []error
		wg     sync.WaitGroup
		next   = make(chan int)
	)
	// Largest runs first (by the footers' row counts), so that a big shard does not start
	// last and leave the other workers idle at the end. Reports keep the jobs' order.
	order := make([]int, len(jobs))
	est := make([]uint64, len(jobs))
	split := opt.SplitBytes
	if split <= 0 {
		split = columnar.DefaultSplitBytes
	}
	for i, j := range jobs {
		order[i] = i
		est[i] = PlanRun(segs, j.shard, j.w, opt.Arrival, split).EstPoints
	}
	sort.SliceStable(order, func(a, b int) bool { return est[order[a]] > est[order[b]] })
	go func() {
		defer close(next)
		for _, i := range order {
			next <- i
		}
	}()
	for w := 0; w < min(opt.Parallel, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var db *query.Engine
			if !opt.DryRun {
				duck, _, err := RunMemory(opt.Engine)
				if err == nil {
					db, err = query.Open(ctx, duck)
				}
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
					for range next {
					}
					return
				}
				defer db.Close()
			}
			for i := range next {
				runOne(ctx, opt, db, jobs[i].shard, jobs[i].w, listSecs/float64(len(jobs)), &reports[i], func(rep *Report, err error) {
					mu.Lock()
					defer mu.Unlock()
					done++
					if err != nil {
						failed = append(failed, fmt.Errorf("%s %s: %w", rep.Shard, rep.Window, err))
					}
					if opt.Progress != nil {
						opt.Progress(done, len(jobs), rep)
					}
				})
			}
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		// The first by text, whatever order the workers finished in; wrapped, so that
		// callers can still test what went wrong (errors.Is, errors.As).
		sort.Slice(failed, func(i, j int) bool { return failed[i].Error() < failed[j].Error() })
		return reports, fmt.Errorf("%d of %d shard runs failed; the others are published. First failure: %w", len(failed), len(jobs), failed[0])
	}
	return reports, nil
}

func runOne(ctx context.Context, opt AllOptions, db *query.Engine, shard string, w Window, listSecs float64, out **Report, done func(*Report, error)) {
	ro := opt.RunOptions
	ro.Shard, ro.Window, ro.DB = shard, w, db
	rep, err := RunShard(ctx, ro)
	if rep == nil {
		rep = &Report{Shard: shard, Window: w.Name()}
	}
	if err != nil {
		rep.Err = err.Error()
	}
	rep.add("list", time.Duration(listSecs*float64(time.Second)))
	*out = rep
	done(rep, err)
}

func containsWindow(ws []Window, w Window) bool {
	for _, x := range ws {
		if x.From.Equal(w.From) && x.Size == w.Size {
			return true
		}
	}
	return false
}
