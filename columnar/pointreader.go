package columnar

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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
	// FetchBytes caps one coalesced ranged GET on object stores (default
	// DefaultFetchBytes). Local stores map the file instead.
	FetchBytes int64
	// Window keeps only points with ts inside it (the zero Window means AllTime).
	Window Window
	// SkipCorrupt counts and skips corrupt frames instead of failing.
	SkipCorrupt bool
	// Tags, when not nil, is called for every payload group that carries tags, with the
	// payload's provenance. It is called from reader goroutines: it must be safe for
	// concurrent use, and must copy tags to keep them.
	Tags func(k SeriesKey, src Source, tags []string)
}

// PointReader is an array.RecordReader over the points of a set of splits, decoded by
// parallel goroutines. Batches arrive in no particular order. Each record is valid until
// the next call to Next; its memory returns to the reader's pool when every holder (the
// reader and, for DuckDB, the exported C array) has released it.
//
// Memory is bounded: see MemoryStats. Batches are handed over unbuffered, so a reader
// that is ahead of the consumer waits instead of piling up batches.
type PointReader struct {
	refs   atomic.Int64
	cancel context.CancelFunc
	out    chan *batch
	errMu  sync.Mutex
	err    error
	wg     sync.WaitGroup
	cur    arrow.RecordBatch
	pool   batchPool
	mem    memMeter
	statMu sync.Mutex
	stats  FrameStats
	memory MemoryStats
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
	if opt.FetchBytes <= 0 {
		opt.FetchBytes = DefaultFetchBytes
	}
	if opt.Window == (Window{}) {
		opt.Window = AllTime
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &PointReader{cancel: cancel, out: make(chan *batch)}
	r.refs.Store(1)
	r.memory = memoryBound(st, splits, opt)
	// A batch takes a whole frame past BatchRows at most, so sizing it for that once
	// means its columns never grow.
	r.pool = batchPool{rows: int(r.memory.BatchBytes / pointBytes), mem: &r.mem}
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

// pointBytes is the size of one row across the point schema's columns.
const pointBytes = 4 + 8 + 8 + 8 + 8 + 8 + 2 + 4 + 8

// memoryBound works out the buffers the reader will need for splits.
func memoryBound(st storage.Store, splits []Split, opt ReadOptions) MemoryStats {
	var maxLen, maxRaw, maxRows, maxExtent uint64
	for i := range splits {
		sp := &splits[i]
		for _, f := range sp.Frames {
			maxLen = max(maxLen, uint64(f.Length))
			maxRaw = max(maxRaw, uint64(f.RawLength))
			maxRows = max(maxRows, uint64(f.Rows))
		}
		if len(sp.Frames) > 0 {
			maxExtent = max(maxExtent, sp.End()-sp.Start())
		}
	}
	m := MemoryStats{Readers: opt.Readers, FetchBytes: int64(maxLen), LargestRaw: int64(maxRaw)}
	if _, local := st.(storage.LocalFiler); !local || !mmapSupported {
		// One GET spans up to FetchBytes of neighbouring frames (and the gaps between).
		m.FetchBytes = max(m.FetchBytes, min(opt.FetchBytes, int64(maxExtent)))
	}
	rows := uint64(opt.BatchRows)
	if maxRows > 0 {
		rows += maxRows - 1
	}
	m.BatchBytes = int64(rows) * pointBytes
	m.BoundBytes = int64(m.Readers)*(m.FetchBytes+m.LargestRaw+m.BatchBytes) + m.BatchBytes
	return m
}

func (r *PointReader) worker(ctx context.Context, st storage.Store, splits []Split, topics map[string]uint16, opt ReadOptions, work <-chan int) error {
	var local FrameStats
	dec := NewFrameDecoder()
	dec.mem = &r.mem
	fetch := newFetcher(st, opt.FetchBytes, &r.mem, &local)
	defer func() {
		dec.Close()
		r.mem.add(-int64(cap(dec.raw)))
		if rf, ok := fetch.(*rangeFetcher); ok {
			r.mem.add(-int64(cap(rf.buf)))
		}
		r.statMu.Lock()
		r.stats.add(local)
		r.statMu.Unlock()
	}()
	b := r.pool.get()
	send := func() bool {
		t := time.Now()
		ok := false
		select {
		case r.out <- b:
			b, ok = r.pool.get(), true
		case <-ctx.Done():
		}
		local.Timers.Read -= time.Since(t) // waiting for the consumer is not reading
		return ok
	}
	defer func() {
		if b != nil {
			r.pool.put(b)
		}
	}()
	start := time.Now()
	defer func() { local.Timers.Read += time.Since(start) }()
	for i := range work {
		if err := r.readSplit(ctx, dec, fetch, &splits[i], topics, opt, &b, send, &local); err != nil {
			return err
		}
	}
	if b.Len() > 0 && !send() {
		return ctx.Err()
	}
	return nil
}

// readSplit decodes the frames of sp into *b, handing b over with send whenever it holds
// BatchRows rows.
func (r *PointReader) readSplit(ctx context.Context, dec *FrameDecoder, fetch fetcher, sp *Split, topics map[string]uint16, opt ReadOptions, b **batch, send func() bool, st *FrameStats) error {
	t := time.Now()
	err := fetch.start(ctx, sp)
	st.Timers.Fetch += time.Since(t)
	if err != nil {
		return err
	}
	defer fetch.done()
	topic := topics[sp.Seg.Header.Topic]
	for j, f := range sp.Frames {
		t := time.Now()
		fb, err := fetch.frame(ctx, j)
		st.Timers.Fetch += time.Since(t)
		if err != nil {
			return err
		}
		if err := dec.DecodeFrame(sp, f, fb, topic, opt.Window, opt.SkipCorrupt, &(*b).Columns, st, opt.Tags); err != nil {
			return err
		}
		if (*b).Len() >= opt.BatchRows && !send() {
			return ctx.Err()
		}
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

// Stats returns the decode counts and timers; complete once Next has returned false.
func (r *PointReader) Stats() FrameStats {
	r.statMu.Lock()
	defer r.statMu.Unlock()
	return r.stats
}

// ReadStats returns counts, timers, the memory bound and the measured peak; complete
// once Next has returned false.
func (r *PointReader) ReadStats() ReadStats {
	s := ReadStats{FrameStats: r.Stats(), Memory: r.memory}
	s.Memory.PeakBytes = r.mem.peak.Load()
	return s
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

// batchPool keeps released batches for reuse. It is a plain free list, not a sync.Pool,
// so a GC never drops warm batches (a dropped batch would be reallocated: garbage and
// allocations per batch). It holds at most the batches that were ever out at once.
type batchPool struct {
	mu   sync.Mutex
	free []*batch
	rows int // capacity of every batch's columns
	mem  *memMeter
}

func (p *batchPool) get() *batch {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	b := &batch{pool: p}
	b.grow(p.rows)
	p.mem.add(int64(p.rows) * pointBytes)
	return b
}

func (p *batchPool) put(b *batch) {
	b.Reset()
	p.mu.Lock()
	p.free = append(p.free, b)
	p.mu.Unlock()
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
