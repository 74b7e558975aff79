package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

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

// Publish makes m the current run of its shard and window. The manifest goes into the
// run's directory first, which makes the run complete, and _CURRENT last, which points
// readers at it; every part must be uploaded before (docs/run.md). An empty m.Algo
// takes this code's algorithm version.
func Publish(ctx context.Context, st storage.Store, m *Manifest) error {
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
	return setCurrent(ctx, st, m.Shard, w, m.RunID)
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
