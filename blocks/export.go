package blocks

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	tstorage "github.com/tailor-metrics/tailor/storage"
)

// SamplesPerChunk is the most samples an exported chunk holds: Prometheus' head cuts
// its XOR chunks at 120 (tsdb DefaultSamplesPerChunk), which readers and compactors are
// tuned for. A chunk is also cut before it passes chunkenc.MaxBytesPerXORChunk, as the
// head does, and at every block boundary.
const SamplesPerChunk = 120

// ExportOptions configures Export. Zero fields take the defaults given.
type ExportOptions struct {
	// BlockDuration is each block's range, aligned to multiples of it since the Unix
	// epoch. It must be a whole number of hours dividing 24h or a whole number of days.
	// Default 2h.
	BlockDuration time.Duration
	// Window keeps the points inside it; the zero Window keeps all.
	Window columnar.TimeRange
	// Orgs, when not nil, keeps only the series of these orgs.
	Orgs map[uint32]bool
	// TempDir holds each block while it is written, and the per-org chunk spool.
	// Default os.TempDir().
	TempDir string
	// Logger logs each block written; nil logs nothing.
	Logger *slog.Logger
}

func (o *ExportOptions) defaults() error {
	if o.BlockDuration == 0 {
		o.BlockDuration = DefaultBlockDuration
	}
	d := o.BlockDuration
	day := 24 * time.Hour
	if d <= 0 || d%time.Hour != 0 || (d < day && day%d != 0) || (d > day && d%day != 0) {
		return fmt.Errorf("block duration %s: want whole hours dividing 24h (1h, 2h, 3h, 4h, 6h, 8h, 12h) or whole days, so blocks align with compactors' ranges", d)
	}
	if o.Window == (columnar.TimeRange{}) {
		o.Window = columnar.AllTime
	}
	if o.Window.To <= o.Window.From {
		return fmt.Errorf("time range [%d, %d) is empty", o.Window.From, o.Window.To)
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// ExportStats counts what Export wrote.
type ExportStats struct {
	Orgs, Blocks, BlocksExisting int
	Series, Chunks, Samples      uint64
	Bytes                        int64
}

// Export writes the series of src as Prometheus TSDB blocks to out, in the Mimir
// bucket layout: <org>/<block ULID>/{chunks/000001…, index, tombstones, meta.json}.
// Each org's directory is also a plain Prometheus data directory and a Thanos bucket
// prefix. src must yield series in key order (orgs one after another), as
// query.SeriesMerger does.
//
// A block's ULID is derived from its org, time range and content, so exporting the
// same data again writes nothing new (BlocksExisting); meta.json is uploaded last, so a
// reader that sees it sees a whole block.
func Export(ctx context.Context, src encoder.SeriesSource, out tstorage.Store, opt ExportOptions) (ExportStats, error) {
	var st ExportStats
	if err := opt.defaults(); err != nil {
		return st, fmt.Errorf("export: %w", err)
	}
	var (
		e    *orgExport
		lm   labelMaker
		last *uint32
	)
	finish := func() error {
		if e == nil {
			return nil
		}
		err := e.writeBlocks(ctx, out, &st)
		e.close()
		e = nil
		return err
	}
	for src.Next() {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		s := src.At()
		if opt.Orgs != nil && !opt.Orgs[s.Key.Org] {
			continue
		}
		if last == nil || *last != s.Key.Org {
			if err := finish(); err != nil {
				return st, err
			}
			org := s.Key.Org
			last = &org
			var err error
			if e, err = newOrgExport(org, opt); err != nil {
				return st, err
			}
			st.Orgs++
		}
		if err := e.add(s, &lm); err != nil {
			return st, err
		}
	}
	if err := src.Err(); err != nil {
		if e != nil {
			e.close()
		}
		return st, fmt.Errorf("export: read series: %w", err)
	}
	return st, finish()
}

// orgExport collects one org's chunks in a spool file, then writes its blocks one at a
// time: a series' points arrive in time order across all blocks, but each block's
// index must list its series sorted by labels.
type orgExport struct {
	org    uint32
	opt    ExportOptions
	spool  *os.File
	w      *bufio.Writer
	off    int64
	series []exportSeries
	// blocks are the range starts that hold chunks.
	blocks map[int64]bool
}

type exportSeries struct {
	lset   labels.Labels
	chunks []spooled // in time order
}

// spooled is one chunk in the spool.
type spooled struct {
	block      int64
	off        int64
	n          int32
	samples    int32
	mint, maxt int64
}

func newOrgExport(org uint32, opt ExportOptions) (*orgExport, error) {
	f, err := os.CreateTemp(opt.TempDir, "tailor-export-spool-*")
	if err != nil {
		return nil, fmt.Errorf("export: create spool: %w", err)
	}
	// Unlinked at once: nothing is left behind if the process dies.
	_ = os.Remove(f.Name())
	return &orgExport{org: org, opt: opt, spool: f, w: bufio.NewWriterSize(f, 1<<20), blocks: map[int64]bool{}}, nil
}

func (e *orgExport) close() { e.spool.Close() }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// add encodes one series' points into XOR chunks in the spool.
func (e *orgExport) add(s *encoder.Series, lm *labelMaker) error {
	dur := e.opt.BlockDuration.Milliseconds()
	es := exportSeries{lset: lm.seriesLabels(s)}
	var (
		c     *chunkenc.XORChunk
		app   chunkenc.Appender
		cur   spooled
		count int
	)
	cut := func() error {
		if c == nil {
			return nil
		}
		b := c.Bytes()
		cur.off, cur.n, cur.samples = e.off, int32(len(b)), int32(count)
		if _, err := e.w.Write(b); err != nil {
			return fmt.Errorf("export: write spool: %w", err)
		}
		e.off += int64(len(b))
		es.chunks = append(es.chunks, cur)
		e.blocks[cur.block] = true
		c = nil
		return nil
	}
	for i, ts := range s.Ts {
		if !e.opt.Window.Contains(ts) {
			continue
		}
		blk := floorDiv(ts, dur) * dur
		if c != nil && (blk != cur.block || count >= SamplesPerChunk || len(c.Bytes()) > chunkenc.MaxBytesPerXORChunkBeforeAppend) {
			if err := cut(); err != nil {
				return err
			}
		}
		if c == nil {
			c = chunkenc.NewXORChunk()
			var err error
			if app, err = c.Appender(); err != nil {
				return fmt.Errorf("export: chunk appender: %w", err)
			}
			cur, count = spooled{block: blk, mint: ts}, 0
		}
		app.Append(0, ts, s.Values[i])
		cur.maxt = ts
		count++
	}
	if err := cut(); err != nil {
		return err
	}
	if len(es.chunks) > 0 {
		e.series = append(e.series, es)
	}
	return nil
}

// writeBlocks writes the org's blocks, oldest first.
func (e *orgExport) writeBlocks(ctx context.Context, out tstorage.Store, st *ExportStats) error {
	if err := e.w.Flush(); err != nil {
		return fmt.Errorf("export: write spool: %w", err)
	}
	sort.Slice(e.series, func(i, j int) bool { return labels.Compare(e.series[i].lset, e.series[j].lset) < 0 })
	for i := 1; i < len(e.series); i++ {
		if labels.Equal(e.series[i-1].lset, e.series[i].lset) {
			return fmt.Errorf("export: org %d: two series have the labels %s; their tags differ only in ways Prometheus labels cannot show (docs/prometheus.md, Labels)", e.org, e.series[i].lset)
		}
	}
	if lf, ok := out.(tstorage.LocalFiler); ok {
		// A Prometheus data directory has a wal/ directory; promtool tsdb dump (and
		// a Prometheus started on the directory) refuse one without it. Object
		// stores have no directories, and Thanos and Mimir need none.
		wal := filepath.Join(lf.LocalPath(strconv.FormatUint(uint64(e.org), 10)), "wal")
		if err := os.MkdirAll(wal, 0o755); err != nil {
			return fmt.Errorf("export: %w", err)
		}
	}
	starts := make([]int64, 0, len(e.blocks))
	for b := range e.blocks {
		starts = append(starts, b)
	}
	slices.Sort(starts)
	// next[i] is series i's first chunk not yet written: blocks are written in time
	// order and each series' chunks are in time order.
	next := make([]int, len(e.series))
	for _, start := range starts {
		if err := e.writeBlock(ctx, out, start, next, st); err != nil {
			return fmt.Errorf("export: org %d block %s: %w", e.org, time.UnixMilli(start).UTC().Format(time.RFC3339), err)
		}
	}
	return nil
}

func (e *orgExport) writeBlock(ctx context.Context, out tstorage.Store, start int64, next []int, st *ExportStats) (err error) {
	dir, err := os.MkdirTemp(e.opt.TempDir, "tailor-export-block-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The block's series, their symbols and stats.
	type member struct {
		i      int
		chunks []spooled
	}
	var members []member
	syms := map[string]struct{}{}
	meta := Meta{MinTime: math.MaxInt64, MaxTime: math.MinInt64, Version: metaVersion, Compaction: Compaction{Level: 1}}
	for i := range e.series {
		s := &e.series[i]
		j := next[i]
		for j < len(s.chunks) && s.chunks[j].block == start {
			j++
		}
		if j == next[i] {
			continue
		}
		m := member{i: i, chunks: s.chunks[next[i]:j]}
		next[i] = j
		members = append(members, m)
		s.lset.Range(func(l labels.Label) { syms[l.Name], syms[l.Value] = struct{}{}, struct{}{} })
		meta.MinTime = min(meta.MinTime, m.chunks[0].mint)
		meta.MaxTime = max(meta.MaxTime, m.chunks[len(m.chunks)-1].maxt)
		meta.Stats.NumChunks += uint64(len(m.chunks))
		for _, c := range m.chunks {
			meta.Stats.NumSamples += uint64(c.samples)
		}
	}
	meta.MaxTime++ // exclusive, as Prometheus writes it
	meta.Stats.NumSeries = uint64(len(members))
	meta.Stats.NumFloatSamples = meta.Stats.NumSamples

	// Chunks first, in series order, then the index that points at them (Prometheus
	// LeveledCompactor.populateBlock).
	cw, err := chunks.NewWriter(filepath.Join(dir, chunksDir))
	if err != nil {
		return fmt.Errorf("open chunk writer: %w", err)
	}
	defer func() {
		if cw != nil {
			err = errors.Join(err, cw.Close())
		}
	}()
	iw, err := index.NewWriter(ctx, filepath.Join(dir, indexFile))
	if err != nil {
		return fmt.Errorf("open index writer: %w", err)
	}
	defer func() {
		if iw != nil {
			err = errors.Join(err, iw.Close())
		}
	}()
	sorted := make([]string, 0, len(syms))
	for s := range syms {
		sorted = append(sorted, s)
	}
	slices.Sort(sorted)
	for _, s := range sorted {
		if err := iw.AddSymbol(s); err != nil {
			return fmt.Errorf("add symbol: %w", err)
		}
	}
	var buf []byte
	var metas []chunks.Meta
	for ref, m := range members {
		metas = metas[:0]
		for _, c := range m.chunks {
			if buf, err = readSpool(e.spool, buf, c); err != nil {
				return err
			}
			ck, err := chunkenc.FromData(chunkenc.EncXOR, buf[:c.n:c.n])
			if err != nil {
				return fmt.Errorf("chunk from spool: %w", err)
			}
			metas = append(metas, chunks.Meta{Chunk: ck, MinTime: c.mint, MaxTime: c.maxt})
			// One chunk at a time: the writer copies it before the buffer is reused.
			if err := cw.WriteChunks(metas[len(metas)-1:]...); err != nil {
				return fmt.Errorf("write chunks: %w", err)
			}
			metas[len(metas)-1].Chunk = nil
		}
		if err := iw.AddSeries(storage.SeriesRef(ref), e.series[m.i].lset, metas...); err != nil {
			return fmt.Errorf("add series: %w", err)
		}
	}
	if err := cw.Close(); err != nil {
		cw = nil
		return fmt.Errorf("close chunk writer: %w", err)
	}
	cw = nil
	if err := iw.Close(); err != nil {
		iw = nil
		return fmt.Errorf("close index writer: %w", err)
	}
	iw = nil
	if _, err := tombstones.WriteFile(slog.New(slog.DiscardHandler), dir, tombstones.NewMemTombstones()); err != nil {
		return fmt.Errorf("write tombstones: %w", err)
	}

	files, digest, size, err := blockFiles(dir, e.org, meta.MinTime, meta.MaxTime)
	if err != nil {
		return err
	}
	meta.ULID = makeULID(meta.MinTime, digest[:10])
	meta.Compaction.Sources = []string{meta.ULID}
	meta.Thanos = &Thanos{Version: 1, Labels: map[string]string{TenantExternalLabel: strconv.FormatUint(uint64(e.org), 10)}, Source: "tailor-export"}
	prefix := strconv.FormatUint(uint64(e.org), 10) + "/" + meta.ULID + "/"
	if _, err := out.Stat(ctx, prefix+metaFile); err == nil {
		st.BlocksExisting++
		return nil
	} else if !errors.Is(err, tstorage.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", prefix+metaFile, err)
	}
	for _, f := range files {
		if err := putFile(ctx, out, prefix+f, filepath.Join(dir, filepath.FromSlash(f))); err != nil {
			return err
		}
	}
	mb, err := json.MarshalIndent(meta, "", "\t")
	if err != nil {
		return fmt.Errorf("encode meta.json: %w", err)
	}
	// meta.json last: a reader that sees it sees a whole block (Thanos block.Upload).
	if err := out.Put(ctx, prefix+metaFile, bytes.NewReader(mb)); err != nil {
		return fmt.Errorf("put %s: %w", prefix+metaFile, err)
	}
	st.Blocks++
	st.Series += meta.Stats.NumSeries
	st.Chunks += meta.Stats.NumChunks
	st.Samples += meta.Stats.NumSamples
	st.Bytes += size + int64(len(mb))
	e.opt.Logger.Info("block written", "org", e.org, "ulid", meta.ULID, "series", meta.Stats.NumSeries, "samples", meta.Stats.NumSamples)
	return nil
}

func readSpool(f *os.File, buf []byte, c spooled) ([]byte, error) {
	if cap(buf) < int(c.n) {
		buf = make([]byte, c.n)
	}
	if _, err := f.ReadAt(buf[:c.n], c.off); err != nil {
		return buf, fmt.Errorf("read spool at %d: %w", c.off, err)
	}
	return buf, nil
}

// blockFiles lists a written block's files (slash paths relative to dir, sorted) and
// digests them with the org and time range: the digest names the block.
func blockFiles(dir string, org uint32, mint, maxt int64) (files []string, digest [32]byte, size int64, err error) {
	h := sha256.New()
	var hdr [20]byte
	binary.LittleEndian.PutUint32(hdr[:], org)
	binary.LittleEndian.PutUint64(hdr[4:], uint64(mint))
	binary.LittleEndian.PutUint64(hdr[12:], uint64(maxt))
	h.Write(hdr[:])
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, digest, 0, fmt.Errorf("list block: %w", err)
	}
	slices.Sort(files)
	for _, f := range files {
		fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return nil, digest, 0, err
		}
		h.Write([]byte(f))
		n, err := io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return nil, digest, 0, fmt.Errorf("digest %s: %w", f, err)
		}
		size += n
	}
	copy(digest[:], h.Sum(nil))
	return files, digest, size, nil
}

func putFile(ctx context.Context, out tstorage.Store, key, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := out.Put(ctx, key, f); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}
