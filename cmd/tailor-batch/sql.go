package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
	"github.com/tailor-metrics/tailor/validate"
)

// scopeFlags are the filters of sql, diff and validate: the shard and window as run's,
// and orgs, metrics and a time range. Every view keeps only what they select, and
// readers skip what they exclude (docs/validation.md, "Pruning").
type scopeFlags struct {
	shard, window, shardMap string
	orgs, metrics           []string
	from, to                string
}

func (f *scopeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.shard, "shard", "", "only this shard (a number, org-mod-N, org-X or org-X-pK; default: all)")
	cmd.Flags().StringVar(&f.window, "window", "", "only this window, FROM/DURATION or a window name like run's (default: all time)")
	cmd.Flags().StringVar(&f.shardMap, "shard-map", "", "the shard map the sink used: selects a shard's orgs in legacy data, and the shards an org restriction reads (default: 64 shared shards)")
	cmd.Flags().StringSliceVar(&f.orgs, "org", nil, "only these orgs (repeatable, or comma-separated; N or N-M)")
	cmd.Flags().StringSliceVar(&f.metrics, "metric", nil, "only these metric ids (repeatable, or comma-separated; N or N-M)")
	cmd.Flags().StringVar(&f.from, "from", "", "only points at or after this time (RFC 3339 or Unix ms)")
	cmd.Flags().StringVar(&f.to, "to", "", "only points before this time (RFC 3339 or Unix ms)")
}

// parseIDs reads --org and --metric values: ids and inclusive ranges N-M.
func parseIDs(flag string, vals []string, limit uint64) (*query.IDSet, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	var rs []query.IDRange
	for _, v := range vals {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(v), "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		b := a
		if err == nil && isRange {
			b, err = strconv.ParseUint(hi, 10, 64)
		}
		if err != nil || a > b || b > limit {
			return nil, usageErrorf("%s %q: want an id or a range N-M of ids in [0, %d]", flag, v, limit)
		}
		rs = append(rs, query.IDRange{Lo: a, Hi: b})
	}
	return query.NewIDSet(rs...), nil
}

func (f *scopeFlags) scope() (query.Scope, error) {
	var s query.Scope
	m, err := loadShardMap(f.shardMap)
	if err != nil {
		return s, fmt.Errorf("--shard-map: %w", err)
	}
	s.ShardMap = m
	if f.shard != "" {
		if s.Shard, err = checkShard("--shard", f.shard, m); err != nil {
			return s, err
		}
	}
	if f.window != "" {
		w, err := run.ParseWindow(f.window, run.DefaultWindowSize)
		if err != nil {
			return s, usageErrorf("--window: %w", err)
		}
		s.Window = w.TsRange()
	}
	if s.Orgs, err = parseIDs("--org", f.orgs, math.MaxUint32); err != nil {
		return s, err
	}
	if s.Metrics, err = parseIDs("--metric", f.metrics, math.MaxUint64); err != nil {
		return s, err
	}
	if f.from != "" || f.to != "" {
		r := s.TsRange()
		if f.from != "" {
			t, err := validate.ParseTimestamp(f.from)
			if err != nil {
				return s, usageErrorf("--from: %w", err)
			}
			r.From = max(r.From, t)
		}
		if f.to != "" {
			t, err := validate.ParseTimestamp(f.to)
			if err != nil {
				return s, usageErrorf("--to: %w", err)
			}
			r.To = min(r.To, t)
		}
		if r.From >= r.To {
			return s, usageErrorf("--from and --to (and --window) leave no time: [%d, %d)", r.From, r.To)
		}
		s.Window = r
	}
	return s, nil
}

func (f *scopeFlags) windowName() string {
	if f.window == "" {
		return ""
	}
	w, err := run.ParseWindow(f.window, run.DefaultWindowSize)
	if err != nil {
		return f.window
	}
	return w.Name()
}

// legacyFlags name the legacy data and map its columns.
type legacyFlags struct {
	source  string
	columns []string
	blocks  blocksFlags
}

