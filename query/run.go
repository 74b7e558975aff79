//go:build duckdb_arrow

package query

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/storage"
)

// RunOptions configures one shard run. Zero fields take the documented defaults.
type RunOptions struct {
	Store  storage.Store
	Shard  string
	Window Window
	// Segments are the store's segments (listed once by the caller, shared by runs).
	Segments []*columnar.Segment
	// Readers decode splits in parallel (default 1); SplitBytes caps a split (default
	// 1 GiB); BatchRows sizes the Arrow batches fed to DuckDB.
	Readers    int
	SplitBytes int64
	BatchRows  int
	// SkipCorrupt counts and skips corrupt frames instead of failing the run.
	SkipCorrupt bool
	Engine      Options
	// PartBytes starts a new part file once a part reaches this size (default 256 MiB).
	PartBytes int64
	// Force re-runs even if a complete run for the same inputs exists.
	Force bool
	// Engine, when not nil, is used instead of opening a DuckDB per run (RunAll keeps
	// one per worker: opening one costs tens of milliseconds).
	DB     *Engine
	Logger *slog.Logger
}

// Report describes one shard run.
type Report struct {
	Shard   string             `json:"shard"`
	Window  string             `json:"window"`
	RunID   string             `json:"run_id"`
	Skipped bool               `json:"skipped,omitempty"`
	Inputs  int                `json:"inputs"`
	Splits  int                `json:"splits"`
	Frames  uint64             `json:"frames"`
	BytesIn uint64             `json:"bytes_in"`
	Parts   int                `json:"parts"`
	Counts  Counts             `json:"counts"`
	Timers  map[string]string  `json:"timers"`
	Seconds map[string]float64 `json:"seconds"`
	Err     string             `json:"error,omitempty"`
}

func (r *Report) time(stage string, start time.Time) {
	if r.Seconds == nil {
		r.Seconds = map[string]float64{}
	}
	r.Seconds[stage] += time.Since(start).Seconds()
}

