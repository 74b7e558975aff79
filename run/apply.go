//go:build duckdb_arrow

package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// ApplyOptions configures ApplyTombstones.
type ApplyOptions struct {
	Store storage.Store
	// Shard, when set, rewrites only that shard's runs (segments and the applied marks
	// wait for a pass over every shard).
	Shard   string
	TempDir string
	// Now stamps the applied marks and the records of dropped segments.
	Now    time.Time
	DryRun bool
	// Recheck also applies the tombstones marked applied (to runs that do not list them:
	// a run that was running while the delete was applied).
	Recheck bool
	Logger  *slog.Logger
}

// ApplyReport is what ApplyTombstones did.
type ApplyReport struct {
	DryRun bool `json:"dry_run,omitempty"`
	// Runs are the runs rewritten without deleted points (in a dry run: to rewrite).
	Runs []RewrittenRun `json:"runs"`
	// Segments are the segments dropped because they hold deleted points and no run
	// needs them; Waiting those that hold some and are still needed by a window's run.
	Segments []string `json:"segments"`
	Waiting  []string `json:"waiting"`
	// Applied are the tombstones now applied: no published run and no segment holds a
	// point of them; Pending the others.
	Applied []string `json:"applied"`
	Pending []string `json:"pending"`
}

// RewrittenRun is one run a delete or retention rewrote.
type RewrittenRun struct {
	Shard  string `json:"shard"`
	Window string `json:"window"`
	From   string `json:"from_run"`
	RunID  string `json:"run_id,omitempty"`
	Counts Counts `json:"counts"`
}

// ApplyTombstones rewrites every serving run that holds a point of a tombstone not yet
// applied to it, drops the segments that hold such points once no run needs them, and
// marks a tombstone applied when nothing holds its points any more.
func ApplyTombstones(ctx context.Context, opt ApplyOptions) (*ApplyReport, error) {
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	st := opt.Store
	rep := &ApplyReport{DryRun: opt.DryRun, Runs: []RewrittenRun{}, Segments: []string{}, Waiting: []string{}, Applied: []string{}, Pending: []string{}}
	all, err := LoadTombstones(ctx, st)
	if err != nil {
		return nil, err
	}
	var pending Tombstones
	for _, t := range all {
		if t.Applied == nil || opt.Recheck {
			pending = append(pending, t)
		}
	}
	if len(pending) == 0 {
		return rep, nil
	}
	vis, err := Published(ctx, st)
	if err != nil {
		return nil, err
	}
	failed := map[string]bool{} // tombstones a failed rewrite leaves pending
	var errs []error
	for _, m := range vis {
		if opt.Shard != "" && m.Shard != opt.Shard {
			continue
		}
		todo := notAppliedTo(m, mayMatch(pending, []*Manifest{m}))
		if len(todo) == 0 {
			continue
		}
		rr := RewrittenRun{Shard: m.Shard, Window: m.Window, From: m.RunID}
		if opt.DryRun {
			rep.Runs = append(rep.Runs, rr)
			continue
		}
		nm, err := rewriteRun(ctx, st, m, "delete", rewriteFilter{tomb: todo}, opt.TempDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("rewrite %s %s: %w", m.Shard, m.Window, err))
			for _, t := range todo {
				failed[t.ID] = true
			}
			continue
		}
		if nm == nil {
			continue // the run's files hold nothing the tombstones delete
		}
		rr.RunID, rr.Counts = nm.RunID, nm.Counts
		rep.Runs = append(rep.Runs, rr)
		opt.Logger.Info("rewrote a run without deleted points", "shard", m.Shard, "window", m.Window, "run", nm.RunID, "deleted", nm.Counts.Deleted)
	}
	if opt.Shard == "" {
		held, err := segmentsHolding(ctx, st, pending)
		if err != nil {
			return rep, err
		}
		if err := dropHeldSegments(ctx, &opt, rep, held); err != nil {
			return rep, err
		}
		for _, t := range pending {
			if failed[t.ID] || len(held[t.ID]) > len(dropped(rep, held[t.ID])) || opt.DryRun {
				rep.Pending = append(rep.Pending, t.ID)
				continue
			}
			if err := markApplied(ctx, st, t, Applied{At: opt.Now.UTC(), Runs: len(rep.Runs), Segments: len(held[t.ID])}); err != nil {
				return rep, err
			}
			rep.Applied = append(rep.Applied, t.ID)
		}
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("apply tombstones: %d runs could not be rewritten (the others are): %w", len(errs), errors.Join(errs...))
	}
	return rep, nil
}

