//go:build duckdb_arrow

package run

import (
	"context"
	"errors"
	"fmt"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// servedBy is what serves one (shard, window): the visible run of the window, or the
// visible derived run that superseded the window's run, with what that run read.
type servedBy struct {
	m       *Manifest
	inputs  map[Input]bool // key and size
	skipped map[columnar.FrameRef]bool
	// entry is set when m serves the window through a superseded run of it.
	entry *Superseded
}

// reads reports whether the serving run read frame f of segment seg.
func (s *servedBy) reads(seg *columnar.Segment, offset uint64) bool {
	return s != nil && s.inputs[Input{Key: seg.Key, Size: seg.Size}] && !s.skipped[columnar.FrameRef{Key: seg.Key, Offset: offset}]
}

// servingIndex maps "shard window" to what serves it, from the current runs.
func servingIndex(cur []*Manifest) (map[string]*servedBy, error) {
	vis := visible(cur)
	out := map[string]*servedBy{}
	skippedOf := func(m *Manifest) map[columnar.FrameRef]bool {
		sk := map[columnar.FrameRef]bool{}
		if m.Degraded != nil {
			for _, f := range m.Degraded.SkippedFrames {
				sk[columnar.FrameRef{Key: f.Segment, Offset: f.Offset}] = true
			}
		}
		return sk
	}
	for _, m := range vis {
		in := map[Input]bool{}
		for _, x := range m.Inputs {
			in[Input{Key: x.Key, Size: x.Size}] = true
		}
		out[m.Shard+" "+m.Window] = &servedBy{m: m, inputs: in, skipped: skippedOf(m)}
	}
	for _, m := range vis {
		for i := range m.Supersedes {
			e := &m.Supersedes[i]
			k := m.Shard + " " + e.Window
			if cur, ok := out[k]; ok && (cur.entry == nil || cur.m.To-cur.m.From >= m.To-m.From) {
				continue // the window's own visible run serves it (a run made after the compaction)
			}
			ins, err := m.entryInputs(e)
			if err != nil {
				return nil, err
			}
			in := map[Input]bool{}
			for _, x := range ins {
				in[Input{Key: x.Key, Size: x.Size}] = true
			}
			out[k] = &servedBy{m: m, inputs: in, skipped: skippedOf(m), entry: e}
		}
	}
	return out, nil
}

// storeArrival is the one arrival rule of runs; an error when they disagree.
func storeArrival(runs []*Manifest) (Arrival, bool, error) {
	if len(runs) == 0 {
		return Arrival{}, false, nil
	}
	a, err := runs[0].Arrival()
	if err != nil {
		return a, false, err
	}
	for _, m := range runs[1:] {
		b, err := m.Arrival()
		if err != nil {
			return a, false, err
		}
		if b != a {
			return a, false, fmt.Errorf("runs disagree on the arrival rule: %s %s has %+v, %s %s has %+v", runs[0].Shard, runs[0].Window, a, m.Shard, m.Window, b)
		}
	}
	return a, true, nil
}

// segmentsCovered reports, for every segment of segs, whether every frame of it is read
// by the run that serves each (shard, window) it gives points to, under the arrival rule
// a, and no window it gives points to waits to run again: then no run needs the segment
// any more. A frame whose windows cannot be found (corrupt) leaves its segment needed.
func segmentsCovered(ctx context.Context, st storage.Store, segs []*columnar.Segment, a Arrival, served map[string]*servedBy) (map[string]bool, error) {
	needed := map[string]bool{}
	sw, err := ShardWindows(ctx, st, segs, a, true, func(err error) {
		var ce *columnar.CorruptSegmentError
		if errors.As(err, &ce) {
			needed[ce.Key] = true
		}
	})
	if err != nil {
		return nil, err
	}
	for shard, ws := range sw {
		for _, w := range ws {
			plan := PlanRun(segs, shard, w, a, columnar.DefaultSplitBytes)
			sb := served[shard+" "+w.Name()]
			pending := false
			for _, sp := range plan.splits() {
				for _, f := range sp.Frames {
					if !sb.reads(sp.Seg, f.Offset) {
						pending = true
					}
				}
			}
			if !pending {
				continue
			}
			// The window's next run reads every segment of its plan again, not only the
			// frames its serving run missed: a segment stored late (out of order, or after
			// a rebalance) makes the window run again, and that run needs the old
			// segments it served from too. Collecting one of them would make the run
			// fail, or publish the window without its points.
			for _, sp := range plan.splits() {
				needed[sp.Seg.Key] = true
			}
		}
	}
	out := make(map[string]bool, len(segs))
	for _, s := range segs {
		out[s.Key] = !needed[s.Key]
	}
	return out, nil
}

// unneededSegments lists st's segments and reports which of them no run needs (see
// segmentsCovered), from the current runs cur. It returns no segments and a reason
// when the serving runs give no single arrival rule (or none is published): then
// every segment is needed. Corrupt footers go to onCorrupt, and their segments stay.
func unneededSegments(ctx context.Context, st storage.Store, cur []*Manifest, onCorrupt func(error)) ([]*columnar.Segment, map[string]bool, string, error) {
	a, ok, err := storeArrival(visible(cur))
	switch {
	case err != nil:
		return nil, nil, err.Error(), nil
	case !ok:
		return nil, nil, "nothing is published", nil
	}
	segs, err := columnar.ListSegmentsWith(ctx, st, columnar.ListOptions{SkipCorrupt: true, OnCorrupt: onCorrupt})
	if err != nil {
		return nil, nil, "", err
	}
	served, err := servingIndex(cur)
	if err != nil {
		return nil, nil, "", err
	}
	covered, err := segmentsCovered(ctx, st, segs, a, served)
	return segs, covered, "", err
}
