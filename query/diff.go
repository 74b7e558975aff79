//go:build duckdb_arrow

package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/pointdiff"
	tsql "github.com/tailor-metrics/tailor/sql"
)

// DefaultBucket is the width of the diff's time buckets.
const DefaultBucket = time.Hour

// DiffOptions configures Diff. New and Legacy are views of any name; Diff defines them
// as "new" and "legacy" for sql/diff.sql.
type DiffOptions struct {
	New, Legacy View
	Scope       Scope
	// Tolerance > 0 counts values within it as equal (default: bits must match).
	Tolerance float64
	// Bucket is the width of the time buckets of the summary (default DefaultBucket).
	Bucket time.Duration
	// Rows, when not nil, is called with every differing row in (series, ts) order,
	// each copy of a legacy duplicate on its own. The rows come from a second pass over
	// both sides (and a third over legacy, for the copies).
	Rows func(pointdiff.Row) error
	// Reads, when not nil, gets what each view's readers read and skipped, added up over
	// the passes.
	Reads map[string]ReadStats
}

// Diff runs the one-to-one diff of sql/diff.sql and returns its counts per group.
func (e *Engine) Diff(ctx context.Context, opt DiffOptions) ([]pointdiff.Group, error) {
	if opt.Tolerance < 0 || math.IsNaN(opt.Tolerance) || math.IsInf(opt.Tolerance, 0) {
		return nil, fmt.Errorf("tolerance %v: want a finite number >= 0", opt.Tolerance)
	}
	if opt.Bucket <= 0 {
		opt.Bucket = DefaultBucket
	}
	if opt.Bucket.Milliseconds() <= 0 {
		return nil, fmt.Errorf("bucket %s: want at least 1ms", opt.Bucket)
	}
	for _, s := range []string{
		"SET VARIABLE tolerance = " + strconv.FormatFloat(opt.Tolerance, 'g', -1, 64) + "::DOUBLE",
		"SET VARIABLE bucket_ms = " + strconv.FormatInt(opt.Bucket.Milliseconds(), 10) + "::BIGINT",
	} {
		if err := e.Exec(ctx, s); err != nil {
			return nil, err
		}
	}
	groups, err := e.diffSummary(ctx, opt)
	if err != nil || opt.Rows == nil {
		return groups, err
	}
	return groups, e.diffRows(ctx, opt)
}

// diffViews defines the views of sql/diff*.sql. legacy_copies is the legacy data once
// more, for diffrows.sql's copies of duplicates: opening the view again gives a fresh
// reader, so an Arrow-backed legacy source is read once per view.
func diffViews(opt DiffOptions) []View {
	n, l, c := opt.New, opt.Legacy, opt.Legacy
	n.Name, l.Name, c.Name = "new", "legacy", "legacy_copies"
	return []View{n, l, c, {Name: "diff", From: "(" + tsql.Diff + ")", Deps: []string{"new", "legacy"}, Unscoped: true}}
}

// queryDiff runs one of the diff's statements, adding the views' reads to opt.Reads.
func (e *Engine) queryDiff(ctx context.Context, stmt string, opt DiffOptions) (array.RecordReader, func() error, error) {
	vs, err := e.DefineViews(ctx, []string{stmt}, diffViews(opt), opt.Scope)
	if err != nil {
		return nil, nil, err
	}
	done := func() error {
		err := vs.Close()
		if opt.Reads != nil {
			for name, r := range vs.Reads() {
				s := opt.Reads[name]
				s.Add(r)
				opt.Reads[name] = s
			}
		}
		return err
	}
	res, err := vs.Query(ctx, stmt)
	if err != nil {
		return nil, nil, errors.Join(err, done())
	}
	return res, done, nil
}

func (e *Engine) diffSummary(ctx context.Context, opt DiffOptions) (_ []pointdiff.Group, err error) {
	res, done, err := e.queryDiff(ctx, tsql.DiffSummary, opt)
	if err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	defer func() { err = errors.Join(err, done()) }()
	defer res.Release()
	var out []pointdiff.Group
	for res.Next() {
		rec := res.RecordBatch()
		org, ok1 := rec.Column(0).(*array.Uint32)
		met, ok2 := rec.Column(1).(*array.Uint64)
		bkt, ok3 := rec.Column(2).(*array.Int64)
		kind, ok4 := rec.Column(3).(*array.Uint8)
		pts, ok5 := rec.Column(4).(*array.Int64)
		first, ok6 := rec.Column(5).(*array.Int64)
		last, ok7 := rec.Column(6).(*array.Int64)
		if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
			return nil, fmt.Errorf("BUG: diff summary has schema %s", rec.Schema())
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			g := pointdiff.Group{Org: org.Value(i), Metric: met.Value(i), Bucket: bkt.Value(i), Kind: pointdiff.Kind(kind.Value(i)),
				Points: uint64(pts.Value(i)), FirstTs: first.Value(i), LastTs: last.Value(i)}
			if !g.Kind.IsValid() {
				return nil, fmt.Errorf("BUG: diff summary has kind %s", g.Kind)
			}
			out = append(out, g)
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	return out, nil
}

func (e *Engine) diffRows(ctx context.Context, opt DiffOptions) (err error) {
	res, done, err := e.queryDiff(ctx, tsql.DiffRows, opt)
	if err != nil {
		return fmt.Errorf("diff rows: %w", err)
	}
	defer func() { err = errors.Join(err, done()) }()
	defer res.Release()
	for res.Next() {
		rec := res.RecordBatch()
		org, ok1 := rec.Column(0).(*array.Uint32)
		met, ok2 := rec.Column(1).(*array.Uint64)
		cx, ok3 := rec.Column(2).(*array.Uint64)
		ts, ok4 := rec.Column(3).(*array.Int64)
		kind, ok5 := rec.Column(4).(*array.Uint8)
		nv, ok6 := rec.Column(5).(*array.Float64)
		lv, ok7 := rec.Column(6).(*array.Float64)
		if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
			return fmt.Errorf("BUG: diff rows have schema %s", rec.Schema())
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			r := pointdiff.Row{Org: org.Value(i), Metric: met.Value(i), Context: cx.Value(i), Ts: ts.Value(i), Kind: pointdiff.Kind(kind.Value(i))}
			// The slot under a NULL holds whatever DuckDB left there: read only valid ones.
			if nv.IsValid(i) {
				v := nv.Value(i)
				r.New = &v
			}
			if lv.IsValid(i) {
				v := lv.Value(i)
				r.Legacy = &v
			}
			if err := opt.Rows(r); err != nil {
				return err
			}
		}
	}
	if err := res.Err(); err != nil {
		return errors.Join(errors.New("diff rows"), err)
	}
	return nil
}
