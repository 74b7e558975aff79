//go:build duckdb_arrow

package run

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// SeriesMerger reads the published series of a store as its users see them: each series
// once, in key order, with the points of every window's own parts and of every late
// output, inside the scope, without the points a tombstone deletes. A (series, ts)
// written by more than one output is taken from the latest arrival: the copy whose
// arrival window is the latest (docs/run.md, Late data). An own copy arrived in its
// own window, a late output's copies in the late output's window, and a derived run's
// folded copies in the window its arrival parts record (docs/lifecycle.md, "Arrival
// ranks"); so a late copy beats the on-time copy, which beats an early copy, and of two
// late or two early copies the later window's wins. Of two copies with the same arrival
// (a run made after the compaction that holds the same window), the run of the smaller
// window is the newer one and wins. Each output's parts are read in key order, decoded
// ahead by a pool of workers (see scan.go), and an output is opened only once the merge
// reaches its first org. It implements encoder.SeriesSource; Close it when done.
type SeriesMerger struct {
	h    sourceHeap
	took []*seriesSource // the sources the current series came from, advanced by Next
	cur  encoder.Series
	at   *encoder.Series
	pts  []rankedPoint
	err  error

	tomb Tombstones
	rs   []tsRange
	// keepArrivals makes Next fill arr: each point's arrival window start.
	keepArrivals bool
	arr          []int64
	deleted      uint64 // points the tombstones hid
	copies       uint64 // points read from every source (before merging)

	sc *scanner
	// pending are the sources not opened yet, by their first org, descending.
	pending []*seriesSource
	all     []*seriesSource
	own     []*seriesSource // merge's scratch
}

// seriesSource is one run output: its parts, read in order, one series at a time.
type seriesSource struct {
	// The run's window. A late output ranks its copies by it and by whether a point is
	// late (before from) or early (at or after to); own parts rank in between.
	late     bool
	from, to int64
	// base is the window size the arrival rule applied to: an own copy arrived in the
	// base window of its ts.
	base int64
	// arr, when not nil, holds the exact arrival of the points a derived run folded in.
	arr *arrivalSource
	it  *sourceStream
	// firstOrg bounds the orgs of the output from below: it opens no earlier.
	firstOrg uint32
}

// next moves to the source's next series.
func (s *seriesSource) next() (bool, error) {
	if s.it.Next() {
		return true, nil
	}
	return false, s.it.Err()
}

// arrival is the start of the window in which the copy of the point at ts arrived,
// unless the source's arrival parts say otherwise.
func (s *seriesSource) arrival(ts int64) int64 {
	if s.late {
		return s.from
	}
	return floorTs(ts, s.base)
}

// floorTs is the start of the epoch-aligned window of size ms that holds ts.
func floorTs(ts, size int64) int64 { return ts - ((ts%size)+size)%size }

// arrivalSource reads a derived run's arrival parts in key order, alongside the run's
// own and late parts. Its values are arrival windows, so it decodes them whatever
// columns the statement reads.
type arrivalSource struct {
	src  storedParts
	ok   bool // src is at a series
	done bool
}

// seek returns the arrivals of series k (ts ascending, values the arrival window's
// start), or nil when the run recorded none for it. Keys must not decrease.
func (a *arrivalSource) seek(k columnar.SeriesKey) (*encoder.Series, error) {
	for !a.done {
		if a.ok {
			switch c := a.src.it.At().Key.Compare(k); {
			case c == 0:
				return a.src.it.At(), nil
			case c > 0:
				return nil, nil
			}
		}
		ok, err := a.src.next()
		if err != nil {
			return nil, err
		}
		a.ok, a.done = ok, !ok
	}
	return nil, nil
}

// storedParts reads parts one after the other, one series at a time, on the caller.
type storedParts struct {
	ctx  context.Context
	st   storage.Store
	keys []string
	opts []encoder.IterOpt
	it   *encoder.SeriesIterator
	key  string
}

