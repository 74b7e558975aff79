package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/blocks"
	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/validate"
)

func newExportCmd() *cobra.Command {
	var (
		storeURL, outURL, format string
		from, to, tempDir        string
		orgs                     []uint
		opt                      blocks.ExportOptions
	)
	cmd := &cobra.Command{
		Use:   "export --format prometheus --store URL --out DIR|URL [--org N] [--from T1 --to T2]",
		Short: "Write the series files as Prometheus TSDB blocks, for PromQL (Thanos Store, Mimir, Prometheus)",
		Long: `Reads the published series files of --store (each point once, as cat prints them)
and writes standard, compacted Prometheus TSDB blocks to --out in Mimir's bucket layout:
<org>/<block ULID>/{chunks/, index, tombstones, meta.json}, one --block-duration range
per block. Point Mimir's store-gateway at --out (tenants are org ids), or Thanos Store or
a Prometheus at --out/<org>. Labels come from the series' tags (name:value) and the
metric name (the __name__ tag; tailor_metric_<id> without one). Exporting the same data
again writes nothing new. See docs/prometheus.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if format != "prometheus" {
				return fmt.Errorf("--format %q: only prometheus is supported", format)
			}
			var win columnar.TimeRange
			if from != "" || to != "" {
				win = columnar.AllTime
				if from != "" {
					ms, err := validate.ParseTimestamp(from)
					if err != nil {
						return fmt.Errorf("--from: %w", err)
					}
					win.From = ms
				}
				if to != "" {
					ms, err := validate.ParseTimestamp(to)
					if err != nil {
						return fmt.Errorf("--to: %w", err)
					}
					win.To = ms
				}
				if win.To <= win.From {
					return fmt.Errorf("--from %s is not before --to %s", from, to)
				}
			}
			opt.Window = win
			if len(orgs) > 0 {
				opt.Orgs = map[uint32]bool{}
				for _, o := range orgs {
					if o > 1<<32-1 {
						return fmt.Errorf("--org %d is larger than max allowed %d", o, uint64(1<<32-1))
					}
					opt.Orgs[uint32(o)] = true
				}
			}
			opt.TempDir = tempDir
			opt.Logger = loggerFrom(ctx)
			st, err := openStore(ctx, storeURL, "--store", storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			out, err := createStore(ctx, outURL, "--out")
			if err != nil {
				return err
			}
			defer out.Close()
			if runs, err := run.Published(ctx, st); err != nil {
				return err
			} else if len(runs) == 0 {
				return fmt.Errorf("export: %s has no published series files (run tailor-batch run first, or check --store)", st.URL())
			}
			src, err := run.OpenSeries(ctx, st, query.Scope{Window: win})
			if err != nil {
				return err
			}
			defer src.Close()
			start := time.Now()
			stats, err := blocks.Export(ctx, src, out, opt)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "export: %d orgs → %d blocks (%d already present), %d series, %d chunks, %d samples, %d bytes to %s in %s\n",
				stats.Orgs, stats.Blocks, stats.BlocksExisting, stats.Series, stats.Chunks, stats.Samples, stats.Bytes, out.URL(), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	fl := cmd.Flags()
	storeFlag(cmd, &storeURL, false)
	fl.StringVar(&format, "format", "", "output format: prometheus (required)")
	fl.StringVar(&outURL, "out", "", "where the blocks go: a directory, file:///dir or s3://bucket/prefix (required)")
	fl.UintSliceVar(&orgs, "org", nil, "export only these orgs (repeatable; default all)")
	fl.StringVar(&from, "from", "", "first timestamp to export, inclusive (RFC 3339 or Unix ms)")
	fl.StringVar(&to, "to", "", "end of the range, exclusive (RFC 3339 or Unix ms)")
	fl.DurationVar(&opt.BlockDuration, "block-duration", blocks.DefaultBlockDuration, "range of each block: whole hours dividing 24h, or whole days")
	fl.StringVar(&tempDir, "temp-dir", os.TempDir(), "directory for blocks being written and the chunk spool")
	_ = cmd.MarkFlagRequired("format")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
