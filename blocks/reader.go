package blocks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/tsdb/tombstones"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/ingest/payload"
	tstorage "github.com/tailor-metrics/tailor/storage"
)

// TenantExternalLabel is the external label (meta.json thanos.labels) that names a
// block's tenant in Thanos Receive's layout, and that Export writes. Reading, it is the
// default of ReadOptions.TenantExternalLabel.
const TenantExternalLabel = "tenant_id"

// ReadOptions configures Open. The zero value reads a single-tenant layout with no
// replica labels.
type ReadOptions struct {
	// Tenancy is the gateway's tenancy rule: a series label naming the tenant, and the
	// tenant map. Series are mapped as the gateway and the sink map the same labels.
	Tenancy payload.Tenancy
	// Tenant is the tenant of blocks whose layout names none (blocks at the root,
	// without TenantExternalLabel). Empty: the sink's rule (an org_id label, else org 0).
	Tenant string
	// TenantExternalLabel is the external label giving a root block's tenant. Default
	// "tenant_id" (Thanos Receive's).
	TenantExternalLabel string
	// ReplicaLabels are the labels (external or series) that tell replicas of one
	// series apart, as Thanos Query's --query.replica-label. Replicas are de-duplicated
	// by Thanos' penalty algorithm and the labels dropped. None by default, as in Thanos.
	ReplicaLabels []string
	// TempDir receives the blocks of a store that is not a local directory, while they
	// are read. Default os.TempDir().
	TempDir string
	// Logger logs skipped blocks; nil logs nothing.
	Logger *slog.Logger
}

// Block is one block found in a store.
type Block struct {
	// Dir is the block's key prefix in the store ("<ulid>" or "<tenant>/<ulid>").
	Dir string
	// Tenant is the tenant directory of a Mimir layout, or "".
	Tenant string
	Meta   *Meta
}

