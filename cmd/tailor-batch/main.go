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
//	tailor-batch verify    proof from the store's own files that every stored point is served
//
// Flags live only here; the packages take option structs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	os.Exit(exitCode(root.ExecuteContext(ctx), os.Stderr))
}

// Exit codes, the same for every command (docs/cli.md):
//
//	0  the command did what was asked (and a check found nothing)
//	1  a check found something: differences (diff), a failing org (validate), damage
//	   (verify), a failed demo, game day or load-test check; the summary says what
//	2  the command could not do what was asked: a bad flag, a missing store, an
//	   unreachable service, a failed run
const (
	exitOK    = 0
	exitCheck = 1
	exitError = 2
)

// exitCode prints err (unless a check's summary already said it) and returns the
// process's exit code for it.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ce *checkFailed
	if errors.As(err, &ce) {
		return exitCheck
	}
	fmt.Fprintln(stderr, "tailor-batch:", err)
	return exitError
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
		newSQLCmd(), newDiffCmd(), newValidateCmd(), newResolveCmd(), newVerifyCmd())
	return root
}

// checkFailed is an error whose message was already printed (a failed check's summary).
type checkFailed struct{ msg string }

func (e *checkFailed) Error() string { return e.msg }
