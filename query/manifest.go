package query

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
//	series/<shard>/<window>/<run-id>/part-00000.tsf …
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
	algoVersion = "tailor-run/1"
)

// RunDir is the prefix of a run's objects.
func RunDir(shard string, w Window, runID string) string {
	return SeriesPrefix + shard + "/" + w.Name() + "/" + runID + "/"
}

// PartKey is the key of part i of a run.
func PartKey(shard string, w Window, runID string, i int) string {
	return fmt.Sprintf("%spart-%05d.tsf", RunDir(shard, w, runID), i)
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
	From   int64    `json:"from"`
	To     int64    `json:"to"`
	Inputs []Input  `json:"inputs"`
	Parts  []Part   `json:"parts"`
	Counts Counts   `json:"counts"`
	Tags   []string `json:"-"`
}

// Counts are a run's point counts.
type Counts struct {
	PointsIn      uint64 `json:"points_in"`
	Duplicates    uint64 `json:"duplicates"`
	OutOfWindow   uint64 `json:"out_of_window"`
	CorruptFrames uint64 `json:"corrupt_frames"`
	Series        uint64 `json:"series"`
	PointsOut     uint64 `json:"points_out"`
	BytesOut      int64  `json:"bytes_out"`
}

// Add adds o's counts to c.
func (c *Counts) Add(o Counts) {
	c.PointsIn += o.PointsIn
	c.Duplicates += o.Duplicates
	c.OutOfWindow += o.OutOfWindow
	c.CorruptFrames += o.CorruptFrames
	c.Series += o.Series
	c.PointsOut += o.PointsOut
	c.BytesOut += o.BytesOut
}

// runID hashes what determines a run's output: code version, shard, window, and each
// input's identity (key and size), in sorted order so listing order does not matter.
func runID(shard string, w Window, inputs []Input) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", algoVersion, shard, w.Name())
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

type current struct {
	RunID string `json:"run_id"`
}

// CurrentRun returns the manifest of the run that serves (shard, window), or an error
// wrapping storage.ErrNotExist if none is published.
func CurrentRun(ctx context.Context, st storage.Store, shard string, w Window) (*Manifest, error) {
	var c current
	if err := getJSON(ctx, st, SeriesPrefix+shard+"/"+w.Name()+"/"+currentName, &c); err != nil {
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