// List finds the blocks of st: <ulid>/meta.json (a Prometheus data directory, a Thanos
// bucket) and <tenant>/<ulid>/meta.json (Mimir, Cortex). Blocks without meta.json
// (partial uploads) and blocks with deletion-mark.json are skipped, as Thanos and
// Mimir skip them; skipped counts both.
func List(ctx context.Context, st tstorage.Store) (blocks []Block, skipped int, err error) {
	type seen struct{ meta, deletion, any bool }
	dirs := map[string]*seen{}
	var order []string
	err = st.List(ctx, "", func(a tstorage.Attrs) error {
		parts := strings.Split(a.Key, "/")
		// <ulid>/x… or <tenant>/<ulid>/x…
		for depth := 0; depth <= 1 && depth+1 < len(parts); depth++ {
			if !IsULID(parts[depth]) {
				continue
			}
			dir := strings.Join(parts[:depth+1], "/")
			s := dirs[dir]
			if s == nil {
				s = &seen{}
				dirs[dir] = s
				order = append(order, dir)
			}
			s.any = true
			rest := strings.Join(parts[depth+1:], "/")
			s.meta = s.meta || rest == metaFile
			s.deletion = s.deletion || rest == deletionMarkFile
			break
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list blocks: %w", err)
	}
	for _, dir := range order {
		s := dirs[dir]
		if !s.meta || s.deletion {
			skipped++
			continue
		}
		b, err := tstorage.ReadAll(ctx, st, dir+"/"+metaFile)
		if err != nil {
			return nil, 0, fmt.Errorf("read block %s: %w", dir, err)
		}
		m, err := parseMeta(b)
		if err != nil {
			return nil, 0, fmt.Errorf("block %s: %w", dir, err)
		}
		if path.Base(dir) != m.ULID {
			return nil, 0, fmt.Errorf("block %s: meta.json names ulid %s", dir, m.ULID)
		}
		blk := Block{Dir: dir, Meta: m}
		if i := strings.IndexByte(dir, '/'); i >= 0 {
			blk.Tenant = dir[:i]
		}
		blocks = append(blocks, blk)
	}
	return blocks, skipped, nil
}

// Reader reads the series of a store's blocks in key order, each (series, ts) once: an
// encoder.SeriesSource. Close it to unmap the blocks and remove downloaded copies.
type Reader struct {
	opt     ReadOptions
	blocks  []*openBlock
	entries []entry
	pos     int
	cur     encoder.Series
	err     error
	tmp     string
	// scratch
	streams []stream
	chks    []chunks.Meta
	builder labels.ScratchBuilder
	reads   Reads
}

// Reads count what a Reader read: the blocks it opened, the bytes of their index and
// chunk files, and the series it returned (after the merge of blocks and replicas).
type Reads struct {
	Blocks, Bytes, Series int64
}

// Reads returns what r has read so far.
func (r *Reader) Reads() Reads { return r.reads }

type openBlock struct {
	Block
	dir   string // local directory
	index *index.Reader
	chunk *chunks.Reader
	tomb  tombstones.Reader
	// ext are the external labels that become series labels; replica the ones that
	// name the replica.
	ext     []labels.Label
	replica []labels.Label
	tenant  string
}

// close releases whatever of the block is open.
func (ob *openBlock) close() error {
	var errs []error
	if ob.index != nil {
		errs = append(errs, ob.index.Close())
	}
	if ob.chunk != nil {
		errs = append(errs, ob.chunk.Close())
	}
	if ob.tomb != nil {
		errs = append(errs, ob.tomb.Close())
	}
	return errors.Join(errs...)
}

// entry is one series of one block, under its Tailor key.
type entry struct {
	key    columnar.SeriesKey
	stream string // the replica label values: which replica the series belongs to
	block  int
	ref    storage.SeriesRef
}

// Open lists the blocks of st and indexes their series by Tailor key. The series and
// their samples are read by Next, one series at a time.
func Open(ctx context.Context, st tstorage.Store, opt ReadOptions) (_ *Reader, err error) {
	if opt.TenantExternalLabel == "" {
		opt.TenantExternalLabel = TenantExternalLabel
	}
	if opt.TempDir == "" {
		opt.TempDir = os.TempDir()
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	blocks, skipped, err := List(ctx, st)
	if err != nil {
		return nil, err
	}
	if skipped > 0 {
		opt.Logger.Warn("skipped blocks without meta.json or marked for deletion", "store", st.URL(), "blocks", skipped)
	}
	r := &Reader{opt: opt, builder: labels.NewScratchBuilder(16)}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	// A stable order: by tenant, time, ULID. Among overlapping blocks of one replica
	// the earlier wins a timestamp both hold.
	slices.SortFunc(blocks, func(a, b Block) int {
		return cmp.Or(cmp.Compare(a.Meta.MinTime, b.Meta.MinTime), cmp.Compare(a.Meta.ULID, b.Meta.ULID), cmp.Compare(a.Dir, b.Dir))
	})
	for _, b := range blocks {
		ob, err := r.openBlock(ctx, st, b)
		if err != nil {
			return nil, err
		}
		r.blocks = append(r.blocks, ob)
		err = guard(b.Dir, func() error {
			if err := r.indexBlock(ctx, len(r.blocks)-1); err != nil {
				return fmt.Errorf("block %s: %w", b.Dir, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(r.entries, func(a, b entry) int {
		return cmp.Or(a.key.Compare(b.key), strings.Compare(a.stream, b.stream), cmp.Compare(a.block, b.block))
	})
	return r, nil
}

// Blocks returns the blocks being read.
func (r *Reader) Blocks() []Block {
	out := make([]Block, len(r.blocks))
	for i, b := range r.blocks {
		out[i] = b.Block
	}
	return out
}

func (r *Reader) openBlock(ctx context.Context, st tstorage.Store, b Block) (*openBlock, error) {
	ob := &openBlock{Block: b, tenant: b.Tenant}
	if lf, ok := st.(tstorage.LocalFiler); ok {
		ob.dir = lf.LocalPath(b.Dir)
	} else {
		if r.tmp == "" {
			tmp, err := os.MkdirTemp(r.opt.TempDir, "tailor-blocks-*")
			if err != nil {
				return nil, fmt.Errorf("blocks temp dir: %w", err)
			}
			r.tmp = tmp
		}
		ob.dir = filepath.Join(r.tmp, filepath.FromSlash(b.Dir))
		if err := download(ctx, st, b.Dir, ob.dir); err != nil {
			return nil, fmt.Errorf("block %s: %w", b.Dir, err)
		}
	}
	err := guard(b.Dir, func() (err error) {
		if ob.index, err = index.NewFileReader(filepath.Join(ob.dir, indexFile), index.DecodePostingsRaw); err != nil {
			return fmt.Errorf("block %s: open index: %w", b.Dir, err)
		}
		if ob.chunk, err = chunks.NewDirReader(filepath.Join(ob.dir, chunksDir), nil); err != nil {
			return fmt.Errorf("block %s: open chunks: %w", b.Dir, err)
		}
		if ob.tomb, _, err = tombstones.ReadTombstones(ob.dir); err != nil {
			return fmt.Errorf("block %s: read tombstones: %w", b.Dir, err)
		}
		return nil
	})
	if err != nil {
		ob.close()
		return nil, err
	}
	r.reads.Blocks++
	r.reads.Bytes += ob.index.Size() + ob.chunk.Size()
	if th := b.Meta.Thanos; th != nil {
		for name, value := range th.Labels {
			switch {
			case name == r.opt.TenantExternalLabel:
				if ob.tenant == "" {
					ob.tenant = value
				}
			case slices.Contains(r.opt.ReplicaLabels, name):
				ob.replica = append(ob.replica, labels.Label{Name: name, Value: value})
			default:
				ob.ext = append(ob.ext, labels.Label{Name: name, Value: value})
			}
		}
	}
	if ob.tenant == "" {
		ob.tenant = r.opt.Tenant
	}
	return ob, nil
}

// guard runs f, one call into Prometheus' readers of a block's files, and turns a
// panic into an error naming the block. Those readers trust their input in places (a
// truncated tombstones file makes tombstones.ReadTombstones slice out of range, seen
// in TestCorruptBlocksFail), and a damaged legacy block must fail the diff with its
// name, not crash it.
func guard(dir string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("block %s: corrupt: %v", dir, r)
		}
	}()
	return f()
}

// download copies a block's files from st into dir.
func download(ctx context.Context, st tstorage.Store, prefix, dir string) error {
	return st.List(ctx, prefix+"/", func(a tstorage.Attrs) error {
		dst := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(a.Key, prefix+"/")))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		rc, err := st.GetRange(ctx, a.Key, 0, -1)
		if err != nil {
			return fmt.Errorf("get %s: %w", a.Key, err)
		}
		defer rc.Close()
		f, err := os.Create(dst)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, rc); err != nil {
			f.Close()
			return fmt.Errorf("download %s: %w", a.Key, err)
		}
		return f.Close()
	})
}

// indexBlock maps every series of block bi to its Tailor key.
func (r *Reader) indexBlock(ctx context.Context, bi int) error {
	ob := r.blocks[bi]
	name, value := index.AllPostingsKey()
	p, err := ob.index.Postings(ctx, name, value)
	if err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	var (
		dec     payload.Decoder
		pl      columnar.Payload
		ls      []payload.Label
		rest    []payload.Label
		replica []string
	)
	for p.Next() {
		ref := p.At()
		if err := ob.index.Series(ref, &r.builder, &r.chks); err != nil {
			return fmt.Errorf("read series %d: %w", ref, err)
		}
		lset := r.builder.Labels()
		ls, replica = ls[:0], replica[:0]
		// External labels join the series' own, which win a name both have, as
		// Prometheus' remote-write adds external labels. Replica labels go.
		lset.Range(func(l labels.Label) {
			if slices.Contains(r.opt.ReplicaLabels, l.Name) {
				replica = append(replica, l.Name+"="+l.Value)
				return
			}
			ls = append(ls, payload.Label{Name: l.Name, Value: l.Value})
		})
		for _, l := range ob.ext {
			if !lset.Has(l.Name) {
				ls = append(ls, payload.Label{Name: l.Name, Value: l.Value})
			}
		}
		for _, l := range ob.replica {
			if !lset.Has(l.Name) {
				replica = append(replica, l.Name+"="+l.Value)
			}
		}
		slices.Sort(replica)
		var org uint32
		var ok bool
		rest, org, ok, err = r.opt.Tenancy.Resolve(rest, ls, ob.tenant)
		if err != nil {
			return fmt.Errorf("series %s: %w", lset, err)
		}
		if ok {
			rest = append(rest, payload.Label{Name: payload.TenantLabel, Value: fmt.Sprint(org)})
		}
		if err := dec.MapLabels(rest, &pl); err != nil {
			return fmt.Errorf("series %s: %w", lset, err)
		}
		r.entries = append(r.entries, entry{key: pl.SeriesKey, stream: strings.Join(replica, ","), block: bi, ref: ref})
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("read postings: %w", err)
	}
	return nil
}

// stream is one replica's samples of the current series.
type stream struct {
	id     string
	ts     []int64
	values []float64
}

// Next moves to the next series; false at the end or on an error.
func (r *Reader) Next() bool {
	if r.err != nil || r.pos >= len(r.entries) {
		return false
	}
	key := r.entries[r.pos].key
	end := r.pos
	for end < len(r.entries) && r.entries[end].key == key {
		end++
	}
	group := r.entries[r.pos:end]
	r.pos = end

	// One stream per replica; within it the blocks in time order, merged by
	// timestamp (Prometheus' vertical merge: one sample per timestamp).
	r.streams = r.streams[:0]
	for i := 0; i < len(group); {
		j := i
		for j < len(group) && group[j].stream == group[i].stream {
			j++
		}
		if len(r.streams) < cap(r.streams) {
			r.streams = r.streams[:len(r.streams)+1]
		} else {
			r.streams = append(r.streams, stream{})
		}
		s := &r.streams[len(r.streams)-1]
		s.id, s.ts, s.values = group[i].stream, s.ts[:0], s.values[:0]
		for _, e := range group[i:j] {
			if err := guard(r.blocks[e.block].Dir, func() error { return r.appendSamples(s, e) }); err != nil {
				r.err = err
				return false
			}
		}
		i = j
	}
	r.cur.Reset()
	r.cur.Key = key
	r.reads.Series++
	if len(r.streams) == 1 {
		r.cur.Ts = append(r.cur.Ts, r.streams[0].ts...)
		r.cur.Values = append(r.cur.Values, r.streams[0].values...)
		return true
	}
	acc := dedupReplicas(r.streams)
	r.cur.Ts = append(r.cur.Ts, acc.ts...)
	r.cur.Values = append(r.cur.Values, acc.values...)
	return true
}

// appendSamples merges the samples of one block's series into s, which holds the
// samples of earlier blocks of the same replica: where both have a timestamp, the
// earlier block's sample stays.
func (r *Reader) appendSamples(s *stream, e entry) error {
	ob := r.blocks[e.block]
	if err := ob.index.Series(e.ref, &r.builder, &r.chks); err != nil {
		return fmt.Errorf("block %s: read series %d: %w", ob.Dir, e.ref, err)
	}
	deleted, err := ob.tomb.Get(e.ref)
	if err != nil {
		return fmt.Errorf("block %s: tombstones of series %d: %w", ob.Dir, e.ref, err)
	}
	var ts []int64
	var vs []float64
	var it chunkenc.Iterator
	for _, m := range r.chks {
		c, iterable, err := ob.chunk.ChunkOrIterable(m)
		if err != nil {
			return fmt.Errorf("block %s: series %s: chunk %d: %w", ob.Dir, r.builder.Labels(), m.Ref, err)
		}
		if iterable != nil {
			it = iterable.Iterator(it)
		} else {
			if e := c.Encoding(); e != chunkenc.EncXOR && e != chunkenc.EncXOR2 {
				return fmt.Errorf("block %s: series %s: chunk %d has %s samples: native histograms are not supported (Tailor has no column for them)", ob.Dir, r.builder.Labels(), m.Ref, e)
			}
			it = c.Iterator(it)
		}
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				return fmt.Errorf("block %s: series %s: %s sample: native histograms are not supported", ob.Dir, r.builder.Labels(), vt)
			}
			t, v := it.At()
			if isDeleted(deleted, t) {
				continue
			}
			ts, vs = append(ts, t), append(vs, v)
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("block %s: series %s: chunk %d: %w", ob.Dir, r.builder.Labels(), m.Ref, err)
		}
	}
	// Chunks of a compacted block are in time order and do not overlap; a block
	// written by vertical compaction or by another writer may not be. Sort stably and
	// keep the first of equal timestamps.
	if !slices.IsSorted(ts) || hasDup(ts) {
		ts, vs = sortFirst(ts, vs)
	}
	if len(s.ts) == 0 || len(ts) == 0 || ts[0] > s.ts[len(s.ts)-1] {
		s.ts, s.values = append(s.ts, ts...), append(s.values, vs...)
		return nil
	}
	// Overlap with an earlier block of this replica: merge, the earlier block first.
	mts := make([]int64, 0, len(s.ts)+len(ts))
	mvs := make([]float64, 0, len(s.ts)+len(ts))
	i, j := 0, 0
	for i < len(s.ts) || j < len(ts) {
		switch {
		case j == len(ts) || i < len(s.ts) && s.ts[i] < ts[j]:
			mts, mvs = append(mts, s.ts[i]), append(mvs, s.values[i])
			i++
		case i == len(s.ts) || ts[j] < s.ts[i]:
			mts, mvs = append(mts, ts[j]), append(mvs, vs[j])
			j++
		default: // equal: the earlier block's sample
			mts, mvs = append(mts, s.ts[i]), append(mvs, s.values[i])
			i, j = i+1, j+1
		}
	}
	s.ts, s.values = mts, mvs
	return nil
}

func isDeleted(itv tombstones.Intervals, t int64) bool {
	for _, in := range itv {
		if in.InBounds(t) {
			return true
		}
	}
	return false
}

func hasDup(ts []int64) bool {
	for i := 1; i < len(ts); i++ {
		if ts[i] == ts[i-1] {
			return true
		}
	}
	return false
}

// sortFirst sorts samples by time, keeping the first of equal timestamps.
func sortFirst(ts []int64, vs []float64) ([]int64, []float64) {
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(ts[a], ts[b]) })
	ots, ovs := make([]int64, 0, len(ts)), make([]float64, 0, len(ts))
	for k, i := range idx {
		if k > 0 && ts[i] == ots[len(ots)-1] {
			continue
		}
		ots, ovs = append(ots, ts[i]), append(ovs, vs[i])
	}
	return ots, ovs
}

