// Package legacy reads legacy point data (Parquet and CSV files) in Go as a
// pointdiff.Source: every point in (series, ts) order, the copies of a point adjacent,
// for the diff's merge-join (docs/validation.md, "diff"). Sorted input streams through;
// unsorted Parquet row groups and CSV files are sorted in memory, and several sorted
// runs (row groups, files) are merged. Input it cannot read in order within its memory
// bound is ErrUnsupported: the caller then runs the diff's SQL instead.
package legacy

import (
	"cmp"
	"errors"
	"math"
	"slices"

	"github.com/tailor-metrics/tailor/pointdiff"
)

// ErrUnsupported means the input cannot be read in order here (a column type the
// diff's SQL casts but this reader does not, NULLs, or runs that overlap more than the
// memory bound); the caller falls back to the SQL diff.
var ErrUnsupported = errors.New("not readable in (series, ts) order")

// Filter selects the points of a diff's scope.
type Filter struct {
	// MinTs and MaxTs bound ts (inclusive).
	MinTs, MaxTs int64
	// Keep, when not nil, says whether the points of a series belong to the scope (its
	// shard, orgs and metrics).
	Keep func(org uint32, metric uint64) bool
	// Orgs, when not nil, says whether an org in [lo, hi] can be kept: row groups whose
	// orgs it rejects are skipped unread.
	Orgs func(lo, hi uint32) bool
}

// All is the filter that keeps every point.
var All = Filter{MinTs: math.MinInt64, MaxTs: math.MaxInt64}

func (f *Filter) keep(org uint32, metric uint64, ts int64) bool {
	return ts >= f.MinTs && ts <= f.MaxTs && (f.Keep == nil || f.Keep(org, metric))
}

// pkey is a point's position in the order: series, then ts.
type pkey struct {
	org    uint32
	metric uint64
	ctx    uint64
	ts     int64
}

func (a pkey) compare(b pkey) int {
	return cmp.Or(cmp.Compare(a.org, b.org), cmp.Compare(a.metric, b.metric), cmp.Compare(a.ctx, b.ctx), cmp.Compare(a.ts, b.ts))
}

func (a pkey) sameSeries(b pkey) bool {
	return a.org == b.org && a.metric == b.metric && a.ctx == b.ctx
}

var maxKey = pkey{math.MaxUint32, math.MaxUint64, math.MaxUint64, math.MaxInt64}

// points are columns of points.
type points struct {
	org    []uint32
	metric []uint64
	ctx    []uint64
	ts     []int64
	vals   []float64
}

func (p *points) len() int { return len(p.ts) }

func (p *points) key(i int) pkey { return pkey{p.org[i], p.metric[i], p.ctx[i], p.ts[i]} }

func (p *points) append(org uint32, metric, ctx uint64, ts int64, v float64) {
	p.org = append(p.org, org)
	p.metric = append(p.metric, metric)
	p.ctx = append(p.ctx, ctx)
	p.ts = append(p.ts, ts)
	p.vals = append(p.vals, v)
}

// sorted reports whether the points are in (series, ts) order.
func (p *points) sorted() bool {
	for i := 1; i < p.len(); i++ {
		if p.key(i).compare(p.key(i-1)) < 0 {
			return false
		}
	}
	return true
}

// sort orders the points by (series, ts), keeping the copies of a point in their order.
func (p *points) sort() {
	idx := make([]int32, p.len())
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return p.key(int(a)).compare(p.key(int(b))) })
	q := points{make([]uint32, len(idx)), make([]uint64, len(idx)), make([]uint64, len(idx)), make([]int64, len(idx)), make([]float64, len(idx))}
	for i, j := range idx {
		q.org[i], q.metric[i], q.ctx[i], q.ts[i], q.vals[i] = p.org[j], p.metric[j], p.ctx[j], p.ts[j], p.vals[j]
	}
	*p = q
}

// seriesEnd is the end of the series that starts at i (p sorted).
func (p *points) seriesEnd(i int) int {
	k := p.key(i)
	n := p.len()
	// Gallop, then binary search: series are usually short next to a row group.
	step, j := 1, i+1
	for j < n && p.key(j).sameSeries(k) {
		j, step = i+step*2, step*2
	}
	lo, hi := i+1, min(j, n)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p.key(m).sameSeries(k) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// runAt fills r with the points [i, j) (one series).
func (p *points) runAt(r *pointdiff.Run, i, j int) {
	r.Org, r.Metric, r.Context = p.org[i], p.metric[i], p.ctx[i]
	r.Ts, r.Values = p.ts[i:j], p.vals[i:j]
}
