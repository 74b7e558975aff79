package run

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// PointStore holds the points of a run's groups while DuckDB sorts the groups: a keyed
// row carries a reference into the store instead of its points, so the sort moves 24
// bytes per group whatever the group's size (DuckDB 1.5's sort does not spill large
// blob payloads; fixed-size rows it spills well). Each reader goroutine appends through
// its own PointWriter into chunks of its own; full chunks stay in memory up to a bound
// and beyond it go, oldest first, to a file in the temp directory. Points are read back
// by reference (Points) once the readers are done. See docs/run.md.
type PointStore struct {
	dir    string
	memory int64

	mu      sync.Mutex
	chunks  []storeChunk
	full    []int // full chunks still in memory, oldest first
	inMem   int64 // bytes of chunk buffers in memory
	file    *os.File
	size    int64 // bytes in file
	scratch []byte
	stats   PointStoreStats
	closed  bool
}

// PointStoreStats are a store's counts.
type PointStoreStats struct {
	Bytes        int64 `json:"bytes"`         // bytes of points stored
	PeakMemory   int64 `json:"peak_memory"`   // most bytes of chunks in memory at once
	SpilledBytes int64 `json:"spilled_bytes"` // bytes of points moved to the temp file
}

// storeChunk is one chunk: in memory (buf) or, once spilled, at off in the file.
type storeChunk struct {
	buf  []byte
	off  int64
	n    int  // bytes used, once full
	full bool // its writer moved on; until then it grows past n
}

// limit is how far the chunk's committed bytes may reach: the bytes its writer
// committed, all inside the buffer, until it is full.
func (c *storeChunk) limit() int {
	if c.full {
		return c.n
	}
	return cap(c.buf)
}

// pointChunk is the size of a store chunk; a larger group gets a chunk of its own size.
const pointChunk = 1 << 20

// pointChunks holds idle store chunks: about what the largest runs of the bench hold, so
// that the next run reuses warm memory.
var pointChunks = columnar.BufferPool{Max: 128, MaxCap: pointChunk}

// NewPointStore returns a store that keeps up to memory bytes of points in memory and
// spills the rest to a file in dir (the system's temp directory if dir is "").
func NewPointStore(dir string, memory int64) *PointStore {
	return &PointStore{dir: dir, memory: memory}
}

// PointWriter appends groups' points to a store for one goroutine.
type PointWriter struct {
	s   *PointStore
	id  int // the current chunk, -1 before the first
	buf []byte
}

// Writer returns a new writer. Writers may be used concurrently with each other; Close
// each one before reading the store.
func (s *PointStore) Writer() columnar.PointWriter { return &PointWriter{s: s, id: -1} }

// Reserve returns room for n bytes of points, to be kept with Commit.
func (w *PointWriter) Reserve(n int) ([]byte, error) {
	if w.id < 0 || cap(w.buf)-len(w.buf) < n {
		if err := w.next(n); err != nil {
			return nil, err
		}
	}
	return w.buf[len(w.buf) : len(w.buf)+n], nil
}

// Commit keeps the first used bytes of the last reservation and returns their reference.
func (w *PointWriter) Commit(used int) uint64 {
	ref := uint64(w.id)<<32 | uint64(len(w.buf))
	w.buf = w.buf[:len(w.buf)+used]
	return ref
}

// next finishes the current chunk and starts one with room for n bytes.
func (w *PointWriter) next(n int) error {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("point store: write after close")
	}
	if w.id >= 0 {
		s.finish(w.id, w.buf)
	}
	if len(s.chunks) >= 1<<31 {
		return fmt.Errorf("point store: more than %d chunks", 1<<31)
	}
	var buf []byte
	if n <= pointChunk {
		if buf = pointChunks.Get(); buf == nil {
			buf = make([]byte, 0, pointChunk)
		}
	} else {
		buf = make([]byte, 0, n)
	}
	w.id, w.buf = len(s.chunks), buf
	s.chunks = append(s.chunks, storeChunk{buf: buf})
	s.inMem += int64(cap(buf))
	s.stats.PeakMemory = max(s.stats.PeakMemory, s.inMem)
	return s.spillOver()
}

// Close finishes the writer's chunk.
func (w *PointWriter) Close() error {
	if w.id < 0 {
		return nil
	}
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finish(w.id, w.buf)
	w.id, w.buf = -1, nil
	return s.spillOver()
}

func (s *PointStore) finish(id int, buf []byte) {
	s.chunks[id].buf, s.chunks[id].n, s.chunks[id].full = buf, len(buf), true
	s.stats.Bytes += int64(len(buf))
	s.full = append(s.full, id)
}

// spillOver moves the oldest full chunks to the file while memory is over the bound.
func (s *PointStore) spillOver() error {
	for s.inMem > s.memory && len(s.full) > 0 {
		id := s.full[0]
		s.full = s.full[1:]
		c := &s.chunks[id]
		if s.file == nil {
			f, err := storage.SpillFile(s.dir, "tailor-points-*")
			if err != nil {
				return &ResourceError{Err: fmt.Errorf("point store: spill: %w", err)}
			}
			s.file = f
		}
		if _, err := s.file.WriteAt(c.buf[:c.n], s.size); err != nil {
			return fmt.Errorf("point store: spill to %s: %w", s.file.Name(), err)
		}
		c.off = s.size
		s.size += int64(c.n)
		s.stats.SpilledBytes += int64(c.n)
		s.inMem -= int64(cap(c.buf))
		pointChunks.Put(c.buf)
		c.buf = nil
	}
	return nil
}

// Points returns the n bytes of points at ref. Points in memory are returned in place;
// spilled ones are read into a buffer that the next call reuses. A reference may be read
// as soon as Commit returned it.
func (s *PointStore) Points(ref uint64, n int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, off := ref>>32, int(uint32(ref))
	if id >= uint64(len(s.chunks)) || n < 0 || off+n > s.chunks[id].limit() {
		return nil, fmt.Errorf("point store: reference %#x to %d bytes is outside the store", ref, n)
	}
	c := &s.chunks[id]
	if c.buf != nil {
		return c.buf[off : off+n], nil
	}
	if cap(s.scratch) < n {
		s.scratch = make([]byte, n)
	}
	b := s.scratch[:n]
	if _, err := s.file.ReadAt(b, c.off+int64(off)); err != nil {
		return nil, fmt.Errorf("point store: read back from %s: %w", s.file.Name(), err)
	}
	return b, nil
}

// Stats returns the store's counts.
func (s *PointStore) Stats() PointStoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close returns the memory to the pool and closes the (already unlinked) file. Writers
// must be closed first; references are invalid after.
func (s *PointStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for i := range s.chunks {
		if c := &s.chunks[i]; c.buf != nil {
			pointChunks.Put(c.buf)
			c.buf = nil
		}
	}
	s.chunks, s.full, s.inMem = nil, nil, 0
	if s.file == nil {
		return nil
	}
	return s.file.Close()
}