// dedupReplicas applies Thanos' penalty de-duplication to replicas, chained as
// Thanos' dedupSeries.Iterator chains them (((r0 ⊕ r1) ⊕ r2) …), in the order of their
// replica label values.
func dedupReplicas(replicas []stream) stream {
	acc := stream{ts: replicas[0].ts, values: replicas[0].values}
	for i := range replicas[1:] {
		var out stream
		penaltyDedup(&out, &acc, &replicas[i+1])
		acc = out
	}
	return acc
}

// initialPenalty is Thanos' penalty before two samples give an interval: 5 s, "based
// on the knowledge that timestamps are in milliseconds and sampling frequencies
// typically multiple seconds long" (pkg/dedup/iter.go).
const initialPenalty = 5000

// penaltyDedup merges replicas a and b into out as Thanos' dedupSeriesIterator does
// for raw samples (no counter adjustment, which Thanos applies only under rate and
// the like): take the replica with the earlier next sample; the other one must then
// skip ahead by twice the gap to the last sample taken, so that switching replicas
// never raises the sample rate. Iterating the materialized samples is exactly
// iterating Thanos' iterators: its Seek on a dedup iterator walks Next.
func penaltyDedup(out, a, b *stream) {
	ia, ib := 0, 0
	aok, bok := len(a.ts) > 0, len(b.ts) > 0
	lastT := int64(math.MinInt64)
	var penA, penB int64
	seek := func(ts []int64, i int, t int64) int {
		for i < len(ts) && ts[i] < t {
			i++
		}
		return i
	}
	for {
		if aok {
			ia = seek(a.ts, ia, lastT+1+penA)
			aok = ia < len(a.ts)
		}
		if bok {
			ib = seek(b.ts, ib, lastT+1+penB)
			bok = ib < len(b.ts)
		}
		switch {
		case !aok && !bok:
			return
		case !aok:
			lastT, penB = b.ts[ib], 0
			out.ts, out.values = append(out.ts, b.ts[ib]), append(out.values, b.values[ib])
			continue
		case !bok:
			lastT, penA = a.ts[ia], 0
			out.ts, out.values = append(out.ts, a.ts[ia]), append(out.values, a.values[ia])
			continue
		}
		ta, tb := a.ts[ia], b.ts[ib]
		if ta <= tb {
			if lastT != math.MinInt64 {
				penB = 2 * (ta - lastT)
			} else {
				penB = initialPenalty
			}
			penA, lastT = 0, ta
			out.ts, out.values = append(out.ts, ta), append(out.values, a.values[ia])
			continue
		}
		if lastT != math.MinInt64 {
			penA = 2 * (tb - lastT)
		} else {
			penA = initialPenalty
		}
		penB, lastT = 0, tb
		out.ts, out.values = append(out.ts, tb), append(out.values, b.values[ib])
	}
}

// At returns the current series (no tags), valid until the next call to Next.
func (r *Reader) At() *encoder.Series { return &r.cur }

// Err returns the error that stopped the reader, if any.
func (r *Reader) Err() error { return r.err }

// Close releases the blocks and removes downloaded copies.
func (r *Reader) Close() error {
	var errs []error
	for _, b := range r.blocks {
		errs = append(errs, b.close())
	}
	r.blocks = nil
	if r.tmp != "" {
		errs = append(errs, os.RemoveAll(r.tmp))
	}
	return errors.Join(errs...)
}
