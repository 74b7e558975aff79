package storage

import (
	"context"
	"fmt"
	"sync/atomic"
)

// BufferPool is a bounded pool of equal-sized upload buffers: one buffer holds one
// multipart part. Get blocks while all buffers are taken, so memory for in-flight uploads
// never exceeds Cap()·Size(). The sink shares one pool between all its uploads and pauses
// fetching from Kafka while the pool is exhausted (InUse() == Cap()).
//
// Buffers are allocated lazily and kept for reuse after Put; the pool is safe for
// concurrent use.
type BufferPool struct {
	size  int
	sem   chan struct{} // one token per buffer handed out
	free  chan []byte   // returned buffers, for reuse
	inUse atomic.Int64

	metrics atomic.Pointer[s3Metrics]
}

// NewBufferPool returns a pool of at most maxBuffers buffers of size bytes each.
func NewBufferPool(size, maxBuffers int) (*BufferPool, error) {
	if size <= 0 {
		return nil, fmt.Errorf("buffer pool: buffer size %d must be positive", size)
	}
	if maxBuffers <= 0 {
		return nil, fmt.Errorf("buffer pool: max buffers %d must be positive", maxBuffers)
	}
	return &BufferPool{
		size: size,
		sem:  make(chan struct{}, maxBuffers),
		free: make(chan []byte, maxBuffers),
	}, nil
}

// Size returns the length of every buffer.
func (p *BufferPool) Size() int { return p.size }

// Cap returns how many buffers the pool may hand out at once.
func (p *BufferPool) Cap() int { return cap(p.sem) }

// InUse returns how many buffers are handed out now.
func (p *BufferPool) InUse() int { return int(p.inUse.Load()) }

// Get returns a buffer of Size() bytes with unspecified contents, waiting while all are in
// use. It fails only when ctx ends first. The caller must Put it back exactly once.
func (p *BufferPool) Get(ctx context.Context) ([]byte, error) {
	select {
	case p.sem <- struct{}{}:
	default:
		// Slow path: the pool is exhausted; wait for a Put.
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	p.observe(p.inUse.Add(1))
	select {
	case b := <-p.free:
		return b, nil
	default:
		return make([]byte, p.size), nil
	}
}

// Put returns a buffer that Get handed out.
func (p *BufferPool) Put(b []byte) {
	if cap(b) < p.size {
		panic("BUG: BufferPool.Put of a buffer the pool did not hand out")
	}
	select {
	case p.free <- b[:p.size]:
	default:
	}
	p.observe(p.inUse.Add(-1))
	<-p.sem
}

func (p *BufferPool) observe(inUse int64) {
	if m := p.metrics.Load(); m != nil {
		m.poolInUse.Set(float64(inUse))
	}
}

func (p *BufferPool) attach(m *s3Metrics) {
	m.poolCap.Set(float64(p.Cap()))
	p.metrics.Store(m)
}
