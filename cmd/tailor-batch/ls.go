package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

func newLsCmd() *cobra.Command {
	var (
		storeURL string
		jsonOut  bool
		long     bool
	)
	cmd := &cobra.Command{
		Use:   "ls --store URL [--json] [--long]",
		Short: "List what a store holds: segments per partition, runs per shard and window",
		Long: `Lists the store's segments per (topic, partition) as contiguous offset ranges, with
every gap (offsets no readable segment holds) and overlap (offsets two segments hold)
on a line of its own, as verify finds them, and every segment that cannot be read; then
every run per shard and window with its state:

  complete    published (its manifest is written); CURRENT says whether readers use it
  degraded    published from inputs that lost frames (skipped as corrupt); readers keep
              the better run until you choose this one (run --accept-degraded)
  superseded  published, but another run of the window serves readers (newer inputs)
  incomplete  parts without a manifest: a run that was killed or is still running;
              readers never see it and a re-run overwrites it

and what else the store holds (rejects/). --long lists every segment. --json prints
all of it, every segment included, as one JSON object. ls reads each segment's header
and footer and each run's manifest, never a frame or a part.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := openStore(ctx, storeURL, "--store", storage.SegmentsPrefix, storage.SeriesPrefix)
			if err != nil {
				return err
			}
			defer st.Close()
			l, err := listStore(ctx, st)
			if err != nil {
				return err
			}
			if jsonOut {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			l.print(cmd.OutOrStdout(), long)
			return nil
		},
	}
	storeFlag(cmd, &storeURL, false)
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object, every segment included")
	cmd.Flags().BoolVarP(&long, "long", "l", false, "list every segment, not only the ranges they cover")
	return cmd
}

// Run states, kept in this one place (ls shows them; verify and the docs name the same):
// runStateOf is the only code that decides one.
type runState string

const (
	runComplete   runState = "complete"
	runDegraded   runState = "degraded"
	runSuperseded runState = "superseded"
	runIncomplete runState = "incomplete"
)

var runStates = []runState{runComplete, runDegraded, runSuperseded, runIncomplete}

// manifestState is a manifest as ls reads it: run.Manifest, whose Degraded marks a run
// that skipped corrupt frames (docs/run.md, "Never worse"), and a superseded_by field
// that names the run that replaced it, read whatever its JSON shape when a manifest
// has one (run writes none today: a run is superseded when _CURRENT names another).
type manifestState struct {
	run.Manifest
	SupersededBy json.RawMessage `json:"superseded_by,omitempty"`
}

// set reports whether a raw JSON field holds something: not absent, null, false, 0, ""
// or an empty object or array.
func set(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "false", "0", `""`, "{}", "[]":
		return false
	}
	return true
}

// runStateOf decides a run's state: m is its manifest (nil when it has none), current
// whether the window's _CURRENT names it, and windowCurrent whether the window has a
// _CURRENT at all (a run published by a process killed before it wrote _CURRENT is
// complete; the next run of the window points _CURRENT at it).
func runStateOf(m *manifestState, current, windowCurrent bool) runState {
	switch {
	case m == nil:
		return runIncomplete
	case m.Degraded != nil:
		return runDegraded
	case set(m.SupersededBy) || (windowCurrent && !current):
		return runSuperseded
	}
	return runComplete
}

// storeListing is what ls prints.
type storeListing struct {
	Store    string          `json:"store"`
	Segments segmentListing  `json:"segments"`
	Runs     []lsRun         `json:"runs"`
	States   map[string]int  `json:"run_states"`
	Other    []prefixSummary `json:"other,omitempty"`
}

type segmentListing struct {
	Count      int           `json:"count"`
	Bytes      int64         `json:"bytes"`
	Rows       uint64        `json:"rows"`
	Partitions []lsPartition `json:"partitions"`
}

// lsSegment is one segment: where it came from and what its footer says.
type lsSegment struct {
	Key       string `json:"key"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// StartOffset and EndOffset are the Kafka offsets it covers, [start, end).
	StartOffset int64 `json:"start_offset"`
	EndOffset   int64 `json:"end_offset"`
	// StartTime is the Kafka record time at StartOffset (the hour in its key).
	StartTime string   `json:"start_time"`
	Bytes     int64    `json:"bytes"`
	Frames    int      `json:"frames"`
	Records   uint64   `json:"records"`
	Rejected  uint64   `json:"rejected"`
	Rows      uint64   `json:"rows"`
	Shards    []string `json:"shards"`
	// Error says why the segment could not be read (its offsets are then the key's
	// start only).
	Error string `json:"error,omitempty"`
}

// offsetRange is [Start, End) of a partition's offsets: a range the segments cover
// (with how many), or a gap or overlap between the segments Prev and Next.
type offsetRange struct {
	Start    int64  `json:"start"`
	End      int64  `json:"end"`
	Segments int    `json:"segments,omitempty"`
	Prev     string `json:"prev,omitempty"`
	Next     string `json:"next,omitempty"`
}

type lsPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Ranges are the contiguous offset ranges the segments cover, Gaps the offsets
	// between them that no segment holds, Overlaps the offsets more than one holds.
	Ranges     []offsetRange `json:"ranges"`
	Gaps       []offsetRange `json:"gaps"`
	Overlaps   []offsetRange `json:"overlaps"`
	Unreadable []string      `json:"unreadable"`
	Records    uint64        `json:"records"`
	Rows       uint64        `json:"rows"`
	Bytes      int64         `json:"bytes"`
	Segments   []lsSegment   `json:"segment_list"`
}

