package columnar

import (
	"context"
	"errors"
	"fmt"
	"runtime"
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
	// Window keeps only points with ts inside it (the zero TimeRange means AllTime).
	Window TimeRange
	// SkipCorrupt counts and skips corrupt frames instead of failing.
	SkipCorrupt bool
	// OnCorrupt, when not nil, is told of what SkipCorrupt skipped by readers that list
	// segments themselves (the points view), so that they can warn: corrupt footers as
	// they are met, and corrupt frames once the read is done (ReadStats.Skipped).
	OnCorrupt func(err error)
	// Tags, when not nil, is called for every payload group that carries tags, with the
	// payload's provenance. It is called from reader goroutines: it must be safe for
	// concurrent use, and must copy tags to keep them.
	Tags func(k SeriesKey, p Provenance, tags []string)
	// Groups, when not nil, makes the reader emit keyed rows (Layout.Schema()) instead of
	// PointSchema rows: it numbers each frame's series and groups (see GroupFunc), and
	// Points, which must then be set, holds the groups' points.
	Groups GroupFunc
	Layout KeyLayout
	Points PointSink
}

// batchKind is the row layout of a reader's batches.
type batchKind uint8

const (
	kindPoints batchKind = iota
	kindNarrow
	kindWide
)

func kindOf(opt ReadOptions) batchKind {
	switch {
	case opt.Groups == nil:
		return kindPoints
	case opt.Layout.Wide:
		return kindWide
	}
	return kindNarrow
}

// rowBytes is the size of one row across the kind's columns.
func (k batchKind) rowBytes() int64 {
	switch k {
	case kindNarrow:
		return KeyLayout{}.rowBytes()
	case kindWide:
		return KeyLayout{Wide: true}.rowBytes()
	}
	return pointBytes
}

