//go:build duckdb_arrow

package run

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/rollup"
	"github.com/tailor-metrics/tailor/storage"
)

// RollupSchema is the rollup view's: one row per series, resolution and bucket (ts is
// the bucket's start); increase is NULL for a series that is not a counter.
var RollupSchema = arrow.NewSchema([]arrow.Field{
	{Name: "org_id", Type: arrow.PrimitiveTypes.Uint32},
	{Name: "metric_id", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "context_key", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "resolution", Type: arrow.BinaryTypes.String},
	{Name: "ts", Type: arrow.PrimitiveTypes.Int64},
	{Name: "count", Type: arrow.PrimitiveTypes.Uint64},
	{Name: "sum", Type: arrow.PrimitiveTypes.Float64},
	{Name: "min", Type: arrow.PrimitiveTypes.Float64},
	{Name: "max", Type: arrow.PrimitiveTypes.Float64},
	{Name: "first", Type: arrow.PrimitiveTypes.Float64},
	{Name: "last", Type: arrow.PrimitiveTypes.Float64},
	{Name: "increase", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "run_window_ms", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// RollupViews are the views of the published rollups of st that the scope selects:
// rollup_runs, every run's buckets with the window size of the run that holds them, and
// rollup, which keeps of a bucket that two runs hold (a run made after the compaction
// of its range) the smaller run's, the newer. A tombstone hides every bucket that holds
// a point it deletes.
func RollupViews(st storage.Store, scope query.Scope) []query.View {
	return []query.View{
		{Name: "rollup_runs", Arrow: func(ctx context.Context) (array.RecordReader, error) {
			return openRollups(ctx, st, scope)
		}},
		{Name: "rollup", Deps: []string{"rollup_runs"}, Unscoped: true,
			From: `(SELECT * EXCLUDE (run_window_ms) FROM rollup_runs QUALIFY row_number() OVER (PARTITION BY org_id, metric_id, context_key, resolution, ts ORDER BY run_window_ms) = 1)`},
	}
}

// rollupFile is one rollup part to read.
type rollupFile struct {
	key    string
	res    int64
	window int64
}

func openRollups(ctx context.Context, st storage.Store, scope query.Scope) (array.RecordReader, error) {
	runs, err := Published(ctx, st)
	if err != nil {
		return nil, err
	}
	tomb, err := LoadTombstones(ctx, st)
	if err != nil {
		return nil, err
	}
	win := scope.TsRange()
	rr := &rollupReader{ctx: ctx, st: st, tomb: tomb, win: win, b: array.NewRecordBuilder(memory.DefaultAllocator, RollupSchema)}
	rr.refs.Store(1)
	for _, m := range runs {
		if scope.Shard != "" && m.Shard != scope.Shard || !win.Overlaps(m.From, m.To-1) {
			continue
		}
		for _, set := range m.Rollups {
			for _, p := range set.Parts {
				rr.files = append(rr.files, rollupFile{p.Key, set.ResolutionMs, m.To - m.From})
			}
		}
	}
	return rr, nil
}

// rollupReader reads rollup files into RollupSchema batches, one file at a time.
type rollupReader struct {
	refs  atomic.Int64
	ctx   context.Context
	st    storage.Store
	tomb  Tombstones
	win   columnar.TimeRange
	files []rollupFile
	file  rollupFile
	it    *rollup.Iterator
	b     *array.RecordBuilder
	cur   arrow.RecordBatch
	rs    []tsRange
	err   error
}

func (r *rollupReader) Schema() *arrow.Schema          { return RollupSchema }
func (r *rollupReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *rollupReader) Record() arrow.RecordBatch      { return r.cur }
func (r *rollupReader) Err() error                     { return r.err }
func (r *rollupReader) Retain()                        { r.refs.Add(1) }

func (r *rollupReader) Release() {
	if r.refs.Add(-1) == 0 {
		if r.cur != nil {
			r.cur.Release()
			r.cur = nil
		}
		r.b.Release()
	}
}

const rollupBatchRows = 8 << 10

func (r *rollupReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	f := r.b.Fields()
	rows := 0
	for rows < rollupBatchRows && r.err == nil {
		if r.it == nil {
			if len(r.files) == 0 {
				break
			}
			r.file, r.files = r.files[0], r.files[1:]
			b, err := storage.ReadAll(r.ctx, r.st, r.file.key)
			if err != nil {
				r.err = err
				break
			}
			rd, err := rollup.Open(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				r.err = fmt.Errorf("open %s: %w", r.file.key, err)
				break
			}
			r.it = rd.Iterator()
		}
		if !r.it.Next() {
			if err := r.it.Err(); err != nil {
				r.err = fmt.Errorf("read %s: %w", r.file.key, err)
			}
			r.it = nil
			continue
		}
		s := r.it.At()
		r.rs = r.tomb.ranges(s.Key, r.rs)
		name := rollup.Name(r.file.res)
		for _, bk := range s.Buckets {
			if !r.win.Contains(bk.Start) || hidden(r.rs, bk.Start, bk.Start+r.file.res) {
				continue
			}
			f[0].(*array.Uint32Builder).Append(s.Key.Org)
			f[1].(*array.Uint64Builder).Append(s.Key.Metric)
			f[2].(*array.Uint64Builder).Append(s.Key.Context)
			f[3].(*array.StringBuilder).Append(name)
			f[4].(*array.Int64Builder).Append(bk.Start)
			f[5].(*array.Uint64Builder).Append(bk.Count)
			f[6].(*array.Float64Builder).Append(bk.Sum)
			f[7].(*array.Float64Builder).Append(bk.Min)
			f[8].(*array.Float64Builder).Append(bk.Max)
			f[9].(*array.Float64Builder).Append(bk.First)
			f[10].(*array.Float64Builder).Append(bk.Last)
			if s.Counter {
				f[11].(*array.Float64Builder).Append(bk.Increase)
			} else {
				f[11].(*array.Float64Builder).AppendNull()
			}
			f[12].(*array.Int64Builder).Append(r.file.window)
			rows++
		}
	}
	if rows == 0 || r.err != nil {
		return false
	}
	r.cur = r.b.NewRecordBatch()
	return true
}

// hidden reports whether a deleted range of rs meets [from, to).
func hidden(rs []tsRange, from, to int64) bool {
	for _, x := range rs {
		if x.from < to && from < x.to {
			return true
		}
	}
	return false
}
