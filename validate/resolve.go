package validate

import (
	"context"
	"fmt"
	"sort"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// File is one series file that holds points of a resolved piece. A reader keeps the
// points of the org with ts in the piece's [From, To): a window that straddles a
// cutover is read in part from each side.
type File struct {
	Key        string `json:"key"`
	Shard      string `json:"shard"`
	WindowFrom int64  `json:"window_from"`
	WindowTo   int64  `json:"window_to"`
}

// Range is ts in [From, To).
type Range struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

// Resolved is a piece with the files that serve it and the parts no file covers.
type Resolved struct {
	Piece
	Files []File `json:"files"`
	// Gaps are the sub-ranges for which the serving root has no published file for
	// the org's shards: the data is absent there (a legacy gap stays a gap; resolve
	// never fills it from the other side, so both sides look like they always did).
	Gaps []Range `json:"gaps,omitempty"`
}

// ResolveOptions configures Resolve.
type ResolveOptions struct {
	Plan     *Plan
	ShardMap *columnar.ShardMap // nil means columnar.DefaultShardMap
	// Open opens a root's store (default storage.Open).
	Open func(ctx context.Context, url string) (storage.Store, error)
}

// orgShards lists the shards that can hold the org's points.
func orgShards(m *columnar.ShardMap, org uint32) map[string]bool {
	out := map[string]bool{}
	if d, ok := m.Dedicated[org]; ok && d.Parts > 1 {
		for p := uint32(0); p < d.Parts; p++ {
			out[fmt.Sprintf("org-%d-p%d", org, p)] = true
		}
		return out
	}
	out[m.Shard(org, 0)] = true
	return out
}

// Resolve says which files serve each part of [from, to) of org under the plan.
func Resolve(ctx context.Context, opt ResolveOptions, org uint32, from, to int64) ([]Resolved, error) {
	if opt.ShardMap == nil {
		opt.ShardMap = columnar.DefaultShardMap()
	}
	if opt.Open == nil {
		opt.Open = storage.Open
	}
	pieces, err := opt.Plan.Pieces(org, from, to)
	if err != nil {
		return nil, err
	}
	shards := orgShards(opt.ShardMap, org)
	runs := map[string][]*run.Manifest{}
	var out []Resolved
	for _, p := range pieces {
		ms, ok := runs[p.Root]
		if !ok {
			st, err := opt.Open(ctx, p.Root)
			if err != nil {
				return nil, fmt.Errorf("open %s root %s: %w", p.Serve, storage.Redact(p.Root), err)
			}
			ms, err = run.Published(ctx, st)
			st.Close()
			if err != nil {
				return nil, fmt.Errorf("list %s root %s: %w", p.Serve, storage.Redact(p.Root), err)
			}
			runs[p.Root] = ms
		}
		r := Resolved{Piece: p}
		var covered []Range
		for _, m := range ms {
			// A published run without parts (its window had frames but no point in it)
			// covers nothing.
			if !shards[m.Shard] || m.To <= p.From || m.From >= p.To || len(m.Parts) == 0 {
				continue
			}
			for _, part := range m.Parts {
				r.Files = append(r.Files, File{Key: part.Key, Shard: m.Shard, WindowFrom: m.From, WindowTo: m.To})
			}
			covered = append(covered, Range{max(m.From, p.From), min(m.To, p.To)})
		}
		r.Gaps = gaps(Range{p.From, p.To}, covered)
		sort.SliceStable(r.Files, func(i, j int) bool { return r.Files[i].WindowFrom < r.Files[j].WindowFrom })
		out = append(out, r)
	}
	return out, nil
}

// gaps returns the parts of whole that no range of covered covers.
func gaps(whole Range, covered []Range) []Range {
	sort.Slice(covered, func(i, j int) bool { return covered[i].From < covered[j].From })
	var out []Range
	cur := whole.From
	for _, c := range covered {
		if c.From > cur {
			out = append(out, Range{cur, c.From})
		}
		cur = max(cur, c.To)
	}
	if cur < whole.To {
		out = append(out, Range{cur, whole.To})
	}
	return out
}

// ReadResolved calls fn with every point of org that the resolved pieces serve: from
// each piece's files, only ts in the piece's range. What a dependent pipeline does to
// read a range across a cutover.
func ReadResolved(ctx context.Context, open func(ctx context.Context, url string) (storage.Store, error), rs []Resolved, org uint32, fn func(k columnar.SeriesKey, ts int64, v float64) error) error {
	if open == nil {
		open = storage.Open
	}
	stores := map[string]storage.Store{}
	tombs := map[string]run.Tombstones{}
	defer func() {
		for _, st := range stores {
			st.Close()
		}
	}()
	for _, r := range rs {
		st := stores[r.Root]
		if st == nil {
			var err error
			if st, err = open(ctx, r.Root); err != nil {
				return err
			}
			stores[r.Root] = st
			// A delete hides its points from every reader at once (docs/lifecycle.md).
			if tombs[r.Root], err = run.LoadTombstones(ctx, st); err != nil {
				return err
			}
		}
		tomb := tombs[r.Root]
		for _, f := range r.Files {
			rd, err := encoder.OpenStored(ctx, st, f.Key)
			if err != nil {
				return err
			}
			it := rd.Iterator(nil, encoder.IterOrg(org), encoder.IterTimeRange(r.From, r.To-1))
			for it.Next() {
				s := it.At()
				for i, ts := range s.Ts {
					if len(tomb) > 0 && tomb.Deletes(s.Key, ts) {
						continue
					}
					if err := fn(s.Key, ts, s.Values[i]); err != nil {
						return err
					}
				}
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("read %s: %w", f.Key, err)
			}
		}
	}
	return nil
}
