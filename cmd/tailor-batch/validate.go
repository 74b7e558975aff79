package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/validate"
)

func newValidateCmd() *cobra.Command {
	var (
		df         diffFlags
		outDir     string
		maxDiffPct float64
		top        int
	)
	cmd := &cobra.Command{
		Use:   "validate --new URL --legacy SRC [--shard S] [--window W] [--max-diff-pct P] [--out-dir DIR]",
		Short: "Migration report per org (JSON, Markdown, HTML); exits non-zero when an org fails",
		Long: `Runs the one-to-one diff of the series files (--new) against the legacy data for a
shard and window, or the whole store, and writes the migration report to --out-dir as
report.json, report.md and report.html (a self-contained page with charts of the
differences over time and the top metrics; it works offline). Per org: points compared,
each kind of difference, the percentage, and pass or fail against --max-diff-pct.
The exit code is 1 when any org fails, for CI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			j, err := df.job()
			if err != nil {
				return err
			}
			res, err := runDiff(cmd.Context(), j, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			rep, err := validate.BuildReport(res.groups, validate.ReportOptions{
				New: df.newURL, Legacy: df.lf.source, Shard: j.scope.Shard, Window: df.sf.windowName(),
				Tolerance: df.tolerance, MaxDiffPct: maxDiffPct, Bucket: df.bucket, TopMetrics: top,
			})
			if err != nil {
				return err
			}
			files, err := writeReport(rep, outDir)
			if err != nil {
				return err
			}
			if err := rep.WriteMarkdown(cmd.OutOrStdout()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nreport: %s\n", files)
			if !rep.Pass {
				return &checkFailed{"validate: an org is above the threshold"}
			}
			return nil
		},
	}
	df.add(cmd)
	cmd.Flags().StringVar(&outDir, "out-dir", "validation-report", "directory for report.json, report.md and report.html")
	cmd.Flags().Float64Var(&maxDiffPct, "max-diff-pct", validate.DefaultMaxDiffPct, "an org fails when more than this percentage of its points differ (0 allows none)")
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
