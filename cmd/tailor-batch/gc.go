package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

func newGCCmd() *cobra.Command {
	var (
		storeURL, now   string
		dryRun, jsonOut bool
		opt             run.GCOptions
	)
	cmd := &cobra.Command{
		Use:   "gc --store URL [--grace 24h] [--replay-retention 72h] [--dry-run] [--json]",
		Short: "Remove superseded runs, orphaned files and segments no run needs (docs/lifecycle.md)",
		Long: `Removes what nothing needs any more:

  runs      the files of runs nothing serves (superseded by compaction, a delete or
            retention, or replaced as their window's current run), --grace after gc
            first saw them unneeded, the manifest first
  orphans   files no manifest names (a run or compaction killed before its manifest),
            after the same grace
  segments  segments whose every frame is read by the run that serves its window, once
            they started more than --replay-retention ago; each recorded under gc/ before
            it goes, so that verify tells a collected segment from a lost one

It never removes a file a serving manifest names, a _CURRENT that names a serving run, or
a tombstone. The store keeps no modification times, so the grace counts from the first
pass that saw a file unneeded (a mark, _GC.json, in its directory): run gc regularly
(deploy/gc-cronjob.yaml). --dry-run lists what would go, with bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			clock, err := parseNow(now)
			if err != nil {
				return err
			}
			st, err := openStore(ctx, storeURL, "--store", storage.SegmentsPrefix, storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			opt.Store, opt.Now, opt.DryRun, opt.Logger = st, clock, dryRun, loggerFrom(ctx)
			rep, gerr := run.GC(ctx, opt)
			if rep != nil {
				if jsonOut {
					if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
						return err
					}
				} else {
					printGC(cmd.OutOrStdout(), st.URL(), rep)
				}
			}
			return gerr
		},
	}
	fl := cmd.Flags()
	storeFlag(cmd, &storeURL, false)
	fl.DurationVar(&opt.Grace, "grace", run.DefaultGrace, "keep unneeded files this long after gc first saw them (longer than any run, compaction or read)")
	fl.DurationVar(&opt.ReplayRetention, "replay-retention", run.DefaultReplayRetention, "keep covered segments until they started this long ago, so that windows can be made again from them")
	fl.BoolVar(&dryRun, "dry-run", false, "list what would go, with bytes, and write nothing")
	fl.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	clockFlag(cmd, &now)
	return cmd
}

func printGC(w io.Writer, url string, r *run.GCReport) {
	verb := "removed"
	if r.DryRun {
		verb = "would remove"
	}
	fmt.Fprintf(w, "gc %s: %s %d runs, %d files (%s) and %d segments (%s); %d files (%s) wait for the grace; %d covered segments kept for replay\n",
		url, verb, len(r.Runs), r.Files, humanBytes(r.Bytes), len(r.Segments), humanBytes(r.SegmentBytes), r.Waiting, humanBytes(r.WaitingBytes), r.SegmentsKept)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}
