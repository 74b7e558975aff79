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
	// Rows, when not nil, is called with every differing row in (series, ts) order.
	// The rows come from a second pass over both sides.
	Rows func(DiffRow) error
}

// DiffGroup counts the points of one org, metric, time bucket and kind.
type DiffGroup struct {
	Org    uint32
	Metric uint64
	// Bucket is the start of the time bucket, Unix ms.
	Bucket int64
	// Kind is a validate.Kind code: 0 equal, 1 missing_in_new, 2 missing_in_legacy,
	// 3 value_differs.
	Kind   uint8
	Points uint64
}

// DiffRow is one differing point. HasNew and HasLegacy say which values are set.
type DiffRow struct {
	Org               uint32
	Metric, Context   uint64
	Ts                int64
	Kind              uint8
	New, Legacy       float64
	HasNew, HasLegacy bool
}

// Diff runs the one-to-one diff of sql/diff.sql and returns its counts per group.
func (e *Engine) Diff(ctx context.Context, opt DiffOptions) ([]DiffGroup, error) {
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

func diffViews(opt DiffOptions) []View {
	n, l := opt.New, opt.Legacy
	n.Name, l.Name = "new", "legacy"
	return []View{n, l, {Name: "diff", From: "(" + tsql.Diff + ")", Deps: []string{"new", "legacy"}, Unscoped: true}}
}

func (e *Engine) diffSummary(ctx context.Context, opt DiffOptions) (_ []DiffGroup, err error) {
	res, err := e.QueryViews(ctx, tsql.DiffSummary, diffViews(opt), opt.Scope)
	if err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	defer res.Release()
	var out []DiffGroup
	for res.Next() {
		rec := res.RecordBatch()
		org, ok1 := rec.Column(0).(*array.Uint32)
		met, ok2 := rec.Column(1).(*array.Uint64)
		bkt, ok3 := rec.Column(2).(*array.Int64)
		kind, ok4 := rec.Column(3).(*array.Uint8)
		pts, ok5 := rec.Column(4).(*array.Int64)
		if !(ok1 && ok2 && ok3 && ok4 && ok5) {
			return nil, fmt.Errorf("BUG: diff summary has schema %s", rec.Schema())
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			out = append(out, DiffGroup{Org: org.Value(i), Metric: met.Value(i), Bucket: bkt.Value(i), Kind: kind.Value(i), Points: uint64(pts.Value(i))})
		}
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("diff: %w", err)
	}
	return out, nil
}

func (e *Engine) diffRows(ctx context.Context, opt DiffOptions) error {
	res, err := e.QueryViews(ctx, tsql.DiffRows, diffViews(opt), opt.Scope)
	if err != nil {
		return fmt.Errorf("diff rows: %w", err)
	}
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
			r := DiffRow{Org: org.Value(i), Metric: met.Value(i), Context: cx.Value(i), Ts: ts.Value(i), Kind: kind.Value(i),
				HasNew: nv.IsValid(i), HasLegacy: lv.IsValid(i)}
			// The slot under a NULL holds whatever DuckDB left there: read only valid ones.
			if r.HasNew {
				r.New = nv.Value(i)
			}
			if r.HasLegacy {
				r.Legacy = lv.Value(i)
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
