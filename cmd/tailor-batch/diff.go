package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/pointdiff"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/validate"
)

// diffJob is one diff of a store's series files against legacy data.
type diffJob struct {
	newURL string
	// newStore, when not nil, is used instead of opening newURL (the demo passes its
	// store so that its retries are counted in one place).
	newStore  storage.Store
	legacy    query.LegacyOptions
	scope     query.Scope
	tolerance float64
	bucket    time.Duration
	// out, when set, receives every differing row as Parquet.
	out string
	// sql runs sql/diff.sql in DuckDB instead of the merge-join.
	sql bool
}

type diffResult struct {
	groups  []pointdiff.Group
	rowsOut uint64
	seconds float64
	method  string
	reads   map[string]query.ReadStats
}

func runDiff(ctx context.Context, j diffJob, progress io.Writer) (res diffResult, err error) {
	start := time.Now()
	st := j.newStore
	if st == nil {
		if st, err = openStore(ctx, j.newURL, "--new", storage.SeriesPrefix); err != nil {
			return res, err
		}
		defer st.Close()
	}
	eng, err := query.Open(ctx, query.Options{TempDir: os.TempDir() + "/tailor-duckdb"})
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, eng.Close()) }()
	opt := run.DiffOptions{New: st, Legacy: j.legacy, Scope: j.scope, Tolerance: j.tolerance, Bucket: j.bucket, SQL: j.sql}
	var pw *validate.DiffWriter
	if j.out != "" {
		f, err := os.Create(j.out)
		if err != nil {
			return res, fmt.Errorf("--out: %w", err)
		}
		defer func() { err = errors.Join(err, f.Close()) }()
		pw = validate.NewDiffWriter(f)
		opt.Rows = pw.Write
	}
	fmt.Fprintf(progress, "diff: joining %s with %s on (series, ts)…\n", st.URL(), storage.Redact(j.legacy.Source))
	dr, err := run.Diff(ctx, eng, opt)
	if err != nil {
		return res, err
	}
	res.groups, res.method, res.reads = dr.Groups, dr.Method, dr.Reads
	if dr.Method == "sql" && !j.sql {
		loggerFrom(ctx).Info("diff: the legacy data is not readable in order: the join runs in DuckDB", "why", dr.Why)
	}
	logReads(ctx, "diff", dr.Reads)
	if pw != nil {
		if err := pw.Close(); err != nil {
			return res, err
		}
		res.rowsOut = pw.Rows()
	}
	res.seconds = time.Since(start).Seconds()
	fmt.Fprintf(progress, "diff: done in %.1fs (%s)\n", res.seconds, res.method)
	return res, nil
}

// diffFlags are the flags diff and validate share.
type diffFlags struct {
	newURL    string
	sf        scopeFlags
	lf        legacyFlags
	tolerance float64
	bucket    time.Duration
	sql       bool
}

func (f *diffFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.newURL, "new", "", "store with Tailor's series files (required; a store without series files is an error)")
	_ = cmd.MarkFlagRequired("new")
	f.sf.add(cmd)
	f.lf.add(cmd, true)
	cmd.Flags().Float64Var(&f.tolerance, "tolerance", 0, "values within this absolute difference count as equal (default: bits must match; NaN equals NaN)")
	cmd.Flags().DurationVar(&f.bucket, "bucket", query.DefaultBucket, "width of the time buckets of the summary")
	cmd.Flags().BoolVar(&f.sql, "sql", false, "join in DuckDB with sql/diff.sql instead of the merge-join in Go (same answer; slower)")
}

func (f *diffFlags) job() (diffJob, error) {
	scope, err := f.sf.scope()
	if err != nil {
		return diffJob{}, err
	}
	lo, err := f.lf.options()
	if err != nil {
		return diffJob{}, err
	}
	return diffJob{newURL: f.newURL, legacy: lo, scope: scope, tolerance: f.tolerance, bucket: f.bucket, sql: f.sql}, nil
}