// notAppliedTo drops from ts the tombstones m already left out.
func notAppliedTo(m *Manifest, ts Tombstones) Tombstones {
	done := map[string]bool{}
	for _, id := range m.Tombstones {
		done[id] = true
	}
	var out Tombstones
	for _, t := range ts {
		if !done[t.ID] {
			out = append(out, t)
		}
	}
	return out
}

// segmentsHolding returns, by tombstone id, the stored segments that hold a point the
// tombstone deletes (decoded: only frames whose ts range meets the tombstone's).
func segmentsHolding(ctx context.Context, st storage.Store, ts Tombstones) (map[string][]*columnar.Segment, error) {
	segs, err := columnar.ListSegmentsWith(ctx, st, columnar.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string][]*columnar.Segment{}
	topics := columnar.Topics(segs)
	for _, s := range segs {
		for i := range ts {
			t := &ts[i]
			var frames []columnar.FrameInfo
			for _, f := range s.Footer.Frames {
				if f.MinTs < t.To && f.MaxTs >= t.From {
					frames = append(frames, f)
				}
			}
			if len(frames) == 0 {
				continue
			}
			holds, err := framesHold(ctx, st, s, frames, topics, t)
			if err != nil {
				return nil, err
			}
			if holds {
				out[t.ID] = append(out[t.ID], s)
			}
		}
	}
	return out, nil
}

// framesHold reports whether frames of s hold a point t deletes.
func framesHold(ctx context.Context, st storage.Store, s *columnar.Segment, frames []columnar.FrameInfo, topics map[string]uint16, t *Tombstone) (bool, error) {
	rd := columnar.NewPointReader(ctx, st, []columnar.Split{{Seg: s, Frames: frames}}, topics, columnar.ReadOptions{Window: columnar.TimeRange{From: t.From, To: t.To}})
	defer rd.Release()
	for rd.Next() {
		b := rd.RecordBatch()
		org := b.Column(0).(*array.Uint32)
		met := b.Column(1).(*array.Uint64)
		for i := 0; i < int(b.NumRows()); i++ {
			if org.Value(i) == t.Org && (t.Metric == nil || met.Value(i) == *t.Metric) {
				return true, nil
			}
		}
	}
	if err := rd.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", s.Key, err)
	}
	return false, nil
}

// dropHeldSegments collects the held segments that no run needs; the others wait.
func dropHeldSegments(ctx context.Context, opt *ApplyOptions, rep *ApplyReport, held map[string][]*columnar.Segment) error {
	bySeg := map[string]*columnar.Segment{}
	for _, ss := range held {
		for _, s := range ss {
			bySeg[s.Key] = s
		}
	}
	if len(bySeg) == 0 {
		return nil
	}
	cur, err := listCurrent(ctx, opt.Store)
	if err != nil {
		return err
	}
	_, covered, why, err := unneededSegments(ctx, opt.Store, cur, nil)
	if err != nil {
		return err
	}
	if why != "" {
		for k := range bySeg {
			rep.Waiting = append(rep.Waiting, k)
		}
		sort.Strings(rep.Waiting)
		return nil
	}
	var take []*columnar.Segment
	for k, s := range bySeg {
		if covered[k] {
			take = append(take, s)
			rep.Segments = append(rep.Segments, k)
		} else {
			rep.Waiting = append(rep.Waiting, k)
		}
	}
	sort.Strings(rep.Segments)
	sort.Strings(rep.Waiting)
	if opt.DryRun {
		return nil
	}
	return collectByPartition(ctx, opt.Store, take, opt.Now, "holds deleted points and no run needs it")
}

// dropped returns the segments of ss that rep dropped.
func dropped(rep *ApplyReport, ss []*columnar.Segment) []string {
	in := map[string]bool{}
	for _, k := range rep.Segments {
		in[k] = true
	}
	var out []string
	for _, s := range ss {
		if in[s.Key] {
			out = append(out, s.Key)
		}
	}
	return out
}
