package main

import (
	"context"
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

// storeFlag adds the --store flag every data command takes.
func storeFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "store", "", "object store: file:///dir (or a plain path) or s3://bucket/prefix (required)")
	_ = cmd.MarkFlagRequired("store")
}

type storeOptionsKey struct{}

// storeOptionFlags adds the object-store tuning flags that every command shares to fl,
// and returns the options they fill. The root's PersistentPreRunE hands them to the
// command through its context (withStoreOptions), so openStore needs no extra argument.
func storeOptionFlags(fl *pflag.FlagSet) *storage.Options {
	o := &storage.Options{}
	fl.IntVar(&o.S3.PartSize, "part-size", storage.MinPartSize,
		"S3 multipart part size in bytes, and the largest object sent in one PUT (at least 5 MiB)")
	fl.IntVar(&o.S3.Concurrency, "upload-concurrency", 8, "S3 parts of one upload in flight at once")
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

// openStore opens url with the store options of ctx (the defaults when it has none).
func openStore(ctx context.Context, url string) (storage.Store, error) {
	o, _ := ctx.Value(storeOptionsKey{}).(storage.Options)
	st, err := storage.OpenWith(ctx, url, o)
	if err != nil {
		return nil, fmt.Errorf("%w (check --store, --part-size and --upload-concurrency)", err)
	}
	return st, nil
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
