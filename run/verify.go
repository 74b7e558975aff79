//go:build duckdb_arrow

package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/rollup"
	"github.com/tailor-metrics/tailor/storage"
)

// Verify proves from a store's own files that every point the sink stored is served by
// a published run, and that what is published is intact (docs/verify.md). It checks the
// segments (each partition's offsets one gapless, non-overlapping chain up to the
// group's committed offset when known), the runs (every manifest's parts present with
// their size and SHA-256, and decodable; every input still there or reported as
// collected), and the coverage (every frame of every segment read by the current run of
// every shard and window its points belong to). With Deep it also runs every current run
// again from its inputs, in memory, and compares the counts and the parts' bytes.
//
// Damage is a Problem in the report, never an error: Verify returns an error only when
// it cannot check (the store fails, the context ends).

// VerifyOptions configures Verify.
type VerifyOptions struct {
	Store storage.Store
	// Shard and Window, when set, limit the runs and coverage checked (the segment chains
	// are always checked whole: they are per partition, not per shard).
	Shard  string
	Window *Window
	// Arrival is the arrival rule the runs were made with (run's --window-size,
	// --lateness and --flush-age).
	Arrival Arrival
	// Committed, when not nil, is the consumer group's committed offset by topic and
	// partition: the segments must reach it.
	Committed map[string]map[int32]int64
	// Deep re-derives each current run from its inputs and compares.
	Deep bool
	// Engine and Readers configure the deep runs.
	Engine  query.Options
	Readers int
	// Parallel is how many parts are checked at once (default: the cores).
	Parallel int
	// Stage, when not nil, is called as Verify enters each check, for progress output.
	Stage func(stage string)
}

// ProblemKind names one kind of damage Verify finds.
type ProblemKind uint8

// The kinds of damage, in the order the report lists them.
const (
	SegmentUnreadable  ProblemKind = iota + 1 // a segment's header, trailer or footer is corrupt
	SegmentGap                                // offsets between two segments are in none
	SegmentOverlap                            // offsets are in two segments
	CommittedGap                              // offsets below the committed offset are in no segment
	FrameCorrupt                              // a frame does not decode (found while planning or in deep mode)
	CurrentMissing                            // _CURRENT names a run without a manifest
	ManifestUnreadable                        // a manifest does not parse
	PartMissing                               // a manifest's part is not in the store
	PartSize                                  // a part's size is not the manifest's
	PartChecksum                              // a part's SHA-256 is not the manifest's
	PartCorrupt                               // a part does not decode
	InputChanged                              // an input segment's size is not the manifest's
	RunDegraded                               // the current run skipped corrupt frames
	NotRun                                    // frames are read by no current run
	RuleDiffers                               // a run was made with another arrival rule
	CountsDiffer                              // deep: a run made again gives other counts or bytes
	InputLost                                 // an input segment is gone and gc did not collect it
	DerivedMismatch                           // a derived run does not account for its sources
	DeletedRemains                            // a point of an applied delete is still stored
)

// lastProblemKind is the last kind, for tests that walk them all.
const lastProblemKind = DeletedRemains

var problemNames = [...]string{
	SegmentUnreadable:  "segment_unreadable",
	SegmentGap:         "segment_gap",
	SegmentOverlap:     "segment_overlap",
	CommittedGap:       "committed_gap",
	FrameCorrupt:       "frame_corrupt",
	CurrentMissing:     "current_missing",
	ManifestUnreadable: "manifest_unreadable",
	PartMissing:        "part_missing",
	PartSize:           "part_size",
	PartChecksum:       "part_checksum",
	PartCorrupt:        "part_corrupt",
	InputChanged:       "input_changed",
	RunDegraded:        "run_degraded",
	NotRun:             "not_run",
	RuleDiffers:        "rule_differs",
	CountsDiffer:       "counts_differ",
	InputLost:          "input_lost",
	DerivedMismatch:    "derived_mismatch",
	DeletedRemains:     "deleted_remains",
}

// IsValid reports whether k is a known kind.
func (k ProblemKind) IsValid() bool { return int(k) < len(problemNames) && problemNames[k] != "" }

func (k ProblemKind) String() string {
	if !k.IsValid() {
		return fmt.Sprintf("problem(%d)", uint8(k))
	}
	return problemNames[k]
}

