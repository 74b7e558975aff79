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
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
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
	// Ts is the part's [first, last] timestamp, so that readers skip a late output that
	// holds nothing of their scope (absent in manifests of older runs: read always).
	Ts []int64 `json:"ts,omitempty"`
	// Orgs is the part's [first, last] org, so that a reader of some orgs skips the
	// parts of others without opening them (absent in older manifests: read always).
	Orgs []uint32 `json:"orgs,omitempty"`
}

// sameFile reports whether p and o describe the same file; a range one of them does not
// record (an older run's manifest) is not a difference.
func (p Part) sameFile(o Part) bool {
	if len(p.Ts) == 0 || len(o.Ts) == 0 {
		p.Ts, o.Ts = nil, nil
	}
	if len(p.Orgs) == 0 || len(o.Orgs) == 0 {
		p.Orgs, o.Orgs = nil, nil
	}
	return p.Key == o.Key && p.Size == o.Size && p.Series == o.Series && p.Points == o.Points && p.SHA256 == o.SHA256 &&
		slices.Equal(p.Ts, o.Ts) && slices.Equal(p.Orgs, o.Orgs)
}

// overlaps reports whether the part may hold points of w (it may when its range is
// not recorded).
func (p *Part) overlaps(w columnar.TimeRange) bool {
	return len(p.Ts) != 2 || w.Overlaps(p.Ts[0], p.Ts[1])
}

// DescribePart is the manifest entry of the series file under key: its size, counts,
// checksum and ranges, read from the file's index.
func DescribePart(key string, file []byte) (Part, error) {
	r, err := encoder.Open(bytes.NewReader(file), int64(len(file)), encoder.FileName(key))
	if err != nil {
		return Part{}, fmt.Errorf("describe part: %w", err)
	}
	sum := sha256.Sum256(file)
	p := Part{Key: key, Size: int64(len(file)), SHA256: hex.EncodeToString(sum[:])}
	for _, e := range r.Index() {
		p.Series++
		p.Points += uint64(e.Points)
	}
	p.Ts, p.Orgs = indexRanges(r.Index())
	return p, nil
}

// indexRanges are the [first, last] timestamp and org of a file's index entries (nil
// for an empty file).
func indexRanges(idx []encoder.IndexEntry) (ts []int64, orgs []uint32) {
	for i, e := range idx {
		if i == 0 {
			ts, orgs = []int64{e.MinTs, e.MaxTs}, []uint32{e.Key.Org, e.Key.Org}
		}
		ts[0], ts[1] = min(ts[0], e.MinTs), max(ts[1], e.MaxTs)
		orgs[1] = e.Key.Org // entries are in key order
	}
	return ts, orgs
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

	// The fields below belong to the life of the history (docs/lifecycle.md).

	// RunWindowMs is the window size of the runs a derived run was made from, which the
	// arrival rule applied to (0: the run's own window size).
	RunWindowMs int64 `json:"run_window_ms,omitempty"`
	// Derived says how a run was made from other runs instead of from segments
	// (compaction, a delete applied, retention); nil for a run from segments.
	Derived *Derivation `json:"derived,omitempty"`
	// Supersedes names every run this run replaces for readers, its sources and theirs:
	// while this run is current, those runs serve nothing.
	Supersedes []Superseded `json:"supersedes,omitempty"`
	// ArrivalParts hold, for the points of a derived run whose copy arrived in another
	// window than their own (folded-in late and early points), that window's start
	// (docs/lifecycle.md, "Arrival ranks"). Series files: the value is the window's
	// start in Unix ms.
	ArrivalParts []Part `json:"arrival_parts,omitempty"`
	// Rollups are the downsampled series of the run's own parts, one set per
	// resolution (docs/format/rollup.md).
	Rollups []RollupSet `json:"rollups,omitempty"`
	// RollupConfig is what the rollups were made with.
	RollupConfig *RollupConfig `json:"rollup_config,omitempty"`
	// Tombstones are the ids of the deletes whose points this run left out.
	Tombstones []string `json:"tombstones,omitempty"`
	// Retired is set on the run that replaces one whose every resolution expired: it
	// serves nothing, and its inputs keep a run of the window from bringing the data back.
	Retired bool `json:"retired,omitempty"`
}

// Superseded is one run a run replaces.
type Superseded struct {
	Window string `json:"window"`
	RunID  string `json:"run_id"`
	// Inputs are the superseded run's inputs, as indexes into the superseding run's
	// Inputs: what a run of that window must read to replace this run.
	Inputs []int `json:"inputs"`
	// Direct is set for the runs the derived run read; the others were superseded by
	// those already.
	Direct bool `json:"direct,omitempty"`
	// Points are a direct source's points (own and late), as its manifest counted them.
	Points uint64 `json:"points,omitempty"`
}

// Derivation records how a derived run was made, so that it can be made again.
type Derivation struct {
	// Kind is compact, delete or retain.
	Kind string `json:"kind"`
	// Algo is the version of the code that derived the run.
	Algo string `json:"algo"`
	// Retention lists what retention dropped.
	Retention []Expiry `json:"retention,omitempty"`
}