// RunShard reads one shard's points of one window, de-duplicates and sorts them in
// DuckDB, encodes them into series files, and publishes them with a manifest.
func RunShard(ctx context.Context, opt RunOptions) (rep *Report, err error) {
	if opt.Readers <= 0 {
		opt.Readers = 1
	}
	if opt.SplitBytes <= 0 {
		opt.SplitBytes = 1 << 30
	}
	if opt.PartBytes <= 0 {
		opt.PartBytes = 256 << 20
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	rep = &Report{Shard: opt.Shard, Window: opt.Window.Name()}
	start := time.Now()
	win := opt.Window.TsRange()
	splits := columnar.PlanSplits(opt.Segments, opt.Shard, win, opt.SplitBytes)
	inputs := runInputs(splits)
	rep.Inputs, rep.Splits = len(inputs), len(splits)
	rep.RunID = runID(opt.Shard, opt.Window, inputs)
	rep.time("plan", start)
	if len(splits) == 0 {
		rep.Skipped = true
		return rep, nil
	}
	if !opt.Force {
		if m, err := ReadManifest(ctx, opt.Store, opt.Shard, opt.Window, rep.RunID); err == nil {
			// Published before (perhaps by a run killed before it set _CURRENT).
			rep.Skipped, rep.Counts, rep.Parts = true, m.Counts, len(m.Parts)
			return rep, putJSON(ctx, opt.Store, SeriesPrefix+opt.Shard+"/"+opt.Window.Name()+"/"+currentName, current{RunID: rep.RunID})
		} else if !errors.Is(err, storage.ErrNotExist) {
			return rep, err
		}
	}

	start = time.Now()
	eng := opt.DB
	if eng == nil {
		if eng, err = Open(ctx, opt.Engine); err != nil {
			return rep, err
		}
		defer func() { err = errors.Join(err, eng.Close()) }()
	}
	tags := newTagCollector()
	points := columnar.NewPointReader(ctx, opt.Store, splits, columnar.Topics(opt.Segments), columnar.ReadOptions{
		Readers: opt.Readers, BatchRows: opt.BatchRows, Window: win, SkipCorrupt: opt.SkipCorrupt, Tags: tags.add,
	})
	defer points.Release()
	sorted, err := eng.GroupSort(ctx, points)
	if rerr := points.Err(); rerr != nil {
		// DuckDB only sees "stream error"; the reader knows the file and offset.
		if sorted != nil {
			sorted.Release()
		}
		return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), rerr)
	}
	if err != nil {
		return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), err)
	}
	defer sorted.Release()
	rep.time("read+duckdb", start)
	fs := points.Stats()
	rep.Frames, rep.BytesIn = fs.Frames, fs.Bytes
	rep.Counts.PointsIn = fs.RowsIn
	rep.Counts.OutOfWindow = fs.OutOfWindow
	rep.Counts.CorruptFrames = fs.CorruptFrames

	start = time.Now()
	pw := &partWriter{ctx: ctx, opt: &opt, runID: rep.RunID, tags: tags}
	if err := pw.consume(sorted); err != nil {
		return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), err)
	}
	if err := pw.finish(); err != nil {
		return rep, fmt.Errorf("run %s %s: %w", opt.Shard, opt.Window.Name(), err)
	}
	rep.time("encode+upload", start)
	rep.Counts.Duplicates = pw.dups
	rep.Counts.Series = pw.series
	rep.Counts.PointsOut = pw.points
	for _, p := range pw.parts {
		rep.Counts.BytesOut += p.Size
	}
	rep.Parts = len(pw.parts)
	if got := rep.Counts.PointsOut + rep.Counts.Duplicates; got != fs.RowsOut {
		return rep, fmt.Errorf("BUG: run %s %s: %d points out + %d duplicates != %d points read", opt.Shard, opt.Window.Name(), rep.Counts.PointsOut, rep.Counts.Duplicates, fs.RowsOut)
	}

	// Publish: the manifest last inside the run directory, then _CURRENT.
	start = time.Now()
	m := Manifest{
		RunID: rep.RunID, Algo: algoVersion, Shard: opt.Shard, Window: opt.Window.Name(),
		From: win.From, To: win.To, Inputs: inputs, Parts: pw.parts, Counts: rep.Counts,
	}
	if err := putJSON(ctx, opt.Store, RunDir(opt.Shard, opt.Window, rep.RunID)+manifestName, m); err != nil {
		return rep, fmt.Errorf("publish manifest: %w", err)
	}
	if err := putJSON(ctx, opt.Store, SeriesPrefix+opt.Shard+"/"+opt.Window.Name()+"/"+currentName, current{RunID: rep.RunID}); err != nil {
		return rep, fmt.Errorf("publish current run: %w", err)
	}
	rep.time("publish", start)
	return rep, nil
}

func runInputs(splits []columnar.Split) []Input {
	byKey := map[string]*Input{}
	var keys []string
	for _, sp := range splits {
		in := byKey[sp.Seg.Key]
		if in == nil {
			h := sp.Seg.Header
			in = &Input{Key: sp.Seg.Key, Size: sp.Seg.Size, Topic: h.Topic, Partition: h.Partition, StartOffset: h.StartOffset, EndOffset: sp.Seg.Footer.EndOffset}
			byKey[sp.Seg.Key] = in
			keys = append(keys, sp.Seg.Key)
		}
		in.Frames += len(sp.Frames)
		in.Rows += sp.Rows()
	}
	sort.Strings(keys)
	out := make([]Input, len(keys))
	for i, k := range keys {
		out[i] = *byKey[k]
	}
	return out
}

// tagCollector keeps, per series, the tags of its latest payload (the same arrival rule
// as points), so the output does not depend on the order splits are read in.
type tagCollector struct {
	mu sync.Mutex
	m  map[columnar.SeriesKey]tagEntry
}

type tagEntry struct {
	src  columnar.Source
	tags []string
}

func newTagCollector() *tagCollector { return &tagCollector{m: map[columnar.SeriesKey]tagEntry{}} }

func (c *tagCollector) add(k columnar.SeriesKey, src columnar.Source, tags []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.m[k]; ok && !later(src, cur.src) {
		return
	}
	c.m[k] = tagEntry{src: src, tags: append([]string(nil), tags...)}
}

