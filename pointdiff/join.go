package pointdiff

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
)

// The diff as a streaming merge-join (docs/validation.md, "diff"): both sides come in
// (series, ts) order, so one pass over each classifies every (series, ts) exactly as
// sql/diff.sql does, with no hash table: the copies a legacy side holds of a point are
// adjacent, so duplicates are found on the way. Join is what `tailor-batch diff` and
// `validate` run when both sides can be read in order; sql/diff.sql stays the
// definition, and the tests hold the two to the same answers.

// Run is some points of one series, in ts order: a slice of a Source.
type Run struct {
	Org     uint32
	Metric  uint64
	Context uint64
	Ts      []int64
	Values  []float64
}

// Source is one side of a Join: its points in (series, ts) order, a run at a time.
// Consecutive runs may belong to one series; ts never decreases within a series, and a
// ts repeated (in one run or across runs) is another copy of that point. At is valid
// until the next call to Next.
type Source interface {
	Next() bool
	At() *Run
	Err() error
}

// ErrUnsorted is returned by Join when a side is not in (series, ts) order, or the new
// side holds a (series, ts) twice.
var ErrUnsorted = errors.New("not in (series, ts) order")

// JoinOptions configure Join.
type JoinOptions struct {
	// Tolerance > 0 counts values within it as equal.
	Tolerance float64
	// BucketMs is the width of the time buckets of the groups, > 0.
	BucketMs int64
	// Rows, when not nil, gets every differing row, in the order sql/diffrows.sql gives
	// them: (series, ts), and a duplicate's copies by value.
	Rows func(Row) error
	// NewName and LegacyName name the sides in errors.
	NewName, LegacyName string
}

// Same reports whether values n and l are equal as sql/diff.sql compares them: by
// bits, except that every NaN equals every NaN (0 and -0 differ), or within tol > 0.
func Same(n, l, tol float64) bool {
	nn, ln := math.IsNaN(n), math.IsNaN(l)
	switch {
	case nn && ln:
		return true
	case n == l && math.Signbit(n) == math.Signbit(l):
		return true
	}
	return tol > 0 && math.Abs(n-l) <= tol
}

// Bucket is the start of the epoch-aligned bucket of width ms that holds ts.
func Bucket(ts, ms int64) int64 { return ts - ((ts%ms)+ms)%ms }

type seriesKey struct {
	org             uint32
	metric, context uint64
}

func (a seriesKey) compare(b seriesKey) int {
	return cmp.Or(cmp.Compare(a.org, b.org), cmp.Compare(a.metric, b.metric), cmp.Compare(a.context, b.context))
}

// side reads a Source one series at a time.
type side struct {
	src     Source
	name    string
	run     *Run
	done    bool
	key     seriesKey
	ts      []int64
	vals    []float64
	has     bool // key, ts, vals hold a series
	prevKey seriesKey
	started bool
}

// next reads the next series whole into s.ts and s.vals.
func (s *side) next() error {
	s.has = false
	if s.done {
		return nil
	}
	if s.run == nil {
		if !s.src.Next() {
			s.done = true
			return s.src.Err()
		}
		s.run = s.src.At()
	}
	s.key = seriesKey{s.run.Org, s.run.Metric, s.run.Context}
	if s.started && s.key.compare(s.prevKey) <= 0 {
		return fmt.Errorf("%s: series %d/%d/%d after %d/%d/%d: %w", s.name, s.key.org, s.key.metric, s.key.context,
			s.prevKey.org, s.prevKey.metric, s.prevKey.context, ErrUnsorted)
	}
	s.started, s.prevKey = true, s.key
	s.ts, s.vals = s.ts[:0], s.vals[:0]
	for {
		s.ts = append(s.ts, s.run.Ts...)
		s.vals = append(s.vals, s.run.Values...)
		if !s.src.Next() {
			s.done, s.run = true, nil
			if err := s.src.Err(); err != nil {
				return err
			}
			break
		}
		s.run = s.src.At()
		if (seriesKey{s.run.Org, s.run.Metric, s.run.Context}) != s.key {
			break
		}
	}
	if len(s.vals) != len(s.ts) {
		return fmt.Errorf("BUG: %s: series %d/%d/%d has %d timestamps and %d values", s.name, s.key.org, s.key.metric, s.key.context, len(s.ts), len(s.vals))
	}
	for i := 1; i < len(s.ts); i++ {
		if s.ts[i] < s.ts[i-1] {
			return fmt.Errorf("%s: series %d/%d/%d: ts %d after %d: %w", s.name, s.key.org, s.key.metric, s.key.context, s.ts[i], s.ts[i-1], ErrUnsorted)
		}
	}
	s.has = true
	return nil
}

