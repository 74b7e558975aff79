package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

func newRetainCmd() *cobra.Command {
	var (
		storeURL, policy, tempDir, now, shard string
		grace                                 time.Duration
		dryRun, jsonOut                       bool
	)
	cmd := &cobra.Command{
		Use:   "retain --store URL --policy FILE [--grace D] [--dry-run] [--json]",
		Short: "Delete what the retention policy says has expired, a run at a time, manifest first",
		Long: `Applies a retention policy (YAML, docs/lifecycle.md): per resolution (raw, and each
rollup's, such as 5m or 1h) how long data is kept, by default and per org. A run's data
at a resolution expires once the run's window ended longer ago than that retention plus
the grace period (the policy's grace:, or --grace). Each run that holds expired data is
published again without it (the rollups outlive the raw points they were made from); a
run whose every resolution expired is retired: it serves nothing, and no later run of
its window brings the data back. The new manifest is published before anything goes,
so a reader never sees a half-deleted run; gc deletes the old files after its own grace.
--dry-run lists what would go, with bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			clock, err := parseNow(now)
			if err != nil {
				return err
			}
			pol, err := run.LoadRetentionPolicy(policy)
			if err != nil {
				return usageErrorf("--policy: %w", err)
			}
			if cmd.Flags().Changed("grace") {
				pol.Grace = run.Duration(grace)
			}
			st, err := openStore(ctx, storeURL, "--store", storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			if tempDir == "" {
				tempDir = filepath.Join(os.TempDir(), "tailor-retain")
			}
			rep, rerr := run.Retain(ctx, run.RetainOptions{Store: st, Policy: pol, Now: clock, Shard: shard, TempDir: tempDir, DryRun: dryRun, Logger: loggerFrom(ctx)})
			if rep != nil {
				if jsonOut {
					if err := writeJSON(cmd.OutOrStdout(), rep); err != nil {
						return err
					}
				} else {
					printRetain(cmd.OutOrStdout(), rep)
				}
			}
			return rerr
		},
	}
	fl := cmd.Flags()
	storeFlag(cmd, &storeURL, false)
	fl.StringVar(&policy, "policy", "", "the retention policy YAML (required)")
	_ = cmd.MarkFlagRequired("policy")
	fl.DurationVar(&grace, "grace", run.DefaultGrace, "keep data this long past its retention (overrides the policy's grace)")
	fl.StringVar(&shard, "shard", "", "retain only this shard's runs")
	fl.BoolVar(&dryRun, "dry-run", false, "list what would go, with bytes, and write nothing")
	fl.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	fl.StringVar(&tempDir, "temp-dir", "", "where rewritten parts wait for their upload (default: $TMPDIR/tailor-retain)")
	clockFlag(cmd, &now)
	return cmd
}

func printRetain(w io.Writer, rep *run.RetainReport) {
	verb := "rewrote"
	if rep.DryRun {
		verb = "would rewrite"
	}
	fmt.Fprintf(w, "retain: %s %d runs (%d retired), %d points, %s no longer served\n", verb, rep.Totals.Runs, rep.Totals.Retired, rep.Totals.Points, humanBytes(rep.Totals.Bytes))
	for _, r := range rep.Runs {
		what := ""
		for _, e := range r.Expired {
			if e.All {
				what += " " + e.Resolution + " (all orgs)"
			} else {
				what += fmt.Sprintf(" %s (orgs %v)", e.Resolution, e.Orgs)
			}
		}
		note := ""
		if r.Retired {
			note = ", retired"
		}
		fmt.Fprintf(w, "  %s %s run %s:%s%s, %s\n", r.Shard, r.Window, r.From, what, note, humanBytes(r.Bytes))
	}
	for _, f := range rep.Failed {
		fmt.Fprintf(w, "  FAILED: %s\n", f)
	}
}
