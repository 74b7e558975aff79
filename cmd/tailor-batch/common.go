package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// storeFlag adds the --store flag every data command takes.
func storeFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "store", "", "object store: file:///dir (or a plain path) or s3://bucket/prefix (required)")
	_ = cmd.MarkFlagRequired("store")
}

func openStore(ctx context.Context, url string) (storage.Store, error) {
	st, err := storage.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("%w (check --store)", err)
	}
	return st, nil
}

func loadShardMap(path string) (*columnar.ShardMap, error) {
	if path == "" {
		return columnar.DefaultShardMap(), nil
	}
	return columnar.LoadShardMap(path)
}

// isTerminal reports whether f is a terminal, for progress output.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	lvl := slog.LevelWarn
	if verbose {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}