// counter adds up the groups of one (org, metric), flushed when it changes.
type counter struct {
	bucketMs    int64
	org         uint32
	metric      uint64
	groups      map[[2]int64]*Group // (bucket, kind)
	out         []Group
	curBucket   int64
	curEnd      int64 // the current bucket is [curBucket, curEnd)
	cur         [5]Group
	curSet      bool
	haveCurrent bool
}

func (c *counter) series(org uint32, metric uint64) {
	if c.haveCurrent && (org != c.org || metric != c.metric) {
		c.flush()
	}
	c.flushBucket()
	c.org, c.metric, c.haveCurrent = org, metric, true
}

func (c *counter) add(ts int64, k Kind) {
	if !c.curSet || ts < c.curBucket || ts >= c.curEnd {
		c.flushBucket()
		c.curBucket = Bucket(ts, c.bucketMs)
		c.curEnd = c.curBucket + c.bucketMs
		if c.curEnd < c.curBucket { // the last bucket before int64 overflows
			c.curEnd = math.MaxInt64
		}
		c.curSet = true
	}
	g := &c.cur[k]
	if g.Points == 0 {
		g.FirstTs = ts
	}
	g.Points++
	g.LastTs = ts
}

func (c *counter) flushBucket() {
	if !c.curSet {
		return
	}
	for k := range c.cur {
		g := &c.cur[k]
		if g.Points == 0 {
			continue
		}
		id := [2]int64{c.curBucket, int64(k)}
		t := c.groups[id]
		if t == nil {
			t = &Group{Org: c.org, Metric: c.metric, Bucket: c.curBucket, Kind: Kind(k), FirstTs: g.FirstTs, LastTs: g.LastTs}
			c.groups[id] = t
		}
		t.Points += g.Points
		t.FirstTs, t.LastTs = min(t.FirstTs, g.FirstTs), max(t.LastTs, g.LastTs)
		*g = Group{}
	}
	c.curSet = false
}

func (c *counter) flush() {
	c.flushBucket()
	start := len(c.out)
	for _, g := range c.groups {
		c.out = append(c.out, *g)
	}
	slices.SortFunc(c.out[start:], func(a, b Group) int { return cmp.Or(cmp.Compare(a.Bucket, b.Bucket), cmp.Compare(a.Kind, b.Kind)) })
	clear(c.groups)
	c.haveCurrent = false
}

// Join classifies every (series, ts) of newSide and legacy as sql/diff.sql does and
// returns the counts per org, metric, time bucket and kind (sql/diffsummary.sql's), in
// (org, metric, bucket, kind) order.
func Join(newSide, legacy Source, opt JoinOptions) ([]Group, error) {
	if opt.BucketMs <= 0 {
		return nil, fmt.Errorf("bucket %dms: want at least 1ms", opt.BucketMs)
	}
	if opt.Tolerance < 0 || math.IsNaN(opt.Tolerance) || math.IsInf(opt.Tolerance, 0) {
		return nil, fmt.Errorf("tolerance %v: want a finite number >= 0", opt.Tolerance)
	}
	n := &side{src: newSide, name: cmp.Or(opt.NewName, "new")}
	l := &side{src: legacy, name: cmp.Or(opt.LegacyName, "legacy")}
	c := &counter{bucketMs: opt.BucketMs, groups: map[[2]int64]*Group{}}
	j := joiner{opt: opt, c: c}
	if err := errors.Join(n.next(), l.next()); err != nil {
		return nil, err
	}
	for n.has || l.has {
		switch {
		case !l.has || n.has && n.key.compare(l.key) < 0:
			if err := j.series(n.key, n.ts, n.vals, nil, nil, n.name); err != nil {
				return nil, err
			}
			if err := n.next(); err != nil {
				return nil, err
			}
		case !n.has || l.key.compare(n.key) < 0:
			if err := j.series(l.key, nil, nil, l.ts, l.vals, n.name); err != nil {
				return nil, err
			}
			if err := l.next(); err != nil {
				return nil, err
			}
		default:
			if err := j.series(n.key, n.ts, n.vals, l.ts, l.vals, n.name); err != nil {
				return nil, err
			}
			if err := errors.Join(n.next(), l.next()); err != nil {
				return nil, err
			}
		}
	}
	c.flush()
	return c.out, nil
}

