//go:build duckdb_arrow

package query

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/tailor-metrics/tailor/columnar"
)

// Restriction is what a reader of a view may skip: every row a statement can use lies
// inside it, so rows outside it can be left unread. It is a superset, never exact: the
// statement's own filters still run in DuckDB above the scan, so a reader that returns
// more rows than the restriction admits is always correct, and one that returns fewer
// never is. The zero Restriction admits every row and every column.
type Restriction struct {
	// Orgs, Metrics and Contexts hold the ids a row may have; nil admits any.
	Orgs, Metrics, Contexts *IDSet
	// Ts bounds ts; nil admits any.
	Ts *TsRange
	// Columns names the columns the statement reads (lower case), nil meaning all. A
	// reader may leave the others unfilled (zeros), since nothing looks at them.
	Columns []string
}

// TsRange is the closed interval [Min, Max] of ts.
type TsRange struct{ Min, Max int64 }

// IDRange is the closed interval [Lo, Hi] of ids.
type IDRange struct{ Lo, Hi uint64 }

// IDSet is a set of ids as sorted, disjoint, non-adjacent closed intervals. The empty
// set (no interval) admits nothing.
type IDSet struct{ ranges []IDRange }

// NewIDSet is the set of the ids in ranges.
func NewIDSet(ranges ...IDRange) *IDSet {
	s := &IDSet{}
	for _, r := range ranges {
		if r.Lo <= r.Hi {
			s.ranges = append(s.ranges, r)
		}
	}
	s.normalize()
	return s
}

// IDs is the set of the given ids.
func IDs(ids ...uint64) *IDSet {
	rs := make([]IDRange, len(ids))
	for i, id := range ids {
		rs[i] = IDRange{id, id}
	}
	return NewIDSet(rs...)
}

