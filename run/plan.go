package run

import (
	"math"
	"sort"

	"github.com/tailor-metrics/tailor/columnar"
)

// Plan is what one shard run of one window will read, worked out from footers alone.
type Plan struct {
	Shard  string `json:"shard"`
	Window string `json:"window"`
	RunID  string `json:"run_id"`
	// Segments, Frames and Bytes count what the readers will fetch; a frame whose ts
	// range straddles the window's start is read by both the window's reader and the
	// late reader, and counted twice.
	Segments int    `json:"segments"`
	Frames   int    `json:"frames"`
	Bytes    uint64 `json:"bytes"`
	// EstPoints is the rows of those frames: an upper bound on the points the run takes,
	// exact when every frame lies inside the range it is read for.
	EstPoints uint64 `json:"est_points"`

	inputs []Input
	// own reads the window's own points; late the points before it and early the points
	// after it that go to its late output (one split set per upper bound).
	own   []columnar.Split
	late  []columnar.Split
	early []earlySplits
}

type earlySplits struct {
	from   int64
	splits []columnar.Split
}

// Empty reports whether the run has nothing to read.
func (p *Plan) Empty() bool { return len(p.own) == 0 && len(p.late) == 0 && len(p.early) == 0 }

// PlanRun plans the run of (shard, w) over segs by the arrival rule a. Only footers are
// used; the result does not depend on the order of segs.
func PlanRun(segs []*columnar.Segment, shard string, w Window, a Arrival, splitBytes int64) *Plan {
	a.Size = w.Size
	var reads, owned []*columnar.Segment
	earlyBy := map[int64][]*columnar.Segment{}
	for _, s := range segs {
		start := s.Header.StartTimestamp
		if !a.Reads(w, start) {
			continue
		}
		reads = append(reads, s)
		if a.Bounded() && a.Owner(start).From.Equal(w.From) {
			owned = append(owned, s)
			on := a.OnTime(start)
			earlyBy[on.To] = append(earlyBy[on.To], s)
		}
	}
	sortSegs(reads)
	sortSegs(owned)
	win := w.TsRange()
	p := &Plan{Shard: shard, Window: w.Name()}
	p.own = columnar.PlanSplits(reads, shard, win, splitBytes)
	p.late = columnar.PlanSplits(owned, shard, columnar.TimeRange{From: math.MinInt64, To: win.From}, splitBytes)
	froms := make([]int64, 0, len(earlyBy))
	for from := range earlyBy {
		froms = append(froms, from)
	}
	sort.Slice(froms, func(i, j int) bool { return froms[i] < froms[j] })
	for _, from := range froms {
		ss := earlyBy[from]
		sortSegs(ss)
		if sp := columnar.PlanSplits(ss, shard, columnar.TimeRange{From: from, To: math.MaxInt64}, splitBytes); len(sp) > 0 {
			p.early = append(p.early, earlySplits{from: from, splits: sp})
		}
	}
	all := p.splits()
	p.inputs = runInputs(all)
	p.Segments = len(p.inputs)
	for _, sp := range all {
		p.Frames += len(sp.Frames)
		p.EstPoints += sp.Rows()
		for _, f := range sp.Frames {
			p.Bytes += uint64(f.Length)
		}
	}
	p.RunID = runID(shard, w, a, p.inputs)
	return p
}

// splits returns every split the plan reads.
func (p *Plan) splits() []columnar.Split {
	all := append(append([]columnar.Split(nil), p.own...), p.late...)
	for _, e := range p.early {
		all = append(all, e.splits...)
	}
	return all
}

// sortSegs orders segments by key, so plans and reads do not depend on listing order.
func sortSegs(segs []*columnar.Segment) {
	sort.Slice(segs, func(i, j int) bool { return segs[i].Key < segs[j].Key })
}

// runInputs lists the segments splits read, with what the run took from each, by key.
func runInputs(splits []columnar.Split) []Input {
	byKey := map[string]*Input{}
	for _, sp := range splits {
		in := byKey[sp.Seg.Key]
		if in == nil {
			h := sp.Seg.Header
			in = &Input{Key: sp.Seg.Key, Size: sp.Seg.Size, Topic: h.Topic, Partition: h.Partition, StartOffset: h.StartOffset, EndOffset: sp.Seg.Footer.EndOffset}
			byKey[sp.Seg.Key] = in
		}
		in.Frames += len(sp.Frames)
		in.Rows += sp.Rows()
	}
	out := make([]Input, 0, len(byKey))
	for _, in := range byKey {
		out = append(out, *in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
