package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

func newRunCmd() *cobra.Command {
	var (
		storeURL, shard, window, tempDir, lateness string
		shardEnv, shardList, shardMap              string
		all, jsonOut                               bool
		windowSize                                 time.Duration
		opt                                        run.AllOptions
		rf                                         rollupFlags
	)
	cmd := &cobra.Command{
		Use:   "run --store URL (--shard S | --shard-from-env VAR | --all) [--window FROM/DURATION]",
		Short: "Group-sort one shard's segments of a window into series files (the compute side)",
		Long: `Reads the segments' frames of one shard (or every shard with --all) and window, has
DuckDB de-duplicate (latest arrival wins) and sort them by series and time, and writes the
series files under series/<shard>/<window>/<run-id>/ with a manifest written last. Windows
are aligned to the Unix epoch. Without --window, every window that has data is run.

With --lateness D, a window closes D after its end: points that arrive later (by their
segment's start) go to the late output (late-*.tsf) of the window they arrived in, and the
run reads only segments that started between the window's start minus --flush-age and its
end plus D. Without it, windows stay open and a run reads every segment (docs/run.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := loggerFrom(ctx)
			if shardEnv != "" {
				s, err := shardFromEnv(shardEnv, shardList)
				if err != nil {
					return err
				}
				shard = s
			}
			if all == (shard != "") {
				return usageErrorf("run: pass exactly one of --shard S, --shard-from-env VAR or --all")
			}
			if shard != "" {
				m, err := loadShardMap(shardMap)
				if err != nil {
					return fmt.Errorf("--shard-map: %w", err)
				}
				flag := "--shard"
				if shardEnv != "" {
					flag = "--shard-from-env " + shardEnv
				}
				if opt.Shard, err = checkShard(flag, shard, m); err != nil {
					return err
				}
			}
			opt.Arrival.Size = windowSize
			if lateness != "none" {
				d, err := time.ParseDuration(lateness)
				if err != nil || d < 0 {
					return usageErrorf("--lateness %q: want none or a duration such as 1h", lateness)
				}
				opt.Arrival.Closed, opt.Arrival.Lateness = true, d
			}
			if window != "" {
				w, err := resolveWindow(window, opt.Arrival, time.Now())
				if err != nil {
					return usageErrorf("--window: %w", err)
				}
				opt.Windows, opt.Arrival.Size = []run.Window{w}, w.Size
			}
			rollups, err := rf.config()
			if err != nil {
				return err
			}
			if err := checkDivides(rollups, opt.Arrival.Size, "the window size"); err != nil {
				return err
			}
			opt.Rollups = rollups
			// Counts not given come from the processors and memory this process may use
			// (the container's limits in a container); the summary says what was chosen.
			sizing := run.ChooseSizing(opt.Parallel, opt.Readers, opt.Engine.Threads, run.AvailableCPU(), run.AvailableMemory())
			opt.Parallel, opt.Readers, opt.Engine.Threads = sizing.Parallel, sizing.Readers, sizing.Threads
			limit, err := memoryLimit(log, opt.Engine.MemoryLimit, opt.Parallel)
			if err != nil {
				return err
			}
			opt.Engine.MemoryLimit = limit
			if len(sizing.Chosen) > 0 {
				log.Debug("sizing chosen", "parallel", sizing.Parallel, "readers", sizing.Readers, "threads", sizing.Threads,
					"cpus", sizing.CPU.Count, "cpu_source", sizing.CPU.Source, "memory_bytes", sizing.Memory.Bytes, "memory_source", sizing.Memory.Source)
			}
			// series/ too: once gc collected every segment the runs covered
			// (docs/lifecycle.md), the store is still Tailor's, with nothing to run.
			st, err := openStore(ctx, storeURL, "--store", storage.SegmentsPrefix, storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			if tempDir == "" {
				tempDir = filepath.Join(os.TempDir(), "tailor-duckdb")
			}
			opt.Store = st
			opt.Engine.TempDir = tempDir
			opt.Logger = log
			var bar *progressBar
			if con := consoleFrom(ctx); con.terminal() && !opt.DryRun {
				bar = newProgressBar(con)
				defer bar.stop() // on a panic; stop is idempotent
				opt.Stage = bar.stage
			}
			opt.Progress = func(done, total int, rep *run.Report) {
				if bar != nil {
					bar.done(done, total, rep)
				}
				logRun(log, done, total, rep)
			}
			var planSkips []string
			opt.Corrupt = func(err error) { planSkips = append(planSkips, err.Error()) }
			start := time.Now()
			res := run.MeasureResources()
			reports, runErr := run.RunAll(ctx, opt)
			// The bar clears its line before the summary, so that the summary starts on
			// an empty line and no redraw lands on it.
			bar.stop()
			sum := summarize(reports, time.Since(start))
			sum.PlanSkipped = planSkips
			sum.Resources = res()
			sum.Retries = storeRetries(st)
			sum.MemoryLimit = opt.Engine.MemoryLimit
			sum.Sizing = sizing
			if jsonOut {
				if err := writeJSON(cmd.OutOrStdout(), struct {
					Summary runSummary    `json:"summary"`
					Runs    []*run.Report `json:"runs"`
				}{sum, reports}); err != nil {
					return err
				}
			} else if opt.DryRun {
				printPlans(cmd.OutOrStdout(), reports)
			} else {
				sum.print(cmd.OutOrStdout())
			}
			// run.RunAll reports failures as text, so the CorruptSegmentError's type does not
			// survive it: match its message ("corrupt segment <key> at byte N: ...") too.
			if runErr != nil && !opt.SkipCorrupt && (errors.Is(runErr, columnar.ErrCorrupt) || strings.Contains(runErr.Error(), columnar.ErrCorrupt.Error()+" ")) {
				return fmt.Errorf("%w (the failed runs published nothing: restore or remove that segment, or run again with --skip-corrupt to skip its corrupt frames and count them in the report)", runErr)
			}
			if worse := (*run.WorseRunError)(nil); errors.As(runErr, &worse) {
				return runErr // it says what was kept, what serves, and what to do
			}
			if runErr != nil {
				return fmt.Errorf("%w (the failed runs published nothing: fix the cause and run again; complete runs are skipped)", runErr)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	storeFlag(cmd, &storeURL, false)
	fl.StringVar(&shard, "shard", "", "shard to run: a number N (org-mod-N), org-mod-N, org-X or org-X-pK; one the shard map has")
	fl.StringVar(&shardMap, "shard-map", "", "shard map YAML the sink used, to check --shard (default: 64 shared shards)")
	fl.StringVar(&shardEnv, "shard-from-env", "", "take the shard from this environment variable, an index (e.g. JOB_COMPLETION_INDEX of a Kubernetes Indexed Job)")
	fl.StringVar(&shardList, "shard-list", "", "with --shard-from-env: comma-separated shards the index picks from (default: index N is org-mod-N)")
	fl.BoolVar(&all, "all", false, "run every shard that has data")
	fl.StringVar(&window, "window", "", "window FROM/DURATION, e.g. 2025-11-24T04:00:00Z/4h, a window name as ls prints it, e.g. 20251124T0400Z-4h, or last-closed (with --lateness) (default: every window with data)")
	fl.DurationVar(&windowSize, "window-size", run.DefaultWindowSize, "window size when --window gives none")
	fl.StringVar(&lateness, "lateness", "none", "how long after its end a window takes points (none: windows stay open); later points go to a late output")
	fl.DurationVar(&opt.Arrival.FlushAge, "flush-age", run.DefaultFlushAge, "the sink's flush age: segments that started this long before a window may hold its points")
	fl.IntVar(&opt.Parallel, "parallel", 0, "shard runs at once with --all (default: one per CPU this process may use, the container's quota in a container, fewer if memory is short)")
	fl.IntVar(&opt.Readers, "readers", 0, "segment byte ranges decoded in parallel per run (default: the CPUs divided by --parallel)")
	fl.Int64Var(&opt.SplitBytes, "split-bytes", 1<<30, "largest byte range one reader takes")
	fl.BoolVar(&opt.SkipCorrupt, "skip-corrupt", false, "skip corrupt segment frames and footers (counted and reported) instead of failing; a run that skipped any is degraded and never replaces a run that read them (docs/run.md)")
	fl.BoolVar(&opt.AcceptDegraded, "accept-degraded", false, "let a degraded run (one that skipped corrupt frames, or lacks an input of the published run) replace the published run")
	fl.StringVar(&opt.Engine.MemoryLimit, "memory-limit", "", "memory per run, e.g. 4GiB, 4Gi, 4GB or 4G, or a share of the machine's memory (the container's limit in a container) for all runs together, e.g. 60%, split over --parallel: half is DuckDB's memory limit, half holds points before they spill to --temp-dir (default: 60%)")
	fl.IntVar(&opt.Engine.Threads, "threads", 0, "DuckDB threads per run (default: the CPUs divided by --parallel)")
	fl.StringVar(&tempDir, "temp-dir", "", "where DuckDB spills (default: $TMPDIR/tailor-duckdb)")
	fl.Int64Var(&opt.PartBytes, "part-bytes", 256<<20, "start a new series file after this many bytes")
	fl.BoolVar(&opt.Force, "force", false, "re-run windows that already have a complete run for the same inputs")
	fl.BoolVar(&opt.DryRun, "dry-run", false, "print the plan (segments, bytes, frames, estimated points) and read nothing")
	fl.BoolVar(&jsonOut, "json", false, "print the run report as JSON")
	rf.add(cmd, "the window size")
	return cmd
}

// logRun logs a finished shard run: at info (-v) one line per run, at error a failed
// one, so that a job's log shows which shard and window failed and why.
func logRun(log *slog.Logger, done, total int, rep *run.Report) {
	attrs := []any{"shard", rep.Shard, "window", rep.Window, "run_id", rep.RunID, "done", done, "of", total}
	switch {
	case rep.Err != "":
		log.Error("shard run failed", append(attrs, "err", rep.Err)...)
	case rep.NoData:
		log.Debug("shard run has no data", attrs...)
	case rep.Skipped:
		log.Info("shard run already complete", attrs...)
	default:
		log.Info("shard run published", append(attrs, "points_in", rep.Counts.PointsIn, "points_out", rep.Counts.PointsOut,
			"duplicates", rep.Counts.Duplicates, "series", rep.Counts.Series, "bytes_out", rep.Counts.BytesOut,
			"corrupt_frames", rep.Counts.CorruptFrames, "parts", rep.Parts)...)
	}
}

// resolveWindow parses --window: FROM/DURATION, or last-closed, the latest window of
// a.Size that closed (its end + lateness + flush age) by now, for schedulers.
func resolveWindow(s string, a run.Arrival, now time.Time) (run.Window, error) {
	if s != "last-closed" {
		return run.ParseWindow(s, a.Size)
	}
	if !a.Closed {
		return run.Window{}, fmt.Errorf("last-closed needs --lateness: open windows never close")
	}
	closedBy := now.Add(-a.Lateness - a.FlushAge - a.Size)
	return run.WindowOf(closedBy.UnixMilli(), a.Size), nil
}

// shardFromEnv maps the index in env var name to a shard: the index-th entry of list,
// or org-mod-<index> without a list.
func shardFromEnv(name, list string) (string, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return "", usageErrorf("--shard-from-env: %s is not set", name)
	}
	i, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || i < 0 {
		return "", usageErrorf("--shard-from-env: %s=%q is not an index", name, v)
	}
	if list == "" {
		return strconv.Itoa(i), nil
	}
	shards := strings.Split(list, ",")
	if i >= len(shards) {
		return "", usageErrorf("--shard-from-env: %s=%d but --shard-list has %d shards (set the Job's completions to match)", name, i, len(shards))
	}
	return strings.TrimSpace(shards[i]), nil
}

// runSummary totals the shard runs of one invocation.
type runSummary struct {
	Runs    int `json:"runs"`
	Skipped int `json:"skipped"`
	NoData  int `json:"no_data"`
	Failed  int `json:"failed"`
	// Degraded are the runs that skipped corrupt frames; NotServing those that were
	// published but left a better run serving.
	Degraded   int `json:"degraded"`
	NotServing int `json:"not_serving"`
	// PlanSkipped names the corrupt footers and frames listing and planning skipped.
	PlanSkipped   []string `json:"plan_skipped,omitempty"`
	run.Counts    `json:"counts"`
	BytesPerPoint float64            `json:"bytes_per_point"`
	Seconds       float64            `json:"seconds"`
	StageSeconds  map[string]float64 `json:"stage_seconds"`
	// Plan totals the plans (with --dry-run, all there is).
	Plan        run.Plan      `json:"plan"`
	Resources   run.Resources `json:"resources"`
	MemoryLimit string        `json:"memory_limit"`
	// Sizing is the runs at once, readers and DuckDB threads used, and which of them the
	// defaults chose from the machine.
	Sizing run.Sizing `json:"sizing"`
	// PointsSpilled is the bytes of points the runs' point stores moved to the temp
	// directory.
	PointsSpilled int64 `json:"points_spilled_bytes"`
	// Retries are the store's request retries by reason (S3 only; nil for stores that
	// never retry).
	Retries *storage.RetryStats `json:"store_retries,omitempty"`
}

func summarize(reports []*run.Report, elapsed time.Duration) runSummary {
	s := runSummary{StageSeconds: map[string]float64{}, Seconds: elapsed.Seconds()}
	for _, r := range reports {
		s.Runs++
		switch {
		case r.Err != "":
			s.Failed++
		case r.NoData:
			s.NoData++
		case r.Skipped:
			s.Skipped++
		}
		if r.Degraded != nil {
			s.Degraded++
		}
		if r.Published && !r.Serving {
			s.NotServing++
		}
		s.Counts.Add(r.Counts)
		s.PointsSpilled += r.PointStore.SpilledBytes
		for k, v := range r.Seconds {
			s.StageSeconds[k] += v
		}
		if p := r.Plan; p != nil {
			s.Plan.Segments += p.Segments
			s.Plan.Frames += p.Frames
			s.Plan.Bytes += p.Bytes
			s.Plan.EstPoints += p.EstPoints
		}
	}
	if s.PointsOut > 0 {
		s.BytesPerPoint = float64(s.BytesOut) / float64(s.PointsOut)
	}
	return s
}

// stageOrder is the order stages happen in, for the summary.
var stageOrder = []string{"list", "plan", "fetch", "verify", "zstd", "decode", "duckdb", "encode", "upload", "publish"}

func (s runSummary) print(w io.Writer) {
	fmt.Fprintf(w, "runs: %d (%d already complete, %d without data, %d failed) in %.1fs\n", s.Runs, s.Skipped, s.NoData, s.Failed, s.Seconds)
	fmt.Fprintf(w, "points: %d in, %d duplicates removed → %d out in %d series", s.PointsIn, s.Duplicates, s.PointsOut, s.Series)
	if s.Late+s.Early > 0 {
		fmt.Fprintf(w, " (late output: %d late + %d early points taken, %d written)", s.Late, s.Early, s.LatePointsOut)
	}
	fmt.Fprintf(w, "; %d read belong to other windows\n", s.OutOfWindow)
	fmt.Fprintf(w, "bytes out: %d (%.2f bytes/point)", s.BytesOut, s.BytesPerPoint)
	if s.CorruptFrames > 0 {
		fmt.Fprintf(w, ", %d corrupt frames skipped", s.CorruptFrames)
	}
	fmt.Fprintln(w)
	if s.Degraded > 0 || len(s.PlanSkipped) > 0 {
		fmt.Fprintf(w, "DEGRADED: %d runs skipped corrupt frames (their manifests say which); planning skipped %d corrupt footers or frames", s.Degraded, len(s.PlanSkipped))
		for i, m := range s.PlanSkipped {
			if i == 3 {
				fmt.Fprintf(w, "; …")
				break
			}
			fmt.Fprintf(w, "; %s", m)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, sizingLine(s.Sizing))
	fmt.Fprint(w, "stage seconds (summed over runs; reader steps over reader goroutines):")
	for _, k := range sortedStages(s.StageSeconds) {
		fmt.Fprintf(w, " %s=%.2f", k, s.StageSeconds[k])
	}
	fmt.Fprintln(w)
	r := s.Resources
	fmt.Fprintf(w, "peak RSS %.0f MiB, CPU %.1fs (%.1f%% in Go GC), memory limit %s per run (half DuckDB's, half for points)", float64(r.PeakRSSBytes)/(1<<20), r.CPUSeconds, 100*r.GCShare, s.MemoryLimit)
	if s.PointsSpilled > 0 {
		fmt.Fprintf(w, "; %.1f MiB of points spilled to the temp directory", float64(s.PointsSpilled)/(1<<20))
	}
	fmt.Fprintln(w)
	if s.Retries != nil {
		printRetries(w, "store retries: ", *s.Retries)
	}
}

func sortedStages(m map[string]float64) []string {
	rank := map[string]int{}
	for i, k := range stageOrder {
		rank[k] = i + 1
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, rj := rank[keys[i]], rank[keys[j]]
		if ri == 0 || rj == 0 || ri == rj {
			if (ri == 0) != (rj == 0) {
				return ri != 0
			}
			return keys[i] < keys[j]
		}
		return ri < rj
	})
	return keys
}

func printPlans(w io.Writer, reports []*run.Report) {
	fmt.Fprintf(w, "%-14s %-20s %-16s %9s %9s %14s %14s\n", "shard", "window", "run id", "segments", "frames", "bytes", "est. points")
	var t run.Plan
	for _, r := range reports {
		p := r.Plan
		if p == nil || r.NoData {
			continue
		}
		fmt.Fprintf(w, "%-14s %-20s %-16s %9d %9d %14d %14d\n", r.Shard, r.Window, r.RunID, p.Segments, p.Frames, p.Bytes, p.EstPoints)
		t.Segments += p.Segments
		t.Frames += p.Frames
		t.Bytes += p.Bytes
		t.EstPoints += p.EstPoints
	}
	fmt.Fprintf(w, "%-14s %-20s %-16s %9d %9d %14d %14d\n", "total", "", "", t.Segments, t.Frames, t.Bytes, t.EstPoints)
	fmt.Fprintln(w, "(segments counted once per run; estimated points are the planned frames' rows, an upper bound)")
}

// progressEvery is how often the progress bar redraws.
var progressEvery = 250 * time.Millisecond

// progressBar redraws one line on a terminal: shard runs done, and what the running ones
// are doing. It draws through the console, which log lines also go through.
type progressBar struct {
	con      *console
	mu       sync.Mutex
	total    int
	n        int
	points   uint64
	running  map[string]string
	start    time.Time
	quit     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

func newProgressBar(con *console) *progressBar {
	b := &progressBar{con: con, running: map[string]string{}, start: time.Now(), quit: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-b.quit:
				return
			case <-t.C:
				b.draw()
			}
		}
	}()
	return b
}

func (b *progressBar) stage(shard, window, stage string) {
	b.mu.Lock()
	b.running[shard+" "+window] = stage
	b.mu.Unlock()
}

func (b *progressBar) done(done, total int, rep *run.Report) {
	b.mu.Lock()
	b.n, b.total = done, total
	b.points += rep.Counts.PointsOut
	delete(b.running, rep.Shard+" "+rep.Window)
	b.mu.Unlock()
}

func (b *progressBar) draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	const width = 24
	fill := 0
	if b.total > 0 {
		fill = width * b.n / b.total
	}
	var cur string
	for k, v := range b.running {
		if cur == "" || k < cur {
			cur = k + ": " + v
		}
	}
	b.con.drawLine(fmt.Sprintf("[%s%s] %d/%d runs, %d points out, %s %s", strings.Repeat("#", fill), strings.Repeat(".", width-fill),
		b.n, b.total, b.points, time.Since(b.start).Round(time.Second), cur))
}

// stop ends the redraws and clears the bar's line: the summary that follows replaces
// it. A nil bar (no terminal) and a second stop do nothing.
func (b *progressBar) stop() {
	if b == nil {
		return
	}
	b.stopOnce.Do(func() {
		close(b.quit)
		b.wg.Wait()
		b.con.clearLine()
	})
}

// sizingLine says how the runs used the machine and, for the counts the defaults chose,
// what from: "sizing: --parallel 2 --readers 1 --threads 1 (chosen: parallel, readers,
// threads; from 2 CPUs (the processors this process may run on) and 23.4 GiB (physical
// RAM in /proc/meminfo))".
func sizingLine(z run.Sizing) string {
	s := fmt.Sprintf("sizing: --parallel %d --readers %d --threads %d", z.Parallel, z.Readers, z.Threads)
	if len(z.Chosen) == 0 {
		return s + " (as given)"
	}
	return s + fmt.Sprintf(" (chosen: %s; from %s and %s)", strings.Join(z.Chosen, ", "), z.CPU, z.Memory)
}
