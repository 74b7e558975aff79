package run

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/tailor-metrics/tailor/storage"
)

// The life of the history (docs/lifecycle.md): compaction, deletes and retention make
// derived runs, each published like a run (parts, then the manifest, then _CURRENT),
// whose manifest names the runs it supersedes. Readers read the current runs that no
// current run supersedes; gc removes the rest after a grace period. This file holds the
// one rule that decides which runs serve, so that readers, verify, gc and ls agree.

// compactedName is the pointer gc leaves in a window whose superseded run it collected:
// it names the window of the run that serves the window's points now, so that a run of
// the window finds what covers it without listing the shard.
const compactedName = "_COMPACTED.json"

// RunRef names one published run.
type RunRef struct {
	Shard, Window, RunID string
}

func (r RunRef) String() string { return r.Shard + " " + r.Window + " " + r.RunID }

// Ref returns the run's reference.
func (m *Manifest) Ref() RunRef { return RunRef{m.Shard, m.Window, m.RunID} }

// supersededBy maps every run a current run supersedes to the current run that does;
// when several do (a derived run of a derived run), the one of the largest window.
func supersededBy(current []*Manifest) map[RunRef]*Manifest {
	out := map[RunRef]*Manifest{}
	for _, m := range current {
		for _, s := range m.Supersedes {
			r := RunRef{m.Shard, s.Window, s.RunID}
			if by, ok := out[r]; !ok || m.To-m.From > by.To-by.From {
				out[r] = m
			}
		}
	}
	return out
}

// visible drops from current runs the ones a current run supersedes.
func visible(current []*Manifest) []*Manifest {
	hidden := supersededBy(current)
	out := current[:0:0]
	for _, m := range current {
		if _, ok := hidden[m.Ref()]; !ok {
			out = append(out, m)
		}
	}
	return out
}

// Superseders maps each current run of st that another current run supersedes to the
// visible run that serves its points instead: what `ls` shows as superseded.
func Superseders(ctx context.Context, st storage.Store) (map[RunRef]RunRef, error) {
	cur, err := listCurrent(ctx, st)
	if err != nil {
		return nil, err
	}
	hidden := supersededBy(cur)
	out := map[RunRef]RunRef{}
	for r, by := range hidden {
		// Follow to the top: a derived run may itself be superseded.
		for range 64 {
			next, ok := hidden[by.Ref()]
			if !ok {
				break
			}
			by = next
		}
		out[r] = by.Ref()
	}
	return out, nil
}

// entryInputs returns the inputs of superseded entry e of m.
func (m *Manifest) entryInputs(e *Superseded) ([]Input, error) {
	out := make([]Input, 0, len(e.Inputs))
	for _, i := range e.Inputs {
		if i < 0 || i >= len(m.Inputs) {
			return nil, fmt.Errorf("run %s: superseded run %s names input %d of %d", m.RunID, e.RunID, i, len(m.Inputs))
		}
		out = append(out, m.Inputs[i])
	}
	return out, nil
}

// entry returns m's supersedes entry of the run of window w that m holds the points
// of, nil if none: the one m read directly, else any.
func (m *Manifest) entry(w string) *Superseded {
	var found *Superseded
	for i := range m.Supersedes {
		s := &m.Supersedes[i]
		if s.Window == w && (found == nil || s.Direct) {
			found = s
		}
	}
	return found
}

// asCovering is the part of derived run m that covers window w (entry e): a manifest
// with e's inputs and m's skipped frames, which the rule of Publish compares with.
func (m *Manifest) asCovering(e *Superseded) (*Manifest, error) {
	in, err := m.entryInputs(e)
	if err != nil {
		return nil, err
	}
	return &Manifest{RunID: m.RunID, Shard: m.Shard, Window: e.Window, Inputs: in, Degraded: m.Degraded}, nil
}

// compactedPointer is the content of _COMPACTED.json.
type compactedPointer struct {
	// Window is the window whose current run serves this window's points.
	Window string `json:"window"`
}

