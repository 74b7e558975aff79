//go:build duckdb_arrow

package run

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"slices"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// SeriesMerger reads the published series of a store as its users see them: each series
// once, in key order, with the points of every window's own parts and of every late
// output, inside the scope. A (series, ts) written by more than one output is taken
// from the latest arrival. Across outputs that is the one with the later segment start
// (docs/run.md, Late data): a late copy (in the late output of a window after the
// point's own) beats the on-time copy, which beats an early copy (in the late output of
// a window before it), and of two late or two early copies the later window's wins.
// Each output's parts are read one at a time, in key order. It implements
// encoder.SeriesSource.
type SeriesMerger struct {
	h    sourceHeap
	took []*seriesSource // the sources the current series came from, advanced by Next
	cur  encoder.Series
	at   *encoder.Series
	pts  []rankedPoint
	err  error
}

// seriesSource is one run output: its parts, read in order, one series at a time.
type seriesSource struct {
	ctx  context.Context
	st   storage.Store
	keys []string
	opts []encoder.IterOpt
	// The run's window. A late output ranks its copies by it and by whether a point is
	// late (before from) or early (at or after to); own parts rank in between.
	late     bool
	from, to int64
	it       *encoder.SeriesIterator
	key      string
}

// next moves to the source's next series, opening its next part when one ends.
func (s *seriesSource) next() (bool, error) {
	for {
		if s.it != nil {
			if s.it.Next() {
				return true, nil
			}
			if err := s.it.Err(); err != nil {
				return false, fmt.Errorf("decode %s: %w", s.key, err)
			}
			s.it = nil
		}
		if len(s.keys) == 0 {
			return false, nil
		}
		s.key, s.keys = s.keys[0], s.keys[1:]
		r, err := encoder.OpenStored(s.ctx, s.st, s.key)
		if err != nil {
			return false, err
		}
		s.it = r.Iterator(nil, s.opts...)
	}
}

// rank orders the copies of a point at ts from this source: higher arrived later.
func (s *seriesSource) rank(ts int64) (class int, window int64) {
	switch {
	case !s.late:
		return 0, 0
	case ts < s.from:
		return 1, s.from
	}
	return -1, s.from
}

// OpenSeries returns a merger over the published runs of st that the scope selects.
func OpenSeries(ctx context.Context, st storage.Store, scope query.Scope) (*SeriesMerger, error) {
	runs, err := Published(ctx, st)
	if err != nil {
		return nil, err
	}
	win := scope.TsRange()
	var opts []encoder.IterOpt
	if win != columnar.AllTime {
		opts = append(opts, encoder.IterTimeRange(win.From, win.To-1))
	}
	m := &SeriesMerger{}
	for _, r := range runs {
		if scope.Shard != "" && r.Shard != scope.Shard {
			continue
		}
		var srcs []*seriesSource
		if len(r.Parts) > 0 && win.Overlaps(r.From, r.To-1) {
			srcs = append(srcs, &seriesSource{keys: partKeys(r.Parts), from: r.From, to: r.To})
		}
		// A late output holds points of other windows: whatever the scope's window,
		// its iterator keeps only the points inside it.
		if len(r.LateParts) > 0 {
			srcs = append(srcs, &seriesSource{keys: partKeys(r.LateParts), late: true, from: r.From, to: r.To})
		}
		for _, s := range srcs {
			s.ctx, s.st, s.opts = ctx, st, opts
			ok, err := s.next()
			if err != nil {
				return nil, err
			}
			if ok {
				m.h = append(m.h, s)
			}
		}
	}
	heap.Init(&m.h)
	return m, nil
}

func partKeys(ps []Part) []string {
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = p.Key
	}
	return keys
}

// Next moves to the next series; false at the end or on an error.
func (m *SeriesMerger) Next() bool {
	if m.err != nil {
		return false
	}
	for _, s := range m.took {
		ok, err := s.next()
		if err != nil {
			m.err = err
			return false
		}
		if ok {
			heap.Push(&m.h, s)
		}
	}
	m.took = m.took[:0]
	if len(m.h) == 0 {
		return false
	}
	key := m.h[0].it.At().Key
	for len(m.h) > 0 && m.h[0].it.At().Key == key {
		m.took = append(m.took, heap.Pop(&m.h).(*seriesSource))
	}
	if len(m.took) == 1 && !m.took[0].late {
		m.at = m.took[0].it.At() // the common case: one window's own copy
		return true
	}
	m.merge(key)
	m.at = &m.cur
	return true
}

// rankedPoint is one copy of a point and how late it arrived.
type rankedPoint struct {
	ts     int64
	v      float64
	class  int
	window int64
}

// merge joins the copies of one series from m.took into m.cur, keeping of each ts the
// latest arrival.
func (m *SeriesMerger) merge(key columnar.SeriesKey) {
	m.pts = m.pts[:0]
	var tags *seriesSource // the source whose arrivals end last: a later window, late first
	for _, s := range m.took {
		sr := s.it.At()
		for i, ts := range sr.Ts {
			c, w := s.rank(ts)
			m.pts = append(m.pts, rankedPoint{ts, sr.Values[i], c, w})
		}
		if tags == nil || s.to > tags.to || s.to == tags.to && s.late {
			tags = s
		}
	}
	slices.SortFunc(m.pts, func(a, b rankedPoint) int {
		return cmp.Or(cmp.Compare(a.ts, b.ts), cmp.Compare(a.class, b.class), cmp.Compare(a.window, b.window))
	})
	m.cur.Reset()
	m.cur.Key, m.cur.Tags = key, tags.it.At().Tags
	for i, p := range m.pts {
		if i+1 < len(m.pts) && m.pts[i+1].ts == p.ts {
			continue // a later arrival of this ts follows
		}
		m.cur.Ts, m.cur.Values = append(m.cur.Ts, p.ts), append(m.cur.Values, p.v)
	}
}

// At returns the current series, valid until the next call to Next.
func (m *SeriesMerger) At() *encoder.Series { return m.at }

// Err returns the error that stopped the merger, if any.
func (m *SeriesMerger) Err() error { return m.err }

// sourceHeap orders sources by their current series key.
type sourceHeap []*seriesSource

func (h sourceHeap) Len() int { return len(h) }
func (h sourceHeap) Less(i, j int) bool {
	return h[i].it.At().Key.Compare(h[j].it.At().Key) < 0
}
func (h sourceHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *sourceHeap) Push(x any)   { *h = append(*h, x.(*seriesSource)) }
func (h *sourceHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	*h = old[:len(old)-1]
	return s
}
