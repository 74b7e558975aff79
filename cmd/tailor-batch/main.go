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
//	tailor-batch version   the version, commit, Go, DuckDB and format versions
//	tailor-batch ls        what a store holds: segments per partition, runs per shard and window
//	tailor-batch inspect   a segment's header and footer, or a series file's index and blocks
//	tailor-batch gateway   Prometheus remote-write over HTTP → Kafka records for the sink
//	tailor-batch export    series files → Prometheus TSDB blocks for PromQL
//	tailor-batch compact   published windows → larger windows, level by level (docs/lifecycle.md)
//	tailor-batch delete    record a delete (a tombstone) and apply it
//	tailor-batch retain    apply a retention policy per resolution and org
//	tailor-batch gc        remove superseded runs, orphans and segments no run needs
//
// Exit codes (every command, docs/cli.md): 0 success, 1 a check found something, 2 a
// usage or runtime error.
//
// Flags live only here; the packages take option structs.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRoot()
	cmd, err := root.ExecuteContextC(ctx)
	code := exitCode(withFlags(err), os.Stderr)
	if code == exitError {
		usageHint(os.Stderr, cmd, err)
	}
	stop()
	os.Exit(code)
}

func newRoot() *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:   "tailor-batch",
		Short: "Kafka metric points → per-series, time-sorted, compressed files on object storage",
		Long: `Kafka metric points → per-series, time-sorted, compressed files on object storage,
checked one-to-one against a legacy system. Every command takes -v, --log-level and
--log-format; see docs/cli.md.

Exit codes (every command):
  0  success
  1  a check found something (diff, validate, verify, demo, loadtest, gameday)
  2  usage error or runtime error`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showVersion {
				return printVersion(cmd.Context(), cmd.OutOrStdout(), false)
			}
			return cmd.Help()
		},
	}
	root.Flags().BoolVar(&showVersion, "version", false, "print the version, the commit, Go, DuckDB and the format versions (as the version command)")
	var cpuProfile string
	var stopProfile func()
	root.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file (go tool pprof)")
	_ = root.PersistentFlags().MarkHidden("cpuprofile")
	storeOpts := storeOptionFlags(root.PersistentFlags())
	logOpts := addLogFlags(root.PersistentFlags())
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		lvl, format, err := logOpts.handlerOptions()
		if err != nil {
			return err
		}
		if err := checkFlagLimits(cmd); err != nil {
			return err
		}
		con := newConsole(cmd.ErrOrStderr())
		log := newLogger(con, lvl, format)
		o := *storeOpts
		if o.S3.Retry.Unreachable <= 0 {
			return usageErrorf("--store-timeout %s: want a positive duration, e.g. 1m", o.S3.Retry.Unreachable)
		}
		// Store retries and the like show on every command, at the user's level.
		o.S3.Logger = log
		cmd.SetContext(withStoreOptions(withLogging(cmd.Context(), log, con), o))
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
	// A flag that does not parse is a usage error (exit 2, with a pointer to --help).
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(newSinkCmd(), newImportCmd(), newRunCmd(), newCatCmd(), newDemoCmd(), newGamedayCmd(), newLoadtestCmd(),
		newSQLCmd(), newDiffCmd(), newValidateCmd(), newResolveCmd(), newVerifyCmd(), newVersionCmd(), newLsCmd(), newInspectCmd(), newGatewayCmd(), newExportCmd(),
		newCompactCmd(), newDeleteCmd(), newRetainCmd(), newGCCmd())
	finishCommands(root)
	return root
}

// finishCommands gives every command what all commands share: the exit codes in its
// --help, and argument errors typed as usage errors.
func finishCommands(root *cobra.Command) {
	addExitCodeHelp(root)
	for _, c := range root.Commands() {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return &usageError{err}
				}
				return nil
			}
		}
	}
}
