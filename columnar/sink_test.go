package columnar

import (
	"fmt"
	"math"
	"sync"
)

// memSink is an in-memory PointSink for the keyed reader's tests; run.PointStore is the
// real one (it spills, and run's tests read through it). Each writer appends to chunks
// of its own, and a reference is the chunk's number and the offset in it, as in the
// point store, so concurrent readers are exercised the same way.
type memSink struct {
	mu     sync.Mutex
	chunks [][]byte
}

type memWriter struct {
	s   *memSink
	id  int
	buf []byte
}

func (s *memSink) Writer() PointWriter { return &memWriter{s: s, id: -1} }

func (w *memWriter) Reserve(n int) ([]byte, error) {
	if w.id < 0 || cap(w.buf)-len(w.buf) < n {
		w.buf = make([]byte, 0, max(n, 4<<10))
		w.s.mu.Lock()
		w.id = len(w.s.chunks)
		w.s.chunks = append(w.s.chunks, w.buf)
		w.s.mu.Unlock()
	}
	return w.buf[len(w.buf) : len(w.buf)+n], nil
}

func (w *memWriter) Commit(used int) uint64 {
	ref := uint64(w.id)<<32 | uint64(len(w.buf))
	w.buf = w.buf[:len(w.buf)+used]
	w.s.mu.Lock()
	w.s.chunks[w.id] = w.buf
	w.s.mu.Unlock()
	return ref
}

func (w *memWriter) Close() error { return nil }

// Points returns the n bytes of points at ref.
func (s *memSink) Points(ref uint64, n int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, off := ref>>32, int(uint32(ref))
	if id >= uint64(len(s.chunks)) || n < 0 || off+n > len(s.chunks[id]) {
		return nil, fmt.Errorf("reference %#x to %d bytes is outside the sink", ref, n)
	}
	return s.chunks[id][off : off+n], nil
}

// testIDs numbers series and groups for the keyed reader's tests, in the order they are
// met; run.IDTable is the real table.
type testIDs struct {
	mu    sync.Mutex
	sids  map[SeriesKey]uint32
	keys  []SeriesKey
	provs []Provenance
}

// Assign is a GroupFunc.
func (t *testIDs) Assign(keys []SeriesKey, provs []Provenance, sids, gids []uint32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sids == nil {
		t.sids = map[SeriesKey]uint32{}
	}
	if len(t.provs)+len(provs) > math.MaxUint32 {
		return fmt.Errorf("more than %d groups", uint64(math.MaxUint32))
	}
	for i, k := range keys {
		sid, ok := t.sids[k]
		if !ok {
			sid = uint32(len(t.keys))
			t.sids[k] = sid
			t.keys = append(t.keys, k)
		}
		sids[i], gids[i] = sid, uint32(len(t.provs))
		t.provs = append(t.provs, provs[i])
	}
	return nil
}

func (t *testIDs) Key(sid uint32) SeriesKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.keys[sid]
}

func (t *testIDs) Provenance(gid uint32) Provenance {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.provs[gid]
}