// PointReader is an array.RecordReader over the points of a set of splits, decoded by
// parallel goroutines. Batches arrive in no particular order. Each record is valid until
// the next call to Next; its memory returns to the batch pool when every holder (the
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
	rows   int // capacity of a batch
	kind   batchKind
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
	if opt.Window == (TimeRange{}) {
		opt.Window = AllTime
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &PointReader{cancel: cancel, out: make(chan *batch), kind: kindOf(opt)}
	r.refs.Store(1)
	r.memory = memoryBound(st, splits, opt)
	// A batch takes a whole frame past BatchRows at most, so sizing it for that once
	// means its columns never grow.
	r.rows = int(r.memory.BatchBytes / r.kind.rowBytes())
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

// batchRowsGranule rounds batch capacities.
const batchRowsGranule = 1 << 16

// pointBytes is the size of one row across the point schema's columns.
const pointBytes = 4 + 8 + 8 + 8 + 8 + 8 + 2 + 4 + 8

// decodeBytes is what a decoder holds to decode frame f of a segment of version: its raw
// payload, and from version 2 the ts and value sections too.
func decodeBytes(version uint16, f FrameInfo) uint64 {
	if version < 2 {
		return uint64(f.RawLength)
	}
	return uint64(f.RawLength) + uint64(sectionBytes(int(f.Rows)))
}

// memoryBound works out the buffers the reader will need for splits.
func memoryBound(st storage.Store, splits []Split, opt ReadOptions) MemoryStats {
	var maxLen, maxRaw, maxRows, maxExtent uint64
	keyed := kindOf(opt) != kindPoints
	for i := range splits {
		sp := &splits[i]
		for _, f := range sp.Frames {
			maxLen = max(maxLen, uint64(f.Length))
			maxRaw = max(maxRaw, decodeBytes(sp.Seg.Header.Version, f))
			if keyed {
				maxRows = max(maxRows, uint64(f.Groups)) // a keyed row per group
			} else {
				maxRows = max(maxRows, uint64(f.Rows))
			}
		}
		if len(sp.Frames) > 0 {
			maxExtent = max(maxExtent, sp.End()-sp.Start())
		}
	}
	m := MemoryStats{Readers: opt.Readers, LargestRaw: int64(maxRaw)}
	if _, local := st.(storage.LocalFiler); local && mmapSupported {
		// Mapped pages stay resident until mmapDropBytes of them are dropped at once,
		// plus the frame being decoded and the page rounding at both ends.
		m.FetchBytes = min(int64(maxExtent)+int64(pageSize), mmapDropBytes+int64(maxLen)+2*int64(pageSize))
	} else {
		// One GET spans up to FetchBytes of neighbouring frames (and the gaps between).
		m.FetchBytes = max(int64(maxLen), min(opt.FetchBytes, int64(maxExtent)))
	}
	rows := uint64(opt.BatchRows)
	if maxRows > 0 {
		rows += maxRows - 1
	}
	// Rounded up, so that runs over frames of other sizes still reuse pooled batches
	// (the pool takes only an exact fit) instead of faulting in fresh memory.
	rows = (rows + batchRowsGranule - 1) / batchRowsGranule * batchRowsGranule
	m.BatchBytes = int64(rows) * kindOf(opt).rowBytes()
	m.BoundBytes = int64(m.Readers)*(m.FetchBytes+m.LargestRaw+m.BatchBytes) + m.BatchBytes
	return m
}

func (r *PointReader) worker(ctx context.Context, st storage.Store, splits []Split, topics map[string]uint16, opt ReadOptions, work <-chan int) (err error) {
	var local FrameStats
	dec := decoders.get(int(r.memory.LargestRaw))
	r.mem.add(int64(cap(dec.raw)))
	dec.mem = &r.mem
	fetch := newFetcher(st, opt.FetchBytes, &r.mem, &local)
	defer func() {
		r.mem.add(-int64(cap(dec.raw)))
		dec.mem = nil
		decoders.put(dec)
		if rf, ok := fetch.(*rangeFetcher); ok {
			r.mem.add(-int64(cap(rf.buf)))
		}
		r.statMu.Lock()
		r.stats.Add(local)
		r.statMu.Unlock()
	}()
	b := batches.get(r.rows, r.kind, &r.mem)
	send := func() bool {
		t := time.Now()
		ok := false
		select {
		case r.out <- b:
			b, ok = batches.get(r.rows, r.kind, &r.mem), true
		case <-ctx.Done():
		}
		local.Timers.Read -= time.Since(t) // waiting for the consumer is not reading
		return ok
	}
	defer func() {
		if b != nil {
			batches.put(b)
		}
	}()
	start := time.Now()
	defer func() { local.Timers.Read += time.Since(start) }()
	var pw PointWriter
	if opt.Groups != nil {
		if opt.Points == nil {
			return errors.New("BUG: keyed read without a point store")
		}
		pw = opt.Points.Writer()
		defer func() { err = errors.Join(err, pw.Close()) }()
	}
	for i := range work {
		if err := r.readSplit(ctx, dec, fetch, &splits[i], topics, opt, pw, &b, send, &local); err != nil {
			return err
		}
	}
	if b.len() > 0 && !send() {
		return ctx.Err()
	}
	return nil
}

// readSplit decodes the frames of sp into *b, handing b over with send whenever it holds
// BatchRows rows.
func (r *PointReader) readSplit(ctx context.Context, dec *FrameDecoder, fetch fetcher, sp *Split, topics map[string]uint16, opt ReadOptions, pw PointWriter, b **batch, send func() bool, st *FrameStats) error {
	t := time.Now()
	err := fetch.start(ctx, sp)
	st.Timers.Fetch += time.Since(t)
	if err != nil {
		return err
	}
	defer fetch.done()
	dopt := DecodeOptions{Topic: topics[sp.Seg.Header.Topic], Window: opt.Window, SkipCorrupt: opt.SkipCorrupt, Tags: opt.Tags,
		Layout: opt.Layout, Groups: opt.Groups, Points: pw}
	for j, f := range sp.Frames {
		t := time.Now()
		fb, err := fetch.frame(ctx, j)
		st.Timers.Fetch += time.Since(t)
		if err != nil {
			return err
		}
		if opt.Groups != nil {
			err = dec.decodeFrameKeyed(sp, f, fb, dopt, &(*b).Keyed, st)
		} else {
			err = dec.DecodeFrame(sp, f, fb, dopt, &(*b).Columns, st)
		}
		if err != nil {
			return err
		}
		if (*b).len() >= opt.BatchRows && !send() {
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

// Schema implements array.RecordReader: PointSchema, or a keyed schema (KeyLayout.Schema)
// when reading keyed rows.
func (r *PointReader) Schema() *arrow.Schema { return r.kind.schema() }

func (k batchKind) schema() *arrow.Schema {
	if k == kindPoints {
		return PointSchema
	}
	return KeyLayout{Wide: k == kindWide}.Schema()
}

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
		batches.put(b)
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
	Keyed
	kind batchKind // which of the two column sets it fills
	refs atomic.Int32
	rows int       // the columns' capacity, in rows
	mem  *memMeter // the reader that holds it
}

// len is the number of rows in the batch: points, or groups for keyed rows.
func (b *batch) len() int {
	if b.kind == kindPoints {
		return b.Columns.Len()
	}
	return b.Keyed.Len()
}

func (b *batch) bytes() int64 { return int64(b.rows) * b.kind.rowBytes() }

// maxIdle bounds what the process-wide free lists keep between uses: about what the
// default readers of two runs at once hold. Beyond it, returned items are left to the GC.
var maxIdle = 2*runtime.GOMAXPROCS(0) + 2

// batchPool is the process-wide free list of batches. Runs and passes reuse the same
// column buffers instead of allocating (and zeroing) fresh ones each time; a plain list
// rather than a sync.Pool, so a GC never drops warm batches.
type batchPool struct {
	mu   sync.Mutex
	free []*batch
}

var batches batchPool

// get returns a batch of kind whose columns hold exactly rows rows, counted in mem. Only
// an exact fit is reused, so that a reader never holds more than its MemoryStats bound.
func (p *batchPool) get(rows int, kind batchKind, mem *memMeter) *batch {
	var b *batch
	p.mu.Lock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if p.free[i].rows == rows && p.free[i].kind == kind {
			b = p.free[i]
			p.free = append(p.free[:i], p.free[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	if b == nil {
		b = &batch{rows: rows, kind: kind}
		if kind == kindPoints {
			b.Columns.grow(rows)
		} else {
			b.Keyed.grow(rows, kind == kindWide)
		}
	}
	b.mem = mem
	mem.add(b.bytes())
	return b
}

func (p *batchPool) put(b *batch) {
	b.mem.add(-b.bytes())
	b.mem = nil
	b.Columns.Reset()
	b.Keyed.Reset()
	p.mu.Lock()
	if len(p.free) >= maxIdle {
		// Evict the oldest: a reader of another batch size may have left it.
		p.free = append(p.free[:0], p.free[1:]...)
	}
	p.free = append(p.free, b)
	p.mu.Unlock()
}

// decoderPool is the process-wide free list of frame decoders: zstd state and the
// decompression buffer stay warm across splits, runs and passes.
type decoderPool struct {
	mu   sync.Mutex
	free []*FrameDecoder
}

var decoders decoderPool

// get returns a decoder whose buffers hold no more than maxRaw bytes: larger ones, left
// by a read of larger frames, is dropped (one allocation per read at most), so that a
// reader stays inside its MemoryStats bound.
func (p *decoderPool) get(maxRaw int) *FrameDecoder {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		d := p.free[n-1]
		p.free = p.free[:n-1]
		if cap(d.raw)+cap(d.sec) > maxRaw {
			d.raw, d.sec = nil, nil
		}
		return d
	}
	return NewFrameDecoder()
}

func (p *decoderPool) put(d *FrameDecoder) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < maxIdle {
		p.free = append(p.free, d)
		return
	}
	d.Close()
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
		batches.put(b)
	} else if n < 0 {
		panic(fmt.Sprintf("BUG: batch freed %d times too often", -n))
	}
}

var _ memory.Allocator = (*batch)(nil)

func (b *batch) record() arrow.RecordBatch {
	switch b.kind {
	case kindNarrow:
		n := b.Keyed.Len()
		return b.columns(KeyedSchema, n, []arrow.Array{
			b.prim(arrow.PrimitiveTypes.Uint64, n, arrow.Uint64Traits.CastToBytes(b.Key)),
			b.prim(arrow.PrimitiveTypes.Uint32, n, arrow.Uint32Traits.CastToBytes(b.Gid)),
			b.prim(arrow.PrimitiveTypes.Uint32, n, arrow.Uint32Traits.CastToBytes(b.Count)),
			b.prim(arrow.PrimitiveTypes.Uint64, n, arrow.Uint64Traits.CastToBytes(b.Ref)),
		})
	case kindWide:
		n := b.Keyed.Len()
		return b.columns(KeyedWideSchema, n, []arrow.Array{
			b.prim(arrow.PrimitiveTypes.Uint64, n, arrow.Uint64Traits.CastToBytes(b.Key)),
			b.prim(arrow.PrimitiveTypes.Int64, n, arrow.Int64Traits.CastToBytes(b.Keyed.Ts)),
			b.prim(arrow.PrimitiveTypes.Uint32, n, arrow.Uint32Traits.CastToBytes(b.Gid)),
			b.prim(arrow.PrimitiveTypes.Uint32, n, arrow.Uint32Traits.CastToBytes(b.Count)),
			b.prim(arrow.PrimitiveTypes.Uint64, n, arrow.Uint64Traits.CastToBytes(b.Ref)),
		})
	}
	n := b.Columns.Len()
	return b.columns(PointSchema, n, []arrow.Array{
		b.prim(arrow.PrimitiveTypes.Uint32, n, arrow.Uint32Traits.CastToBytes(b.Org)),
		b.prim(arrow.PrimitiveTypes.Uint64, n, arrow.Uint64Traits.CastToBytes(b.Metric)),
		b.prim(arrow.PrimitiveTypes.Uint64, n, arrow.Uint64Traits.CastToBytes(b.Context)),
		b.prim(arrow.PrimitiveTypes.Int64, n, arrow.Int64Traits.CastToBytes(b.Columns.Ts)),
		b.prim(arrow.PrimitiveTypes.Float64, n, arrow.Float64Traits.CastToBytes(b.Columns.Value)),
		b.prim(arrow.PrimitiveTypes.Int64, n, arrow.Int64Traits.CastToBytes(b.RecordTs)),
		b.prim(arrow.PrimitiveTypes.Uint16, n, arrow.Uint16Traits.CastToBytes(b.Topic)),
		b.prim(arrow.PrimitiveTypes.Int32, n, arrow.Int32Traits.CastToBytes(b.Partition)),
		b.prim(arrow.PrimitiveTypes.Int64, n, arrow.Int64Traits.CastToBytes(b.Offset)),
	})
}

// columns makes the record of cols, whose buffers b allocated: the batch returns to the
// pool once each of them has been freed.
func (b *batch) columns(schema *arrow.Schema, n int, cols []arrow.Array) arrow.RecordBatch {
	b.refs.Store(int32(len(cols)))
	rec := array.NewRecordBatch(schema, cols, int64(n))
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
