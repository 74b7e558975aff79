package legacy

import (
	"container/heap"
	"runtime"
	"slices"

	"github.com/tailor-metrics/tailor/pointdiff"
)

// A Source merges sorted runs (Parquet row groups, a CSV file) into one stream in
// (series, ts) order. Each run has a lower and an upper bound of its points (from the
// row group's statistics: per column the minimum, which bounds every point from below
// in (series, ts) order, and the maximum); a run is decoded, by a pool of workers a few
// runs ahead, and joins the merge only once the merge reaches its lower bound, so a
// sorted file is read one row group at a time, and a layout whose files overlap (say one
// file per day, each sorted) holds one row group of each at once.

// lazyRun is one sorted run, decoded when the merge needs it.
type lazyRun struct {
	lb, ub pkey
	rows   int64
	load   func() (*points, error)

	started bool
	done    chan struct{}
	p       *points
	err     error
}

type openRun struct {
	p *points
	i int
}

func (r *openRun) head() pkey { return r.p.key(r.i) }

type runHeap []*openRun

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].head().compare(h[j].head()) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*openRun)) }
func (h *runHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

// Source is legacy data as a pointdiff.Source. Close it when done.
type Source struct {
	pending []*lazyRun // by lower bound
	next    int        // pending[next:] have not joined the merge
	open    runHeap
	run     pointdiff.Run
	err     error
	sem     chan struct{}
	ahead   int
	closeFn func() error
	stats   Stats
}

// Stats count what a Source read and skipped.
type Stats struct {
	Files, RowGroups, RowGroupsSkipped int
	Bytes                              int64
	Rows                               int64
}

func newSource(runs []*lazyRun, closeFn func() error) *Source {
	w := runtime.GOMAXPROCS(0)
	return &Source{pending: runs, sem: make(chan struct{}, w), ahead: 2 * w, closeFn: closeFn}
}

// prefetch starts decoding the runs the merge will want next.
func (s *Source) prefetch() {
	for i := s.next; i < len(s.pending) && i < s.next+s.ahead; i++ {
		r := s.pending[i]
		if r.started {
			continue
		}
		r.started, r.done = true, make(chan struct{})
		go func() {
			s.sem <- struct{}{}
			r.p, r.err = r.load()
			<-s.sem
			close(r.done)
		}()
	}
}

// Next moves to the next run of points of one series.
func (s *Source) Next() bool {
	for s.err == nil {
		// Runs whose lower bound the merge has reached join it.
		for s.next < len(s.pending) {
			r := s.pending[s.next]
			if len(s.open) > 0 && r.lb.compare(s.open[0].head()) > 0 {
				break
			}
			s.prefetch()
			<-r.done
			s.pending[s.next] = nil
			s.next++
			if r.err != nil {
				s.err = r.err
				return false
			}
			s.stats.Rows += int64(r.p.len())
			if r.p.len() > 0 {
				heap.Push(&s.open, &openRun{p: r.p})
			}
		}
		if len(s.open) == 0 {
			return false
		}
		top := s.open[0]
		i := top.i
		end := top.p.seriesEnd(i)
		// Up to the next run's head (inclusive: a copy of the same point may follow)
		// and the next pending lower bound (exclusive: its run has not joined yet).
		limit, inclusive := maxKey, true
		if len(s.open) > 1 {
			limit = min2(s.open[1], s.open[2:])
		}
		if s.next < len(s.pending) {
			if lb := s.pending[s.next].lb; lb.compare(limit) <= 0 {
				limit, inclusive = lb, false
			}
		}
		j := end
		if k := top.head(); limit.sameSeries(k) {
			lo, hi := i, end
			for lo < hi {
				m := int(uint(lo+hi) >> 1)
				if c := top.p.ts[m] - limit.ts; c < 0 || inclusive && c == 0 {
					lo = m + 1
				} else {
					hi = m
				}
			}
			j = lo
		}
		if j == i {
			continue // a pending run starts at this point: let it join first
		}
		top.p.runAt(&s.run, i, j)
		top.i = j
		if top.i == top.p.len() {
			heap.Pop(&s.open)
		} else {
			heap.Fix(&s.open, 0)
		}
		return true
	}
	return false
}

// min2 is the smallest head among the heap's children of the root (the second head).
func min2(a *openRun, rest []*openRun) pkey {
	k := a.head()
	if len(rest) > 0 {
		if h := rest[0].head(); h.compare(k) < 0 {
			k = h
		}
	}
	return k
}

// At returns the current run, valid until the next call to Next.
func (s *Source) At() *pointdiff.Run { return &s.run }

// Err returns the error that stopped the source, if any.
func (s *Source) Err() error { return s.err }

// Stats returns what the source read and skipped so far.
func (s *Source) Stats() Stats { return s.stats }

// Close waits for the decoding in flight and closes the files.
func (s *Source) Close() error {
	for _, r := range s.pending[s.next:] {
		if r != nil && r.started {
			<-r.done
		}
	}
	if s.closeFn != nil {
		return s.closeFn()
	}
	return nil
}

// peakRows is the most rows the merge of runs holds at once: a run is held from when
// the merge reaches its lower bound until it passes its upper bound.
func peakRows(runs []*lazyRun) int64 {
	type event struct {
		at   pkey
		rows int64
	}
	var ev []event
	for _, r := range runs {
		ev = append(ev, event{r.lb, r.rows}, event{r.ub, -r.rows})
	}
	sortEvents := func(a, b event) int {
		if c := a.at.compare(b.at); c != 0 {
			return c
		}
		// Opens before closes at the same point: the conservative count.
		switch {
		case a.rows > b.rows:
			return -1
		case a.rows < b.rows:
			return 1
		}
		return 0
	}
	slices.SortFunc(ev, sortEvents)
	var cur, peak int64
	for _, e := range ev {
		cur += e.rows
		peak = max(peak, cur)
	}
	return peak
}
