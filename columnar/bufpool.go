package columnar

import "sync"

// BufferPool is a process-wide free list of buffers: runs one after the other reuse the
// same memory instead of faulting in fresh pages, which measured as a large share of a
// run's system time. A plain list rather than a sync.Pool, so that a GC does not drop
// them between runs. The zero value keeps nothing; set Max.
type BufferPool struct {
	Max    int // buffers kept idle
	MaxCap int // larger buffers are left to the GC (0: any size)

	mu   sync.Mutex
	free [][]byte
}

// Get returns an empty buffer, or nil if none is idle.
func (l *BufferPool) Get() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b[:0]
	}
	return nil
}

// Put keeps b for a later Get, unless enough are idle or b is too large.
func (l *BufferPool) Put(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < l.Max && (l.MaxCap == 0 || cap(b) <= l.MaxCap) {
		l.free = append(l.free, b[:0])
	}
}
