package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/validate"
)

func newDeleteCmd() *cobra.Command {
	var (
		storeURL, org, metric, from, to, reason, tempDir, now string
		apply, recheck, list, dryRun, jsonOut                 bool
	)
	cmd := &cobra.Command{
		Use:   "delete --store URL --org X [--metric M] [--from T1] [--to T2] [--apply] | --apply | --list",
		Short: "Delete an org's points (or one metric's, in a range): record a tombstone, and apply it",
		Long: `Records a tombstone for the points of --org (of --metric only, when given) with ts in
[--from, --to) (default: from the beginning to now). Readers (cat, the views, diff,
validate, and every run and compaction made from then on) hide those points at once.

--apply rewrites every serving run that holds such points without them (only the files
that hold some are rewritten), and drops the segments that hold them once every window
that reads them is published (recorded for verify, as gc records what it collects).
A tombstone is applied once no serving run and no segment holds a point of it; verify
then checks that this stays so. --apply alone applies every tombstone not applied yet;
--recheck applies the applied ones again, to runs that do not list them (a run that was
running while the delete was applied). The superseded runs go at the next gc after its
grace. --list prints the tombstones. Compaction applies tombstones too (docs/lifecycle.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			clock, err := parseNow(now)
			if err != nil {
				return err
			}
			if org == "" && !apply && !list {
				return usageErrorf("delete: give --org X to record a delete, --apply to apply the recorded ones, or --list")
			}
			if org == "" && (metric != "" || from != "" || to != "") {
				return usageErrorf("delete: --metric, --from and --to need --org")
			}
			st, err := openStore(ctx, storeURL, "--store", storage.SegmentsPrefix, storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			w := cmd.OutOrStdout()
			var recorded *run.Tombstone
			if org != "" {
				t := run.Tombstone{From: math.MinInt64, To: clock.UnixMilli(), Created: clock.UTC(), Reason: reason}
				o, err := strconv.ParseUint(org, 10, 32)
				if err != nil {
					return usageErrorf("--org %q: want an org id (a 32-bit number)", org)
				}
				t.Org = uint32(o)
				if metric != "" {
					m, err := strconv.ParseUint(metric, 10, 64)
					if err != nil {
						return usageErrorf("--metric %q: want a metric id (a 64-bit number)", metric)
					}
					t.Metric = &m
				}
				if from != "" {
					if t.From, err = validate.ParseTimestamp(from); err != nil {
						return usageErrorf("--from: %w", err)
					}
				}
				if to != "" {
					if t.To, err = validate.ParseTimestamp(to); err != nil {
						return usageErrorf("--to: %w", err)
					}
				}
				if t.From >= t.To {
					return usageErrorf("--from %s is not before --to %s", run.FormatTs(t.From), run.FormatTs(t.To))
				}
				if dryRun {
					t.ID = run.TombstoneID(t.Org, t.Metric, t.From, t.To)
					fmt.Fprintf(w, "would record %s\n", t.String())
				} else {
					rec, created, err := run.RecordTombstone(ctx, st, t)
					if err != nil {
						return err
					}
					recorded = rec
					if !jsonOut {
						if created {
							fmt.Fprintf(w, "recorded %s: readers hide its points from now on\n", rec)
						} else {
							fmt.Fprintf(w, "already recorded: %s\n", rec)
						}
					}
				}
			}
			if list {
				ts, err := run.LoadTombstones(ctx, st)
				if err != nil {
					return err
				}
				if jsonOut {
					return writeJSON(w, ts)
				}
				for i := range ts {
					state := "pending"
					if ts[i].Applied != nil {
						state = "applied " + ts[i].Applied.At.Format(time.RFC3339)
					}
					fmt.Fprintf(w, "%s  %s  %s\n", ts[i].String(), state, ts[i].Reason)
				}
				return nil
			}
			if !apply {
				if jsonOut && recorded != nil {
					return writeJSON(w, recorded)
				}
				return nil
			}
			if tempDir == "" {
				tempDir = filepath.Join(os.TempDir(), "tailor-delete")
			}
			rep, aerr := run.ApplyTombstones(ctx, run.ApplyOptions{Store: st, TempDir: tempDir, Now: clock, DryRun: dryRun, Recheck: recheck, Logger: loggerFrom(ctx)})
			if rep != nil {
				if jsonOut {
					if err := writeJSON(w, rep); err != nil {
						return err
					}
				} else {
					printApply(w, rep)
				}
			}
			return aerr
		},
	}
	fl := cmd.Flags()
	storeFlag(cmd, &storeURL, false)
	fl.StringVar(&org, "org", "", "the org whose points to delete")
	fl.StringVar(&metric, "metric", "", "only this metric id's points")
	fl.StringVar(&from, "from", "", "only points with ts at or after this time, RFC 3339 or Unix ms (default: the beginning)")
	fl.StringVar(&to, "to", "", "only points with ts before this time, RFC 3339 or Unix ms (default: now)")
	fl.StringVar(&reason, "reason", "", "why, kept with the tombstone (a ticket, a request)")
	fl.BoolVar(&apply, "apply", false, "rewrite the runs and drop the segments that hold deleted points")
	fl.BoolVar(&recheck, "recheck", false, "with --apply: apply the applied tombstones again too")
	fl.BoolVar(&list, "list", false, "list the tombstones")
	fl.BoolVar(&dryRun, "dry-run", false, "say what would be recorded, rewritten and dropped, and write nothing")
	fl.BoolVar(&jsonOut, "json", false, "print the tombstone or the apply's report as JSON")
	fl.StringVar(&tempDir, "temp-dir", "", "where rewritten parts wait for their upload (default: $TMPDIR/tailor-delete)")
	clockFlag(cmd, &now)
	return cmd
}

func printApply(w io.Writer, rep *run.ApplyReport) {
	verb := "rewrote"
	if rep.DryRun {
		verb = "would rewrite"
	}
	var deleted uint64
	for _, r := range rep.Runs {
		deleted += r.Counts.Deleted
	}
	fmt.Fprintf(w, "delete --apply: %s %d runs (%d points left out), dropped %d segments, %d segments wait for their windows' runs; applied %d tombstones, %d pending\n",
		verb, len(rep.Runs), deleted, len(rep.Segments), len(rep.Waiting), len(rep.Applied), len(rep.Pending))
	for _, r := range rep.Runs {
		fmt.Fprintf(w, "  %s %s: run %s → %s, %d points left out\n", r.Shard, r.Window, r.From, r.RunID, r.Counts.Deleted)
	}
	for _, k := range rep.Waiting {
		fmt.Fprintf(w, "  waiting: %s\n", k)
	}
}
