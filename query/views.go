//go:build duckdb_arrow

package query

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
)

// Views of `tailor-batch sql`, `diff` and `validate` (docs/validation.md):
//
//	points  the raw segments' points, with provenance (columnar.PointSchema)
//	latest  points de-duplicated by the run's rule (sql/latest.sql)
//	series  the published series files (columnar.SortedSchema)
//	legacy  the legacy data: Parquet, CSV, or series files of another root
//
// Every view has the columns org_id UINTEGER, metric_id UBIGINT, context_key UBIGINT,
// ts BIGINT, value DOUBLE first, and takes the same shard and window filter as a run.

// Scope is the shard and window filter every view applies.
type Scope struct {
	// Shard keeps the points of one shard ("" keeps all).
	Shard string
	// ShardMap maps orgs to shards (nil means columnar.DefaultShardMap).
	ShardMap *columnar.ShardMap
	// Window keeps ts in [From, To); the zero Window keeps all.
	Window columnar.TimeRange
	// Orgs and Metrics, when not nil, keep the points of those orgs and metrics
	// (--org, --metric).
	Orgs, Metrics *IDSet
}

// TsRange is the ts range the scope keeps: its Window, or all time when that is zero.
func (s Scope) TsRange() columnar.TimeRange {
	if s.Window == (columnar.TimeRange{}) {
		return columnar.AllTime
	}
	return s.Window
}

// predicate is the SQL filter of the scope over a view with the point columns.
func (s Scope) predicate() (string, error) {
	var conds []string
	if w := s.Window; w != (columnar.TimeRange{}) && w != columnar.AllTime {
		conds = append(conds, fmt.Sprintf("ts >= %d AND ts < %d", w.From, w.To))
	}
	if s.Shard != "" {
		c, err := shardPredicate(s.shardMap(), s.Shard)
		if err != nil {
			return "", err
		}
		conds = append(conds, c)
	}
	if s.Orgs != nil {
		conds = append(conds, idPredicate("org_id", s.Orgs))
	}
	if s.Metrics != nil {
		conds = append(conds, idPredicate("metric_id", s.Metrics))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), nil
}

// Keep is the scope's filter on a series, the window aside: its shard (as
// shardPredicate puts it in SQL), orgs and metrics. Nil when it keeps every series.
func (s Scope) Keep() func(org uint32, metric uint64) bool {
	if s.Shard == "" && s.Orgs == nil && s.Metrics == nil {
		return nil
	}
	m := s.shardMap()
	shard := func(org uint32, metric uint64) bool { return true }
	if g := sharedShardRe.FindStringSubmatch(s.Shard); g != nil {
		n := mustUint32(g[1])
		shard = func(org uint32, _ uint64) bool {
			_, ded := m.Dedicated[org]
			return org%m.Shared == n && !ded
		}
	} else if g := orgShardRe.FindStringSubmatch(s.Shard); g != nil {
		x := mustUint32(g[1])
		shard = func(org uint32, _ uint64) bool { return org == x }
	} else if partShardRe.MatchString(s.Shard) {
		shard = func(org uint32, metric uint64) bool { return m.Shard(org, metric) == s.Shard }
	}
	return func(org uint32, metric uint64) bool {
		return shard(org, metric) && s.Orgs.Contains(uint64(org)) && s.Metrics.Contains(metric)
	}
}

// columns lists the columns the scope's filter reads.
func (s Scope) columns() []string {
	cols := []string{}
	if w := s.Window; w != (columnar.TimeRange{}) && w != columnar.AllTime {
		cols = append(cols, "ts")
	}
	if s.Shard != "" || s.Orgs != nil {
		cols = append(cols, "org_id")
	}
	if partShardRe.MatchString(s.Shard) || s.Metrics != nil {
		cols = append(cols, "metric_id")
	}
	return cols
}