func compactedKey(shard string, w Window) string {
	return SeriesPrefix + shard + "/" + w.Name() + "/" + compactedName
}

// coveringRun follows the _COMPACTED pointer of (shard, w), whose own run gc collected,
// to the current run that holds its points and returns that run with the part of it
// that covers w. Nil when w has no pointer.
func coveringRun(ctx context.Context, st storage.Store, shard string, w Window) (*Manifest, *Manifest, error) {
	name := w.Name()
	at := w
	for range 16 { // a chain of levels: 4h → 1d → 7d is two steps
		var p compactedPointer
		if err := getJSON(ctx, st, compactedKey(shard, at), &p); err != nil {
			if errors.Is(err, storage.ErrNotExist) {
				return nil, nil, nil
			}
			return nil, nil, fmt.Errorf("read the compaction pointer of %s %s: %w", shard, at.Name(), err)
		}
		next, err := ParseWindowName(p.Window)
		if err != nil {
			return nil, nil, fmt.Errorf("compaction pointer of %s %s: %w", shard, at.Name(), err)
		}
		m, err := CurrentRun(ctx, st, shard, next)
		if errors.Is(err, storage.ErrNotExist) {
			at = next // collected too: its own pointer goes further
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		e := m.entry(name)
		if e == nil {
			return nil, nil, fmt.Errorf("the compaction pointer of %s %s names %s, whose run %s does not supersede a run of the window", shard, name, next.Name(), m.RunID)
		}
		cov, err := m.asCovering(e)
		return m, cov, err
	}
	return nil, nil, fmt.Errorf("the compaction pointers of %s %s form a loop", shard, name)
}

// flattenSupersedes is the supersedes list of a run derived from srcs: each source,
// and everything each source superseded, with inputs as indexes into inputs (the union
// of the sources' inputs, sorted by key).
func flattenSupersedes(srcs []*Manifest, inputs []Input) ([]Superseded, error) {
	idx := map[string]int{}
	for i, in := range inputs {
		idx[in.Key] = i
	}
	seen := map[[2]string]bool{}
	var out []Superseded
	add := func(s Superseded, in []Input) error {
		k := [2]string{s.Window, s.RunID}
		if seen[k] {
			return nil
		}
		seen[k] = true
		s.Inputs = s.Inputs[:0:0]
		for _, x := range in {
			i, ok := idx[x.Key]
			if !ok {
				return fmt.Errorf("BUG: input %s of %s %s is not among the derived run's", x.Key, s.Window, s.RunID)
			}
			s.Inputs = append(s.Inputs, i)
		}
		sort.Ints(s.Inputs)
		out = append(out, s)
		return nil
	}
	for _, m := range srcs {
		if err := add(Superseded{Window: m.Window, RunID: m.RunID, Direct: true, Points: m.Counts.PointsOut}, m.Inputs); err != nil {
			return nil, err
		}
	}
	for _, m := range srcs {
		for i := range m.Supersedes {
			e := m.Supersedes[i]
			in, err := m.entryInputs(&e)
			if err != nil {
				return nil, err
			}
			e.Direct, e.Points = false, 0
			if err := add(e, in); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Window != b.Window {
			return a.Window < b.Window
		}
		return a.RunID < b.RunID
	})
	return out, nil
}

// unionInputs is the union of the sources' inputs, by key, sorted by key.
func unionInputs(srcs []*Manifest) []Input {
	by := map[string]Input{}
	for _, m := range srcs {
		for _, in := range m.Inputs {
			if cur, ok := by[in.Key]; ok {
				// Two windows read different frames of one segment: the input is the
				// segment, its rows the sum over windows is not meaningful; keep the
				// larger count of frames read, which run reports per window.
				if in.Frames > cur.Frames {
					cur.Frames, cur.Rows = in.Frames, in.Rows
				}
				by[in.Key] = cur
				continue
			}
			by[in.Key] = in
		}
	}
	out := make([]Input, 0, len(by))
	for _, in := range by {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
