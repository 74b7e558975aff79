package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

func newRunCmd() *cobra.Command {
	var (
		storeURL, shard, window, tempDir string
		all, jsonOut, verbose            bool
		windowSize                       time.Duration
		opt                              query.AllOptions
	)
	cmd := &cobra.Command{
		Use:   "run --store URL (--shard S | --all) [--window FROM/DURATION]",
		Short: "Group-sort one shard's segments of a window into series files (the compute side)",
		Long: `Reads the segments' frames of one shard (or every shard with --all) and window, has
DuckDB de-duplicate (latest arrival wins) and sort them by series and time, and writes the
series files under series/<shard>/<window>/<run-id>/ with a manifest written last. Windows
are aligned to the Unix epoch. Without --window, every window that has data is run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if all == (shard != "") {
				return fmt.Errorf("run: pass exactly one of --shard S or --all")
			}
			if shard != "" {
				s, err := columnar.NormalizeShard(shard)
				if err != nil {
					return fmt.Errorf("--shard: %w", err)
				}
				opt.Shard = s
			}
			opt.WindowSize = windowSize
			if window != "" {
				w, err := query.ParseWindow(window, windowSize)
				if err != nil {
					return fmt.Errorf("--window: %w", err)
				}
				opt.Windows, opt.WindowSize = []query.Window{w}, w.Size
			}
			st, err := openStore(ctx, storeURL)
			if err != nil {
				return err
			}
			defer st.Close()
			if tempDir == "" {
				tempDir = filepath.Join(os.TempDir(), "tailor-duckdb")
			}
			opt.Store = st
			opt.Engine.TempDir = tempDir
			opt.Logger = newLogger(os.Stderr, verbose)
			if isTerminal(os.Stderr) {
				opt.Progress = func(done, total int, rep *query.Report) {
					fmt.Fprintf(os.Stderr, "\r[%d/%d] %s %s: %d points", done, total, rep.Shard, rep.Window, rep.Counts.PointsOut)
					if done == total {
						fmt.Fprintln(os.Stderr)
					}
				}
			}
			start := time.Now()
			reports, runErr := query.RunAll(ctx, opt)
			sum := summarize(reports, time.Since(start))
			sum.Retries = storeRetries(st)
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					Summary runSummary      `json:"summary"`
					Runs    []*query.Report `json:"runs"`
				}{sum, reports}); err != nil {
					return err
				}
			} else {
				sum.print(cmd.OutOrStdout())
			}
			return runErr
		},
	}
	fl := cmd.Flags()
	storeFlag(cmd, &storeURL)
	fl.StringVar(&shard, "shard", "", "shard to run: a number N (org-mod-N), org-mod-N, org-X or org-X-pK")
	fl.BoolVar(&all, "all", false, "run every shard that has data")
	fl.StringVar(&window, "window", "", "window FROM/DURATION, e.g. 2025-11-24T04:00:00Z/4h (default: every window with data)")
	fl.DurationVar(&windowSize, "window-size", query.DefaultWindowSize, "window size when --window gives none")
	fl.IntVar(&opt.Parallel, "parallel", 1, "shard runs at once with --all")
	fl.IntVar(&opt.Readers, "readers", runtime.NumCPU(), "segment byte ranges decoded in parallel per run")
	fl.Int64Var(&opt.SplitBytes, "split-bytes", 1<<30, "largest byte range one reader takes")
	fl.BoolVar(&opt.SkipCorrupt, "skip-corrupt", false, "skip corrupt segment frames (counted and reported) instead of failing")
	fl.StringVar(&opt.Engine.MemoryLimit, "memory-limit", "", "DuckDB memory limit, e.g. 4GB (default: DuckDB's, 80% of RAM)")
	fl.IntVar(&opt.Engine.Threads, "threads", runtime.NumCPU(), "DuckDB threads")
	fl.StringVar(&tempDir, "temp-dir", "", "where DuckDB spills (default: $TMPDIR/tailor-duckdb)")
	fl.Int64Var(&opt.PartBytes, "part-bytes", 256<<20, "start a new series file after this many bytes")
	fl.BoolVar(&opt.Force, "force", false, "re-run windows that already have a complete run for the same inputs")
	fl.BoolVar(&jsonOut, "json", false, "print the run report as JSON")
	fl.BoolVarP(&verbose, "verbose", "v", false, "log more")
	return cmd
}

// runSummary totals the shard runs of one invocation.
type runSummary struct {
	Runs          int `json:"runs"`
	Skipped       int `json:"skipped"`
	Failed        int `json:"failed"`
	query.Counts  `json:"counts"`
	BytesPerPoint float64            `json:"bytes_per_point"`
	Seconds       float64            `json:"seconds"`
	StageSeconds  map[string]float64 `json:"stage_seconds"`
	// Retries are the store's request retries by reason (S3 only; nil for stores that
	// never retry).
	Retries *storage.RetryStats `json:"store_retries,omitempty"`
}

func summarize(reports []*query.Report, elapsed time.Duration) runSummary {
	s := runSummary{StageSeconds: map[string]float64{}, Seconds: elapsed.Seconds()}
	for _, r := range reports {
		s.Runs++
		switch {
		case r.Err != "":
			s.Failed++
		case r.Skipped:
			s.Skipped++
		}
		s.Counts.Add(r.Counts)
		for k, v := range r.Seconds {
			s.StageSeconds[k] += v
		}
	}
	if s.PointsOut > 0 {
		s.BytesPerPoint = float64(s.BytesOut) / float64(s.PointsOut)
	}
	return s
}

func (s runSummary) print(w io.Writer) {
	fmt.Fprintf(w, "runs: %d (%d already complete, %d failed) in %.1fs\n", s.Runs, s.Skipped, s.Failed, s.Seconds)
	fmt.Fprintf(w, "points: %d in, %d duplicates removed, %d outside the window → %d out in %d series\n", s.PointsIn, s.Duplicates, s.OutOfWindow, s.PointsOut, s.Series)
	fmt.Fprintf(w, "bytes out: %d (%.2f bytes/point)", s.BytesOut, s.BytesPerPoint)
	if s.CorruptFrames > 0 {
		fmt.Fprintf(w, ", %d corrupt frames skipped", s.CorruptFrames)
	}
	fmt.Fprintln(w)
	stages := make([]string, 0, len(s.StageSeconds))
	for k := range s.StageSeconds {
		stages = append(stages, k)
	}
	sort.Strings(stages)
	fmt.Fprint(w, "stage seconds (summed over runs):")
	for _, k := range stages {
		fmt.Fprintf(w, " %s=%.2f", k, s.StageSeconds[k])
	}
	fmt.Fprintln(w)
	if s.Retries != nil {
		printRetries(w, *s.Retries)
	}
}
