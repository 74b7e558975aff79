// Command tailor-batch turns a stream of metric points in Kafka into per-series,
// time-sorted, compressed series files on object storage, and checks them against a
// legacy system.
//
//	tailor-batch sink    Kafka → segments (the state side)
//	tailor-batch import  CSV → segments, exactly as the sink would write them
//	tailor-batch run     segments → DuckDB group-sort → series files, per shard and window
//	tailor-batch cat     series files → CSV
//	tailor-batch sql     ad-hoc DuckDB SQL over segments, series files and legacy data
//	tailor-batch diff    one-to-one diff of the series files against legacy data
//	tailor-batch validate  migration report per org (JSON, Markdown, HTML), exit 1 on a fail
//	tailor-batch resolve which files, legacy or Tailor's, serve an org's range under a plan
//	tailor-batch demo    the whole pipeline on an embedded broker, with an end-to-end check
//	tailor-batch loadtest  the pipeline at scale 1 and K: growth per stage and a cost forecast
//	tailor-batch gameday   fault-injection scenarios: expected vs actual, nothing lost
//
// Flags live only here; the packages take option structs.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	if err := root.ExecuteContext(ctx); err != nil {
		var ce *checkFailed
		if !errors.As(err, &ce) {
			fmt.Fprintln(os.Stderr, "tailor-batch:", err)
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "tailor-batch",
		Short:         "Kafka metric points → per-series, time-sorted, compressed files on object storage",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var cpuProfile string
	var stopProfile func()
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file (go tool pprof)")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	storeOpts := storeOptionFlags(root.PersistentFlags())
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		cmd.SetContext(withStoreOptions(cmd.Context(), *storeOpts))
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
		return nil
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if stopProfile != nil {
			stopProfile()
		}
	}
	root.AddCommand(newSinkCmd(), newImportCmd(), newRunCmd(), newCatCmd(), newDemoCmd(), newGamedayCmd(), newLoadtestCmd(),
		newSQLCmd(), newDiffCmd(), newValidateCmd(), newResolveCmd())
	return root
}

// checkFailed is an error whose message was already printed (a failed check's summary).
type checkFailed struct{ msg string }

func (e *checkFailed) Error() string { return e.msg }
