//go:build duckdb_arrow

package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// Garbage collection (docs/lifecycle.md, "gc"). gc removes what no reader, run or
// verify needs any more:
//
//   - the files of runs nothing serves (superseded by a derived run, or replaced as the
//     current run of their window), once gc has seen them unneeded for the grace period;
//   - orphaned files (in a run directory without a manifest, or not named by their
//     directory's manifest), after the same grace;
//   - segments whose every frame is read by the run that serves its window, once their
//     start is older than the replay retention.
//
// It never deletes a file a serving manifest names, a _CURRENT that names a serving run,
// or a tombstone. The grace is measured on gc's own clock from the first pass that saw a
// file unneeded (a mark in the directory, _GC.json), since the store keeps no
// modification times; so a file goes at the earliest on the first pass at least Grace
// after that. Before it deletes a segment, gc records it (gc/segments/...), so that
// verify tells a collected segment from a lost one.

// GCOptions configures GC.
type GCOptions struct {
	Store storage.Store
	// Now is gc's clock (default the wall clock).
	Now time.Time
	// Grace is how long a run's or orphan's files stay after gc first saw them unneeded
	// (default 24h): longer than any run or compaction takes, and than any reader keeps
	// a manifest it read.
	Grace time.Duration
	// ReplayRetention keeps a covered segment until its start is this old (default
	// 72h), so that a window can be made again from its segments for that long.
	ReplayRetention time.Duration
	// SegmentsNow, when set, is the clock segment ages count from instead of Now: the
	// start of the newest segment, for a replay of history whose record timestamps lie
	// in the past (a segment's start is a record timestamp, not the wall clock).
	SegmentsNow time.Time
	// DryRun lists what would go, and writes and deletes nothing.
	DryRun bool
	Logger *slog.Logger
}

// DefaultGrace and DefaultReplayRetention are gc's defaults.
const (
	DefaultGrace           = 24 * time.Hour
	DefaultReplayRetention = 72 * time.Hour
)

// GCReport is what GC removed (or, in a dry run, would remove).
type GCReport struct {
	DryRun bool `json:"dry_run,omitempty"`
	// Runs are the runs whose manifest was deleted; Files and Bytes every file of runs
	// and orphans deleted (manifests included).
	Runs  []RunRef `json:"runs"`
	Files int      `json:"files"`
	Bytes int64    `json:"bytes"`
	// Waiting are unneeded files still inside the grace period, and their bytes.
	Waiting      int   `json:"waiting"`
	WaitingBytes int64 `json:"waiting_bytes"`
	// Segments collected, and their bytes.
	Segments     []string `json:"segments"`
	SegmentBytes int64    `json:"segment_bytes"`
	// SegmentsKept counts covered segments younger than the replay retention.
	SegmentsKept int `json:"segments_kept"`
	// Notes say what gc left alone and why (an unreadable manifest, runs with
	// different arrival rules).
	Notes []string `json:"notes,omitempty"`
}

// gcMarkName is the per-directory record of when gc first saw each unneeded file.
const gcMarkName = "_GC.json"

type gcMark struct {
	FirstSeen map[string]time.Time `json:"first_seen"`
}

// runDir is one directory series/<shard>/<window>/<run>/ as gc sees it.
type runDir struct {
	shard, window, run string
	files              map[string]int64 // key → size, the mark excluded
	mark               bool
	m                  *Manifest
}

func (d *runDir) prefix() string {
	return SeriesPrefix + d.shard + "/" + d.window + "/" + d.run + "/"
}