// later reports whether a arrived after b (docs/dedup.md).
func later(a, b columnar.Source) bool {
	if a.Timestamp != b.Timestamp {
		return a.Timestamp > b.Timestamp
	}
	if a.Topic != b.Topic {
		return a.Topic > b.Topic
	}
	if a.Partition != b.Partition {
		return a.Partition > b.Partition
	}
	return a.Offset > b.Offset
}

// partWriter turns the group-sorted stream into series and the series into part files.
type partWriter struct {
	ctx   context.Context
	opt   *RunOptions
	runID string
	tags  *tagCollector

	buf bytes.Buffer
	w   *encoder.Writer

	cur    columnar.SeriesKey
	have   bool
	ts     []int64
	vals   []float64
	parts  []Part
	dups   uint64
	series uint64
	points uint64
	// partSeries and partPoints count the open part.
	partSeries, partPoints uint64
}

func sortedColumns(rec arrow.RecordBatch) (org []uint32, met, ctx []uint64, ts []int64, val []float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("group-sort result has schema %s, want %s", rec.Schema(), columnar.SortedSchema)
		}
	}()
	return rec.Column(0).(*array.Uint32).Uint32Values(), rec.Column(1).(*array.Uint64).Uint64Values(),
		rec.Column(2).(*array.Uint64).Uint64Values(), rec.Column(3).(*array.Int64).Int64Values(),
		rec.Column(4).(*array.Float64).Float64Values(), nil
}

func (p *partWriter) consume(r array.RecordReader) error {
	for r.Next() {
		org, met, ctx, ts, val, err := sortedColumns(r.RecordBatch())
		if err != nil {
			return err
		}
		for i := range ts {
			k := columnar.SeriesKey{Org: org[i], Metric: met[i], Context: ctx[i]}
			if !p.have || k != p.cur {
				if p.have && k.Less(p.cur) {
					return fmt.Errorf("BUG: group-sort output not sorted: series %+v after %+v", k, p.cur)
				}
				if err := p.flushSeries(); err != nil {
					return err
				}
				p.cur, p.have = k, true
			} else if n := len(p.ts); n > 0 {
				switch {
				case ts[i] == p.ts[n-1]:
					p.dups++ // an earlier arrival of the same (series, ts): the first row won
					continue
				case ts[i] < p.ts[n-1]:
					return fmt.Errorf("BUG: group-sort output not sorted: series %+v ts %d after %d", k, ts[i], p.ts[n-1])
				}
			}
			p.ts = append(p.ts, ts[i])
			p.vals = append(p.vals, val[i])
		}
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("read group-sort result: %w", err)
	}
	return p.flushSeries()
}

func (p *partWriter) flushSeries() error {
	if len(p.ts) == 0 {
		return nil
	}
	if p.w == nil {
		p.buf.Reset()
		p.w = encoder.NewWriter(&p.buf)
	}
	var tags []string
	if e, ok := p.tags.m[p.cur]; ok {
		tags = e.tags
	}
	if err := p.w.Append(p.cur, tags, p.ts, p.vals); err != nil {
		return fmt.Errorf("encode series %+v: %w", p.cur, err)
	}
	p.series++
	p.points += uint64(len(p.ts))
	p.partSeries++
	p.partPoints += uint64(len(p.ts))
	p.ts, p.vals = p.ts[:0], p.vals[:0]
	if int64(p.buf.Len()) >= p.opt.PartBytes {
		return p.closePart()
	}
	return nil
}

func (p *partWriter) closePart() error {
	if p.w == nil {
		return nil
	}
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("close part: %w", err)
	}
	p.w = nil
	key := PartKey(p.opt.Shard, p.opt.Window, p.runID, len(p.parts))
	sum := sha256.Sum256(p.buf.Bytes())
	size := int64(p.buf.Len())
	if err := p.opt.Store.Put(p.ctx, key, bytes.NewReader(p.buf.Bytes())); err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	p.parts = append(p.parts, Part{Key: key, Size: size, Series: p.partSeries, Points: p.partPoints, SHA256: hex.EncodeToString(sum[:])})
	p.partSeries, p.partPoints = 0, 0
	return nil
}

func (p *partWriter) finish() error {
	if err := p.flushSeries(); err != nil {
		return err
	}
	return p.closePart()
}
