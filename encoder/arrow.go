package encoder

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
)

// DefaultBatchRows is the batch size RecordReader uses when given 0 or less.
const DefaultBatchRows = 64 << 10

// RecordReader decodes the file back to Arrow record batches in columnar.SortedSchema,
// in (org_id, metric_id, context_key, ts) order, each with up to batchRows rows. Register
// it as a DuckDB view to query a series file. The usual array.RecordReader contract
// holds: a batch is valid until the next call to Next; Retain it to keep it. Decoding
// errors stop the reader and are returned by Err.
func (r *Reader) RecordReader(batchRows int, opts ...IterOpt) array.RecordReader {
	return SeriesRecordReader(r.Iterator(nil, opts...), batchRows)
}

// SeriesSource is what SeriesRecordReader reads: a SeriesIterator, or anything else that
// hands over whole series one at a time (At is valid until the next Next).
type SeriesSource interface {
	Next() bool
	At() *Series
	Err() error
}

// SeriesRecordReader turns the series of it into Arrow record batches in
// columnar.SortedSchema, each with up to batchRows rows (DefaultBatchRows if 0 or less),
// as RecordReader does for one file.
func SeriesRecordReader(it SeriesSource, batchRows int) array.RecordReader {
	if batchRows <= 0 {
		batchRows = DefaultBatchRows
	}
	rr := &recordReader{
		it:        it,
		batchRows: batchRows,
		b:         array.NewRecordBuilder(memory.DefaultAllocator, columnar.SortedSchema),
	}
	rr.refs.Store(1)
	return rr
}

type recordReader struct {
	refs      atomic.Int64
	it        SeriesSource
	batchRows int
	b         *array.RecordBuilder
	cur       arrow.RecordBatch
	pos       int  // next point of it.At() to emit
	inSeries  bool // it.At() holds points not yet emitted
	done      bool
}

func (rr *recordReader) Retain() { rr.refs.Add(1) }

func (rr *recordReader) Release() {
	if rr.refs.Add(-1) == 0 {
		if rr.cur != nil {
			rr.cur.Release()
			rr.cur = nil
		}
		rr.b.Release()
	}
}

func (rr *recordReader) Schema() *arrow.Schema { return columnar.SortedSchema }

func (rr *recordReader) RecordBatch() arrow.RecordBatch { return rr.cur }

// Record is the deprecated name of RecordBatch.
func (rr *recordReader) Record() arrow.RecordBatch { return rr.cur }

func (rr *recordReader) Err() error { return rr.it.Err() }

func (rr *recordReader) Next() bool {
	if rr.cur != nil {
		rr.cur.Release()
		rr.cur = nil
	}
	if rr.done {
		return false
	}
	orgB := rr.b.Field(0).(*array.Uint32Builder)
	metB := rr.b.Field(1).(*array.Uint64Builder)
	ctxB := rr.b.Field(2).(*array.Uint64Builder)
	tsB := rr.b.Field(3).(*array.Int64Builder)
	valB := rr.b.Field(4).(*array.Float64Builder)
	rows := 0
	for rows < rr.batchRows {
		if !rr.inSeries {
			if !rr.it.Next() {
				rr.done = true
				break
			}
			rr.inSeries, rr.pos = true, 0
			if rows == 0 {
				// Size the builders once per batch for the common case of many small
				// series, and for one large one.
				want := min(rr.batchRows, len(rr.it.At().Ts))
				for _, fb := range rr.b.Fields() {
					fb.Reserve(want)
				}
			}
		}
		s := rr.it.At()
		n := min(len(s.Ts)-rr.pos, rr.batchRows-rows)
		orgB.Reserve(n)
		metB.Reserve(n)
		ctxB.Reserve(n)
		for range n {
			orgB.UnsafeAppend(s.Key.Org)
			metB.UnsafeAppend(s.Key.Metric)
			ctxB.UnsafeAppend(s.Key.Context)
		}
		tsB.AppendValues(s.Ts[rr.pos:rr.pos+n], nil)
		valB.AppendValues(s.Values[rr.pos:rr.pos+n], nil)
		rr.pos += n
		rows += n
		if rr.pos == len(s.Ts) {
			rr.inSeries = false
		}
	}
	if rows == 0 || rr.it.Err() != nil {
		rr.done = true
		return false
	}
	rr.cur = rr.b.NewRecordBatch()
	return true
}