// GC collects what st no longer needs (see the comment at the top of gc.go).
func GC(ctx context.Context, opt GCOptions) (*GCReport, error) {
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.Grace <= 0 {
		opt.Grace = DefaultGrace
	}
	if opt.ReplayRetention <= 0 {
		opt.ReplayRetention = DefaultReplayRetention
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	st := opt.Store
	rep := &GCReport{DryRun: opt.DryRun, Runs: []RunRef{}, Segments: []string{}}
	cur, err := listCurrent(ctx, st)
	if err != nil {
		return nil, err
	}
	hidden := supersededBy(cur)
	vis := visible(cur)
	currentOf := map[string]string{} // "shard window" → run id its _CURRENT names
	pointer := map[string]bool{}     // windows with a _COMPACTED pointer
	dirs := map[string]*runDir{}
	if err := st.List(ctx, SeriesPrefix, func(a storage.Attrs) error {
		p := strings.Split(strings.TrimPrefix(a.Key, SeriesPrefix), "/")
		switch {
		case len(p) == 3 && p[2] == compactedName:
			pointer[p[0]+" "+p[1]] = true
		case len(p) == 4:
			k := p[0] + "/" + p[1] + "/" + p[2]
			d := dirs[k]
			if d == nil {
				d = &runDir{shard: p[0], window: p[1], run: p[2], files: map[string]int64{}}
				dirs[k] = d
			}
			if p[3] == gcMarkName {
				d.mark = true
			} else {
				d.files[a.Key] = a.Size
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	for _, m := range cur {
		currentOf[m.Shard+" "+m.Window] = m.RunID
	}
	// What serving runs need: their manifests and every file they name.
	needed := map[string]bool{}
	for _, m := range vis {
		w, err := ParseWindowName(m.Window)
		if err != nil {
			return nil, err
		}
		needed[RunDir(m.Shard, w, m.RunID)+manifestName] = true
		for _, p := range m.AllParts() {
			needed[p.Key] = true
		}
	}
	keys := make([]string, 0, len(dirs))
	for k := range dirs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d := dirs[k]
		w, err := ParseWindowName(d.window)
		if err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: left alone: %v", d.prefix(), err))
			continue
		}
		mkey := d.prefix() + manifestName
		if _, ok := d.files[mkey]; ok {
			m, err := ReadManifest(ctx, st, d.shard, w, d.run)
			if err != nil {
				if errors.Is(err, storage.ErrNotExist) {
					continue // collected by another gc since the listing
				}
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: left alone: %v", d.prefix(), err))
				continue
			}
			d.m = m
			if !collectable(d, currentOf, pointer, hidden) {
				// A published run that may serve yet (killed before _CURRENT, or kept
				// beside the current one): its files stay.
				for _, p := range m.AllParts() {
					needed[p.Key] = true
				}
				needed[mkey] = true
			}
		}
	}
	for _, k := range keys {
		if err := gcDir(ctx, &opt, rep, dirs[k], needed, hidden, currentOf); err != nil {
			return rep, err
		}
	}
	if err := gcSegments(ctx, &opt, rep, cur); err != nil {
		return rep, err
	}
	return rep, nil
}

// collectable reports whether the published run of d is one nothing will serve again:
// superseded by a current derived run, or its window serves another run (a _CURRENT
// naming another, or a compaction pointer).
func collectable(d *runDir, currentOf map[string]string, pointer map[string]bool, hidden map[RunRef]*Manifest) bool {
	if _, ok := hidden[d.m.Ref()]; ok {
		return true
	}
	id, ok := currentOf[d.shard+" "+d.window]
	return ok && id != d.run || !ok && pointer[d.shard+" "+d.window]
}

// gcDir deletes the unneeded files of one run directory that gc saw unneeded at least
// the grace period ago, the manifest first, and records when it first saw the others.
func gcDir(ctx context.Context, opt *GCOptions, rep *GCReport, d *runDir, needed map[string]bool, hidden map[RunRef]*Manifest, currentOf map[string]string) error {
	st := opt.Store
	var cands []string
	for k := range d.files {
		if !needed[k] {
			cands = append(cands, k)
		}
	}
	if len(cands) == 0 && !d.mark {
		return nil
	}
	mark := gcMark{FirstSeen: map[string]time.Time{}}
	markKey := d.prefix() + gcMarkName
	if d.mark {
		if err := getJSON(ctx, st, markKey, &mark); err != nil && !errors.Is(err, storage.ErrNotExist) {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: unreadable mark, seen afresh: %v", d.prefix(), err))
		}
		if mark.FirstSeen == nil {
			mark.FirstSeen = map[string]time.Time{}
		}
	}
	next := gcMark{FirstSeen: map[string]time.Time{}}
	var due []string
	for _, k := range cands {
		first, ok := mark.FirstSeen[k]
		if !ok || first.After(opt.Now) {
			first = opt.Now
		}
		if opt.Now.Sub(first) >= opt.Grace {
			due = append(due, k)
			continue
		}
		next.FirstSeen[k] = first
		rep.Waiting++
		rep.WaitingBytes += d.files[k]
	}
	// The manifest goes first: from then on the run is not published, and a kill
	// leaves only files no manifest names, which the next pass finishes.
	mkey := d.prefix() + manifestName
	sort.Slice(due, func(i, j int) bool {
		if (due[i] == mkey) != (due[j] == mkey) {
			return due[i] == mkey
		}
		return due[i] < due[j]
	})
	for _, k := range due {
		rep.Files++
		rep.Bytes += d.files[k]
		if k == mkey {
			rep.Runs = append(rep.Runs, RunRef{d.shard, d.window, d.run})
		}
		if opt.DryRun {
			continue
		}
		if k == mkey && currentOf[d.shard+" "+d.window] == d.run {
			if err := retireCurrent(ctx, st, d, hidden); err != nil {
				return err
			}
		}
		if err := st.Delete(ctx, k); err != nil {
			return fmt.Errorf("gc: delete %s: %w", k, err)
		}
	}
	if opt.DryRun {
		return nil
	}
	if len(next.FirstSeen) == 0 {
		if d.mark {
			if err := st.Delete(ctx, markKey); err != nil {
				return fmt.Errorf("gc: delete %s: %w", markKey, err)
			}
		}
		return nil
	}
	if err := putJSON(ctx, st, markKey, &next); err != nil {
		return fmt.Errorf("gc: mark %s: %w", d.prefix(), err)
	}
	return nil
}

// retireCurrent points the window of a superseded current run at the window of the run
// that serves its points now (_COMPACTED.json), then deletes its _CURRENT, so that readers
// stop listing it and a run of the window finds what covers it.
func retireCurrent(ctx context.Context, st storage.Store, d *runDir, hidden map[RunRef]*Manifest) error {
	w, err := ParseWindowName(d.window)
	if err != nil {
		return err
	}
	by, ok := hidden[d.m.Ref()]
	if !ok {
		return fmt.Errorf("BUG: gc: current run %s %s %s is collectable but nothing supersedes it", d.shard, d.window, d.run)
	}
	for range 64 { // the top of a chain of derived runs
		next, ok := hidden[by.Ref()]
		if !ok {
			break
		}
		by = next
	}
	if err := putJSON(ctx, st, compactedKey(d.shard, w), compactedPointer{Window: by.Window}); err != nil {
		return fmt.Errorf("gc: point %s %s at %s: %w", d.shard, d.window, by.Window, err)
	}
	if err := st.Delete(ctx, currentKey(d.shard, w)); err != nil {
		return fmt.Errorf("gc: delete %s: %w", currentKey(d.shard, w), err)
	}
	return nil
}

// SegmentRecordPrefix is where gc records the segments it collected:
// gc/segments/<topic>/<partition>/<from:020d>-<to:020d>.json, one per contiguous range
// of offsets collected by one pass.
const SegmentRecordPrefix = "gc/segments/"

// SegmentRecord is one record of collected segments.
type SegmentRecord struct {
	Topic     string             `json:"topic"`
	Partition int32              `json:"partition"`
	From      int64              `json:"from"`
	To        int64              `json:"to"`
	At        time.Time          `json:"at"`
	Reason    string             `json:"reason"`
	Segments  []CollectedSegment `json:"segments"`
}

// CollectedSegment is one collected segment.
type CollectedSegment struct {
	Key   string `json:"key"`
	Size  int64  `json:"size"`
	Start int64  `json:"start"`
	End   int64  `json:"end"`
}

func segmentRecordKey(topic string, part int32, from, to int64) string {
	return fmt.Sprintf("%s%s/%d/%020d-%020d.json", SegmentRecordPrefix, topic, part, from, to)
}

// CollectedRanges reads the offset ranges gc collected, by topic and partition, from
// the record keys alone (a LIST, no GETs), sorted by start.
func CollectedRanges(ctx context.Context, st storage.Store) (map[string]map[int32][]columnar.OffsetRange, error) {
	out := map[string]map[int32][]columnar.OffsetRange{}
	err := st.List(ctx, SegmentRecordPrefix, func(a storage.Attrs) error {
		p := strings.Split(strings.TrimPrefix(a.Key, SegmentRecordPrefix), "/")
		if len(p) != 3 || !strings.HasSuffix(p[2], ".json") {
			return nil
		}
		part, err1 := strconv.ParseInt(p[1], 10, 32)
		from, to, ok := strings.Cut(strings.TrimSuffix(p[2], ".json"), "-")
		f, err2 := strconv.ParseInt(from, 10, 64)
		t, err3 := strconv.ParseInt(to, 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || !ok || f >= t {
			return fmt.Errorf("gc record %s: want gc/segments/<topic>/<partition>/<from>-<to>.json", a.Key)
		}
		if out[p[0]] == nil {
			out[p[0]] = map[int32][]columnar.OffsetRange{}
		}
		out[p[0]][int32(part)] = append(out[p[0]][int32(part)], columnar.OffsetRange{From: f, To: t, Next: a.Key})
		return nil
	})
	for _, parts := range out {
		for _, rs := range parts {
			sort.Slice(rs, func(i, j int) bool { return rs[i].From < rs[j].From })
		}
	}
	return out, err
}

// collectSegments records segs (one partition's, in offset order, contiguous runs of
// offsets split into one record each) and then deletes them.
func collectSegments(ctx context.Context, st storage.Store, segs []*columnar.Segment, now time.Time, reason string) error {
	for len(segs) > 0 {
		n := 1
		for n < len(segs) && segs[n].Header.StartOffset == segs[n-1].Footer.EndOffset {
			n++
		}
		run := segs[:n]
		segs = segs[n:]
		h := run[0].Header
		r := SegmentRecord{Topic: h.Topic, Partition: h.Partition, From: h.StartOffset, To: run[n-1].Footer.EndOffset, At: now.UTC(), Reason: reason}
		for _, s := range run {
			r.Segments = append(r.Segments, CollectedSegment{Key: s.Key, Size: s.Size, Start: s.Header.StartOffset, End: s.Footer.EndOffset})
		}
		// The record first: a kill between the two leaves a segment recorded and
		// still stored, which the next pass collects; never one gone and unrecorded.
		if err := putJSON(ctx, st, segmentRecordKey(r.Topic, r.Partition, r.From, r.To), &r); err != nil {
			return fmt.Errorf("gc: record collected segments: %w", err)
		}
		for _, s := range run {
			if err := st.Delete(ctx, s.Key); err != nil {
				return fmt.Errorf("gc: delete %s: %w", s.Key, err)
			}
		}
	}
	return nil
}

// gcSegments collects the segments no run needs that are older than the replay
// retention.
func gcSegments(ctx context.Context, opt *GCOptions, rep *GCReport, cur []*Manifest) error {
	segs, covered, why, err := unneededSegments(ctx, opt.Store, cur, func(err error) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("segment left alone: %v", err))
	})
	if err != nil {
		return err
	}
	if why != "" {
		rep.Notes = append(rep.Notes, "segments left alone: "+why)
		return nil
	}
	clock := opt.Now
	if !opt.SegmentsNow.IsZero() {
		clock = opt.SegmentsNow
	}
	cutoff := clock.Add(-opt.ReplayRetention).UnixMilli()
	var take []*columnar.Segment
	for _, s := range segs {
		if !covered[s.Key] {
			continue
		}
		if s.Header.StartTimestamp >= cutoff {
			rep.SegmentsKept++
			continue
		}
		take = append(take, s)
		rep.Segments = append(rep.Segments, s.Key)
		rep.SegmentBytes += s.Size
	}
	if opt.DryRun || len(take) == 0 {
		return nil
	}
	return collectByPartition(ctx, opt.Store, take, opt.Now, fmt.Sprintf("covered by published runs and older than the replay retention %s", opt.ReplayRetention))
}

// collectByPartition groups segs by partition, in offset order, and collects them.
func collectByPartition(ctx context.Context, st storage.Store, segs []*columnar.Segment, now time.Time, reason string) error {
	for _, c := range columnar.Chains(segs) {
		if err := collectSegments(ctx, st, c.Segments, now, reason); err != nil {
			return err
		}
	}
	return nil
}
