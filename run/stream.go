package run

import (
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
)

// StreamStats are a KeyedStream's running counts.
type StreamStats struct {
	PointsIn   int64 // points received
	Duplicates int64 // points dropped because another arrival of their (series, ts) won
	PointsOut  int64 // points handed on
	Series     int64 // series handed on
}

// KeyedStream assembles whole series from keyed rows (columnar.KeyLayout's schema), one
// row per group whose points, in strictly increasing ts order, it fetches by reference,
// sorted by k (and ts, for a wide layout): the rows of one series id arrive together, in order of their first
// ts. The stream merges a series' groups into one time-ordered run. A (series, ts)
// repeats once for each time it arrived; the stream keeps the point of the latest
// arrival, as later ranks the groups, and counts the others as duplicates, so the sort
// need not order arrivals. Groups that do not overlap (the common case) are simply
// concatenated. Each finished series goes to emit. A series may span batches; the stream
// copies what it needs, so a batch may be released as soon as Write returns. Not safe
// for concurrent use.
type KeyedStream struct {
	layout columnar.KeyLayout
	later  func(a, b uint32) bool
	points func(ref uint64, n int) ([]byte, error)
	emit   func(sid uint32, ts []int64, values []float64) error

	has     bool
	sid     uint32
	start   int64   // the first ts of the last group
	end     int64   // the greatest ts of the series so far
	overlap bool    // some group starts at or before an earlier group's end
	ts      []int64 // the series' groups, one after another
	vals    []float64
	runs    []run

	merge merger

	stats  StreamStats
	err    error
	closed bool
}

// run is one group of the series being assembled: ts[off:off+n] and vals[off:off+n].
type run struct {
	off, n int
	gid    uint32
}

// NewKeyedStream returns a stream over rows in layout l. later(a, b) reports whether
// group a arrived after group b; points returns the n bytes of points a row refers to
// (PointStore.Points; they need to stay valid only until the next call); emit
// receives each series (ts and values are reused after it returns).
func NewKeyedStream(l columnar.KeyLayout, later func(a, b uint32) bool, points func(ref uint64, n int) ([]byte, error), emit func(sid uint32, ts []int64, values []float64) error) *KeyedStream {
	return &KeyedStream{layout: l, later: later, points: points, emit: emit}
}

// Stats returns the running counts.
func (s *KeyedStream) Stats() StreamStats { return s.stats }

// checkSchema verifies that rec has exactly the columns of want (names and types, in
// order) and no nulls.
func checkSchema(rec arrow.RecordBatch, want *arrow.Schema) error {
	wf, got := want.Fields(), rec.Schema().Fields()
	if len(got) != len(wf) {
		return fmt.Errorf("record has %d columns, want %d (%s)", len(got), len(wf), want)
	}
	for i := range wf {
		if got[i].Name != wf[i].Name || !arrow.TypeEqual(got[i].Type, wf[i].Type) {
			return fmt.Errorf("column %d is %s %s, want %s %s", i, got[i].Name, got[i].Type, wf[i].Name, wf[i].Type)
		}
		if n := rec.Column(i).NullN(); n > 0 {
			return fmt.Errorf("column %s has %d nulls", wf[i].Name, n)
		}
	}
	return nil
}

