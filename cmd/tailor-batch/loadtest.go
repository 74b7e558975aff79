package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/loadtest"
)

func newLoadtestCmd() *cobra.Command {
	var (
		o          loadtest.Options
		pricesPath string
		jsonOut    bool
	)
	cmd := &cobra.Command{
		Use:   "loadtest --scale K",
		Short: "Run the pipeline at scale 1 and K: growth per stage, slowest shards, cost forecast",
		Long: `Generates a reproducible workload (a seed; a mix of series kinds, resolutions and org
sizes with three very large orgs), and runs produce → sink → run → check on an embedded
broker and a local store at scale 1 and at scale K. Prints how each stage's wall time,
CPU time, peak memory and output bytes grew, points/s per core, flags stages that grew
more than linearly, names the slowest and most skewed shards, and forecasts the cost per
billion points and per month at --ingest-rate from the prices in --prices (default:
public list prices, see docs/loadtest.md). Exits non-zero if a check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Prices = loadtest.DefaultPrices()
			if pricesPath != "" {
				p, err := loadtest.LoadPrices(pricesPath)
				if err != nil {
					return fmt.Errorf("%w (check --prices)", err)
				}
				o.Prices = p
			}
			o.Say = func(format string, a ...any) { fmt.Fprintf(os.Stderr, "loadtest: "+format+"\n", a...) }
			rep, err := loadtest.Run(cmd.Context(), o)
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				rep.Print(cmd.OutOrStdout())
			}
			if rep.Base.Check != "passed" || rep.K.Check != "passed" {
				return &checkFailed{"loadtest: check failed"}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Scale, "scale", 10, "K: the second run has K times the points of the first")
	fl.IntVar(&o.BaseSeries, "base-series", 2000, "series at scale 1, 500 points each (2,000 = 1M points)")
	fl.Uint64Var(&o.Seed, "seed", 42, "workload seed")
	fl.IntVar(&o.Parallel, "parallel", 1, "shard runs at once (1 times each shard on its own)")
	fl.StringVar(&o.Dir, "dir", "", "where the stores go (default: a temporary directory, removed)")
	fl.StringVar(&pricesPath, "prices", "", "prices YAML (fields of docs/loadtest.md; missing ones keep the defaults)")
	fl.Float64Var(&o.IngestRate, "ingest-rate", 1e6, "points per second for the monthly forecast")
	fl.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	return cmd
}
