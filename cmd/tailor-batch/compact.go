package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

func newCompactCmd() *cobra.Command {
	var (
		storeURL, shard, shardMap, levels, tempDir, now string
		jsonOut                                         bool
		rf                                              rollupFlags
		opt                                             run.CompactOptions
	)
	cmd := &cobra.Command{
		Use:   "compact --store URL [--levels 1d,7d] [--shard S] [--dry-run] [--json]",
		Short: "Merge each shard's published windows into larger ones, level by level (docs/lifecycle.md)",
		Long: `Merges a shard's published runs into runs of larger windows, one level after the
other (--levels 1d,7d: 4h windows into days, days into weeks), folding each window's late
output in under the arrival rule, and writes the rollups of the result in the same pass.
Each compacted run is published like a run (parts, then its manifest, which names every
run it supersedes, then _CURRENT); readers read it instead of its sources and get the same
points, bit for bit. A target window is compacted once it ended more than the runs'
lateness plus flush age plus --settle ago. Compacting again does nothing; two compactors
at once write the same bytes under the same keys; a killed compaction is finished by the
next. A shard whose runs overlap, or whose runs cannot be read, fails alone: the others
are compacted, and the command names every failed shard. Tombstones are applied on the
way (docs/lifecycle.md, "Deletes").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var err error
			if opt.Levels, err = parseLevels(levels); err != nil {
				return err
			}
			if opt.Rollups, err = rf.config(); err != nil {
				return err
			}
			if err := checkDivides(opt.Rollups, opt.Levels[0], "the first level"); err != nil {
				return err
			}
			if opt.Now, err = parseNow(now); err != nil {
				return err
			}
			if shard != "" {
				m, err := loadShardMap(shardMap)
				if err != nil {
					return fmt.Errorf("--shard-map: %w", err)
				}
				if opt.Shard, err = checkShard("--shard", shard, m); err != nil {
					return err
				}
			}
			st, err := openStore(ctx, storeURL, "--store", storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			if tempDir == "" {
				tempDir = filepath.Join(os.TempDir(), "tailor-compact")
			}
			opt.Store, opt.TempDir, opt.Logger = st, tempDir, loggerFrom(ctx)
			log := opt.Logger
			opt.Progress = func(shard string, r *run.CompactedRun) {
				log.Info("compacted", "shard", shard, "window", r.Window, "run", r.RunID, "sources", r.Sources, "points", r.Counts.PointsOut, "done_before", r.Done)
			}
			rep, cerr := run.Compact(ctx, opt)
			if rep != nil {
				if jsonOut {
					if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
						return err
					}
				} else {
					printCompact(cmd.OutOrStdout(), st.URL(), rep)
				}
			}
			return cerr
		},
	}
	fl := cmd.Flags()
	storeFlag(cmd, &storeURL, false)
	fl.StringVar(&levels, "levels", "1d,7d", "window sizes to compact into, ascending, each a whole multiple of the one before (and of the runs' window size)")
	fl.StringVar(&shard, "shard", "", "compact only this shard")
	fl.StringVar(&shardMap, "shard-map", "", "shard map YAML the sink used, to check --shard")
	fl.DurationVar(&opt.Settle, "settle", 0, "wait this long past a target window's end plus the runs' lateness and flush age before compacting it")
	fl.IntVar(&opt.Parallel, "parallel", 1, "shards compacted at once")
	fl.Int64Var(&opt.PartBytes, "part-bytes", 256<<20, "start a new series file after this many bytes")
	fl.StringVar(&tempDir, "temp-dir", "", "where compacted parts wait for their upload (default: $TMPDIR/tailor-compact)")
	fl.BoolVar(&opt.DryRun, "dry-run", false, "list the windows that would be compacted and their sources, and write nothing")
	fl.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	rf.add(cmd, "the first level")
	clockFlag(cmd, &now)
	return cmd
}

func printCompact(w io.Writer, url string, rep *run.CompactReport) {
	var runs, sources, failed, waiting int
	var in, out int64
	var points uint64
	for _, s := range rep.Shards {
		runs += len(s.Runs)
		waiting += len(s.Waiting)
		if s.Err != "" {
			failed++
		}
		for _, r := range s.Runs {
			sources += r.Sources
			in += r.BytesIn
			out += r.Counts.BytesOut
			points += r.Counts.PointsOut
		}
	}
	fmt.Fprintf(w, "compact %s: %d shards, %d compacted runs from %d runs, %d points, %s in, %s out; %d windows not due yet\n",
		url, len(rep.Shards), runs, sources, points, humanBytes(in), humanBytes(out), waiting)
	for _, s := range rep.Shards {
		for _, r := range s.Runs {
			note := ""
			switch {
			case r.DryRun:
				note = " (dry run)"
			case r.Done:
				note = " (published already)"
			}
			fmt.Fprintf(w, "  %s %s ← %d runs: run %s, %d points, %d parts%s\n", s.Shard, r.Window, r.Sources, r.RunID, r.Counts.PointsOut, r.Parts, note)
		}
		if s.Err != "" {
			fmt.Fprintf(w, "  %s FAILED: %s\n", s.Shard, s.Err)
		}
	}
	if failed > 0 {
		fmt.Fprintf(w, "FAILED: %d shards (the others are compacted)\n", failed)
	}
}