type joiner struct {
	opt    JoinOptions
	c      *counter
	copies []float64
}

// series joins one series' points of both sides.
func (j *joiner) series(k seriesKey, nts []int64, nv []float64, lts []int64, lv []float64, newName string) error {
	j.c.series(k.org, k.metric)
	for i := 1; i < len(nts); i++ {
		if nts[i] == nts[i-1] {
			return fmt.Errorf("%s: series %d/%d/%d holds ts %d twice: %w", newName, k.org, k.metric, k.context, nts[i], ErrUnsorted)
		}
	}
	a, b := 0, 0
	for a < len(nts) || b < len(lts) {
		switch {
		case b == len(lts) || a < len(nts) && nts[a] < lts[b]:
			j.c.add(nts[a], MissingInLegacy)
			if err := j.row(MissingInLegacy, k, nts[a], &nv[a], nil); err != nil {
				return err
			}
			a++
		default:
			t := lts[b]
			e := b + 1
			for e < len(lts) && lts[e] == t {
				e++
			}
			var newV *float64
			if a < len(nts) && nts[a] == t {
				newV = &nv[a]
				a++
			}
			kind := MissingInNew
			switch {
			case e-b > 1:
				kind = DuplicateInLegacy
			case newV != nil && Same(*newV, lv[b], j.opt.Tolerance):
				kind = Equal
			case newV != nil:
				kind = ValueDiffers
			}
			j.c.add(t, kind)
			if kind == DuplicateInLegacy && j.opt.Rows != nil {
				// One row a copy, ordered as diffrows.sql orders them: by value + 0.0
				// (so -0 ties 0), NaN last, then by sign.
				j.copies = append(j.copies[:0], lv[b:e]...)
				slices.SortStableFunc(j.copies, compareCopies)
				for i := range j.copies {
					if err := j.row(kind, k, t, newV, &j.copies[i]); err != nil {
						return err
					}
				}
			} else if kind != DuplicateInLegacy {
				if err := j.row(kind, k, t, newV, &lv[b]); err != nil {
					return err
				}
			}
			b = e
		}
	}
	return nil
}

// compareCopies orders values as DuckDB's ORDER BY v + 0.0, signbit(v).
func compareCopies(x, y float64) int {
	xn, yn := math.IsNaN(x), math.IsNaN(y)
	switch {
	case xn && !yn:
		return 1
	case !xn && yn:
		return -1
	case !xn && !yn && x != y: // -0 == 0 here
		return cmp.Compare(x, y)
	}
	sx, sy := math.Signbit(x), math.Signbit(y)
	switch {
	case sx == sy:
		return 0
	case sy:
		return -1
	}
	return 1
}

func (j *joiner) row(kind Kind, k seriesKey, ts int64, n, l *float64) error {
	if j.opt.Rows == nil || kind == Equal {
		return nil
	}
	r := Row{Kind: kind, Org: k.org, Metric: k.metric, Context: k.context, Ts: ts}
	if n != nil {
		v := *n
		r.New = &v
	}
	if l != nil {
		v := *l
		r.Legacy = &v
	}
	return j.opt.Rows(r)
}
