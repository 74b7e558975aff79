package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// storeFlag adds the --store flag every data command takes; create says whether the
// command creates a store that does not exist (the writers) or needs one (the readers).
func storeFlag(cmd *cobra.Command, dst *string, create bool) {
	what := "it must exist and hold Tailor data"
	if create {
		what = "a local directory is created if missing"
	}
	cmd.Flags().StringVar(dst, "store", "", "object store: file:///dir (or a plain path) or s3://bucket/prefix (required; "+what+"; see docs/storage.md)")
	_ = cmd.MarkFlagRequired("store")
}

type storeOptionsKey struct{}

// storeOptionFlags adds the object-store flags that every command shares to fl, and
// returns the options they fill. The root's PersistentPreRunE hands them to the command
// through its context (withStoreOptions), so openStore needs no extra argument.
func storeOptionFlags(fl *pflag.FlagSet) *storage.Options {
	o := &storage.Options{}
	fl.IntVar(&o.S3.PartSize, "part-size", storage.MinPartSize,
		"S3 multipart part size in bytes, and the largest object sent in one PUT (at least 5 MiB)")
	fl.IntVar(&o.S3.Concurrency, "upload-concurrency", 8, "S3 parts of one upload in flight at once")
	fl.DurationVar(&o.S3.Retry.Unreachable, "store-timeout", storage.DefaultRetryPolicy().Unreachable,
		"give up on an S3 store that does not answer (connection refused, reset or timing out) for this long; "+
			"each retry is logged while it waits (throttling answers are retried for up to 5m)")
	return o
}

func withStoreOptions(ctx context.Context, o storage.Options) context.Context {
	return context.WithValue(ctx, storeOptionsKey{}, o)
}

// withStoreObservers returns ctx with reg and log added to its store options, for the
// long-running commands (sink) whose /metrics and logs should show the store's retries
// and multipart uploads.
func withStoreObservers(ctx context.Context, reg prometheus.Registerer, log *slog.Logger) context.Context {
	o, _ := ctx.Value(storeOptionsKey{}).(storage.Options)
	o.S3.Registerer, o.S3.Logger = reg, log
	return withStoreOptions(ctx, o)
}

// openStore opens url for reading, with the store options of ctx (the defaults when it
// has none): it never creates a store, and it fails, naming the store and flag, when
// the store holds no key under any of need (storage.SegmentsPrefix, SeriesPrefix), so
// that a mistyped store or prefix is an error rather than an empty result. flag names
// the flag url came from, for the hint. Every command that reads a store opens it here
// (cat, run, sql, diff, validate, verify).
func openStore(ctx context.Context, url, flag string, need ...string) (storage.Store, error) {
	st, err := openStoreWith(ctx, url, false)
	if err != nil {
		return nil, storeHint(err, flag)
	}
	if len(need) > 0 {
		if err := storage.CheckData(ctx, st, need...); err != nil {
			st.Close()
			return nil, storeHint(err, flag)
		}
	}
	return st, nil
}

// createStore opens url for writing, creating a local directory that does not exist:
// for the writers only (sink, import, the demo's store).
func createStore(ctx context.Context, url, flag string) (storage.Store, error) {
	st, err := openStoreWith(ctx, url, true)
	if err != nil {
		return nil, storeHint(err, flag)
	}
	return st, nil
}

func openStoreWith(ctx context.Context, url string, create bool) (storage.Store, error) {
	o, _ := ctx.Value(storeOptionsKey{}).(storage.Options)
	o.Create = create
	return storage.OpenWith(ctx, url, o)
}

// storeHint adds what the user can do about a store error.
func storeHint(err error, flag string) error {
	var nse *storage.NoStoreError
	var te *storage.TransientError
	switch {
	case errors.As(err, &nse) && nse.Dir != "":
		return fmt.Errorf("%w: check %s; only sink, import and demo create a store", err, flag)
	case errors.As(err, &nse):
		what := "segments (written by sink and import)"
		if len(nse.Prefixes) == 1 && nse.Prefixes[0] == storage.SeriesPrefix {
			what = "series files (written by run)"
		} else if len(nse.Prefixes) > 1 {
			what = "segments or series files"
		}
		return fmt.Errorf("%w: check %s; this command reads %s", err, flag, what)
	case errors.As(err, &te) && te.Unreachable > 0:
		return fmt.Errorf("%w (check the endpoint in %s and the network; --store-timeout sets how long to wait)", err, flag)
	case storage.IsAuth(err):
		return err
	}
	return fmt.Errorf("%w (check %s, --part-size and --upload-concurrency)", err, flag)
}

// storeRetries returns the retry counts of st, nil when st never retries (local
// directory). A command opens its own store, so the counts are this command's.
func storeRetries(st storage.Store) *storage.RetryStats {
	rr, ok := st.(storage.RetryReporter)
	if !ok {
		return nil
	}
	rs := rr.RetryStats()
	return &rs
}

// printRetries prints one line of store retries by reason after label, for the
// summaries of the commands that write or read a store.
func printRetries(w io.Writer, label string, rs storage.RetryStats) {
	fmt.Fprintf(w, "%s%d (", label, rs.Total())
	for i, r := range storage.Reasons {
		if i > 0 {
			fmt.Fprint(w, ", ")
		}
		fmt.Fprintf(w, "%s %d", r, rs.Get(r))
	}
	fmt.Fprintf(w, "), %d gave up after the retry budget, %s backing off\n", rs.BudgetExhausted, rs.Backoff.Round(time.Millisecond))
}

func loadShardMap(path string) (*columnar.ShardMap, error) {
	if path == "" {
		return columnar.DefaultShardMap(), nil
	}
	return columnar.LoadShardMap(path)
}
