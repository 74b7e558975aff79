package main

import (
	"bufio"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/pipeline"
	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/storage"
)

func newCatCmd() *cobra.Command {
	var storeURL, shard, shardMap, format string
	cmd := &cobra.Command{
		Use:   "cat --store URL [--shard S] [--format csv]",
		Short: "Print the points of the published series files as CSV",
		Long: `Decodes the series files of every published run (or one shard's), the windows' own
parts and their late outputs, and prints each point once (a later arrival replaces an
earlier one) with the header org_id,metric_id,context_key,ts,value, sorted by series
and ts.
Values parse back to the same float64 bits: shortest round-trip form, NaN, +Inf, -Inf,
and -0 for negative zero.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if format != "csv" {
				return usageErrorf("--format %q: only csv is supported", format)
			}
			if shard != "" {
				m, err := loadShardMap(shardMap)
				if err != nil {
					return fmt.Errorf("--shard-map: %w", err)
				}
				if shard, err = checkShard("--shard", shard, m); err != nil {
					return err
				}
			}
			st, err := openStore(ctx, storeURL, "--store", storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			out := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<20)
			if _, err := fmt.Fprintln(out, columnar.CSVHeader); err != nil {
				return err
			}
			err = pipeline.CatPoints(ctx, st, shard, func(s *encoder.Series) error {
				var line []byte
				for i, ts := range s.Ts {
					line = columnar.AppendCSVPoint(line[:0], s.Key, ts, s.Values[i])
					if _, err := out.Write(line); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			return out.Flush()
		},
	}
	storeFlag(cmd, &storeURL, false)
	cmd.Flags().StringVar(&shard, "shard", "", "only this shard: a number, org-mod-N, org-X or org-X-pK (default: all)")
	cmd.Flags().StringVar(&shardMap, "shard-map", "", "shard map YAML the sink used, to check --shard (default: 64 shared shards)")
	cmd.Flags().StringVar(&format, "format", "csv", "output format: csv")
	return cmd
}
