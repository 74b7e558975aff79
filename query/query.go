//go:build duckdb_arrow

// Package query runs Tailor's SQL in DuckDB over Arrow record readers. It is the only
// package that imports duckdb-go (cgo); everything else sees Arrow records.
//
// Facts that shape it, measured with duckdb-go v2.10506.0 (DuckDB 1.5.6) through Arrow:
//   - a registered Arrow view can be read once; a second query on it silently returns
//     no rows, so every query registers fresh readers and drops them afterwards;
//   - results do not stream: QueryContext runs the whole query, then hands back batches
//     of 2,048 rows, each valid until the next Next().
package query

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/tailor-metrics/tailor/columnar"
	tsql "github.com/tailor-metrics/tailor/sql"
)

// Options configures an Engine. Zero fields keep DuckDB's defaults.
type Options struct {
	// MemoryLimit is DuckDB's memory_limit, e.g. "2GB".
	MemoryLimit string
	// TempDir is where DuckDB spills when the memory limit is reached.
	TempDir string
	// Threads is DuckDB's thread count.
	Threads int
}

// Engine is one in-memory DuckDB database with one connection. Not safe for concurrent
// use: run one query at a time, or open one Engine per goroutine.
type Engine struct {
	connector *duckdb.Connector
	conn      driver.Conn
	arrow     *duckdb.Arrow
	// pruneOff is set once a statement that is not a plain query ran through the views:
	// it may have defined a view or macro that later statements read (restrict.go).
	pruneOff bool
}

// Open starts an in-memory DuckDB with the given limits.
func Open(ctx context.Context, opt Options) (_ *Engine, err error) {
	c, err := duckdb.NewConnector("", nil)
	if err != nil {
		return nil, fmt.Errorf("open duckdb: %w", err)
	}
	conn, err := c.Connect(ctx)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("connect duckdb: %w", err), c.Close())
	}
	e := &Engine{connector: c, conn: conn}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	if e.arrow, err = duckdb.NewArrowFromConn(conn); err != nil {
		return nil, fmt.Errorf("duckdb arrow: %w", err)
	}
	// Insertion order does not matter to any of our queries: every result is ordered
	// explicitly, and dropping it lets DuckDB parallelize and spill more freely.
	settings := []string{"SET preserve_insertion_order = false"}
	if opt.MemoryLimit != "" {
		settings = append(settings, fmt.Sprintf("SET memory_limit = '%s'", escape(opt.MemoryLimit)))
	}
	if opt.TempDir != "" {
		settings = append(settings, fmt.Sprintf("SET temp_directory = '%s'", escape(opt.TempDir)))
	}
	if opt.Threads > 0 {
		settings = append(settings, fmt.Sprintf("SET threads = %d", opt.Threads))
	}
	for _, s := range settings {
		if err := e.Exec(ctx, s); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func escape(s string) string { return strings.ReplaceAll(s, "'", "''") }

// Exec runs a statement that returns no rows.
func (e *Engine) Exec(ctx context.Context, stmt string) error {
	ex, ok := e.conn.(driver.ExecerContext)
	if !ok {
		return errors.New("BUG: duckdb connection does not implement ExecerContext")
	}
	if _, err := ex.ExecContext(ctx, stmt, nil); err != nil {
		return fmt.Errorf("duckdb: %s: %w", firstLine(stmt), err)
	}
	return nil
}

// Query registers each reader as a view under its name, runs stmt, and returns the
// result. The views are dropped before Query returns (DuckDB has consumed them); the
// caller releases the result.
func (e *Engine) Query(ctx context.Context, stmt string, views map[string]array.RecordReader) (array.RecordReader, error) {
	var releases []func()
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	for name, rdr := range views {
		rel, err := e.arrow.RegisterView(rdr, name)
		if err != nil {
			return nil, fmt.Errorf("register view %s: %w", name, err)
		}
		releases = append(releases, rel)
	}
	res, err := e.arrow.QueryContext(ctx, stmt)
	if err != nil {
		return nil, fmt.Errorf("duckdb: %w", err)
	}
	return res, nil
}

// GroupSort runs the embedded group-sort SQL over keyed points in layout l and returns
// them sorted by series and ts, in the same schema (see run.KeyedStream).
func (e *Engine) GroupSort(ctx context.Context, l columnar.KeyLayout, points array.RecordReader) (array.RecordReader, error) {
	stmt := tsql.GroupSort
	if l.Wide {
		stmt = tsql.GroupSortWide
	}
	return e.Query(ctx, stmt, map[string]array.RecordReader{"points": points})
}

// Close closes the connection and the database.
func (e *Engine) Close() error {
	var errs []error
	if e.conn != nil {
		errs = append(errs, e.conn.Close())
	}
	if e.connector != nil {
		errs = append(errs, e.connector.Close())
	}
	return errors.Join(errs...)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}