func newDiffCmd() *cobra.Command {
	var (
		df          diffFlags
		format, out string
		top         int
	)
	cmd := &cobra.Command{
		Use:   "diff --new URL --legacy SRC [--shard S] [--window W] [--tolerance X] [--format text|json] [--out FILE.parquet]",
		Short: "One-to-one diff of the series files against legacy data; exits 1 when they differ",
		Long: `A full outer join of the series files (--new) and the legacy data on (series, ts),
as sql/diff.sql defines it: a streaming merge-join in Go when the legacy data can be
read in (series, ts) order (series files, Parquet, CSV; unsorted row groups and CSV
files are sorted in memory), else the SQL in DuckDB (--sql forces it). --org,
--metric, --from and --to narrow both sides, like --shard and --window; -v logs what
each side read and skipped. Every point is equal, missing in new, missing in legacy,
or has another value (compared by bits; NaN equals NaN; --tolerance relaxes it); a
(series, ts) that the legacy data holds more than once is a duplicate in legacy.
Prints the counts by org and by metric; --format json prints the totals as one JSON
object. --out writes every differing row to a Parquet file for drill-down (every copy
of a legacy duplicate).

A legacy path is read literally; glob:PATTERN reads every Parquet file it matches.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: want text or json", format)
			}
			j, err := df.job()
			if err != nil {
				return err
			}
			j.out = out
			res, err := runDiff(cmd.Context(), j, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var total validate.Counts
			for _, g := range res.groups {
				total.Add(g.Kind, g.Points)
			}
			if format == "json" {
				// The totals, and beside them what each side read and skipped.
				type totals struct {
					validate.Counts
					Reads map[string]query.ReadStats `json:"reads"`
				}
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(totals{total, res.reads}); err != nil {
					return err
				}
			} else {
				printDiff(cmd.OutOrStdout(), res.groups, top)
				if out != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "\n%d differing rows written to %s\n", res.rowsOut, out)
				}
			}
			if total.Differences() > 0 {
				return &checkFailed{"diff: the series files and the legacy data differ"}
			}
			return nil
		},
	}
	df.add(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output: text (by org and metric) or json (totals)")
	cmd.Flags().StringVar(&out, "out", "", "write every differing row to this Parquet file")
	cmd.Flags().IntVar(&top, "top", 20, "metrics to list, most differences first")
	return cmd
}

func printDiff(w io.Writer, groups []pointdiff.Group, top int) {
	rep, _ := validate.BuildReport(groups, validate.ReportOptions{})
	hdr := "%-22s %14s %14s %14s %17s %14s %19s\n"
	row := "%-22s %14d %14d %14d %17d %14d %19d\n"
	fmt.Fprintf(w, "By org\n"+hdr, "org", "compared", "equal", "missing_in_new", "missing_in_legacy", "value_differs", "duplicate_in_legacy")
	for _, o := range rep.Orgs {
		fmt.Fprintf(w, row, fmt.Sprint(o.Org), o.PointsCompared, o.Equal, o.MissingInNew, o.MissingInLegacy, o.ValueDiffers, o.DuplicateInLegacy)
	}
	t := rep.Total
	fmt.Fprintf(w, row, "total", t.PointsCompared, t.Equal, t.MissingInNew, t.MissingInLegacy, t.ValueDiffers, t.DuplicateInLegacy)
	fmt.Fprintf(w, "\nBy metric (with differences, most first)\n"+hdr, "org/metric", "compared", "equal", "missing_in_new", "missing_in_legacy", "value_differs", "duplicate_in_legacy")
	n := 0
	for _, m := range validate.Metrics(groups) {
		if m.Differences() == 0 || n == top {
			continue
		}
		n++
		fmt.Fprintf(w, row, fmt.Sprintf("%d/%d", m.Org, m.Metric), m.Compared(), m.Equal, m.MissingInNew, m.MissingInLegacy, m.ValueDiffers, m.DuplicateInLegacy)
	}
	if n == 0 {
		fmt.Fprintln(w, "(no metric has differences)")
	}
}
