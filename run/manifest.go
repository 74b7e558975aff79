package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// Output layout (docs/run.md):
//
//	series/<shard>/<window>/<run-id>/part-00000.tsf …   the window's points
//	series/<shard>/<window>/<run-id>/late-00000.tsf …   its late output (docs/run.md)
//	series/<shard>/<window>/<run-id>/_MANIFEST.json   written last: publishes the run
//	series/<shard>/<window>/_CURRENT.json             names the run readers use
//
// The run id is a hash of the run's inputs and code version, so the same inputs always
// give the same keys and bytes, and a re-run overwrites a killed run's partial output.
const (
	SeriesPrefix = "series/"
	manifestName = "_MANIFEST.json"
	currentName  = "_CURRENT.json"
	// algoVersion changes whenever the same inputs would give different output bytes.
	algoVersion = "tailor-run/2"
)

// RunDir is the prefix of a run's objects.
func RunDir(shard string, w Window, runID string) string {
	return SeriesPrefix + shard + "/" + w.Name() + "/" + runID + "/"
}

// PartKey is the key of part i of a run.
func PartKey(shard string, w Window, runID string, i int) string {
	return fmt.Sprintf("%spart-%05d.tsf", RunDir(shard, w, runID), i)
}

// LatePartKey is the key of part i of a run's late output.
func LatePartKey(shard string, w Window, runID string, i int) string {
	return fmt.Sprintf("%slate-%05d.tsf", RunDir(shard, w, runID), i)
}

// Input is one segment a run read.
type Input struct {
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	StartOffset int64  `json:"start_offset"`
	EndOffset   int64  `json:"end_offset"`
	Frames      int    `json:"frames"`
	Rows        uint64 `json:"rows"`
}

// Part is one series file of a run.
type Part struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	Series uint64 `json:"series"`
	Points uint64 `json:"points"`
	SHA256 string `json:"sha256"`
}

// Manifest publishes a run. It holds no wall-clock time, so re-runs are byte-identical.
type Manifest struct {
	RunID  string `json:"run_id"`
	Algo   string `json:"algo"`
	Shard  string `json:"shard"`
	Window string `json:"window"`
	// From and To bound the window's ts, Unix ms, [From, To).
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// LatenessMs and FlushAgeMs are the arrival rule the run applied (docs/run.md);
	// LatenessMs is -1 when windows stay open.
	LatenessMs int64   `json:"lateness_ms"`
	FlushAgeMs int64   `json:"flush_age_ms"`
	Inputs     []Input `json:"inputs"`
	Parts      []Part  `json:"parts"`
	// LateParts hold the points of earlier (and, rarely, later) windows that arrived
	// after those windows' lateness: the late output.
	LateParts []Part `json:"late_parts"`
	Counts    Counts `json:"counts"`
	// Degraded is set when the run skipped corrupt frames (run --skip-corrupt): it covers
	// less than its inputs hold, and never replaces a run that covers more.
	Degraded *Degraded `json:"degraded,omitempty"`
}

// Arrival is the arrival rule the run applied.
func (m *Manifest) Arrival() (Arrival, error) {
	w, err := ParseWindowName(m.Window)
	if err != nil {
		return Arrival{}, fmt.Errorf("run %s: %w", m.RunID, err)
	}
	a := Arrival{Size: w.Size, FlushAge: time.Duration(m.FlushAgeMs) * time.Millisecond}
	if m.LatenessMs >= 0 {
		a.Closed, a.Lateness = true, time.Duration(m.LatenessMs)*time.Millisecond
	}
	return a, nil
}

// Degraded lists what a run did not read.
type Degraded struct {
	// SkippedFrames are the corrupt frames the run skipped, by segment and offset.
	SkippedFrames []SkippedFrame `json:"skipped_frames"`
	// Points and Bytes add up the skipped frames' rows and bytes, as their footers give
	// them: the points the run may have lost.
	Points uint64 `json:"points"`
	Bytes  uint64 `json:"bytes"`
}