// Write consumes one batch.
func (s *KeyedStream) Write(rec arrow.RecordBatch) error {
	if s.err != nil {
		return s.err
	}
	if s.closed {
		return fmt.Errorf("keyed stream write: %w", encoder.ErrClosed)
	}
	if err := checkSchema(rec, s.layout.Schema()); err != nil {
		s.err = fmt.Errorf("keyed stream write: %w", err)
		return s.err
	}
	// Decide the column access once per batch: raw slices, no per-row interface calls.
	c := 0
	keys := rec.Column(c).(*array.Uint64).Uint64Values()
	var tss []int64
	if s.layout.Wide {
		c++
		tss = rec.Column(c).(*array.Int64).Int64Values()
	}
	gids := rec.Column(c + 1).(*array.Uint32).Uint32Values()
	counts := rec.Column(c + 2).(*array.Uint32).Uint32Values()
	refs := rec.Column(c + 3).(*array.Uint64).Uint64Values()

	var tcol int64
	for i, k := range keys {
		if tss != nil {
			tcol = tss[i]
		}
		sid, start := s.layout.Split(k, tcol)
		n := int(counts[i])
		if n == 0 {
			s.err = fmt.Errorf("keyed stream write: row %d: a group without points", i)
			return s.err
		}
		b, err := s.points(refs[i], n*columnar.RunPointBytes)
		if err != nil {
			s.err = fmt.Errorf("keyed stream write: row %d: %w", i, err)
			return s.err
		}
		if !s.has || sid != s.sid {
			if s.has {
				if sid < s.sid {
					s.err = fmt.Errorf("keyed stream write: row %d: series id %d after %d: %w", i, sid, s.sid, encoder.ErrOutOfOrder)
					return s.err
				}
				if err := s.flush(); err != nil {
					return err
				}
			}
			s.sid, s.has, s.end = sid, true, math.MinInt64
		} else if start < s.start {
			s.err = fmt.Errorf("keyed stream write: row %d: series id %d group starting at %d after one starting at %d: %w", i, sid, start, s.start, encoder.ErrOutOfOrder)
			return s.err
		}
		s.start = start

		// Copy the group's points, checking that they are the sorted run the key says.
		off := len(s.ts)
		s.ts, s.vals = slices.Grow(s.ts, n)[:off+n], slices.Grow(s.vals, n)[:off+n]
		ts, vals := s.ts[off:], s.vals[off:]
		prev := int64(math.MinInt64)
		for j := range ts {
			t, bits := columnar.RunPoint(b, j)
			if j > 0 && t <= prev {
				s.err = fmt.Errorf("keyed stream write: row %d: point %d: ts %d after %d: %w", i, j, t, prev, encoder.ErrOutOfOrder)
				return s.err
			}
			ts[j], vals[j] = t, math.Float64frombits(bits)
			prev = t
		}
		if ts[0] != start {
			s.err = fmt.Errorf("keyed stream write: row %d: key says the group starts at %d, its first point is at %d", i, start, ts[0])
			return s.err
		}
		if start <= s.end {
			s.overlap = true
		}
		s.end = max(s.end, ts[n-1])
		s.runs = append(s.runs, run{off: off, n: n, gid: gids[i]})
		s.stats.PointsIn += int64(n)
	}
	return nil
}

func (s *KeyedStream) flush() error {
	if !s.has {
		return nil
	}
	ts, vals := s.ts, s.vals
	if s.overlap {
		var dups int64
		ts, vals, dups = s.merge.merge(s.ts, s.vals, s.runs, s.later)
		s.stats.Duplicates += dups
	}
	if err := s.emit(s.sid, ts, vals); err != nil {
		s.err = fmt.Errorf("keyed stream: %w", err)
		return s.err
	}
	s.stats.Series++
	s.stats.PointsOut += int64(len(ts))
	s.has, s.overlap = false, false
	s.ts, s.vals, s.runs = s.ts[:0], s.vals[:0], s.runs[:0]
	return nil
}

// merger merges overlapping runs of one series; its buffers are reused.
type merger struct {
	heap []int // indexes of runs with points left, least head ts first
	pos  []int // next point of each run
	ts   []int64
	vals []float64
}

// merge merges runs (groups of one series, each strictly increasing, over ts and vals)
// into one strictly increasing run. Of the points sharing a ts it keeps the one whose
// group later ranks latest, and counts the others as dups.
func (m *merger) merge(ts []int64, vals []float64, runs []run, later func(a, b uint32) bool) ([]int64, []float64, int64) {
	m.ts, m.vals = m.ts[:0], m.vals[:0]
	m.pos = slices.Grow(m.pos[:0], len(runs))[:len(runs)]
	m.heap = m.heap[:0]
	for i, r := range runs {
		m.pos[i] = r.off
		m.heap = append(m.heap, i)
	}
	head := func(h int) int64 { return ts[m.pos[m.heap[h]]] }
	less := func(a, b int) bool {
		ta, tb := head(a), head(b)
		return ta < tb || ta == tb && m.heap[a] < m.heap[b]
	}
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(m.heap) {
				return
			}
			if r := l + 1; r < len(m.heap) && less(r, l) {
				l = r
			}
			if !less(l, i) {
				return
			}
			m.heap[i], m.heap[l] = m.heap[l], m.heap[i]
			i = l
		}
	}
	for i := len(m.heap)/2 - 1; i >= 0; i-- {
		down(i)
	}
	var dups int64
	var gid uint32 // the group of the last point kept
	for len(m.heap) > 0 {
		ri := m.heap[0]
		r := &runs[ri]
		p := m.pos[ri]
		if n := len(m.ts); n > 0 && ts[p] == m.ts[n-1] {
			dups++
			if later(r.gid, gid) {
				m.vals[n-1], gid = vals[p], r.gid
			}
		} else {
			m.ts, m.vals, gid = append(m.ts, ts[p]), append(m.vals, vals[p]), r.gid
		}
		if m.pos[ri] = p + 1; m.pos[ri] == r.off+r.n {
			last := len(m.heap) - 1
			m.heap[0] = m.heap[last]
			m.heap = m.heap[:last]
		}
		down(0)
	}
	return m.ts, m.vals, dups
}

// Close hands the last series on.
func (s *KeyedStream) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err != nil {
		return s.err
	}
	return s.flush()
}
