//go:build duckdb_arrow

package run

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
)

// batchRows is the size of the record batches the series view hands DuckDB.
const batchRows = encoder.DefaultBatchRows

// zeros backs every column a statement does not read: DuckDB still scans it (its
// projection pushdown is off for Arrow streams) but nothing looks at it.
var zeros = memory.NewBufferBytes(make([]byte, 8*batchRows))

// seriesBatches turns a merger's series into record batches of columnar.SortedSchema,
// filling only the columns the restriction says are read. Release closes the merger.
type seriesBatches struct {
	refs atomic.Int64
	m    *SeriesMerger
	use  [5]bool // org_id, metric_id, context_key, ts, value
	cur  arrow.RecordBatch
	pos  int  // next point of m.At() to emit
	in   bool // m.At() holds points not yet emitted
	done bool
}

func newSeriesBatches(m *SeriesMerger, r query.Restriction) *seriesBatches {
	b := &seriesBatches{m: m}
	for i, f := range columnar.SortedSchema.Fields() {
		b.use[i] = r.Uses(f.Name)
	}
	b.refs.Store(1)
	return b
}

func (b *seriesBatches) Retain() { b.refs.Add(1) }

func (b *seriesBatches) Release() {
	if b.refs.Add(-1) == 0 {
		if b.cur != nil {
			b.cur.Release()
			b.cur = nil
		}
		b.m.Close()
	}
}

func (b *seriesBatches) Schema() *arrow.Schema          { return columnar.SortedSchema }
func (b *seriesBatches) RecordBatch() arrow.RecordBatch { return b.cur }
func (b *seriesBatches) Record() arrow.RecordBatch      { return b.cur }
func (b *seriesBatches) Err() error                     { return b.m.Err() }

// Reads returns what the view read and skipped (query.ViewSet.Reads).
func (b *seriesBatches) Reads() query.ReadStats { return b.m.Reads() }

func (b *seriesBatches) Next() bool {
	if b.cur != nil {
		b.cur.Release()
		b.cur = nil
	}
	if b.done {
		return false
	}
	var (
		org        []uint32
		met, cx    []uint64
		ts         []int64
		val        []float64
		rows       int
		orgB, metB = b.use[0], b.use[1]
		cxB, tsB   = b.use[2], b.use[3]
		valB       = b.use[4]
	)
	if orgB {
		org = make([]uint32, 0, batchRows)
	}
	if metB {
		met = make([]uint64, 0, batchRows)
	}
	if cxB {
		cx = make([]uint64, 0, batchRows)
	}
	if tsB {
		ts = make([]int64, 0, batchRows)
	}
	if valB {
		val = make([]float64, 0, batchRows)
	}
	for rows < batchRows {
		if !b.in {
			if !b.m.Next() {
				b.done = true
				break
			}
			b.in, b.pos = true, 0
		}
		s := b.m.At()
		n := min(len(s.Ts)-b.pos, batchRows-rows)
		for range n {
			if orgB {
				org = append(org, s.Key.Org)
			}
			if metB {
				met = append(met, s.Key.Metric)
			}
			if cxB {
				cx = append(cx, s.Key.Context)
			}
		}
		if tsB {
			ts = append(ts, s.Ts[b.pos:b.pos+n]...)
		}
		if valB {
			val = append(val, s.Values[b.pos:b.pos+n]...)
		}
		b.pos += n
		rows += n
		if b.pos == len(s.Ts) {
			b.in = false
		}
	}
	if rows == 0 || b.m.Err() != nil {
		b.done = true
		return false
	}
	cols := []arrow.Array{
		column(arrow.PrimitiveTypes.Uint32, rows, orgB, arrow.Uint32Traits.CastToBytes(org)),
		column(arrow.PrimitiveTypes.Uint64, rows, metB, arrow.Uint64Traits.CastToBytes(met)),
		column(arrow.PrimitiveTypes.Uint64, rows, cxB, arrow.Uint64Traits.CastToBytes(cx)),
		column(arrow.PrimitiveTypes.Int64, rows, tsB, arrow.Int64Traits.CastToBytes(ts)),
		column(arrow.PrimitiveTypes.Float64, rows, valB, arrow.Float64Traits.CastToBytes(val)),
	}
	b.cur = array.NewRecordBatch(columnar.SortedSchema, cols, int64(rows))
	for _, c := range cols {
		c.Release()
	}
	return true
}

// column wraps the bytes of a column without nulls, or the shared zeros when the
// column is not read.
func column(t arrow.DataType, rows int, used bool, data []byte) arrow.Array {
	buf := zeros
	if used {
		buf = memory.NewBufferBytes(data)
	}
	return array.MakeFromData(array.NewData(t, rows, []*memory.Buffer{nil, buf}, nil, 0, 0))
}