// SkippedFrame is one frame a degraded run skipped.
type SkippedFrame struct {
	Segment string `json:"segment"`
	Offset  uint64 `json:"offset"`
	Rows    uint32 `json:"rows"`
	Length  uint32 `json:"length"`
}

// Counts are a run's point counts. PointsIn = PointsOut + Duplicates: every point a
// run takes is written once or removed as an earlier arrival of its (series, ts).
type Counts struct {
	// PointsIn are the points the run took: its window's, plus Late and Early.
	PointsIn   uint64 `json:"points_in"`
	Duplicates uint64 `json:"duplicates"`
	// OutOfWindow are points read with the window's frames that belong to another
	// window: another run writes them. They are not part of PointsIn.
	OutOfWindow uint64 `json:"out_of_window"`
	// Late and Early are the points taken into the late output: ts before the window
	// (arrived after their own window's lateness) and ts after it (more than the flush
	// age ahead of their arrival).
	Late          uint64 `json:"late"`
	Early         uint64 `json:"early"`
	CorruptFrames uint64 `json:"corrupt_frames"`
	Series        uint64 `json:"series"`
	LateSeries    uint64 `json:"late_series"`
	// PointsOut are the points written, LatePointsOut of them to the late output.
	PointsOut     uint64 `json:"points_out"`
	LatePointsOut uint64 `json:"late_points_out"`
	BytesOut      int64  `json:"bytes_out"`
}

// Add adds o's counts to c.
func (c *Counts) Add(o Counts) {
	c.PointsIn += o.PointsIn
	c.Duplicates += o.Duplicates
	c.OutOfWindow += o.OutOfWindow
	c.Late += o.Late
	c.Early += o.Early
	c.CorruptFrames += o.CorruptFrames
	c.Series += o.Series
	c.LateSeries += o.LateSeries
	c.PointsOut += o.PointsOut
	c.LatePointsOut += o.LatePointsOut
	c.BytesOut += o.BytesOut
}

// degraded lists the frames a run skipped, with their footer counts from its plan.
func degraded(p *Plan, skipped map[columnar.FrameRef]bool) *Degraded {
	d := &Degraded{}
	infos := map[columnar.FrameRef]columnar.FrameInfo{}
	for _, sp := range p.splits() {
		for _, f := range sp.Frames {
			infos[columnar.FrameRef{Key: sp.Seg.Key, Offset: f.Offset}] = f
		}
	}
	for ref := range skipped {
		f := infos[ref]
		d.SkippedFrames = append(d.SkippedFrames, SkippedFrame{Segment: ref.Key, Offset: ref.Offset, Rows: f.Rows, Length: f.Length})
		d.Points += uint64(f.Rows)
		d.Bytes += uint64(f.Length)
	}
	sort.Slice(d.SkippedFrames, func(i, j int) bool {
		a, b := d.SkippedFrames[i], d.SkippedFrames[j]
		return a.Segment < b.Segment || a.Segment == b.Segment && a.Offset < b.Offset
	})
	return d
}

// degradedRunID is the run id of a run of plan id that skipped d's frames: its own, so
// that its parts never overwrite those of the run that read every frame.
func degradedRunID(id string, d *Degraded) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00degraded", id)
	for _, f := range d.SkippedFrames {
		fmt.Fprintf(h, "\x00%s\x00%d", f.Segment, f.Offset)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// alreadyCovered returns the published run that makes a run of plan unnecessary: the
// current run when it read every input of the plan (same key and size) and skipped
// nothing, or a run published under the plan's own id (by a run killed before it set
// _CURRENT), made current if the rule of Publish allows. Nil means the run is needed.
// a is the plan's arrival rule.
func alreadyCovered(ctx context.Context, st storage.Store, shard string, w Window, a Arrival, p *Plan, accept bool) (*Manifest, error) {
	cur, err := CurrentRun(ctx, st, shard, w)
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return nil, fmt.Errorf("read the current run: %w", err)
	}
	// The current run must also have applied this code's algorithm and arrival rule: a
	// changed --lateness re-runs the window.
	if cur != nil && cur.Degraded == nil && cur.Algo == algoVersion && cur.LatenessMs == latenessMs(a) && cur.FlushAgeMs == a.FlushAge.Milliseconds() {
		pm := &Manifest{Inputs: p.inputs}
		if lessThan(cur, pm) == nil {
			return cur, nil
		}
	}
	m, err := ReadManifest(ctx, st, shard, w, p.RunID)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := promote(ctx, st, m, w, PublishOptions{AcceptDegraded: accept}); err != nil {
		return nil, err
	}
	return m, nil
}