// next moves to the next series, opening the next part when one ends.
func (s *storedParts) next() (bool, error) {
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

// OpenSeries returns a merger over the published runs of st that the scope selects,
// hiding the points of st's tombstones.
func OpenSeries(ctx context.Context, st storage.Store, scope query.Scope) (*SeriesMerger, error) {
	return OpenSeriesWith(ctx, st, ScanOptions{Scope: scope})
}

// OpenSeriesWith returns a merger over the published series of st that opt selects,
// reading only what its restriction admits (scan.go). Every point it returns is in the
// scope; points outside the restriction may be returned too.
func OpenSeriesWith(ctx context.Context, st storage.Store, opt ScanOptions) (*SeriesMerger, error) {
	r := opt.Restriction.Intersect(opt.Scope.Restriction())
	sc := newScanner(ctx, st, r, opt.Workers)
	m := &SeriesMerger{sc: sc}
	if r.Empty() {
		return m, nil
	}
	var err error
	if m.tomb, err = LoadTombstones(ctx, st); err != nil {
		sc.close()
		return nil, err
	}
	runs, err := planScan(ctx, sc, opt.Scope)
	if err != nil {
		sc.close()
		return nil, err
	}
	var keep []*Manifest
	for _, run := range runs {
		if opt.Scope.Shard == "" || run.Shard == opt.Scope.Shard {
			keep = append(keep, run)
		}
	}
	// A derived run's exact arrivals are always read: whether another run overlaps it
	// is known only of the runs the plan read, not of those it skipped.
	m.addRuns(keep, true)
	return m, nil
}

// mergeOptions configure openMerger.
type mergeOptions struct {
	window columnar.TimeRange
	tomb   Tombstones
	// exact loads every derived run's arrival parts, not only where another run
	// overlaps it; keepArrivals fills SeriesMerger.arr.
	exact, keepArrivals bool
}

// openMerger merges the outputs of runs, reading every series and value inside the
// window. A derived run's arrival parts are read when the merge needs them: when another
// of runs overlaps it (of the same shard), or when opt asks.
func openMerger(ctx context.Context, st storage.Store, runs []*Manifest, opt mergeOptions) (*SeriesMerger, error) {
	var r query.Restriction
	if w := opt.window; w != columnar.AllTime {
		r.Ts = &query.TsRange{Min: w.From, Max: w.To - 1}
	}
	m := &SeriesMerger{sc: newScanner(ctx, st, r, 0), tomb: opt.tomb, keepArrivals: opt.keepArrivals}
	if r.Empty() {
		return m, nil
	}
	m.addRuns(runs, opt.exact)
	return m, nil
}

// addRuns adds the sources of runs' own and late parts that the scan admits; they open
// when the merge reaches their first org.
func (m *SeriesMerger) addRuns(runs []*Manifest, exact bool) {
	sc := m.sc
	var opts []encoder.IterOpt
	if sc.lo != math.MinInt64 || sc.hi != math.MaxInt64 {
		opts = append(opts, encoder.IterTimeRange(sc.lo, sc.hi))
	}
	for _, run := range runs {
		var arr *arrivalSource
		if len(run.ArrivalParts) > 0 && (exact || overlapsAnother(run, runs)) {
			arr = &arrivalSource{src: storedParts{ctx: sc.ctx, st: sc.st, keys: sc.admitted(run.ArrivalParts), opts: opts}}
		}
		// A late output holds points of other windows: whatever the scope's window,
		// its parts' ranges decide, and its readers keep only the points inside it.
		own := overlapsTs(run.From, run.To-1, sc.lo, sc.hi)
		for _, late := range []bool{false, true} {
			parts := run.Parts
			if late {
				parts = run.LateParts
			}
			var keep []Part
			for _, p := range parts {
				if (late || own) && sc.admits(p) {
					keep = append(keep, p)
				} else {
					sc.skipPart(p)
				}
			}
			if len(keep) == 0 {
				continue
			}
			s := &seriesSource{it: newSourceStream(sc, keep), late: late, from: run.From, to: run.To, base: run.runWindow()}
			if len(keep[0].Orgs) == 2 {
				s.firstOrg = keep[0].Orgs[0]
			}
			if arr != nil {
				if late { // own and late parts walk the arrivals apart
					a := *arr
					s.arr = &a
				} else {
					s.arr = arr
				}
			}
			m.pending = append(m.pending, s)
			m.all = append(m.all, s)
		}
	}
	slices.SortStableFunc(m.pending, func(a, b *seriesSource) int { return cmp.Compare(b.firstOrg, a.firstOrg) })
}

func overlapsTs(from, to, lo, hi int64) bool { return from <= hi && to >= lo }

// overlapsAnother reports whether another run of r's shard overlaps r's window.
func overlapsAnother(r *Manifest, runs []*Manifest) bool {
	for _, o := range runs {
		if o != r && o.Shard == r.Shard && o.From < r.To && r.From < o.To {
			return true
		}
	}
	return false
}

// prefetchSources is how many pending sources, beyond those the merge has reached,
// start decoding ahead, so that the next orgs' parts are ready when the merge gets there.
const prefetchSources = 256

// activate opens the pending sources that may hold the next series: those whose first
// org is at most the smallest key's org in the heap (when the heap is empty, those of
// the smallest first org). Every source of a batch starts decoding before the merger
// waits for any, and the next prefetchSources pending ones start too.
func (m *SeriesMerger) activate() error {
	for len(m.pending) > 0 {
		bound := m.pending[len(m.pending)-1].firstOrg
		if len(m.h) > 0 {
			if top := m.h[0].it.At().Key.Org; top < bound {
				return nil
			} else {
				bound = top
			}
		}
		n := len(m.pending)
		for n > 0 && m.pending[n-1].firstOrg <= bound {
			n--
		}
		batch := m.pending[n:]
		m.pending = m.pending[:n]
		for i := len(m.pending) - 1; i >= max(0, len(m.pending)-prefetchSources); i-- {
			m.pending[i].it.fill()
		}
		for _, s := range batch {
			s.it.fill()
		}
		for i := len(batch) - 1; i >= 0; i-- {
			ok, err := batch[i].next()
			if err != nil {
				return err
			}
			if ok {
				heap.Push(&m.h, batch[i])
			}
		}
	}
	return nil
}

// step moves to the next series key, takes its sources into m.took and looks up the
// tombstones of the key.
func (m *SeriesMerger) step() bool {
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
	if err := m.activate(); err != nil {
		m.err = err
		return false
	}
	if len(m.h) == 0 {
		return false
	}
	key := m.h[0].it.At().Key
	for len(m.h) > 0 && m.h[0].it.At().Key == key {
		m.took = append(m.took, heap.Pop(&m.h).(*seriesSource))
	}
	for _, s := range m.took {
		m.copies += uint64(len(s.it.At().Ts))
	}
	m.rs = m.tomb.ranges(key, m.rs)
	return true
}

// plain reports whether the current series is one window's own copy, served as read:
// the common case.
func (m *SeriesMerger) plain() bool {
	return len(m.took) == 1 && !m.took[0].late && len(m.rs) == 0 && !m.keepArrivals
}

// Next moves to the next series; false at the end or on an error (the merger is then
// closed: Close is for stopping early).
func (m *SeriesMerger) Next() bool {
	for m.step() {
		if m.plain() {
			m.at = m.took[0].it.At()
			return true
		}
		m.cur.Reset()
		m.cur.Key, m.cur.Tags = m.took[0].it.At().Key, append(m.cur.Tags, m.tags()...)
		var err error
		if m.cur.Ts, m.cur.Values, err = m.merge(m.cur.Ts, m.cur.Values); err != nil {
			m.err = err
			break
		}
		if len(m.cur.Ts) == 0 {
			continue // every point of the series is deleted
		}
		m.at = &m.cur
		return true
	}
	m.Close()
	return false
}

// appendNext moves to the next series and appends its points to ts and vals (no values
// when none is read), merging straight into them: what the series view's batches use,
// saving a copy. It returns the series' key and tags (valid until the next call).
func (m *SeriesMerger) appendNext(ts []int64, vals []float64) (_ columnar.SeriesKey, tags []string, _ []int64, _ []float64, ok bool) {
	for m.step() {
		src := m.took[0].it.At()
		if m.plain() {
			return src.Key, src.Tags, append(ts, src.Ts...), append(vals, src.Values...), true
		}
		n := 0
		for _, s := range m.took {
			n += len(s.it.At().Ts)
		}
		ts = slices.Grow(ts, n) // at most what its copies hold: no regrowth while merging
		if !m.sc.noVals {
			vals = slices.Grow(vals, n)
		}
		n0 := len(ts)
		var err error
		if ts, vals, err = m.merge(ts, vals); err != nil {
			m.err = err
			break
		}
		if len(ts) == n0 {
			continue // every point of the series is deleted
		}
		return src.Key, m.tags(), ts, vals, true
	}
	m.Close()
	return columnar.SeriesKey{}, nil, ts, vals, false
}

// Close stops the merger's workers and closes the files it has open.
func (m *SeriesMerger) Close() error {
	if m.sc == nil {
		return nil
	}
	m.sc.cancel()
	for _, s := range m.all {
		s.it.release()
	}
	m.sc.close()
	return nil
}

// Reads returns what the merger read and skipped so far.
func (m *SeriesMerger) Reads() query.ReadStats {
	if m.sc == nil {
		return query.ReadStats{}
	}
	return m.sc.reads()
}

// rankedPoint is one copy of a point and when it arrived: the start of its arrival
// window, and the window size of the run that holds it (the smaller is newer).
type rankedPoint struct {
	ts      int64
	v       float64
	arrival int64
	size    int64
}

// newer orders two copies of a point: > 0 when a arrived after b.
func (a *rankedPoint) newer(b *rankedPoint) int {
	return cmp.Or(cmp.Compare(a.arrival, b.arrival), cmp.Compare(b.size, a.size))
}

// tags are the current series' tags: those of the source whose arrivals end last (a
// later window, a late output before own parts).
func (m *SeriesMerger) tags() []string {
	var tags *seriesSource
	for _, s := range m.took {
		if tags == nil || s.to > tags.to || s.to == tags.to && s.late {
			tags = s
		}
	}
	return tags.it.At().Tags
}

// merge appends the points of the copies of the current series in m.took to ts and
// vals, keeping of each ts the latest arrival (of the copies sorted by ts then arrival,
// the last) and leaving out what the tombstones delete.
//
// The own copies of runs of distinct windows hold distinct ts, in window order: when
// nothing is deleted and no arrival is kept, they are one sorted run, copied in slices
// between the few late copies, which alone are sorted. Copies with exact arrivals (a
// derived run's folded points) and own copies of overlapping windows (two shards' runs
// of one window after a shard map change, or a run inside a derived run's window) are
// sorted with the late ones.
func (m *SeriesMerger) merge(outTs []int64, outVals []float64) ([]int64, []float64, error) {
	key := m.took[0].it.At().Key
	fast := len(m.rs) == 0 && !m.keepArrivals
	own := m.own[:0]
	m.pts = m.pts[:0]
	m.arr = m.arr[:0]
	for _, s := range m.took {
		var exact *encoder.Series
		if s.arr != nil {
			var err error
			if exact, err = s.arr.seek(key); err != nil {
				return outTs, outVals, err
			}
		}
		if s.late || exact != nil || !fast {
			m.pts = appendRanked(m.pts, s, exact)
		} else {
			own = append(own, s)
		}
	}
	slices.SortFunc(own, func(a, b *seriesSource) int { return cmp.Compare(a.from, b.from) })
	for i := 1; i < len(own); i++ {
		if own[i].from < own[i-1].to {
			for _, s := range own {
				m.pts = appendRanked(m.pts, s, nil)
			}
			own = own[:0]
			break
		}
	}
	m.own = own
	slices.SortFunc(m.pts, func(a, b rankedPoint) int {
		return cmp.Or(cmp.Compare(a.ts, b.ts), a.newer(&b))
	})
	vals := !m.sc.noVals
	si, pi := 0, 0 // own source, and point in it
	j := 0
	for {
		for si < len(own) && pi == len(own[si].it.At().Ts) {
			si, pi = si+1, 0
		}
		if si == len(own) && j == len(m.pts) {
			return outTs, outVals, nil
		}
		if j == len(m.pts) || si < len(own) && own[si].it.At().Ts[pi] < m.pts[j].ts {
			// The own points before the next late copy, in one copy (fast: nothing to
			// delete, no arrivals to keep).
			sr := own[si].it.At()
			end := len(sr.Ts)
			if j < len(m.pts) {
				end = pi + sort.Search(end-pi, func(k int) bool { return sr.Ts[pi+k] >= m.pts[j].ts })
			}
			outTs = append(outTs, sr.Ts[pi:end]...)
			if vals {
				outVals = append(outVals, sr.Values[pi:end]...)
			}
			pi = end
			continue
		}
		// The copies at this ts that were sorted: the last wins, unless the own copy in
		// the sorted run arrived later.
		t := m.pts[j].ts
		for j+1 < len(m.pts) && m.pts[j+1].ts == t {
			j++
		}
		best := m.pts[j]
		j++
		if si < len(own) && own[si].it.At().Ts[pi] == t {
			o := own[si]
			op := rankedPoint{ts: t, arrival: o.arrival(t), size: o.to - o.from}
			if op.newer(&best) > 0 {
				if vals {
					op.v = o.it.At().Values[pi]
				}
				best = op
			}
			pi++
		}
		if len(m.rs) > 0 && deleted(m.rs, t) {
			m.deleted++
			continue
		}
		outTs = append(outTs, t)
		if vals {
			outVals = append(outVals, best.v)
		}
		if m.keepArrivals {
			m.arr = append(m.arr, best.arrival)
		}
	}
}

// appendRanked appends the points of source s's current series, each with its arrival:
// the one exact records for its ts, else the source's.
func appendRanked(pts []rankedPoint, s *seriesSource, exact *encoder.Series) []rankedPoint {
	sr := s.it.At()
	size := s.to - s.from
	j := 0
	for i, ts := range sr.Ts {
		a := s.arrival(ts)
		if exact != nil {
			for j < len(exact.Ts) && exact.Ts[j] < ts {
				j++
			}
			if j < len(exact.Ts) && exact.Ts[j] == ts {
				a = int64(exact.Values[j])
			}
		}
		var v float64
		if len(sr.Values) > 0 { // none decoded when no value is read
			v = sr.Values[i]
		}
		pts = append(pts, rankedPoint{ts, v, a, size})
	}
	return pts
}

// Digest reads every point readers read of st in the scope and returns how many there
// are and a hash (FNV-64a) of every (series, ts, value bits) in order: two stores that
// serve the same points, bit for bit, have the same digest. Load tests and benchmarks
// compare a store before and after compaction with it.
func Digest(ctx context.Context, st storage.Store, scope query.Scope) (points, sum uint64, err error) {
	m, err := OpenSeries(ctx, st, scope)
	if err != nil {
		return 0, 0, err
	}
	defer m.Close()
	h := fnv.New64a()
	var b [36]byte
	for m.Next() {
		s := m.At()
		for i, ts := range s.Ts {
			binary.LittleEndian.PutUint32(b[0:], s.Key.Org)
			binary.LittleEndian.PutUint64(b[4:], s.Key.Metric)
			binary.LittleEndian.PutUint64(b[12:], s.Key.Context)
			binary.LittleEndian.PutUint64(b[20:], uint64(ts))
			binary.LittleEndian.PutUint64(b[28:], math.Float64bits(s.Values[i]))
			h.Write(b[:])
		}
		points += uint64(len(s.Ts))
	}
	return points, h.Sum64(), m.Err()
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