func (f *legacyFlags) add(cmd *cobra.Command, required bool) {
	cmd.Flags().StringVar(&f.source, "legacy", "", "legacy data: a .parquet, .csv or .tsf file (read literally), glob:PATTERN for many Parquet files, a store URL with series files, or a directory or bucket prefix of Prometheus TSDB blocks")
	cmd.Flags().StringArrayVar(&f.columns, "legacy-column", nil, "map a point column to a legacy Parquet column, e.g. --legacy-column ts=time_ms (repeatable)")
	f.blocks.add(cmd)
	if required {
		_ = cmd.MarkFlagRequired("legacy")
	}
}

func (f *legacyFlags) options() (query.LegacyOptions, error) {
	o := query.LegacyOptions{Source: f.source, Columns: map[string]string{}}
	for _, c := range f.columns {
		k, v, ok := strings.Cut(c, "=")
		if !ok || k == "" || v == "" {
			return o, fmt.Errorf("--legacy-column %q: want COLUMN=NAME, e.g. ts=time_ms", c)
		}
		o.Columns[k] = v
	}
	var err error
	o.Blocks, err = f.blocks.options()
	return o, err
}

func newSQLCmd() *cobra.Command {
	var (
		storeURL, format, out string
		explain, skipCorrupt  bool
		sf                    scopeFlags
		lf                    legacyFlags
	)
	cmd := &cobra.Command{
		Use:   `sql --store URL [--shard S] [--window W] [--legacy SRC] [--format table|csv|json|parquet] "SELECT …" | -`,
		Short: "Run ad-hoc DuckDB SQL over the segments, the series files and legacy data",
		Long: `Runs DuckDB SQL over these views, each filtered by --shard and --window the same way
run selects its input:

  points   every point of the raw segments, duplicates included, with provenance
           (org_id, metric_id, context_key, ts, value, record_ts, topic_id, partition, offset)
  latest   points de-duplicated by the run's rule (latest arrival wins)
  series   the published series files (org_id, metric_id, context_key, ts, value)
  rollup   the published rollups (org_id, metric_id, context_key, resolution, ts = the
           bucket's start, count, sum, min, max, first, last, increase: NULL unless a
           counter; docs/format/rollup.md)
  legacy   the --legacy data, with the same five columns (only with --legacy)

Only the views a statement names are read. The SQL is the argument, or standard input
when the argument is -. Output is a table, or CSV, JSON or Parquet (--format parquet
needs --out FILE). --explain prints DuckDB's plan instead.

Several statements, separated by semicolons, run one after another in one DuckDB
session (a table one creates is there for the next), and each result is printed under
a header naming its statement. If one fails, the ones after it do not run and the error
names it. Only --format table takes several statements: one CSV, JSON or Parquet
output holds one result, so there a script of several is refused before any runs, as
is a script with a quote or comment that is never closed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			switch format {
			case "table", "csv", "json":
			case "parquet":
				if out == "" {
					return usageErrorf("--format parquet: give the file with --out FILE.parquet")
				}
			default:
				return usageErrorf("--format %q: want table, csv, json or parquet", format)
			}
			script := args[0]
			if script == "-" {
				b, err := io.ReadAll(cmd.InOrStdin())
				if err != nil {
					return fmt.Errorf("sql: read standard input: %w", err)
				}
				script = string(b)
			}
			stmts, err := splitStatements(script)
			if err != nil {
				return &usageError{err}
			}
			switch {
			case len(stmts) == 0:
				return &usageError{errNoStatement}
			case len(stmts) > 1 && format != "table":
				return usageErrorf("--format %s takes one statement and the SQL has %d: one %s output holds one result (run them one at a time, or use --format table, which prints each result under a header)", format, len(stmts), strings.ToUpper(format))
			}
			scope, err := sf.scope()
			if err != nil {
				return err
			}
			st, err := openStore(ctx, storeURL, "--store", storage.SegmentsPrefix, storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			eng, err := query.Open(ctx, query.Options{})
			if err != nil {
				return err
			}
			defer eng.Close()
			views := []query.View{
				query.PointsView(st, scope, columnar.ReadOptions{Readers: runtime.NumCPU(), SkipCorrupt: skipCorrupt, OnCorrupt: func(err error) {
					loggerFrom(ctx).Warn("skipped corrupt segment bytes", "err", err)
				}}),
				query.LatestView(),
				run.SeriesView("series", st, scope),
			}
			views = append(views, run.RollupViews(st, scope)...)
			if lf.source != "" {
				lo, err := lf.options()
				if err != nil {
					return err
				}
				lv, err := run.LegacyView(ctx, eng, "legacy", lo, scope)
				if err != nil {
					return err
				}
				views = append(views, lv)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			for i, stmt := range stmts {
				if len(stmts) > 1 {
					if i > 0 {
						fmt.Fprintln(w)
					}
					fmt.Fprintf(w, "-- statement %d of %d: %s\n", i+1, len(stmts), statementTitle(stmt))
				}
				err := runStatement(ctx, w, cmd.ErrOrStderr(), eng, stmt, views, scope, format, out, explain)
				if err = viewHint(err, lf.source != ""); err != nil {
					if len(stmts) == 1 {
						return err
					}
					w.Flush()
					note := "the ones after it did not run"
					if i > 0 {
						note = "the statements before it ran and printed their results above; " + note
					}
					if i == len(stmts)-1 {
						note = "the statements before it ran and printed their results above"
					}
					return fmt.Errorf("statement %d of %d (%s): %w\n(%s)", i+1, len(stmts), statementTitle(stmt), err, note)
				}
			}
			return w.Flush()
		},
	}
	storeFlag(cmd, &storeURL, false)
	sf.add(cmd)
	lf.add(cmd, false)
	cmd.Flags().StringVar(&format, "format", "table", "output: table, csv, json or parquet (csv, json and parquet take one statement)")
	cmd.Flags().StringVar(&out, "out", "", "output file (for --format parquet)")
	cmd.Flags().BoolVar(&explain, "explain", false, "print the query plan instead of running the query")
	cmd.Flags().BoolVar(&skipCorrupt, "skip-corrupt", false, "points and latest views: skip corrupt segment footers and frames (each one warned about) instead of failing")
	return cmd
}

// runStatement runs one statement with fresh views (an Arrow view can be read once) and
// prints its result to w.
func runStatement(ctx context.Context, w io.Writer, status io.Writer, eng *query.Engine, stmt string, views []query.View, scope query.Scope, format, out string, explain bool) (err error) {
	if explain {
		stmt = "EXPLAIN " + stmt
	}
	if format == "parquet" && !explain {
		vs, err := eng.DefineViews(ctx, []string{stmt}, views, scope)
		if err != nil {
			return err
		}
		err = vs.Exec(ctx, fmt.Sprintf("COPY (%s) TO '%s' (FORMAT parquet)", stmt, strings.ReplaceAll(out, "'", "''")))
		if cerr := vs.Close(); err == nil {
			err = cerr
		}
		logReads(ctx, "sql", vs.Reads())
		if err != nil {
			return err
		}
		fmt.Fprintf(status, "wrote %s\n", out)
		return nil
	}
	vs, err := eng.DefineViews(ctx, []string{stmt}, views, scope)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := vs.Close(); err == nil {
			err = cerr
		}
		logReads(ctx, "sql", vs.Reads())
	}()
	res, err := vs.Query(ctx, stmt)
	if err != nil {
		return err
	}
	defer res.Release()
	if explain {
		return printExplain(w, res)
	}
	return printResult(w, res, format)
}

// logReads logs what each view read and skipped (with -v; JSON with --log-format json).
func logReads(ctx context.Context, cmd string, reads map[string]query.ReadStats) {
	names := make([]string, 0, len(reads))
	for n := range reads {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := reads[n]
		loggerFrom(ctx).Info(cmd+": read", "view", n,
			"files_read", r.FilesRead, "files_skipped", r.FilesSkipped,
			"bytes_read", r.BytesRead, "bytes_skipped", r.BytesSkipped,
			"series_read", r.SeriesRead, "series_skipped", r.SeriesSkipped)
	}
}

func printExplain(w io.Writer, res array.RecordReader) error {
	for res.Next() {
		rec := res.RecordBatch()
		col := rec.Column(int(rec.NumCols()) - 1)
		for i := 0; i < col.Len(); i++ {
			fmt.Fprintln(w, col.ValueStr(i))
		}
	}
	return res.Err()
}

// cell formats one value: floats in their shortest exact form (NaN, +Inf, -Inf, -0),
// NULL as empty in CSV and "NULL" in tables.
func cell(col arrow.Array, i int, null string) string {
	if col.IsNull(i) {
		return null
	}
	switch c := col.(type) {
	case *array.Float64:
		return string(columnar.AppendValue(nil, c.Value(i)))
	case *array.Float32:
		return string(columnar.AppendValue(nil, float64(c.Value(i))))
	}
	// A string value aliases the batch's memory, which DuckDB reuses once the next
	// batch is fetched, and the table keeps its cells until the end.
	return strings.Clone(col.ValueStr(i))
}

func jsonCell(col arrow.Array, i int) any {
	if col.IsNull(i) {
		return nil
	}
	switch c := col.(type) {
	case *array.Float64:
		if v := c.Value(i); math.IsNaN(v) || math.IsInf(v, 0) {
			return string(columnar.AppendValue(nil, v)) // JSON has no NaN or Inf
		}
		return json.RawMessage(columnar.AppendValue(nil, c.Value(i)))
	case *array.Uint64:
		return c.Value(i) // exact, beyond 2^53 too
	case *array.Int64:
		return c.Value(i)
	case *array.Uint32:
		return c.Value(i)
	case *array.Boolean:
		return c.Value(i)
	}
	return col.ValueStr(i)
}

func printResult(w io.Writer, res array.RecordReader, format string) error {
	schema := res.Schema()
	names := make([]string, schema.NumFields())
	for i, f := range schema.Fields() {
		names[i] = f.Name
	}
	switch format {
	case "csv":
		fmt.Fprintln(w, strings.Join(names, ","))
		for res.Next() {
			rec := res.RecordBatch()
			row := make([]string, len(names))
			for i := 0; i < int(rec.NumRows()); i++ {
				for c := range names {
					row[c] = csvQuote(cell(rec.Column(c), i, ""))
				}
				fmt.Fprintln(w, strings.Join(row, ","))
			}
		}
		return res.Err()
	case "json":
		// One JSON object per row (JSON Lines): streams, and every tool reads it.
		enc := json.NewEncoder(w)
		for res.Next() {
			rec := res.RecordBatch()
			for i := 0; i < int(rec.NumRows()); i++ {
				obj := make(jsonObject, len(names))
				for c, n := range names {
					obj[c] = jsonField{n, jsonCell(rec.Column(c), i)}
				}
				if err := enc.Encode(obj); err != nil {
					return err
				}
			}
		}
		return res.Err()
	}
	// A table: widths from the whole result, which DuckDB has computed anyway.
	rows := [][]string{names}
	for res.Next() {
		rec := res.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]string, len(names))
			for c := range names {
				row[c] = cell(rec.Column(c), i, "NULL")
			}
			rows = append(rows, row)
		}
	}
	if err := res.Err(); err != nil {
		return err
	}
	width := make([]int, len(names))
	for _, r := range rows {
		for c, v := range r {
			width[c] = max(width[c], utf8.RuneCountInString(v))
		}
	}
	for ri, r := range rows {
		for c, v := range r {
			if c > 0 {
				io.WriteString(w, "  ")
			}
			io.WriteString(w, v+strings.Repeat(" ", width[c]-utf8.RuneCountInString(v)))
		}
		fmt.Fprintln(w)
		if ri == 0 {
			for c := range r {
				if c > 0 {
					io.WriteString(w, "  ")
				}
				io.WriteString(w, strings.Repeat("-", width[c]))
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "(%d rows)\n", len(rows)-1)
	return nil
}

func csvQuote(s string) string {
	if strings.ContainsAny(s, ",\"\n\r") {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

// jsonObject keeps the columns in result order.
type jsonObject []jsonField

type jsonField struct {
	name string
	v    any
}

func (o jsonObject) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.name)
		v, err := json.Marshal(f.v)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}