// runID hashes what determines a run's output: code version, shard, window, arrival
// rule, and each input's identity (key and size), in sorted order so listing order does
// not matter.
func runID(shard string, w Window, a Arrival, inputs []Input) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%v\x00%d\x00%d\x00", algoVersion, shard, w.Name(), a.Closed, a.Lateness, a.FlushAge)
	keys := make([]string, len(inputs))
	for i, in := range inputs {
		keys[i] = fmt.Sprintf("%s\x00%d", in.Key, in.Size)
	}
	sort.Strings(keys)
	var n [8]byte
	for _, k := range keys {
		binary.LittleEndian.PutUint64(n[:], uint64(len(k)))
		h.Write(n[:])
		h.Write([]byte(k))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func putJSON(ctx context.Context, st storage.Store, key string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("BUG: marshal %s: %w", key, err)
	}
	return st.Put(ctx, key, bytes.NewReader(append(b, '\n')))
}

func getJSON(ctx context.Context, st storage.Store, key string, v any) error {
	b, err := storage.ReadAll(ctx, st, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", key, err)
	}
	return nil
}

// ReadManifest reads a run's manifest; ErrNotExist if the run is not published.
func ReadManifest(ctx context.Context, st storage.Store, shard string, w Window, runID string) (*Manifest, error) {
	var m Manifest
	if err := getJSON(ctx, st, RunDir(shard, w, runID)+manifestName, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// PublishOptions are Publish's choices.
type PublishOptions struct {
	// AcceptDegraded makes the run current even when the current run covers more.
	AcceptDegraded bool
}

// Publish publishes m and makes it the current run of its shard and window, unless the
// current run covers more (see Covers) and opt does not accept that: then m stays
// published under its own run id and Publish returns a *WorseRunError. The manifest goes
// into the run's directory first, which makes the run complete, and _CURRENT last, which
// points readers at it; every part must be uploaded before (docs/run.md). An empty m.Algo
// takes this code's algorithm version.
func Publish(ctx context.Context, st storage.Store, m *Manifest, opt PublishOptions) error {
	w, err := ParseWindowName(m.Window)
	if err != nil {
		return fmt.Errorf("publish run %s: %w", m.RunID, err)
	}
	if m.Algo == "" {
		m.Algo = algoVersion
	}
	if err := putJSON(ctx, st, RunDir(m.Shard, w, m.RunID)+manifestName, m); err != nil {
		return fmt.Errorf("publish manifest: %w", err)
	}
	return promote(ctx, st, m, w, opt)
}

// promote makes the published run m current, under the rule of Publish.
func promote(ctx context.Context, st storage.Store, m *Manifest, w Window, opt PublishOptions) error {
	cur, err := CurrentRun(ctx, st, m.Shard, w)
	switch {
	case errors.Is(err, storage.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read the current run: %w", err)
	case cur.RunID == m.RunID || opt.AcceptDegraded:
	default:
		if worse := lessThan(m, cur); worse != nil {
			return worse
		}
	}
	return setCurrent(ctx, st, m.Shard, w, m.RunID)
}

// WorseRunError is Publish's answer for a run that covers less than the current run of
// its shard and window: the current run keeps serving.
type WorseRunError struct {
	Shard, Window  string
	RunID, Current string
	// Missing are the current run's inputs the new run did not read; Skipped the frames
	// it skipped that the current run read.
	Missing []string
	Skipped []SkippedFrame
}

func (e *WorseRunError) Error() string {
	var what []string
	if n := len(e.Skipped); n > 0 {
		var pts uint64
		for _, f := range e.Skipped {
			pts += uint64(f.Rows)
		}
		what = append(what, fmt.Sprintf("it skipped %d corrupt frames (%d points, first %s at byte %d) that run %s read", n, pts, e.Skipped[0].Segment, e.Skipped[0].Offset, e.Current))
	}
	if n := len(e.Missing); n > 0 {
		what = append(what, fmt.Sprintf("%d of run %s's inputs are gone (first %s)", n, e.Current, e.Missing[0]))
	}
	return fmt.Sprintf("run %s of %s %s covers less than the published run %s: %s; run %s keeps serving, and the new run is kept, degraded, under %s (restore the segments and run again, or pass --accept-degraded to serve the new run anyway)",
		e.RunID, e.Shard, e.Window, e.Current, strings.Join(what, "; "), e.Current, e.RunID)
}

// lessThan reports how m covers less than cur, or nil when m covers at least as much:
// it read every input of cur (same key and size) and skipped no frame that cur read.
func lessThan(m, cur *Manifest) *WorseRunError {
	e := &WorseRunError{Shard: m.Shard, Window: m.Window, RunID: m.RunID, Current: cur.RunID}
	have := map[Input]bool{}
	for _, in := range m.Inputs {
		have[Input{Key: in.Key, Size: in.Size}] = true
	}
	for _, in := range cur.Inputs {
		if !have[Input{Key: in.Key, Size: in.Size}] {
			e.Missing = append(e.Missing, in.Key)
		}
	}
	curSkipped := map[[2]any]bool{}
	if cur.Degraded != nil {
		for _, f := range cur.Degraded.SkippedFrames {
			curSkipped[[2]any{f.Segment, f.Offset}] = true
		}
	}
	if m.Degraded != nil {
		for _, f := range m.Degraded.SkippedFrames {
			if !curSkipped[[2]any{f.Segment, f.Offset}] {
				e.Skipped = append(e.Skipped, f)
			}
		}
	}
	if len(e.Missing) == 0 && len(e.Skipped) == 0 {
		return nil
	}
	return e
}

// setCurrent points readers of (shard, w) at the published run runID.
func setCurrent(ctx context.Context, st storage.Store, shard string, w Window, runID string) error {
	if err := putJSON(ctx, st, currentKey(shard, w), current{RunID: runID}); err != nil {
		return fmt.Errorf("publish current run: %w", err)
	}
	return nil
}

func currentKey(shard string, w Window) string {
	return SeriesPrefix + shard + "/" + w.Name() + "/" + currentName
}

type current struct {
	RunID string `json:"run_id"`
}

// CurrentRun returns the manifest of the run that serves (shard, window), or an error
// wrapping storage.ErrNotExist if none is published.
func CurrentRun(ctx context.Context, st storage.Store, shard string, w Window) (*Manifest, error) {
	var c current
	if err := getJSON(ctx, st, currentKey(shard, w), &c); err != nil {
		return nil, err
	}
	return ReadManifest(ctx, st, shard, w, c.RunID)
}

// Published lists every (shard, window) with a current run, sorted by shard then window.
func Published(ctx context.Context, st storage.Store) ([]*Manifest, error) {
	var out []*Manifest
	err := st.List(ctx, SeriesPrefix, func(a storage.Attrs) error {
		rest := strings.TrimPrefix(a.Key, SeriesPrefix)
		parts := strings.Split(rest, "/")
		if len(parts) != 3 || parts[2] != currentName {
			return nil
		}
		w, err := ParseWindowName(parts[1])
		if err != nil {
			return fmt.Errorf("list outputs: %s: %w", a.Key, err)
		}
		m, err := CurrentRun(ctx, st, parts[0], w)
		if err != nil {
			return fmt.Errorf("list outputs: %w", err)
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Shard != out[j].Shard {
			return out[i].Shard < out[j].Shard
		}
		return out[i].From < out[j].From
	})
	return out, nil
}