// Expiry is what retention dropped from a run at one resolution ("raw", or a rollup's
// such as "5m"): every org's data (All), or the listed orgs'.
type Expiry struct {
	Resolution string   `json:"resolution"`
	All        bool     `json:"all,omitempty"`
	Orgs       []uint32 `json:"orgs,omitempty"`
}

// RollupSet is the rollup parts of one resolution; part i rolls up Parts[i].
type RollupSet struct {
	Resolution   string `json:"resolution"`
	ResolutionMs int64  `json:"resolution_ms"`
	Parts        []Part `json:"parts"`
}

// RollupConfig is what a run's rollups were made with.
type RollupConfig struct {
	// Resolutions in ms, ascending.
	ResolutionsMs []int64 `json:"resolutions_ms"`
	// CounterTags mark a series as a counter when it carries one of them ("k:v").
	CounterTags []string `json:"counter_tags"`
}

// runWindow is the size of the windows the run's arrival rule applied to.
func (m *Manifest) runWindow() int64 {
	if m.RunWindowMs > 0 {
		return m.RunWindowMs
	}
	return m.To - m.From
}

// AllParts returns every file the manifest names: own, late, arrival and rollup parts.
func (m *Manifest) AllParts() []Part {
	ps := append(append(append([]Part(nil), m.Parts...), m.LateParts...), m.ArrivalParts...)
	for _, r := range m.Rollups {
		ps = append(ps, r.Parts...)
	}
	return ps
}

// Arrival is the arrival rule the run applied.
func (m *Manifest) Arrival() (Arrival, error) {
	w, err := ParseWindowName(m.Window)
	if err != nil {
		return Arrival{}, fmt.Errorf("run %s: %w", m.RunID, err)
	}
	if m.RunWindowMs > 0 {
		w.Size = time.Duration(m.RunWindowMs) * time.Millisecond
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
	// Deleted are points a delete's tombstone left out, Expired those retention left
	// out (PointsIn = PointsOut + Duplicates + Deleted + Expired).
	Deleted uint64 `json:"deleted,omitempty"`
	Expired uint64 `json:"expired,omitempty"`
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
	c.Deleted += o.Deleted
	c.Expired += o.Expired
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
	pm := &Manifest{Inputs: p.inputs}
	sameRule := func(m *Manifest) bool {
		return m.Degraded == nil && m.Algo == algoVersion && m.LatenessMs == latenessMs(a) && m.FlushAgeMs == a.FlushAge.Milliseconds()
	}
	if cur != nil && sameRule(cur) && lessThan(cur, pm) == nil {
		return cur, nil
	}
	if cur == nil {
		// The window's run may have been compacted and collected: the run that holds its
		// points now covers the plan if the collected run did (docs/lifecycle.md).
		by, cov, err := coveringRun(ctx, st, shard, w)
		if err != nil {
			return nil, err
		}
		if by != nil && sameRule(by) && lessThan(cov, pm) == nil {
			return by, nil
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
		// No run of the window is current; a compacted run may hold its points, and m
		// must cover what that run took from the window (docs/lifecycle.md).
		by, cov, err := coveringRun(ctx, st, m.Shard, w)
		if err != nil {
			return err
		}
		if by != nil && !opt.AcceptDegraded && by.RunID != m.RunID {
			if worse := lessThan(m, cov); worse != nil {
				return worse
			}
		}
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
	return fmt.Sprintf("run %s of %s %s covers less than the published run %s: %s; run %s keeps serving, and the new run is kept, degraded, under %s (restore the segments and run again, or accept the degraded run to serve it anyway)",
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

// Published lists the runs readers read: the current run of every (shard, window),
// except those a current derived run supersedes (docs/lifecycle.md), sorted by shard
// then window start.
func Published(ctx context.Context, st storage.Store) ([]*Manifest, error) {
	cur, err := listCurrent(ctx, st)
	if err != nil {
		return nil, err
	}
	return visible(cur), nil
}

// listCurrent returns the manifest of every run a _CURRENT names, sorted by shard then
// window start. A _CURRENT that names a run without a manifest is an error, unless a
// current run supersedes that run (gc collected it while a late run of the same id
// pointed _CURRENT at it again): nothing serves it either way.
func listCurrent(ctx context.Context, st storage.Store) ([]*Manifest, error) {
	var out []*Manifest
	var missing []RunRef
	var missingErr []error
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
		var c current
		if err := getJSON(ctx, st, currentKey(parts[0], w), &c); err != nil {
			if errors.Is(err, storage.ErrNotExist) {
				return nil // replaced by a _COMPACTED pointer since the listing
			}
			return fmt.Errorf("list outputs: %w", err)
		}
		m, err := ReadManifest(ctx, st, parts[0], w, c.RunID)
		if errors.Is(err, storage.ErrNotExist) {
			missing = append(missing, RunRef{parts[0], w.Name(), c.RunID})
			missingErr = append(missingErr, fmt.Errorf("list outputs: %w", err))
			return nil
		}
		if err != nil {
			return fmt.Errorf("list outputs: %w", err)
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		hidden := supersededBy(out)
		for i, r := range missing {
			if _, ok := hidden[r]; !ok {
				return nil, missingErr[i]
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Shard != b.Shard {
			return a.Shard < b.Shard
		}
		if a.From != b.From {
			return a.From < b.From
		}
		return a.To < b.To
	})
	return out, nil
}