// MarshalText writes the kind's name, for the JSON report.
func (k ProblemKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Problem is one piece of damage. The fields that do not apply are empty.
type Problem struct {
	Kind   ProblemKind `json:"kind"`
	Shard  string      `json:"shard,omitempty"`
	Window string      `json:"window,omitempty"`
	RunID  string      `json:"run_id,omitempty"`
	// Key is the object: a segment, part or manifest.
	Key       string `json:"key,omitempty"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition,omitempty"`
	// From and To are an offset range [From, To) (gaps, overlaps), or a byte offset in
	// From (frames).
	From int64 `json:"from,omitempty"`
	To   int64 `json:"to,omitempty"`
	// Points and Bytes count what the damage leaves unserved, from footers.
	Points uint64 `json:"points,omitempty"`
	Bytes  uint64 `json:"bytes,omitempty"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Kind.String())
	for _, f := range [][2]string{{"shard", p.Shard}, {"window", p.Window}, {"run", p.RunID}, {"key", p.Key}} {
		if f[1] != "" {
			fmt.Fprintf(&b, " %s=%s", f[0], f[1])
		}
	}
	if p.Topic != "" {
		fmt.Fprintf(&b, " partition=%s-%d", p.Topic, p.Partition)
	}
	switch p.Kind {
	case SegmentGap, SegmentOverlap, CommittedGap:
		fmt.Fprintf(&b, " offsets=[%d,%d)", p.From, p.To)
	case FrameCorrupt:
		fmt.Fprintf(&b, " byte=%d", p.From)
	}
	if p.Points > 0 {
		fmt.Fprintf(&b, " points=%d", p.Points)
	}
	if p.Bytes > 0 {
		fmt.Fprintf(&b, " bytes=%d", p.Bytes)
	}
	b.WriteString(": ")
	b.WriteString(p.Detail)
	return b.String()
}

// PartitionChain is one partition's stored offsets.
type PartitionChain struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Segments  int    `json:"segments"`
	// From is the first stored offset, To one past the last.
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// Committed is the group's committed offset, -1 when unknown.
	Committed int64 `json:"committed"`
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Segments   int              `json:"segments"`
	Bytes      int64            `json:"segment_bytes"`
	Partitions []PartitionChain `json:"partitions"`
	// Runs counts the manifests checked; Current the runs that serve; Parts and
	// PartBytes the parts checked.
	Runs      int   `json:"runs"`
	Current   int   `json:"current"`
	Parts     int   `json:"parts"`
	PartBytes int64 `json:"part_bytes"`
	// Collected are the input segments that manifests name and the store no longer
	// holds (collected by gc, or lost: coverage shows which).
	Collected []string `json:"collected,omitempty"`
	// Windows counts the (shard, window)s with points; Covered those whose every frame
	// the current run read; Frames and Points what coverage checked.
	Windows int    `json:"windows"`
	Covered int    `json:"covered"`
	Frames  int    `json:"frames"`
	Points  uint64 `json:"points"`
	// Deep counts the runs made again in deep mode; DeepSkipped the current runs it could
	// not make again because an input is collected, replaced or unreadable (each of those
	// is reported on its own); DeepDerived the derived runs it does not make again, as
	// they are made from runs, not segments (docs/lifecycle.md).
	Deep        int `json:"deep_runs,omitempty"`
	DeepSkipped int `json:"deep_skipped,omitempty"`
	DeepDerived int `json:"deep_derived,omitempty"`
	// Derived counts the serving runs made by compaction, deletes or retention;
	// Superseded the current runs they supersede.
	Derived    int `json:"derived"`
	Superseded int `json:"superseded"`
	// Tombstones counts the recorded deletes, Applied those applied: verify checked
	// that no part of a serving run and no segment holds a point of them.
	Tombstones int `json:"tombstones"`
	Applied    int `json:"applied"`
	// CollectedRanges counts gc's records of collected segments.
	CollectedRanges int       `json:"collected_ranges"`
	Problems        []Problem `json:"problems"`
}

// OK reports whether nothing is damaged.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Count returns the number of problems of kind k.
func (r *VerifyReport) Count(k ProblemKind) int {
	n := 0
	for _, p := range r.Problems {
		if p.Kind == k {
			n++
		}
	}
	return n
}

type verifier struct {
	opt  VerifyOptions
	rep  *VerifyReport
	mu   sync.Mutex
	segs []*columnar.Segment
	size map[string]int64 // segment key → size, of every segment listed (readable or not)

	// collected are the offset ranges gc recorded, by topic and partition.
	collected map[string]map[int32][]columnar.OffsetRange
	tombByID  map[string]Tombstone
	applied   Tombstones
	// served says what serves each "shard window"; hidden the current runs a derived
	// run supersedes.
	served map[string]*servedBy
	hidden map[RunRef]*Manifest
}

// wasCollected reports whether gc recorded the offsets [from, to) of a partition.
func (v *verifier) wasCollected(topic string, part int32, from, to int64) bool {
	for _, r := range v.collected[topic][part] {
		if r.From <= from && to <= r.To {
			return true
		}
	}
	return false
}

func (v *verifier) problem(p Problem) {
	v.mu.Lock()
	v.rep.Problems = append(v.rep.Problems, p)
	v.mu.Unlock()
}

func (v *verifier) stage(s string) {
	if v.opt.Stage != nil {
		v.opt.Stage(s)
	}
}

// Verify checks the store of opt (see the comment at the top of verify.go).
func Verify(ctx context.Context, opt VerifyOptions) (*VerifyReport, error) {
	if opt.Arrival.Size <= 0 {
		opt.Arrival.Size = DefaultWindowSize
	}
	if err := opt.Arrival.validate(); err != nil {
		return nil, err
	}
	if opt.Parallel <= 0 {
		opt.Parallel = runtime.NumCPU()
	}
	v := &verifier{opt: opt, rep: &VerifyReport{Problems: []Problem{}}, size: map[string]int64{}, tombByID: map[string]Tombstone{}}
	tombs, err := LoadTombstones(ctx, opt.Store)
	if err != nil {
		return nil, err
	}
	for _, t := range tombs {
		v.tombByID[t.ID] = t
		if t.Applied != nil {
			v.applied = append(v.applied, t)
		}
	}
	v.rep.Tombstones, v.rep.Applied = len(tombs), len(v.applied)
	if v.collected, err = CollectedRanges(ctx, opt.Store); err != nil {
		return nil, err
	}
	for _, parts := range v.collected {
		for _, rs := range parts {
			v.rep.CollectedRanges += len(rs)
		}
	}
	v.stage("segments")
	if err := v.segments(ctx); err != nil {
		return nil, err
	}
	v.stage("runs")
	runs, err := v.runs(ctx)
	if err != nil {
		return nil, err
	}
	v.stage("coverage")
	if err := v.coverage(ctx, runs); err != nil {
		return nil, err
	}
	if len(v.applied) > 0 {
		v.stage("deletes")
		if err := v.deletedSegments(ctx); err != nil {
			return nil, err
		}
	}
	if opt.Deep {
		v.stage("deep")
		if err := v.deep(ctx, runs); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(v.rep.Problems, func(i, j int) bool { return v.rep.Problems[i].Kind < v.rep.Problems[j].Kind })
	return v.rep, nil
}

// segments opens every segment and checks each partition's chain of offsets.
func (v *verifier) segments(ctx context.Context) error {
	if err := v.opt.Store.List(ctx, "segments/", func(a storage.Attrs) error {
		v.size[a.Key] = a.Size
		return nil
	}); err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	segs, err := columnar.ListSegmentsWith(ctx, v.opt.Store, columnar.ListOptions{SkipCorrupt: true, OnCorrupt: func(err error) {
		p := Problem{Kind: SegmentUnreadable, Detail: err.Error()}
		var ce *columnar.CorruptSegmentError
		if errors.As(err, &ce) {
			p.Key, p.From = ce.Key, int64(ce.Offset)
		}
		v.problem(p)
	}})
	if err != nil {
		return err
	}
	v.segs = segs
	v.rep.Segments = len(segs)
	for _, s := range segs {
		v.rep.Bytes += s.Size
	}
	for _, c := range columnar.Chains(segs) {
		pc := PartitionChain{Topic: c.Topic, Partition: c.Partition, Segments: len(c.Segments), From: c.From, To: c.To, Committed: -1}
		// Offsets gc collected are accounted for: the chain reaches back and forth
		// through them, and a hole they fill is no gap.
		for _, r := range v.collected[c.Topic][c.Partition] {
			pc.From, pc.To = min(pc.From, r.From), max(pc.To, r.To)
			c.To = max(c.To, r.To)
		}
		if gaps := v.gapsOutside(c.Topic, c.Partition, pc.From, c.Segments); gaps != nil {
			c.Gaps = gaps
		}
		for _, g := range c.Gaps {
			v.problem(Problem{Kind: SegmentGap, Topic: c.Topic, Partition: c.Partition, From: g.From, To: g.To, Key: g.Next,
				Detail: fmt.Sprintf("offsets [%d, %d) are in no segment (the next segment is %s)", g.From, g.To, g.Next)})
		}
		for _, o := range c.Overlaps {
			v.problem(Problem{Kind: SegmentOverlap, Topic: c.Topic, Partition: c.Partition, From: o.From, To: o.To, Key: o.Next,
				Detail: fmt.Sprintf("offsets [%d, %d) are in both %s and %s", o.From, o.To, o.Prev, o.Next)})
		}
		if committed, ok := v.opt.Committed[c.Topic][c.Partition]; ok {
			pc.Committed = committed
			if committed > pc.To {
				v.problem(Problem{Kind: CommittedGap, Topic: c.Topic, Partition: c.Partition, From: pc.To, To: committed,
					Detail: fmt.Sprintf("the group committed offset %d but the segments end at %d: offsets [%d, %d) were committed and never stored", committed, pc.To, pc.To, committed)})
			}
		}
		v.rep.Partitions = append(v.rep.Partitions, pc)
	}
	// Committed partitions without any segment.
	seen := map[string]map[int32]bool{}
	for _, c := range v.rep.Partitions {
		if seen[c.Topic] == nil {
			seen[c.Topic] = map[int32]bool{}
		}
		seen[c.Topic][c.Partition] = true
	}
	// Partitions whose every segment gc collected: their record is their chain.
	for topic, parts := range v.collected {
		for p, rs := range parts {
			if seen[topic][p] {
				continue
			}
			pc := PartitionChain{Topic: topic, Partition: p, From: rs[0].From, To: rs[0].To, Committed: -1}
			for _, r := range rs[1:] {
				if r.From > pc.To {
					v.problem(Problem{Kind: SegmentGap, Topic: topic, Partition: p, From: pc.To, To: r.From, Key: r.Next,
						Detail: fmt.Sprintf("offsets [%d, %d) are in no segment and in no gc record (the next record is %s)", pc.To, r.From, r.Next)})
				}
				pc.To = max(pc.To, r.To)
			}
			if committed, ok := v.opt.Committed[topic][p]; ok {
				pc.Committed = committed
				if committed > pc.To {
					v.problem(Problem{Kind: CommittedGap, Topic: topic, Partition: p, From: pc.To, To: committed,
						Detail: fmt.Sprintf("the group committed offset %d but the collected segments end at %d and none is stored", committed, pc.To)})
				}
			}
			if seen[topic] == nil {
				seen[topic] = map[int32]bool{}
			}
			seen[topic][p] = true
			v.rep.Partitions = append(v.rep.Partitions, pc)
		}
	}
	for topic, parts := range v.opt.Committed {
		for p, committed := range parts {
			if committed > 0 && !seen[topic][p] {
				v.problem(Problem{Kind: CommittedGap, Topic: topic, Partition: p, From: 0, To: committed,
					Detail: fmt.Sprintf("the group committed offset %d and no segment of this partition is stored", committed)})
				v.rep.Partitions = append(v.rep.Partitions, PartitionChain{Topic: topic, Partition: p, Committed: committed})
			}
		}
	}
	sort.Slice(v.rep.Partitions, func(i, j int) bool {
		a, b := v.rep.Partitions[i], v.rep.Partitions[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	return nil
}

// gapsOutside returns a partition's gaps between from and its last segment that no gc
// record covers, when the partition has records (nil: Chains' gaps stand).
func (v *verifier) gapsOutside(topic string, part int32, from int64, segs []*columnar.Segment) []columnar.OffsetRange {
	rs := v.collected[topic][part]
	if len(rs) == 0 {
		return nil
	}
	type span struct {
		from, to int64
		key      string
	}
	var all []span
	for _, s := range segs {
		all = append(all, span{s.Header.StartOffset, s.Footer.EndOffset, s.Key})
	}
	for _, r := range rs {
		all = append(all, span{r.From, r.To, r.Next})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].from < all[j].from })
	out := []columnar.OffsetRange{}
	end, prev := from, ""
	for _, x := range all {
		if x.from > end {
			out = append(out, columnar.OffsetRange{From: end, To: x.from, Prev: prev, Next: x.key})
		}
		if x.to > end {
			end, prev = x.to, x.key
		}
	}
	return out
}

// publishedRun is one manifest found under series/, and whether it serves.
type publishedRun struct {
	m       *Manifest
	w       Window
	current bool
}

// selected reports whether the options' shard and window filters keep (shard, w).
func (v *verifier) selected(shard string, w Window) bool {
	if v.opt.Shard != "" && shard != v.opt.Shard {
		return false
	}
	if v.opt.Window != nil && (!w.From.Equal(v.opt.Window.From) || w.Size != v.opt.Window.Size) {
		return false
	}
	return true
}

// runs finds every manifest and _CURRENT under series/ and checks the runs' parts and
// inputs. It returns the current runs by "shard window".
func (v *verifier) runs(ctx context.Context) (map[string]*publishedRun, error) {
	type dirKey struct{ shard, window string }
	manifests := map[dirKey][]string{} // run ids with a manifest
	currents := map[dirKey]bool{}
	err := v.opt.Store.List(ctx, SeriesPrefix, func(a storage.Attrs) error {
		parts := strings.Split(strings.TrimPrefix(a.Key, SeriesPrefix), "/")
		switch {
		case len(parts) == 3 && parts[2] == currentName:
			currents[dirKey{parts[0], parts[1]}] = true
		case len(parts) == 4 && parts[3] == manifestName:
			k := dirKey{parts[0], parts[1]}
			manifests[k] = append(manifests[k], parts[2])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	current := map[string]*publishedRun{}
	var all []*publishedRun
	var missingCurrent []dirKey
	for k := range currents {
		w, err := ParseWindowName(k.window)
		if err != nil {
			v.problem(Problem{Kind: CurrentMissing, Shard: k.shard, Window: k.window, Detail: fmt.Sprintf("bad window name: %v", err)})
			continue
		}
		if !v.selected(k.shard, w) {
			continue
		}
		m, err := CurrentRun(ctx, v.opt.Store, k.shard, w)
		switch {
		case errors.Is(err, storage.ErrNotExist):
			missingCurrent = append(missingCurrent, k)
			continue
		case err != nil && strings.Contains(err.Error(), "parse "):
			v.problem(Problem{Kind: ManifestUnreadable, Shard: k.shard, Window: k.window, Detail: err.Error()})
			continue
		case err != nil:
			return nil, err
		}
		current[k.shard+" "+k.window] = &publishedRun{m: m, w: w, current: true}
	}
	// What serves: the current runs, less those a current derived run supersedes.
	var curMs []*Manifest
	for _, r := range current {
		curMs = append(curMs, r.m)
	}
	v.hidden = supersededBy(curMs)
	if v.served, err = servingIndex(curMs); err != nil {
		v.problem(Problem{Kind: DerivedMismatch, Detail: err.Error()})
		v.served = map[string]*servedBy{}
	}
	for _, k := range missingCurrent {
		var c struct {
			RunID string `json:"run_id"`
		}
		if getJSON(ctx, v.opt.Store, currentKey(k.shard, mustWindow(k.window)), &c) == nil {
			if _, ok := v.hidden[RunRef{k.shard, k.window, c.RunID}]; ok {
				continue // superseded and collected: nothing reads it
			}
		}
		v.problem(Problem{Kind: CurrentMissing, Shard: k.shard, Window: k.window, Detail: "_CURRENT.json names a run whose manifest is not in the store: readers of this window fail"})
	}
	for _, r := range current {
		if _, ok := v.hidden[r.m.Ref()]; ok {
			v.rep.Superseded++
		} else if r.m.Derived != nil {
			v.rep.Derived++
		}
	}
	for k, ids := range manifests {
		w, err := ParseWindowName(k.window)
		if err != nil || !v.selected(k.shard, w) {
			continue
		}
		for _, id := range ids {
			if cur := current[k.shard+" "+k.window]; cur != nil && cur.m.RunID == id {
				all = append(all, cur)
				continue
			}
			m, err := ReadManifest(ctx, v.opt.Store, k.shard, w, id)
			if err != nil {
				if errors.Is(err, storage.ErrNotExist) {
					continue // deleted since the listing
				}
				if strings.Contains(err.Error(), "parse ") {
					v.problem(Problem{Kind: ManifestUnreadable, Shard: k.shard, Window: k.window, RunID: id, Detail: err.Error()})
					continue
				}
				return nil, err
			}
			all = append(all, &publishedRun{m: m, w: w})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i].m, all[j].m
		return a.Shard < b.Shard || a.Shard == b.Shard && (a.From < b.From || a.From == b.From && a.RunID < b.RunID)
	})
	v.rep.Runs, v.rep.Current = len(all), len(current)

	// Inputs: still there with their size, or collected.
	collected := map[string]bool{}
	for _, r := range all {
		for _, in := range r.m.Inputs {
			size, ok := v.size[in.Key]
			switch {
			case !ok:
				if !collected[in.Key] && !v.wasCollected(in.Topic, in.Partition, in.StartOffset, in.EndOffset) {
					v.problem(Problem{Kind: InputLost, Shard: r.m.Shard, Window: r.m.Window, RunID: r.m.RunID, Key: in.Key, Topic: in.Topic, Partition: in.Partition,
						From: in.StartOffset, To: in.EndOffset, Points: in.Rows,
						Detail: "the run read this segment, the store no longer holds it and no gc record says it was collected: it was lost (a window of it can no longer be made again)"})
				}
				collected[in.Key] = true
			case size != in.Size:
				v.problem(Problem{Kind: InputChanged, Shard: r.m.Shard, Window: r.m.Window, RunID: r.m.RunID, Key: in.Key,
					Detail: fmt.Sprintf("the run read %d bytes of this segment and the store holds %d: it was replaced since", in.Size, size)})
			}
		}
		runWin := time.Duration(r.m.runWindow()) * time.Millisecond
		if r.m.Algo != algoVersion || r.m.LatenessMs != latenessMs(v.opt.Arrival) || r.m.FlushAgeMs != v.opt.Arrival.FlushAge.Milliseconds() || runWin != v.opt.Arrival.Size {
			if r.current {
				v.problem(Problem{Kind: RuleDiffers, Shard: r.m.Shard, Window: r.m.Window, RunID: r.m.RunID,
					Detail: fmt.Sprintf("the run used %s, lateness %d ms, flush age %d ms and %s windows; verify checks %s, %d ms, %d ms and %s (verify with the run's window size, lateness and flush age)",
						r.m.Algo, r.m.LatenessMs, r.m.FlushAgeMs, runWin, algoVersion, latenessMs(v.opt.Arrival), v.opt.Arrival.FlushAge.Milliseconds(), v.opt.Arrival.Size)})
			}
		}
		if r.current {
			if _, hidden := v.hidden[r.m.Ref()]; !hidden && r.m.Derived != nil {
				v.checkDerived(ctx, r.m)
			}
		}
	}
	for k := range collected {
		v.rep.Collected = append(v.rep.Collected, k)
	}
	sort.Strings(v.rep.Collected)

	// Parts: present, the recorded size and SHA-256, decodable.
	type job struct {
		r      *publishedRun
		part   Part
		rollup bool
		points bool // own or late points: checked against applied deletes when serving
	}
	var jobs []job
	for _, r := range all {
		_, hidden := v.hidden[r.m.Ref()]
		serving := r.current && !hidden
		for _, p := range append(append([]Part(nil), r.m.Parts...), r.m.LateParts...) {
			jobs = append(jobs, job{r, p, false, serving})
		}
		for _, p := range r.m.ArrivalParts {
			jobs = append(jobs, job{r, p, false, false})
		}
		for _, set := range r.m.Rollups {
			for _, p := range set.Parts {
				jobs = append(jobs, job{r, p, true, serving})
			}
		}
	}
	v.rep.Parts = len(jobs)
	next := make(chan job)
	errc := make(chan error, v.opt.Parallel)
	var wg sync.WaitGroup
	for range v.opt.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				n, err := v.checkPart(ctx, j.r.m, j.part, j.rollup, j.points)
				if err != nil {
					errc <- err
					for range next {
					}
					return
				}
				v.mu.Lock()
				v.rep.PartBytes += n
				v.mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	return current, nil
}

// checkPart reads one part whole and checks its size, checksum and every block (a
// rollup part's every section); with deletes, that it holds no point of an applied one.
func (v *verifier) checkPart(ctx context.Context, m *Manifest, p Part, isRollup, deletes bool) (int64, error) {
	pr := Problem{Shard: m.Shard, Window: m.Window, RunID: m.RunID, Key: p.Key}
	b, err := storage.ReadAll(ctx, v.opt.Store, p.Key)
	if errors.Is(err, storage.ErrNotExist) {
		pr.Kind, pr.Points, pr.Detail = PartMissing, p.Points, "the manifest names this part and the store does not hold it"
		v.problem(pr)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if int64(len(b)) != p.Size {
		pr.Kind, pr.Points, pr.Detail = PartSize, p.Points, fmt.Sprintf("%d bytes, the manifest says %d", len(b), p.Size)
		v.problem(pr)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != p.SHA256 {
		pr.Kind, pr.Points, pr.Detail = PartChecksum, p.Points, fmt.Sprintf("SHA-256 %s, the manifest says %s", hex.EncodeToString(sum[:]), p.SHA256)
		v.problem(pr)
	}
	var series, points uint64
	var held []string
	var tomb Tombstones
	if deletes {
		tomb = v.applied
	}
	if isRollup {
		series, points, held, err = decodeRollup(b, tomb)
	} else {
		series, points, held, err = decodeAllDeleted(b, tomb)
	}
	for _, id := range held {
		t := v.tombByID[id]
		v.problem(Problem{Kind: DeletedRemains, Shard: m.Shard, Window: m.Window, RunID: m.RunID, Key: p.Key,
			Detail: fmt.Sprintf("the part holds points of %s, applied at %s: applying the applied deletes again rewrites the run", t.String(), t.Applied.At.Format(time.RFC3339))})
	}
	if err != nil {
		pr.Kind, pr.Points, pr.Detail = PartCorrupt, p.Points, err.Error()
		v.problem(pr)
	} else if series != p.Series || points != p.Points {
		pr.Kind, pr.Points, pr.Detail = PartCorrupt, p.Points, fmt.Sprintf("decodes to %d series and %d points, the manifest says %d and %d", series, points, p.Series, p.Points)
		v.problem(pr)
	}
	return int64(len(b)), nil
}

// decodeAllDeleted decodes every series of a series file, checking every block, and
// returns the ids of the tombstones of tomb that delete a point of the file.
func decodeAllDeleted(b []byte, tomb Tombstones) (series, points uint64, held []string, err error) {
	r, err := encoder.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return 0, 0, nil, err
	}
	hit := map[string]bool{}
	it := r.Iterator(nil)
	for it.Next() {
		s := it.At()
		series++
		points += uint64(len(s.Ts))
		for i := range tomb {
			t := &tomb[i]
			if !hit[t.ID] && t.mayHold(s.Key, s.Ts[0], s.Ts[len(s.Ts)-1]) {
				if j, _ := slices.BinarySearch(s.Ts, t.From); j < len(s.Ts) && s.Ts[j] < t.To {
					hit[t.ID] = true
				}
			}
		}
	}
	for id := range hit {
		held = append(held, id)
	}
	sort.Strings(held)
	return series, points, held, it.Err()
}

// decodeRollup decodes every series of a rollup file, every section checked, and
// returns the ids of the tombstones of tomb that a bucket of it holds points of.
func decodeRollup(b []byte, tomb Tombstones) (series, buckets uint64, held []string, err error) {
	r, err := rollup.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return 0, 0, nil, err
	}
	hit := map[string]bool{}
	var rs []tsRange
	it := r.Iterator()
	for it.Next() {
		s := it.At()
		series++
		buckets += uint64(len(s.Buckets))
		for i := range tomb {
			t := &tomb[i]
			if hit[t.ID] {
				continue
			}
			rs = Tombstones{*t}.ranges(s.Key, rs)
			for _, bk := range s.Buckets {
				if hidden(rs, bk.Start, bk.Start+r.Resolution()) {
					hit[t.ID] = true
					break
				}
			}
		}
	}
	for id := range hit {
		held = append(held, id)
	}
	sort.Strings(held)
	return series, buckets, held, it.Err()
}

// checkDerived checks that a serving derived run accounts for its sources: its counts
// add up, its points in are its direct sources' points out, and every source still
// published read what the manifest says it read.
func (v *verifier) checkDerived(ctx context.Context, m *Manifest) {
	pr := func(detail string) {
		v.problem(Problem{Kind: DerivedMismatch, Shard: m.Shard, Window: m.Window, RunID: m.RunID, Detail: detail})
	}
	c := m.Counts
	if c.PointsOut+c.Duplicates+c.Deleted+c.Expired != c.PointsIn {
		pr(fmt.Sprintf("%d points out + %d duplicates + %d deleted + %d expired != %d points in", c.PointsOut, c.Duplicates, c.Deleted, c.Expired, c.PointsIn))
	}
	var direct uint64
	n := 0
	for i := range m.Supersedes {
		e := &m.Supersedes[i]
		in, err := m.entryInputs(e)
		if err != nil {
			pr(err.Error())
			return
		}
		if !e.Direct {
			continue
		}
		n++
		direct += e.Points
		w, err := ParseWindowName(e.Window)
		if err != nil {
			pr(err.Error())
			continue
		}
		src, err := ReadManifest(ctx, v.opt.Store, m.Shard, w, e.RunID)
		if err != nil {
			continue // collected by gc: the entry is the record
		}
		if src.Counts.PointsOut != e.Points || lessThan(&Manifest{Inputs: in}, src) != nil || lessThan(src, &Manifest{Inputs: in}) != nil {
			pr(fmt.Sprintf("source %s %s read other inputs or counted other points (%d) than the derived run recorded (%d)", e.Window, e.RunID, src.Counts.PointsOut, e.Points))
		}
	}
	if n == 0 {
		pr("a derived run names no direct source")
	} else if direct != c.PointsIn {
		pr(fmt.Sprintf("its sources wrote %d points, it read %d", direct, c.PointsIn))
	}
}

// deletedSegments checks that no stored segment holds a point of an applied delete.
func (v *verifier) deletedSegments(ctx context.Context) error {
	held, err := segmentsHolding(ctx, v.opt.Store, v.applied)
	if err != nil {
		return err
	}
	for id, segs := range held {
		t := v.tombByID[id]
		for _, s := range segs {
			v.problem(Problem{Kind: DeletedRemains, Key: s.Key, Topic: s.Header.Topic, Partition: s.Header.Partition,
				Detail: fmt.Sprintf("the segment holds points of %s, applied at %s: applying the applied deletes again drops it once no run needs it", t.String(), t.Applied.At.Format(time.RFC3339))})
		}
	}
	return nil
}

func mustWindow(name string) Window {
	w, _ := ParseWindowName(name)
	return w
}

// coverage checks that the current run of every (shard, window) with points read every
// frame its plan reads.
func (v *verifier) coverage(ctx context.Context, current map[string]*publishedRun) error {
	a := v.opt.Arrival
	sw, err := ShardWindows(ctx, v.opt.Store, v.segs, a, true, func(err error) {
		p := Problem{Kind: FrameCorrupt, Detail: err.Error()}
		var ce *columnar.CorruptSegmentError
		if errors.As(err, &ce) {
			p.Key, p.From = ce.Key, int64(ce.Offset)
		}
		v.problem(p)
	})
	if err != nil {
		return err
	}
	shards := make([]string, 0, len(sw))
	for s := range sw {
		shards = append(shards, s)
	}
	sort.Strings(shards)
	counted := map[columnar.FrameRef]bool{} // the totals count a frame once, however many windows read it
	for _, shard := range shards {
		for _, w := range sw[shard] {
			if !v.selected(shard, w) {
				continue
			}
			plan := PlanRun(v.segs, shard, w, a, columnar.DefaultSplitBytes)
			if plan.Empty() {
				continue
			}
			v.rep.Windows++
			// The run that serves the window: its own, or the derived run that holds
			// its points (docs/lifecycle.md).
			var cur *publishedRun
			read := map[Input]bool{}
			skipped := map[columnar.FrameRef]bool{}
			if sb := v.served[shard+" "+w.Name()]; sb != nil {
				cur = &publishedRun{m: sb.m, w: w, current: true}
				read, skipped = sb.inputs, sb.skipped
			}
			var unread, lost Problem
			var firstUnread string
			seen := map[columnar.FrameRef]bool{} // a frame read for two ranges counts once
			for _, sp := range plan.splits() {
				for _, f := range sp.Frames {
					ref := columnar.FrameRef{Key: sp.Seg.Key, Offset: f.Offset}
					if seen[ref] {
						continue
					}
					seen[ref] = true
					if !counted[ref] {
						counted[ref] = true
						v.rep.Frames++
						v.rep.Points += uint64(f.Rows)
					}
					switch {
					case !read[Input{Key: sp.Seg.Key, Size: sp.Seg.Size}]:
						unread.Points += uint64(f.Rows)
						unread.Bytes += uint64(f.Length)
						if firstUnread == "" {
							firstUnread = sp.Seg.Key
						}
					case skipped[ref]:
						lost.Points += uint64(f.Rows)
						lost.Bytes += uint64(f.Length)
					}
				}
			}
			switch {
			case cur == nil:
				v.problem(Problem{Kind: NotRun, Shard: shard, Window: w.Name(), Points: unread.Points, Bytes: unread.Bytes,
					Detail: fmt.Sprintf("no run is published; %d segments hold points of it: run it", plan.Segments)})
			case unread.Points > 0 || unread.Bytes > 0:
				v.problem(Problem{Kind: NotRun, Shard: shard, Window: w.Name(), RunID: cur.m.RunID, Key: firstUnread, Points: unread.Points, Bytes: unread.Bytes,
					Detail: fmt.Sprintf("the current run did not read every segment with points of it (first %s): run it again", firstUnread)})
			}
			if lost.Points > 0 || lost.Bytes > 0 {
				v.problem(Problem{Kind: RunDegraded, Shard: shard, Window: w.Name(), RunID: cur.m.RunID, Points: lost.Points, Bytes: lost.Bytes,
					Detail: fmt.Sprintf("the current run skipped %d corrupt frames (restore the segments and run again)", len(cur.m.Degraded.SkippedFrames))})
			}
			if cur != nil && unread.Points == 0 && unread.Bytes == 0 && lost.Points == 0 && lost.Bytes == 0 {
				v.rep.Covered++
			}
		}
	}
	return nil
}

// deep runs every current run again from exactly its inputs, into memory, and compares
// the counts and the parts' bytes with the published ones. Runs are deterministic, so any
// difference is damage (or a run made by other code: see its manifest's algo).
func (v *verifier) deep(ctx context.Context, current map[string]*publishedRun) error {
	byKey := map[string]*columnar.Segment{}
	for _, s := range v.segs {
		byKey[s.Key] = s
	}
	keys := make([]string, 0, len(current))
	for k := range current {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cur := current[k]
		if _, hidden := v.hidden[cur.m.Ref()]; hidden {
			continue // serves nothing: the derived run that supersedes it is checked
		}
		if cur.m.Derived != nil {
			v.rep.DeepDerived++ // made from runs, not segments: checked by checkDerived
			continue
		}
		var segs []*columnar.Segment
		missing := false
		for _, in := range cur.m.Inputs {
			s := byKey[in.Key]
			if s == nil || s.Size != in.Size {
				missing = true // collected or changed: reported already
				break
			}
			segs = append(segs, s)
		}
		if missing {
			v.rep.DeepSkipped++
			continue
		}
		scratch := &overlay{Store: v.opt.Store, upper: storage.NewMem("verify-deep"), prefix: SeriesPrefix}
		// The run made again leaves out what the published one did, no more.
		var tomb Tombstones
		for _, id := range cur.m.Tombstones {
			if t, ok := v.tombByID[id]; ok {
				tomb = append(tomb, t)
			}
		}
		rep, err := RunShard(ctx, RunOptions{
			Store: scratch, Shard: cur.m.Shard, Window: cur.w, Arrival: v.opt.Arrival, Segments: segs,
			Readers: v.opt.Readers, SkipCorrupt: cur.m.Degraded != nil, Engine: v.opt.Engine, Force: true,
			Rollups: cur.m.RollupConfig, Tombstones: &tomb,
		})
		if err != nil {
			p := Problem{Kind: CountsDiffer, Shard: cur.m.Shard, Window: cur.m.Window, RunID: cur.m.RunID, Detail: fmt.Sprintf("the run made again from its inputs failed: %v", err)}
			var ce *columnar.CorruptSegmentError
			if errors.As(err, &ce) {
				p.Kind, p.Key, p.From = FrameCorrupt, ce.Key, int64(ce.Offset)
			}
			v.problem(p)
			continue
		}
		v.rep.Deep++
		again, err := ReadManifest(ctx, scratch, cur.m.Shard, cur.w, rep.RunID)
		if err != nil {
			return fmt.Errorf("deep %s: %w", k, err)
		}
		if d := manifestDiff(cur.m, again); d != "" {
			v.problem(Problem{Kind: CountsDiffer, Shard: cur.m.Shard, Window: cur.m.Window, RunID: cur.m.RunID, Detail: "made again from its inputs, the run differs: " + d})
		}
	}
	return nil
}

// manifestDiff names the first differences between a published manifest and the same
// run made again, "" when they agree.
func manifestDiff(pub, again *Manifest) string {
	var d []string
	if pub.RunID != again.RunID {
		d = append(d, fmt.Sprintf("run id %s, made again %s", pub.RunID, again.RunID))
	}
	if pub.Counts != again.Counts {
		d = append(d, fmt.Sprintf("counts %+v, made again %+v", pub.Counts, again.Counts))
	}
	pp := append(append([]Part(nil), pub.Parts...), pub.LateParts...)
	ap := append(append([]Part(nil), again.Parts...), again.LateParts...)
	if len(pp) != len(ap) {
		d = append(d, fmt.Sprintf("%d parts, made again %d", len(pp), len(ap)))
	} else {
		for i := range pp {
			if !pp[i].sameFile(ap[i]) {
				d = append(d, fmt.Sprintf("part %s: %+v, made again %+v", pp[i].Key, pp[i], ap[i]))
				break
			}
		}
	}
	return strings.Join(d, "; ")
}

// overlay reads and writes the keys under prefix in upper, and everything else in the
// embedded store: a deep verify's runs read the real segments and write nowhere real.
type overlay struct {
	storage.Store
	upper  storage.Store
	prefix string
}

func (o *overlay) pick(key string) storage.Store {
	if strings.HasPrefix(key, o.prefix) {
		return o.upper
	}
	return o.Store
}

func (o *overlay) Create(ctx context.Context, key string, r io.Reader) error {
	return o.pick(key).Create(ctx, key, r)
}

func (o *overlay) Put(ctx context.Context, key string, r io.Reader) error {
	return o.pick(key).Put(ctx, key, r)
}

func (o *overlay) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	return o.pick(key).GetRange(ctx, key, off, n)
}

func (o *overlay) Stat(ctx context.Context, key string) (storage.Attrs, error) {
	return o.pick(key).Stat(ctx, key)
}

func (o *overlay) List(ctx context.Context, prefix string, fn func(storage.Attrs) error) error {
	return o.pick(prefix).List(ctx, prefix, fn)
}

func (o *overlay) Delete(ctx context.Context, key string) error {
	return o.pick(key).Delete(ctx, key)
}

// Close closes only the upper store: the embedded one belongs to the caller.
func (o *overlay) Close() error { return o.upper.Close() }
