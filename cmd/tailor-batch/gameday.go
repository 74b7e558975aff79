package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/gameday"
)

func newGamedayCmd() *cobra.Command {
	var cfg gameday.Config
	cmd := &cobra.Command{
		Use:   "gameday SCENARIO|all [--short]",
		Short: "Inject a fault on purpose and check that no point is lost or duplicated",
		Long: `Runs a game day on loopback: an embedded Kafka broker, in-process sink workers, a
local store (or a local S3 server, versitygw, for the throttling storm) and the shard runs.
Each scenario injects one fault, prints what it expected next to what happened, and ends
with produced=N stored=N lost=N duplicated=N. The last line sums all scenarios run.
Exits non-zero on any loss, duplicate or failed expectation. See docs/gameday.md.

Scenarios: ` + strings.Join(gameday.Names(), ", ") + `, or all.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scs, err := gameday.Find(args[0])
			if err != nil {
				return err
			}
			cfg.Say = func(format string, a ...any) { fmt.Fprintf(os.Stderr, "gameday: "+format+"\n", a...) }
			results := gameday.Run(cmd.Context(), cfg, scs)
			gameday.Print(cmd.OutOrStdout(), results)
			for _, r := range results {
				if !r.Passed() {
					return &checkFailed{"gameday: " + r.Name + " failed"}
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&cfg.Short, "short", false, "the short versions: a small workload and few fault events (what make test runs)")
	fl.StringVar(&cfg.Dir, "dir", "", "work directory for stores and DuckDB temp files (default: a temporary directory, removed)")
	fl.Uint64Var(&cfg.Seed, "seed", 42, "workload seed")
	return cmd
}