// lsRun is one run directory of a shard and window.
type lsRun struct {
	Shard   string   `json:"shard"`
	Window  string   `json:"window"`
	RunID   string   `json:"run_id"`
	State   runState `json:"state"`
	Current bool     `json:"current"`
	// Parts and LateParts are what the manifest lists; Objects and Bytes what the run's
	// directory holds (parts of an incomplete run included).
	Parts     int    `json:"parts"`
	LateParts int    `json:"late_parts"`
	Objects   int    `json:"objects"`
	Bytes     int64  `json:"bytes"`
	Inputs    int    `json:"inputs"`
	Series    uint64 `json:"series"`
	Points    uint64 `json:"points"`
	Corrupt   uint64 `json:"corrupt_frames_skipped"`
	// SkippedPoints are the points of the frames a degraded run skipped, as their
	// footers count them: what it may lack.
	SkippedPoints uint64 `json:"skipped_points,omitempty"`
	SupersededBy  string `json:"superseded_by,omitempty"`
	Error         string `json:"error,omitempty"`
}

// prefixSummary counts the objects under a top-level prefix ls has no listing for.
type prefixSummary struct {
	Prefix  string `json:"prefix"`
	Objects int    `json:"objects"`
	Bytes   int64  `json:"bytes"`
}

// listStore lists st in one pass and then reads the segments' heads and tails and the
// runs' manifests, a few at a time.
func listStore(ctx context.Context, st storage.Store) (*storeListing, error) {
	l := &storeListing{Store: st.URL(), States: map[string]int{}}
	segSizes := map[string]int64{}
	runs := map[string]*lsRun{} // by run directory
	windowCurrent := map[string]string{}
	other := map[string]*prefixSummary{}
	err := st.List(ctx, "", func(a storage.Attrs) error {
		switch {
		case strings.HasPrefix(a.Key, "segments/"):
			segSizes[a.Key] = a.Size // opened below, by columnar
		case strings.HasPrefix(a.Key, run.SeriesPrefix):
			parts := strings.Split(strings.TrimPrefix(a.Key, run.SeriesPrefix), "/")
			switch {
			case len(parts) == 3 && parts[2] == "_CURRENT.json":
				windowCurrent[parts[0]+"/"+parts[1]] = ""
			case len(parts) == 4:
				dir := strings.Join(parts[:3], "/")
				r := runs[dir]
				if r == nil {
					r = &lsRun{Shard: parts[0], Window: parts[1], RunID: parts[2]}
					runs[dir] = r
				}
				r.Objects++
				r.Bytes += a.Size
				if parts[3] == "_MANIFEST.json" {
					r.State = runComplete // read below
				}
			}
		default:
			p, _, _ := strings.Cut(a.Key, "/")
			s := other[p]
			if s == nil {
				s = &prefixSummary{Prefix: p + "/"}
				other[p] = s
			}
			s.Objects++
			s.Bytes += a.Size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ls: list %s: %w", st.URL(), err)
	}

	// The window's current run id.
	windows := make([]string, 0, len(windowCurrent))
	for w := range windowCurrent {
		windows = append(windows, w)
	}
	currentIDs := make([]string, len(windows))
	if err := forEach(ctx, len(windows), func(i int) error {
		var c struct {
			RunID string `json:"run_id"`
		}
		b, err := storage.ReadAll(ctx, st, run.SeriesPrefix+windows[i]+"/_CURRENT.json")
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err != nil {
			return fmt.Errorf("ls: read %s_CURRENT.json: %w", run.SeriesPrefix+windows[i]+"/", err)
		}
		currentIDs[i] = c.RunID
		return nil
	}); err != nil {
		return nil, err
	}
	for i, w := range windows {
		windowCurrent[w] = currentIDs[i]
	}

	dirs := make([]string, 0, len(runs))
	for d := range runs {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	if err := forEach(ctx, len(dirs), func(i int) error {
		r := runs[dirs[i]]
		var m *manifestState
		if r.State == runComplete {
			m = &manifestState{}
			b, err := storage.ReadAll(ctx, st, run.SeriesPrefix+dirs[i]+"/_MANIFEST.json")
			if err == nil {
				err = json.Unmarshal(b, m)
			}
			if err != nil {
				// Unreadable: not a publication readers can use.
				r.Error, m = err.Error(), nil
			}
		}
		cur, hasCur := windowCurrent[r.Shard+"/"+r.Window]
		r.Current = hasCur && cur == r.RunID
		r.State = runStateOf(m, r.Current, hasCur)
		if m != nil {
			r.Parts, r.LateParts, r.Inputs = len(m.Parts), len(m.LateParts), len(m.Inputs)
			r.Series, r.Points, r.Corrupt = m.Counts.Series+m.Counts.LateSeries, m.Counts.PointsOut, m.Counts.CorruptFrames
			if d := m.Degraded; d != nil {
				r.Corrupt, r.SkippedPoints = max(r.Corrupt, uint64(len(d.SkippedFrames))), d.Points
			}
			if set(m.SupersededBy) {
				var s string
				if json.Unmarshal(m.SupersededBy, &s) != nil {
					s = string(m.SupersededBy)
				}
				r.SupersededBy = s
			} else if r.State == runSuperseded {
				r.SupersededBy = cur
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// A current run that a compacted (or otherwise derived) run supersedes serves
	// nothing: the one rule of what serves is run's (docs/lifecycle.md).
	sup, err := run.Superseders(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("ls: %w", err)
	}
	for _, d := range dirs {
		r := runs[d]
		if by, ok := sup[run.RunRef{Shard: r.Shard, Window: r.Window, RunID: r.RunID}]; ok && r.State == runComplete {
			r.State, r.SupersededBy = runSuperseded, by.Window+"/"+by.RunID
		}
	}
	for _, d := range dirs {
		r := runs[d]
		l.Runs = append(l.Runs, *r)
		l.States[string(r.State)]++
	}
	sort.SliceStable(l.Runs, func(i, j int) bool {
		a, b := l.Runs[i], l.Runs[j]
		if a.Shard != b.Shard {
			return a.Shard < b.Shard
		}
		if a.Window != b.Window {
			return windowStart(a.Window) < windowStart(b.Window)
		}
		return a.Current && !b.Current
	})

	var unreadable []error
	segs, err := columnar.ListSegmentsWith(ctx, st, columnar.ListOptions{SkipCorrupt: true, OnCorrupt: func(err error) { unreadable = append(unreadable, err) }})
	if err != nil {
		return nil, fmt.Errorf("ls: %w", err)
	}
	l.Segments = listPartitions(segs, unreadable, segSizes)
	for _, p := range l.Segments.Partitions {
		l.Segments.Count += len(p.Segments)
		l.Segments.Bytes += p.Bytes
		l.Segments.Rows += p.Rows
	}

	for _, s := range other {
		l.Other = append(l.Other, *s)
	}
	sort.Slice(l.Other, func(i, j int) bool { return l.Other[i].Prefix < l.Other[j].Prefix })
	return l, nil
}

// windowStart orders window names by time (their names sort by time only for one size).
func windowStart(name string) int64 {
	w, err := run.ParseWindowName(name)
	if err != nil {
		return 0
	}
	return w.From.UnixMilli()
}

// segmentOf is what ls shows of an opened segment.
func segmentOf(seg *columnar.Segment) lsSegment {
	h, f := seg.Header, seg.Footer
	return lsSegment{
		Key: seg.Key, Topic: h.Topic, Partition: h.Partition, StartOffset: h.StartOffset, EndOffset: f.EndOffset,
		StartTime: time.UnixMilli(h.StartTimestamp).UTC().Format(time.RFC3339), Bytes: seg.Size,
		Frames: len(f.Frames), Records: f.Records, Rejected: f.Rejected, Rows: f.Rows, Shards: f.Shards,
	}
}

// listPartitions puts the segments into partitions, with the ranges, gaps and overlaps
// of their chains (columnar.Chains, as verify finds them), and the segments that could
// not be read (errs, corrupt headers, trailers or footers) under the partition their
// key names; sizes gives every segment key's size.
func listPartitions(segs []*columnar.Segment, errs []error, sizes map[string]int64) segmentListing {
	type tp struct {
		topic string
		part  int32
	}
	byPart := map[tp]*lsPartition{}
	get := func(topic string, part int32) *lsPartition {
		p := byPart[tp{topic, part}]
		if p == nil {
			p = &lsPartition{Topic: topic, Partition: part, Ranges: []offsetRange{}, Gaps: []offsetRange{}, Overlaps: []offsetRange{}, Unreadable: []string{}}
			byPart[tp{topic, part}] = p
		}
		return p
	}
	between := func(rs []columnar.OffsetRange) []offsetRange {
		out := make([]offsetRange, 0, len(rs))
		for _, r := range rs {
			out = append(out, offsetRange{Start: r.From, End: r.To, Prev: r.Prev, Next: r.Next})
		}
		return out
	}
	for _, c := range columnar.Chains(segs) {
		p := get(c.Topic, c.Partition)
		p.Gaps, p.Overlaps = between(c.Gaps), between(c.Overlaps)
		start := c.From
		for _, g := range c.Gaps {
			p.Ranges = append(p.Ranges, offsetRange{Start: start, End: g.From})
			start = g.To
		}
		p.Ranges = append(p.Ranges, offsetRange{Start: start, End: c.To})
		for _, seg := range c.Segments {
			s := segmentOf(seg)
			// The range a segment is in is the last that starts at or before it.
			i := sort.Search(len(p.Ranges), func(i int) bool { return p.Ranges[i].Start > s.StartOffset }) - 1
			p.Ranges[max(i, 0)].Segments++
			p.Segments = append(p.Segments, s)
			p.Records, p.Rows, p.Bytes = p.Records+s.Records, p.Rows+s.Rows, p.Bytes+s.Bytes
		}
	}
	for _, err := range errs {
		s := lsSegment{Error: err.Error(), Partition: -1}
		var ce *columnar.CorruptSegmentError
		if errors.As(err, &ce) {
			s.Key, s.Bytes = ce.Key, sizes[ce.Key]
		}
		if topic, part, start, kerr := columnar.ParseSegmentKey(s.Key); kerr == nil {
			s.Topic, s.Partition, s.StartOffset, s.EndOffset = topic, part, start, start
		}
		p := get(s.Topic, s.Partition)
		p.Unreadable = append(p.Unreadable, s.Key)
		p.Segments = append(p.Segments, s)
		p.Bytes += s.Bytes
	}
	var out segmentListing
	for _, p := range byPart {
		sort.SliceStable(p.Segments, func(i, j int) bool { return p.Segments[i].StartOffset < p.Segments[j].StartOffset })
		out.Partitions = append(out.Partitions, *p)
	}
	sort.Slice(out.Partitions, func(i, j int) bool {
		a, b := out.Partitions[i], out.Partitions[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	return out
}

// forEach calls fn(0..n-1), eight at a time (object stores answer small reads faster
// in parallel), and returns the first error.
func forEach(ctx context.Context, n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, 8)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return errors.Join(first, err)
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	return first
}

func (l *storeListing) print(w io.Writer, long bool) {
	fmt.Fprintf(w, "store %s\n\n", l.Store)
	s := l.Segments
	fmt.Fprintf(w, "segments: %d in %d partitions, %s, %d rows\n", s.Count, len(s.Partitions), run.FormatBytes(s.Bytes), s.Rows)
	if len(s.Partitions) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tOFFSETS\tSEGMENTS\tRECORDS\tROWS\tBYTES\tNOTE")
		for _, p := range s.Partitions {
			p.printRows(tw, long)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nruns: %d (", len(l.Runs))
	for i, st := range runStates {
		if i > 0 {
			fmt.Fprint(w, ", ")
		}
		fmt.Fprintf(w, "%d %s", l.States[string(st)], st)
	}
	fmt.Fprintln(w, ")")
	if len(l.Runs) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SHARD\tWINDOW\tRUN ID\tSTATE\tCURRENT\tPARTS\tLATE\tSERIES\tPOINTS\tBYTES\tNOTE")
		for _, r := range l.Runs {
			cur := "no"
			if r.Current {
				cur = "yes"
			}
			var note []string
			if r.Corrupt > 0 {
				note = append(note, fmt.Sprintf("%d corrupt frames skipped", r.Corrupt))
			}
			if r.SkippedPoints > 0 {
				note = append(note, fmt.Sprintf("up to %d points not read", r.SkippedPoints))
			}
			if r.SupersededBy != "" {
				note = append(note, "superseded by "+r.SupersededBy)
			}
			if r.Error != "" {
				note = append(note, "manifest unreadable: "+r.Error)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.Shard, r.Window, r.RunID, r.State, cur,
				r.Parts, r.LateParts, r.Series, r.Points, run.FormatBytes(r.Bytes), strings.Join(note, "; "))
		}
		tw.Flush()
	}
	if len(l.Other) > 0 {
		fmt.Fprintln(w)
		for _, o := range l.Other {
			fmt.Fprintf(w, "%s: %d objects, %s\n", o.Prefix, o.Objects, run.FormatBytes(o.Bytes))
		}
	}
}

// printRows prints a partition's ranges in offset order, each gap and overlap between
// them, and its unreadable segments; with long, every segment under its range.
func (p *lsPartition) printRows(w io.Writer, long bool) {
	type row struct {
		at   int64
		line string
	}
	var rows []row
	pre := fmt.Sprintf("%s\t%d\t", p.Topic, p.Partition)
	for _, r := range p.Ranges {
		var rec, rows2 uint64
		var bytes int64
		for _, s := range p.Segments {
			if s.Error == "" && s.StartOffset >= r.Start && s.StartOffset < max(r.End, r.Start+1) {
				rec, rows2, bytes = rec+s.Records, rows2+s.Rows, bytes+s.Bytes
			}
		}
		rows = append(rows, row{r.Start, fmt.Sprintf("%s[%d, %d)\t%d\t%d\t%d\t%s\t", pre, r.Start, r.End, r.Segments, rec, rows2, run.FormatBytes(bytes))})
	}
	for _, g := range p.Gaps {
		rows = append(rows, row{g.Start, fmt.Sprintf("%sgap [%d, %d)\t\t\t\t\t%d offsets in no segment", pre, g.Start, g.End, g.End-g.Start)})
	}
	for _, o := range p.Overlaps {
		rows = append(rows, row{o.Start, fmt.Sprintf("%soverlap [%d, %d)\t\t\t\t\t%d offsets in two segments", pre, o.Start, o.End, o.End-o.Start)})
	}
	for _, s := range p.Segments {
		if s.Error != "" {
			rows = append(rows, row{s.StartOffset, fmt.Sprintf("%sunreadable from %d\t\t\t\t%s\t%s", pre, s.StartOffset, run.FormatBytes(s.Bytes), s.Error)})
		} else if long {
			rows = append(rows, row{s.StartOffset, fmt.Sprintf("%s  [%d, %d)\t1\t%d\t%d\t%s\t%s", pre, s.StartOffset, s.EndOffset, s.Records, s.Rows, run.FormatBytes(s.Bytes), s.Key)})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at < rows[j].at })
	for _, r := range rows {
		fmt.Fprintln(w, r.line)
	}
}