func (s *IDSet) normalize() {
	slices.SortFunc(s.ranges, func(a, b IDRange) int {
		switch {
		case a.Lo < b.Lo:
			return -1
		case a.Lo > b.Lo:
			return 1
		}
		return 0
	})
	out := s.ranges[:0]
	for _, r := range s.ranges {
		if n := len(out); n > 0 && (out[n-1].Hi == math.MaxUint64 || r.Lo <= out[n-1].Hi+1) {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	s.ranges = out
}

// Ranges returns the set's intervals in order. Shared: do not modify.
func (s *IDSet) Ranges() []IDRange { return s.ranges }

// Contains reports whether id is in the set; a nil set holds every id.
func (s *IDSet) Contains(id uint64) bool {
	if s == nil {
		return true
	}
	i, _ := slices.BinarySearchFunc(s.ranges, id, func(r IDRange, id uint64) int {
		switch {
		case r.Hi < id:
			return -1
		case r.Lo > id:
			return 1
		}
		return 0
	})
	return i < len(s.ranges) && s.ranges[i].Lo <= id && id <= s.ranges[i].Hi
}

// Overlaps reports whether the set holds an id in [lo, hi]; a nil set holds every id.
func (s *IDSet) Overlaps(lo, hi uint64) bool {
	if s == nil {
		return lo <= hi
	}
	for _, r := range s.ranges {
		if r.Lo <= hi && lo <= r.Hi {
			return true
		}
	}
	return false
}

// Values lists the ids of the set when it holds at most limit of them.
func (s *IDSet) Values(limit int) ([]uint64, bool) {
	if s == nil {
		return nil, false
	}
	var out []uint64
	for _, r := range s.ranges {
		for id := r.Lo; ; id++ {
			if len(out) == limit {
				return nil, false
			}
			out = append(out, id)
			if id == r.Hi {
				break
			}
		}
	}
	return out, true
}

func (s *IDSet) String() string {
	if s == nil {
		return "any"
	}
	parts := make([]string, len(s.ranges))
	for i, r := range s.ranges {
		if r.Lo == r.Hi {
			parts[i] = fmt.Sprint(r.Lo)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func intersectIDs(a, b *IDSet) *IDSet {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	out := &IDSet{}
	for _, x := range a.ranges {
		for _, y := range b.ranges {
			if lo, hi := max(x.Lo, y.Lo), min(x.Hi, y.Hi); lo <= hi {
				out.ranges = append(out.ranges, IDRange{lo, hi})
			}
		}
	}
	out.normalize()
	return out
}

func unionIDs(a, b *IDSet) *IDSet {
	if a == nil || b == nil {
		return nil
	}
	out := &IDSet{ranges: append(slices.Clone(a.ranges), b.ranges...)}
	out.normalize()
	return out
}

// Intersect is the restriction both r and o admit.
func (r Restriction) Intersect(o Restriction) Restriction {
	out := Restriction{
		Orgs:     intersectIDs(r.Orgs, o.Orgs),
		Metrics:  intersectIDs(r.Metrics, o.Metrics),
		Contexts: intersectIDs(r.Contexts, o.Contexts),
		Ts:       r.Ts,
	}
	if o.Ts != nil {
		if out.Ts == nil {
			out.Ts = o.Ts
		} else {
			out.Ts = &TsRange{max(r.Ts.Min, o.Ts.Min), min(r.Ts.Max, o.Ts.Max)}
		}
	}
	out.Columns = unionColumns(r.Columns, o.Columns)
	return out
}

// Union is a restriction admitting every row r or o admits: per column the union, so
// possibly more than either (the bounding box of the two).
func (r Restriction) Union(o Restriction) Restriction {
	out := Restriction{
		Orgs:     unionIDs(r.Orgs, o.Orgs),
		Metrics:  unionIDs(r.Metrics, o.Metrics),
		Contexts: unionIDs(r.Contexts, o.Contexts),
		Columns:  unionColumns(r.Columns, o.Columns),
	}
	switch {
	case r.Empty():
		out = o
		out.Columns = unionColumns(r.Columns, o.Columns)
	case o.Empty():
		out = r
		out.Columns = unionColumns(r.Columns, o.Columns)
	case r.Ts != nil && o.Ts != nil:
		out.Ts = &TsRange{min(r.Ts.Min, o.Ts.Min), max(r.Ts.Max, o.Ts.Max)}
	}
	return out
}

func unionColumns(a, b []string) []string {
	if a == nil || b == nil {
		return nil
	}
	out := slices.Clone(a)
	for _, c := range b {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// Empty reports whether no row can match.
func (r Restriction) Empty() bool {
	for _, s := range []*IDSet{r.Orgs, r.Metrics, r.Contexts} {
		if s != nil && len(s.ranges) == 0 {
			return true
		}
	}
	return r.Ts != nil && r.Ts.Min > r.Ts.Max
}

// MatchKey reports whether the series k can hold rows the restriction admits.
func (r Restriction) MatchKey(k columnar.SeriesKey) bool {
	return r.Orgs.Contains(uint64(k.Org)) && r.Metrics.Contains(k.Metric) && r.Contexts.Contains(k.Context)
}

// TsBounds is the ts interval admitted, all of int64 when unrestricted.
func (r Restriction) TsBounds() (lo, hi int64) {
	if r.Ts == nil {
		return math.MinInt64, math.MaxInt64
	}
	return r.Ts.Min, r.Ts.Max
}

// Uses reports whether the statement reads column col.
func (r Restriction) Uses(col string) bool {
	return r.Columns == nil || slices.Contains(r.Columns, strings.ToLower(col))
}

// IsAll reports whether r admits every row and column.
func (r Restriction) IsAll() bool {
	return r.Orgs == nil && r.Metrics == nil && r.Contexts == nil && r.Ts == nil && r.Columns == nil
}

func (r Restriction) String() string {
	var parts []string
	if r.Orgs != nil {
		parts = append(parts, "org_id in "+r.Orgs.String())
	}
	if r.Metrics != nil {
		parts = append(parts, "metric_id in "+r.Metrics.String())
	}
	if r.Contexts != nil {
		parts = append(parts, "context_key in "+r.Contexts.String())
	}
	if r.Ts != nil {
		parts = append(parts, fmt.Sprintf("ts in [%d, %d]", r.Ts.Min, r.Ts.Max))
	}
	if r.Columns != nil {
		parts = append(parts, "columns "+strings.Join(r.Columns, ","))
	}
	if len(parts) == 0 {
		return "everything"
	}
	return strings.Join(parts, "; ")
}

// Restriction is the scope's own filter as a restriction: its window, its orgs and
// metrics, and the org of a dedicated shard (a shared shard's orgs, org_id mod N, are
// no interval set: that filter stays in SQL alone). Its columns are the ones the
// scope's SQL filter reads.
func (s Scope) Restriction() Restriction {
	var r Restriction
	if w := s.Window; w != (columnar.TimeRange{}) && w != columnar.AllTime {
		r.Ts = &TsRange{w.From, w.To - 1}
	}
	if s.Orgs != nil {
		r.Orgs = s.Orgs
	}
	if s.Metrics != nil {
		r.Metrics = s.Metrics
	}
	if g := orgShardRe.FindStringSubmatch(s.Shard); g != nil {
		r.Orgs = intersectIDs(r.Orgs, IDs(uint64(mustUint32(g[1]))))
	} else if g := partShardRe.FindStringSubmatch(s.Shard); g != nil {
		r.Orgs = intersectIDs(r.Orgs, IDs(uint64(mustUint32(g[1]))))
	}
	r.Columns = s.columns()
	return r
}

// shardOrgsLimit: a restriction of at most this many orgs names its shards.
const shardOrgsLimit = 4096

// Shards is the set of shards the shard map m gives the orgs r admits (of an org split
// by metric, the shards of the metrics r admits, when they are few), and false when r
// admits too many orgs to list them.
func (r Restriction) Shards(m *columnar.ShardMap) (map[string]bool, bool) {
	orgs, ok := r.Orgs.Values(shardOrgsLimit)
	if !ok {
		return nil, false
	}
	metrics, finite := r.Metrics.Values(shardOrgsLimit)
	out := map[string]bool{}
	for _, o := range orgs {
		org := uint32(o)
		d, dedicated := m.Dedicated[org]
		switch {
		case dedicated && d.Parts > 1 && finite:
			for _, met := range metrics {
				out[m.Shard(org, met)] = true
			}
		case dedicated && d.Parts > 1:
			for p := uint32(0); p < d.Parts; p++ {
				out[fmt.Sprintf("org-%d-p%d", org, p)] = true
			}
		default:
			out[m.Shard(org, 0)] = true
		}
	}
	return out, true
}