// idPredicate is the SQL form of "col is in set".
func idPredicate(col string, set *IDSet) string {
	if len(set.Ranges()) == 0 {
		return "false"
	}
	var in, ors []string
	for _, r := range set.Ranges() {
		if r.Lo == r.Hi {
			in = append(in, strconv.FormatUint(r.Lo, 10))
		} else {
			ors = append(ors, fmt.Sprintf("%s BETWEEN %d AND %d", col, r.Lo, r.Hi))
		}
	}
	if len(in) > 0 {
		ors = append(ors, col+" IN ("+strings.Join(in, ", ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")"
}

func (s Scope) shardMap() *columnar.ShardMap {
	if s.ShardMap == nil {
		return columnar.DefaultShardMap()
	}
	return s.ShardMap
}

var (
	sharedShardRe = regexp.MustCompile(`^org-mod-(\d+)$`)
	orgShardRe    = regexp.MustCompile(`^org-(\d+)$`)
	partShardRe   = regexp.MustCompile(`^org-(\d+)-p(\d+)$`)
)

// shardPredicate is the SQL form of m.Shard(org_id, metric_id) = shard.
func shardPredicate(m *columnar.ShardMap, shard string) (string, error) {
	if g := sharedShardRe.FindStringSubmatch(shard); g != nil {
		n, _ := strconv.ParseUint(g[1], 10, 32)
		if n >= uint64(m.Shared) {
			return "", fmt.Errorf("shard %s: the shard map has %d shared shards", shard, m.Shared)
		}
		c := fmt.Sprintf("org_id %% %d = %d", m.Shared, n)
		var ded []string
		for org := range m.Dedicated {
			if uint64(org%m.Shared) == n {
				ded = append(ded, strconv.FormatUint(uint64(org), 10))
			}
		}
		if len(ded) > 0 {
			c += " AND org_id NOT IN (" + strings.Join(ded, ", ") + ")"
		}
		return "(" + c + ")", nil
	}
	if g := orgShardRe.FindStringSubmatch(shard); g != nil {
		return "org_id = " + g[1], nil
	}
	if g := partShardRe.FindStringSubmatch(shard); g != nil {
		// The metric hash (SplitMix64) in SQL: 128-bit products reduced mod 2^64.
		return fmt.Sprintf("(org_id = %s AND tailor_mix64(metric_id) %% %d = %s)", g[1], m.Dedicated[mustUint32(g[1])].Parts, g[2]), nil
	}
	return "", fmt.Errorf("shard %q: want org-mod-N, org-X or org-X-pK", shard)
}

func mustUint32(s string) uint32 {
	n, _ := strconv.ParseUint(s, 10, 32)
	return uint32(n)
}

// mix64Macro defines columnar's SplitMix64 finalizer in SQL for split shards.
const mix64Macro = `CREATE OR REPLACE TEMP MACRO tailor_mix64(x) AS (
  WITH a AS (SELECT xor(x::UBIGINT, x::UBIGINT >> 30) AS v),
       b AS (SELECT ((v::UHUGEINT * 13787848793156543929::UHUGEINT) % 18446744073709551616::UHUGEINT)::UBIGINT AS v FROM a),
       c AS (SELECT xor(v, v >> 27) AS v FROM b),
       d AS (SELECT ((v::UHUGEINT * 10723151780598845931::UHUGEINT) % 18446744073709551616::UHUGEINT)::UBIGINT AS v FROM c)
  SELECT xor(v, v >> 31) FROM d)`

// View is one named table a statement can use.
type View struct {
	Name string
	// Exactly one of Scan, Arrow and From is set.
	//
	// Scan opens a fresh reader for each query (a registered Arrow view can be read
	// once), told what the statement can use of the view: the reader may skip the rows
	// outside r and leave the columns the statement does not read unfilled (zeros). Its
	// columns must include the point columns under their names. A reader that counts
	// its reads implements Reads() ReadStats (docs/validation.md, "Pruning").
	Scan func(ctx context.Context, r Restriction) (array.RecordReader, error)
	// Arrow is Scan for a reader that reads everything.
	Arrow func(ctx context.Context) (array.RecordReader, error)
	// From is a SQL table expression, e.g. read_parquet('x.parquet'), or a
	// parenthesized SELECT over other views.
	From string
	// Columns selects and casts the point columns from the source; empty selects *.
	Columns string
	// Deps names the views From reads.
	Deps []string
	// Unscoped views pass rows through unfiltered (their From reads scoped views).
	Unscoped bool
	// Through says that a restriction on this view's rows holds for the rows of its
	// Deps too (latest keeps a subset of the points of each (series, ts)), so their
	// readers may skip what this view's may.
	Through bool
}

// ReadStats count what the readers of a view read and skipped: files (series files,
// segments), their bytes, and series. Skipped bytes are those of skipped files and the
// unread bytes of files read in part.
type ReadStats struct {
	FilesRead     int64 `json:"files_read"`
	FilesSkipped  int64 `json:"files_skipped"`
	BytesRead     int64 `json:"bytes_read"`
	BytesSkipped  int64 `json:"bytes_skipped"`
	SeriesRead    int64 `json:"series_read"`
	SeriesSkipped int64 `json:"series_skipped"`
}

// Add adds o to s.
func (s *ReadStats) Add(o ReadStats) {
	s.FilesRead += o.FilesRead
	s.FilesSkipped += o.FilesSkipped
	s.BytesRead += o.BytesRead
	s.BytesSkipped += o.BytesSkipped
	s.SeriesRead += o.SeriesRead
	s.SeriesSkipped += o.SeriesSkipped
}

// statsReader is a reader that counts its reads.
type statsReader interface{ Reads() ReadStats }

// pointColumns is the projection that gives a source the point columns' types.
func pointColumns(org, metric, ctx, ts, value string) string {
	return fmt.Sprintf("%s::UINTEGER AS org_id, %s::UBIGINT AS metric_id, %s::UBIGINT AS context_key, %s::BIGINT AS ts, %s::DOUBLE AS value",
		quoteIdent(org), quoteIdent(metric), quoteIdent(ctx), quoteIdent(ts), quoteIdent(value))
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteString(s string) string { return "'" + escape(s) + "'" }

// uses reports whether stmt mentions name as a word (case-insensitive); only the views a
// statement uses are opened, so a query over legacy never reads a segment.
func uses(stmt, name string) bool {
	re := regexp.MustCompile(`(?i)(^|[^a-z0-9_."])` + regexp.QuoteMeta(name) + `($|[^a-z0-9_"])`)
	return re.MatchString(stmt) || strings.Contains(strings.ToLower(stmt), `"`+strings.ToLower(name)+`"`)
}

// QueryViews runs stmt with the views it uses defined and filtered by scope. Like
// Query, the whole result is computed before QueryViews returns; the views are dropped
// by then.
func (e *Engine) QueryViews(ctx context.Context, stmt string, views []View, scope Scope) (_ array.RecordReader, err error) {
	vs, err := e.DefineViews(ctx, []string{stmt}, views, scope)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, vs.Close()) }()
	return vs.Query(ctx, stmt)
}

// ViewSet is a set of defined views; Close drops them.
type ViewSet struct {
	e        *Engine
	ctx      context.Context
	readers  []array.RecordReader
	names    []string // the view of each reader
	reads    map[string]ReadStats
	releases []func()
	dropped  []string
	// noPushdown is set while the optimizers that push work into scans are off.
	noPushdown bool
}

// arrowUnsafeOptimizers push filters, projections and samples into table scans. DuckDB's
// C API scans a registered Arrow stream with arrow_scan, which assumes the producer
// applies them, and our readers (like any plain stream) do not: with them on, measured
// here with DuckDB 1.5.6, "SELECT count(*) FROM v WHERE org_id = 1" counted every row and
// "SELECT max(value) FROM v" read another column. Turned off, the filters run in DuckDB
// above the scan and every column is read, which is correct; the run's group-sort uses
// every column and no filter, so it never met this.
const arrowUnsafeOptimizers = "filter_pushdown,unused_columns,join_filter_pushdown,sampling_pushdown"

// Query runs stmt over the set's views. Each Arrow-backed view can be read by one
// statement only.
func (vs *ViewSet) Query(ctx context.Context, stmt string) (array.RecordReader, error) {
	res, err := vs.e.arrow.QueryContext(ctx, stmt)
	if rerr := vs.readerErr(); rerr != nil {
		// DuckDB only sees "stream error"; the reader knows the file and offset.
		if res != nil {
			res.Release()
		}
		return nil, rerr
	}
	if err != nil {
		return nil, fmt.Errorf("duckdb: %w", err)
	}
	return res, nil
}

// Exec runs a statement without a result over the set's views.
func (vs *ViewSet) Exec(ctx context.Context, stmt string) error {
	err := vs.e.Exec(ctx, stmt)
	if rerr := vs.readerErr(); rerr != nil {
		return rerr
	}
	return err
}

func (vs *ViewSet) readerErr() error {
	for _, r := range vs.readers {
		if ep, ok := r.(interface{ Err() error }); ok && ep.Err() != nil {
			return ep.Err()
		}
	}
	return nil
}

// Reads returns what each view's readers read and skipped so far, by view name; views
// whose readers do not count are absent. Still valid after Close.
func (vs *ViewSet) Reads() map[string]ReadStats {
	out := map[string]ReadStats{}
	for name, s := range vs.reads {
		out[name] = s
	}
	for i, r := range vs.readers {
		if sr, ok := r.(statsReader); ok {
			s := out[vs.names[i]]
			s.Add(sr.Reads())
			out[vs.names[i]] = s
		}
	}
	return out
}

// Close drops the views and releases their readers.
func (vs *ViewSet) Close() error {
	var errs []error
	for i := len(vs.dropped) - 1; i >= 0; i-- {
		errs = append(errs, vs.e.Exec(context.WithoutCancel(vs.ctx), "DROP VIEW IF EXISTS "+vs.dropped[i]))
	}
	vs.dropped = nil
	if vs.noPushdown {
		errs = append(errs, vs.e.Exec(context.WithoutCancel(vs.ctx), "RESET disabled_optimizers"))
		vs.noPushdown = false
	}
	for _, r := range vs.releases {
		r()
	}
	vs.releases = nil
	vs.reads = vs.Reads()
	for _, r := range vs.readers {
		r.Release()
	}
	vs.readers, vs.names = nil, nil
	return errors.Join(errs...)
}

// viewRestrictions is the restriction of each view in order (dependencies first) that
// stmts read: what the statements admit of it, widened by what the views that read it
// admit (all of it, unless they pass restrictions Through).
func (e *Engine) viewRestrictions(ctx context.Context, stmts []string, order []*View) (map[string]Restriction, error) {
	names := make([]string, len(order))
	for i, v := range order {
		names[i] = strings.ToLower(v.Name)
	}
	direct, err := e.restrictions(ctx, stmts, names)
	if err != nil {
		return nil, err
	}
	out := map[string]Restriction{}
	for i := len(order) - 1; i >= 0; i-- { // readers of a view come after it in order
		v := order[i]
		r, ok := direct[strings.ToLower(v.Name)]
		if direct == nil {
			r, ok = Restriction{}, true
		}
		for _, u := range order[i+1:] {
			for _, d := range u.Deps {
				if !strings.EqualFold(d, v.Name) {
					continue
				}
				via := Restriction{}
				if u.Through {
					via = out[u.Name]
					via.Columns = nil // the view's SQL reads every column
				}
				if ok {
					r = r.Union(via)
				} else {
					r, ok = via, true
				}
			}
		}
		if !ok {
			r = Restriction{} // named in the text only: read whole, to be safe
		}
		out[v.Name] = r
	}
	return out, nil
}

// DefineViews defines the views that any of stmts uses (and their dependencies) as
// temporary views filtered by scope. Only the views a statement mentions are opened, so
// a query over legacy never reads a segment. Close the set after the last statement.
func (e *Engine) DefineViews(ctx context.Context, stmts []string, views []View, scope Scope) (_ *ViewSet, err error) {
	byName := map[string]*View{}
	for i := range views {
		byName[strings.ToLower(views[i].Name)] = &views[i]
	}
	need := map[string]bool{}
	var order []*View
	var visit func(v *View)
	visit = func(v *View) {
		if need[v.Name] {
			return
		}
		need[v.Name] = true
		for _, d := range v.Deps {
			if dv := byName[strings.ToLower(d)]; dv != nil {
				visit(dv)
			}
		}
		order = append(order, v)
	}
	for i := range views {
		for _, s := range stmts {
			if uses(s, views[i].Name) {
				visit(&views[i])
				break
			}
		}
	}
	pred, err := scope.predicate()
	if err != nil {
		return nil, err
	}
	restr, err := e.viewRestrictions(ctx, stmts, order)
	if err != nil {
		return nil, err
	}
	vs := &ViewSet{e: e, ctx: ctx}
	defer func() {
		if err != nil {
			err = errors.Join(err, vs.Close())
		}
	}()
	if strings.Contains(pred, "tailor_mix64") {
		if err := e.Exec(ctx, mix64Macro); err != nil {
			return nil, err
		}
	}
	for _, v := range order {
		from := v.From
		if (v.Arrow != nil || v.Scan != nil) && !vs.noPushdown {
			if err := e.Exec(ctx, "SET disabled_optimizers = '"+arrowUnsafeOptimizers+"'"); err != nil {
				return nil, err
			}
			vs.noPushdown = true
		}
		if v.Arrow != nil || v.Scan != nil {
			var rdr array.RecordReader
			if v.Scan != nil {
				r := restr[v.Name]
				if !v.Unscoped {
					r = r.Intersect(scope.Restriction())
				}
				rdr, err = v.Scan(ctx, r)
			} else {
				rdr, err = v.Arrow(ctx)
			}
			if err != nil {
				return nil, fmt.Errorf("view %s: %w", v.Name, err)
			}
			vs.readers = append(vs.readers, rdr)
			vs.names = append(vs.names, v.Name)
			raw := "tailor_raw_" + v.Name
			rel, err := e.arrow.RegisterView(rdr, raw)
			if err != nil {
				return nil, fmt.Errorf("register view %s: %w", v.Name, err)
			}
			vs.releases = append(vs.releases, rel)
			from = quoteIdent(raw)
		}
		cols := v.Columns
		if cols == "" {
			cols = "*"
		}
		where := pred
		if v.Unscoped {
			where = ""
		}
		q := fmt.Sprintf("CREATE OR REPLACE TEMP VIEW %s AS SELECT %s FROM %s%s", quoteIdent(v.Name), cols, from, where)
		if err := e.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("view %s: %w", v.Name, err)
		}
		vs.dropped = append(vs.dropped, quoteIdent(v.Name))
	}
	return vs, nil
}
