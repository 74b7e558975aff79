package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/pointdiff"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/validate"
)

// thresholdFlags are validate's pass thresholds, one per kind of difference, and
// --max-diff-pct, which sets every one not given on its own.
type thresholdFlags struct {
	all    float64
	byKind validate.KindPcts
}

// thresholdFlagNames names the flag of each kind of difference.
var thresholdFlagNames = map[pointdiff.Kind]string{
	pointdiff.MissingInNew:      "max-missing-in-new",
	pointdiff.MissingInLegacy:   "max-missing-in-legacy",
	pointdiff.ValueDiffers:      "max-value-differs",
	pointdiff.DuplicateInLegacy: "max-duplicate-in-legacy",
}

func (f *thresholdFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.Float64Var(&f.all, "max-diff-pct", validate.DefaultMaxDiffPct, "the threshold of every kind of difference not given by its own flag, in percent")
	fl.Float64Var(&f.byKind.MissingInNew, thresholdFlagNames[pointdiff.MissingInNew], validate.DefaultMaxDiffPct,
		"an org fails when more than this percentage of its points compared are missing in new (lost by Tailor)")
	fl.Float64Var(&f.byKind.MissingInLegacy, thresholdFlagNames[pointdiff.MissingInLegacy], validate.DefaultMaxDiffPct,
		"an org fails when more than this percentage of its points compared are missing in legacy (only in Tailor's output)")
	fl.Float64Var(&f.byKind.ValueDiffers, thresholdFlagNames[pointdiff.ValueDiffers], validate.DefaultMaxDiffPct,
		"an org fails when more than this percentage of its points compared have another value")
	fl.Float64Var(&f.byKind.DuplicateInLegacy, thresholdFlagNames[pointdiff.DuplicateInLegacy], validate.DefaultMaxDiffPct,
		"an org fails when more than this percentage of its points compared are held more than once by the legacy data")
}

// thresholds resolves the flags: a per-kind flag wins, then --max-diff-pct.
func (f *thresholdFlags) thresholds(cmd *cobra.Command) (validate.KindPcts, error) {
	t := f.byKind
	for _, k := range pointdiff.Differences {
		name := thresholdFlagNames[k]
		if !cmd.Flags().Changed(name) && cmd.Flags().Changed("max-diff-pct") {
			t.Set(k, f.all)
			name = "max-diff-pct"
		}
		if v := t.Of(k); v < 0 || v > 100 || v != v {
			return t, fmt.Errorf("--%s %v: want a percentage in [0, 100]", name, v)
		}
	}
	return t, nil
}

func newValidateCmd() *cobra.Command {
	var (
		df     diffFlags
		tf     thresholdFlags
		outDir string
		top    int
	)
	cmd := &cobra.Command{
		Use:   "validate --new URL --legacy SRC [--shard S] [--window W] [--max-missing-in-new P ...] [--out-dir DIR]",
		Short: "Migration report per org (JSON, Markdown, HTML); exits 1 when an org fails",
		Long: `Runs the one-to-one diff of the series files (--new) against the legacy data for a
shard and window, or the whole store, and writes the migration report to --out-dir as
report.json, report.md and report.html (a self-contained page with charts of the
differences over time and the top metrics; it works offline). Per org: points compared,
each kind of difference, the percentages, and pass or fail.

Each kind of difference has its own threshold, a percentage of the org's points
compared: --max-missing-in-new (points Tailor lost), --max-missing-in-legacy (points
only Tailor has), --max-value-differs, and --max-duplicate-in-legacy (a (series, ts)
the legacy data holds more than once, which cannot be compared). Each defaults to
0.0001% (one point in a million); 0 allows none. --max-diff-pct sets every threshold
not given on its own. An org fails when any kind is above its threshold, and the
report names the kinds that failed it.

A legacy path is read literally; glob:PATTERN reads every Parquet file it matches.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			th, err := tf.thresholds(cmd)
			if err != nil {
				return err
			}
			j, err := df.job()
			if err != nil {
				return err
			}
			res, err := runDiff(cmd.Context(), j, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			rep, err := validate.BuildReport(res.groups, validate.ReportOptions{
				New: storage.Redact(df.newURL), Legacy: storage.Redact(df.lf.source), Shard: j.scope.Shard, Window: df.sf.windowName(), WindowRange: j.scope.Window,
				Tolerance: df.tolerance, Thresholds: th, Bucket: df.bucket, TopMetrics: top, Version: tailorVersion(),
			})
			if err != nil {
				return err
			}
			rep.Reads = res.reads
			files, err := writeReport(rep, outDir)
			if err != nil {
				return err
			}
			if err := rep.WriteMarkdown(cmd.OutOrStdout()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nreport: %s\n", files)
			if !rep.Pass {
				return &checkFailed{"validate: an org is above a threshold"}
			}
			return nil
		},
	}
	df.add(cmd)
	tf.add(cmd)
	cmd.Flags().StringVar(&outDir, "out-dir", "validation-report", "directory for report.json, report.md and report.html")
	cmd.Flags().IntVar(&top, "top", 10, "metrics per org in the report, most differences first")
	return cmd
}

// writeReport writes the three forms of the report and returns their common path.
func writeReport(rep *validate.Report, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("--out-dir: %w", err)
	}
	for name, write := range map[string]func(*bytes.Buffer) error{
		"report.json": func(b *bytes.Buffer) error { return rep.WriteJSON(b) },
		"report.md":   func(b *bytes.Buffer) error { return rep.WriteMarkdown(b) },
		"report.html": func(b *bytes.Buffer) error { return rep.WriteHTML(b) },
	} {
		var b bytes.Buffer
		if err := write(&b); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return "", fmt.Errorf("write report: %w", err)
		}
	}
	return filepath.Join(dir, "report.{json,md,html}"), nil
}
