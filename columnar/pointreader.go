package columnar

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/storage"
)

// DefaultBatchRows is the target number of rows in one emitted record batch.
const DefaultBatchRows = 1 << 17

// ReadOptions configures a PointReader. Zero fields take the documented defaults.
type ReadOptions struct {
	// Readers is the number of splits decoded in parallel (default 1).
	Readers int
	// BatchRows is the target rows per record batch (default DefaultBatchRows).
	BatchRows int
	// Window keeps only points with ts inside it (the zero Window means AllTime).
	Window Window
	// SkipCorrupt counts and skips corrupt frames instead of failing.
	SkipCorrupt bool
	// Tags, when not nil, is called for every payload group that carries tags, with the
	// payload's provenance. It is called from reader goroutines: it must be safe for
	// concurrent use, and must copy tags to keep them.
	Tags func(k SeriesKey, src Source, tags []string)
}

// FrameStats counts what decoding saw.
type FrameStats struct {
	Frames, CorruptFrames uint64
	RowsIn, RowsOut       uint64
	OutOfWindow           uint64
	Bytes                 uint64
}

func (s *FrameStats) add(o FrameStats) {
	s.Frames += o.Frames
	s.CorruptFrames += o.CorruptFrames
	s.RowsIn += o.RowsIn
	s.RowsOut += o.RowsOut
	s.OutOfWindow += o.OutOfWindow
	s.Bytes += o.Bytes
}

// PointReader is an array.RecordReader over the points of a set of splits, decoded by
// parallel goroutines. Batches arrive in no particular order. Each record is valid until
// the next call to Next; its memory returns to the reader's pool when every holder (the
// reader and, for DuckDB, the exported C array) has released it.
type PointReader struct {
	refs   atomic.Int64
	cancel context.CancelFunc
	out    chan *batch
	errMu  sync.Mutex
	err    error
	wg     sync.WaitGroup
	cur    arrow.RecordBatch
	pool   batchPool
	statMu sync.Mutex
	stats  FrameStats
}

var _ array.RecordReader = (*PointReader)(nil)

