//go:build duckdb_arrow

package run

import (
	"slices"
	"sync"
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

// zeroBytes backs every column a statement does not read: DuckDB still scans it (its
// projection pushdown is off for Arrow streams) but nothing looks at it.
var (
	zeroMu    sync.Mutex
	zeroBytes []byte // never written: shared by every batch
)

// aheadBatches is how many batches the series view builds ahead of DuckDB, so that
// merging overlaps DuckDB's work on the batches before (its scan threads take batches
// one at a time, under a lock).
const aheadBatches = 2

// seriesBatches turns a merger's series into record batches of columnar.SortedSchema,
// filling only the columns the restriction says are read, built by a goroutine of its
// own ahead of Next. Release stops it and closes the merger.
type seriesBatches struct {
	refs  atomic.Int64
	m     *SeriesMerger
	use   [5]bool // org_id, metric_id, context_key, ts, value
	cur   arrow.RecordBatch
	ready chan arrow.RecordBatch
	stop  chan struct{}
	ended chan struct{}
	err   error // set before ended is closed
	done  bool
	// building state, owned by the goroutine
	over bool
}

func newSeriesBatches(m *SeriesMerger, r query.Restriction) *seriesBatches {
	b := &seriesBatches{m: m, ready: make(chan arrow.RecordBatch, aheadBatches), stop: make(chan struct{}), ended: make(chan struct{})}
	for i, f := range columnar.SortedSchema.Fields() {
		b.use[i] = r.Uses(f.Name)
	}
	b.refs.Store(1)
	go b.build()
	return b
}

// build makes batches until the merger ends or Release stops it.
func (b *seriesBatches) build() {
	defer close(b.ended)
	defer close(b.ready)
	for {
		rec := b.batch()
		if rec == nil {
			b.err = b.m.Err()
			return
		}
		select {
		case b.ready <- rec:
		case <-b.stop:
			rec.Release()
			return
		}
	}
}

func (b *seriesBatches) Retain() { b.refs.Add(1) }

func (b *seriesBatches) Release() {
	if b.refs.Add(-1) == 0 {
		if b.cur != nil {
			b.cur.Release()
			b.cur = nil
		}
		close(b.stop)
		<-b.ended
		for rec := range b.ready {
			rec.Release()
		}
		b.m.Close()
	}
}

func (b *seriesBatches) Schema() *arrow.Schema          { return columnar.SortedSchema }
func (b *seriesBatches) RecordBatch() arrow.RecordBatch { return b.cur }
func (b *seriesBatches) Record() arrow.RecordBatch      { return b.cur }

// Err returns the error that ended the batches; valid once Next returned false.
func (b *seriesBatches) Err() error {
	select {
	case <-b.ended:
		return b.err
	default:
		return nil
	}
}

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
	rec, ok := <-b.ready
	if !ok {
		b.done = true
		return false
	}
	b.cur = rec
	return true
}

// batch builds the next batch, nil at the end.
func (b *seriesBatches) batch() arrow.RecordBatch {
	if b.over {
		return nil
	}
	// A batch holds whole series, at least batchRows points unless the scan ends: the
	// merger writes each straight into it.
	var (
		org     []uint32
		met, cx []uint64
		ts      = make([]int64, 0, batchRows)
		val     []float64
	)
	if b.use[4] {
		val = make([]float64, 0, batchRows)
	}
	for len(ts) < batchRows {
		n0 := len(ts)
		var (
			k  columnar.SeriesKey
			ok bool
		)
		k, _, ts, val, ok = b.m.appendNext(ts, val)
		if !ok {
			b.over = true
			break
		}
		n := len(ts) - n0
		if b.use[0] {
			org = slices.Grow(org, n)
			for range n {
				org = append(org, k.Org)
			}
		}
		if b.use[1] {
			met = slices.Grow(met, n)
			for range n {
				met = append(met, k.Metric)
			}
		}
		if b.use[2] {
			cx = slices.Grow(cx, n)
			for range n {
				cx = append(cx, k.Context)
			}
		}
	}
	rows := len(ts)
	if rows == 0 || b.m.Err() != nil {
		b.over = true
		return nil
	}
	cols := []arrow.Array{
		column(arrow.PrimitiveTypes.Uint32, rows, b.use[0], arrow.Uint32Traits.CastToBytes(org)),
		column(arrow.PrimitiveTypes.Uint64, rows, b.use[1], arrow.Uint64Traits.CastToBytes(met)),
		column(arrow.PrimitiveTypes.Uint64, rows, b.use[2], arrow.Uint64Traits.CastToBytes(cx)),
		column(arrow.PrimitiveTypes.Int64, rows, b.use[3], arrow.Int64Traits.CastToBytes(ts)),
		column(arrow.PrimitiveTypes.Float64, rows, b.use[4], arrow.Float64Traits.CastToBytes(val)),
	}
	rec := array.NewRecordBatch(columnar.SortedSchema, cols, int64(rows))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

// column wraps the bytes of a column without nulls, or the shared zeros when the
// column is not read.
func column(t arrow.DataType, rows int, used bool, data []byte) arrow.Array {
	if !used {
		zeroMu.Lock()
		if len(zeroBytes) < 8*rows {
			zeroBytes = make([]byte, 8*max(rows, batchRows)) // batches may hold more rows
		}
		data = zeroBytes
		zeroMu.Unlock()
	}
	buf := memory.NewBufferBytes(data)
	return array.MakeFromData(array.NewData(t, rows, []*memory.Buffer{nil, buf}, nil, 0, 0))
}
