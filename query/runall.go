//go:build duckdb_arrow

package query

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// maxEnumeratedWindows bounds how many windows a frame's [min, max] ts range may span
// before its windows are found by decoding its timestamps instead of enumerating.
const maxEnumeratedWindows = 64

// ShardWindows lists every (shard, window) that segs hold points for, shards sorted by
// name and windows by time. A frame whose ts range spans few windows contributes all of
// them (a window may turn out empty); a wider one is decoded to find its exact windows.
func ShardWindows(ctx context.Context, st storage.Store, segs []*columnar.Segment, size time.Duration) (map[string][]Window, error) {
	seen := map[string]map[int64]bool{}
	dec := columnar.NewFrameDecoder()
	defer dec.Close()
	var buf []byte
	var cols columnar.Columns
	for _, s := range segs {
		for _, f := range s.Footer.Frames {
			shard := s.Footer.Shards[f.Shard]
			if seen[shard] == nil {
				seen[shard] = map[int64]bool{}
			}
			lo, hi := WindowOf(f.MinTs, size), WindowOf(f.MaxTs, size)
			if n := hi.From.Sub(lo.From) / size; n < maxEnumeratedWindows {
				for w := lo; !w.From.After(hi.From); w.From = w.From.Add(size) {
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
			if err := dec.DecodeFrame(&sp, f, buf, 0, columnar.AllTime, false, &cols, &fs, nil); err != nil {
				return nil, err
			}
			for _, ts := range cols.Ts {
				seen[shard][WindowOf(ts, size).From.UnixMilli()] = true
			}
		}
	}
	out := map[string][]Window{}
	for shard, ws := range seen {
		for from := range ws {
			out[shard] = append(out[shard], Window{From: time.UnixMilli(from).UTC(), Size: size})
		}
		sort.Slice(out[shard], func(i, j int) bool { return out[shard][i].From.Before(out[shard][j].From) })
	}
	return out, nil
}

// AllOptions configures RunAll.
type AllOptions struct {
	RunOptions
	WindowSize time.Duration
	// Shard, when set, limits the run to that shard's windows.
	Shard string
	// Windows, when set, limits the run to these windows.
	Windows []Window
	// Parallel runs this many shard runs at once (default 1).
	Parallel int
	// Progress, when not nil, is called after each shard run.
	Progress func(done, total int, rep *Report)
}

// RunAll runs every (shard, window) that has data. A failed run does not stop the
// others: its report carries the error, and RunAll returns an error naming the failures.
func RunAll(ctx context.Context, opt AllOptions) ([]*Report, error) {
	if opt.WindowSize <= 0 {
		opt.WindowSize = DefaultWindowSize
	}
	if opt.Parallel <= 0 {
		opt.Parallel = 1
	}
	listStart := time.Now()
	segs, err := columnar.ListSegments(ctx, opt.Store)
	if err != nil {
		return nil, err
	}
	opt.Segments = segs
	sw, err := ShardWindows(ctx, opt.Store, segs, opt.WindowSize)
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
		failed []string
		wg     sync.WaitGroup
		next   = make(chan int)
	)
	go func() {
		defer close(next)
		for i := range jobs {
			next <- i
		}
	}()
	for w := 0; w < min(opt.Parallel, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(ctx, opt.Engine)
			if err != nil {
				mu.Lock()
				failed = append(failed, err.Error())
				mu.Unlock()
				for range next {
				}
				return
			}
			defer db.Close()
			for i := range next {
				runOne(ctx, opt, db, jobs[i].shard, jobs[i].w, listSecs/float64(len(jobs)), &reports[i], func(rep *Report, err error) {
					mu.Lock()
					defer mu.Unlock()
					done++
					if err != nil {
						failed = append(failed, fmt.Sprintf("%s %s: %v", rep.Shard, rep.Window, err))
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
		sort.Strings(failed)
		return reports, fmt.Errorf("%d of %d shard runs failed; the others are published. First failure: %s", len(failed), len(jobs), failed[0])
	}
	return reports, nil
}

func runOne(ctx context.Context, opt AllOptions, db *Engine, shard string, w Window, listSecs float64, out **Report, done func(*Report, error)) {
	ro := opt.RunOptions
	ro.Shard, ro.Window, ro.DB = shard, w, db
	rep, err := RunShard(ctx, ro)
	if rep == nil {
		rep = &Report{Shard: shard, Window: w.Name()}
	}
	if err != nil {
		rep.Err = err.Error()
	}
	if rep.Seconds == nil {
		rep.Seconds = map[string]float64{}
	}
	rep.Seconds["list"] = listSecs
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