// NewPointReader starts decoding splits from st. Close (Release) it when done.
func NewPointReader(ctx context.Context, st storage.Store, splits []Split, topics map[string]uint16, opt ReadOptions) *PointReader {
	if opt.Readers <= 0 {
		opt.Readers = 1
	}
	if opt.BatchRows <= 0 {
		opt.BatchRows = DefaultBatchRows
	}
	if opt.Window == (Window{}) {
		opt.Window = AllTime
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &PointReader{cancel: cancel, out: make(chan *batch, opt.Readers)}
	r.refs.Store(1)
	work := make(chan int)
	go func() {
		defer close(work)
		for i := range splits {
			select {
			case work <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for w := 0; w < opt.Readers; w++ {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := r.worker(ctx, st, splits, topics, opt, work); err != nil {
				r.setErr(err)
				cancel()
			}
		}()
	}
	go func() { r.wg.Wait(); close(r.out) }()
	return r
}

func (r *PointReader) worker(ctx context.Context, st storage.Store, splits []Split, topics map[string]uint16, opt ReadOptions, work <-chan int) error {
	dec := NewFrameDecoder()
	defer dec.Close()
	var local FrameStats
	defer func() {
		r.statMu.Lock()
		r.stats.add(local)
		r.statMu.Unlock()
	}()
	var buf []byte
	b := r.pool.get()
	send := func() bool {
		select {
		case r.out <- b:
			b = r.pool.get()
			return true
		case <-ctx.Done():
			return false
		}
	}
	defer func() {
		if b != nil {
			r.pool.put(b)
		}
	}()
	for i := range work {
		sp := &splits[i]
		var err error
		buf, err = ReadSplitBytes(ctx, st, sp, buf)
		if err != nil {
			return err
		}
		local.Bytes += uint64(len(buf))
		topic := topics[sp.Seg.Header.Topic]
		base := sp.Start()
		for _, f := range sp.Frames {
			fb := buf[f.Offset-base : f.Offset-base+uint64(f.Length)]
			if err := dec.DecodeFrame(sp, f, fb, topic, opt.Window, opt.SkipCorrupt, &b.Columns, &local, opt.Tags); err != nil {
				return err
			}
			if b.Len() >= opt.BatchRows && !send() {
				return ctx.Err()
			}
		}
	}
	if b.Len() > 0 && !send() {
		return ctx.Err()
	}
	return nil
}

func (r *PointReader) setErr(err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

// Stats returns the decode counts; complete once Next has returned false.
func (r *PointReader) Stats() FrameStats {
	r.statMu.Lock()
	defer r.statMu.Unlock()
	return r.stats
}

// Schema implements array.RecordReader.
func (r *PointReader) Schema() *arrow.Schema { return PointSchema }

// Next implements array.RecordReader.
func (r *PointReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	b, ok := <-r.out
	if !ok {
		return false
	}
	r.cur = b.record()
	return true
}

// RecordBatch implements array.RecordReader.
func (r *PointReader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record implements array.RecordReader.
//
// Deprecated: use RecordBatch.
func (r *PointReader) Record() arrow.RecordBatch { return r.cur }

// Err implements array.RecordReader.
func (r *PointReader) Err() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.err
}

// Retain implements array.RecordReader.
func (r *PointReader) Retain() { r.refs.Add(1) }

// Release implements array.RecordReader; the last release stops the workers.
func (r *PointReader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	r.cancel()
	for b := range r.out {
		r.pool.put(b)
	}
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
}

// batch is a set of column buffers that becomes one Arrow record. It is the memory
// allocator of its own record's buffers, so when the last buffer is freed (by Go or by
// DuckDB releasing the exported array) the whole batch returns to the pool for reuse.
type batch struct {
	Columns
	refs atomic.Int32
	pool *batchPool
}

type batchPool struct{ p sync.Pool }

func (p *batchPool) get() *batch {
	if b, ok := p.p.Get().(*batch); ok {
		return b
	}
	return &batch{pool: p}
}

func (p *batchPool) put(b *batch) {
	b.Reset()
	p.p.Put(b)
}

// Allocate implements memory.Allocator; batches never allocate through arrow.
func (b *batch) Allocate(int) []byte { panic("BUG: batch buffers are not allocated through arrow") }

// Reallocate implements memory.Allocator.
func (b *batch) Reallocate(int, []byte) []byte {
	panic("BUG: batch buffers are not reallocated through arrow")
}

// Free implements memory.Allocator: the last freed column buffer recycles the batch.
func (b *batch) Free([]byte) {
	if n := b.refs.Add(-1); n == 0 {
		b.pool.put(b)
	} else if n < 0 {
		panic(fmt.Sprintf("BUG: batch freed %d times too often", -n))
	}
}

var _ memory.Allocator = (*batch)(nil)

func (b *batch) record() arrow.RecordBatch {
	n := b.Len()
	b.refs.Store(9)
	cols := [...]arrow.Array{
		b.prim(arrow.PrimitiveTypes.Uint32, n, arrow.Uint32Traits.CastToBytes(b.Org)),
		b.prim(arrow.PrimitiveTypes.Uint64, n, arrow.Uint64Traits.CastToBytes(b.Metric)),
		b.prim(arrow.PrimitiveTypes.Uint64, n, arrow.Uint64Traits.CastToBytes(b.Context)),
		b.prim(arrow.PrimitiveTypes.Int64, n, arrow.Int64Traits.CastToBytes(b.Ts)),
		b.prim(arrow.PrimitiveTypes.Float64, n, arrow.Float64Traits.CastToBytes(b.Value)),
		b.prim(arrow.PrimitiveTypes.Int64, n, arrow.Int64Traits.CastToBytes(b.RecordTs)),
		b.prim(arrow.PrimitiveTypes.Uint16, n, arrow.Uint16Traits.CastToBytes(b.Topic)),
		b.prim(arrow.PrimitiveTypes.Int32, n, arrow.Int32Traits.CastToBytes(b.Partition)),
		b.prim(arrow.PrimitiveTypes.Int64, n, arrow.Int64Traits.CastToBytes(b.Offset)),
	}
	rec := array.NewRecordBatch(PointSchema, cols[:], int64(n))
	for _, c := range cols {
		c.Release()
	}
	return rec
}

func (b *batch) prim(dt arrow.DataType, n int, data []byte) arrow.Array {
	buf := memory.NewBufferWithAllocator(data, b)
	d := array.NewData(dt, n, []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	a := array.MakeFromData(d)
	d.Release()
	return a
}
