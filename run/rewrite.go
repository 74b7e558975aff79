package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/rollup"
	"github.com/tailor-metrics/tailor/storage"
)

// A rewrite (docs/lifecycle.md) derives a run from one published run by leaving points
// out: those a tombstone deletes (delete --apply, compaction) and those retention expires
// (retain). It is published in the same window, over the same inputs, and supersedes the
// run it rewrites. A file that holds nothing to leave out is not copied: the new
// manifest names it where it is, and gc keeps every file a serving manifest names.

// rewriteFilter is what a rewrite leaves out.
type rewriteFilter struct {
	tomb   Tombstones
	expire []Expiry
}

// drops reports whether f drops org's data at resolution res entirely.
func (f *rewriteFilter) drops(res string, org uint32) bool {
	for _, e := range f.expire {
		if e.Resolution != res {
			continue
		}
		if e.All {
			return true
		}
		for _, o := range e.Orgs {
			if o == org {
				return true
			}
		}
	}
	return false
}

// expires reports whether f drops anything at res.
func (f *rewriteFilter) expires(res string) bool {
	for _, e := range f.expire {
		if e.Resolution == res {
			return true
		}
	}
	return false
}

// dropsAll reports whether f drops every org's data at res.
func (f *rewriteFilter) dropsAll(res string) bool {
	for _, e := range f.expire {
		if e.Resolution == res && e.All {
			return true
		}
	}
	return false
}

func (f *rewriteFilter) String() string {
	var b strings.Builder
	b.WriteString("tombstones=" + strings.Join(f.tomb.ids(), ","))
	for _, e := range f.expire {
		fmt.Fprintf(&b, ";expire=%s:%v:%v", e.Resolution, e.All, e.Orgs)
	}
	return b.String()
}

// storeReaderAt reads an object by ranged GETs, so that a series file's index can be
// read without fetching the file.
type storeReaderAt struct {
	ctx context.Context
	st  storage.Store
	key string
}

func (r storeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	b, err := storage.ReadRange(r.ctx, r.st, r.key, off, int64(len(p)), p[:0])
	if err != nil {
		return 0, err
	}
	return copy(p, b), nil
}

// rewriteRun rewrites src under f. It returns nil when f leaves nothing out of src. kind
// names the rewrite (delete, retain) in the run id and manifest.
func rewriteRun(ctx context.Context, st storage.Store, src *Manifest, kind string, f rewriteFilter, tempDir string) (*Manifest, error) {
	w, err := ParseWindowName(src.Window)
	if err != nil {
		return nil, err
	}
	id := derivedID(kind, src.Shard, w, []*Manifest{src}, f.String())
	if m, err := ReadManifest(ctx, st, src.Shard, w, id); err == nil {
		return m, promote(ctx, st, m, w, PublishOptions{})
	} else if !errors.Is(err, storage.ErrNotExist) {
		return nil, err
	}
	rw := &rewriter{ctx: ctx, st: st, f: &f, tempDir: tempDir}
	defer rw.close()
	own, ownNew, err := rw.seriesParts(src.Parts, RawResolution)
	if err != nil {
		return nil, err
	}
	late, _, err := rw.seriesParts(src.LateParts, RawResolution)
	if err != nil {
		return nil, err
	}
	arrC := rw.c // arrival parts hold no points: their counts are not the run's
	arr, _, err := rw.seriesParts(src.ArrivalParts, RawResolution)
	if err != nil {
		return nil, err
	}
	rw.c = arrC
	var sets []rollupOut
	for _, set := range src.Rollups {
		if f.dropsAll(set.Resolution) {
			rw.changed = true
			continue
		}
		out, err := rw.rollupParts(set, src.Parts, ownNew, src.RollupConfig)
		if err != nil {
			return nil, err
		}
		sets = append(sets, out)
	}
	if !rw.changed {
		return nil, nil
	}

	m := *src
	m.RunID = id
	m.Derived = &Derivation{Kind: kind, Algo: deriveAlgo}
	if src.Derived != nil {
		m.Derived.Retention = append(m.Derived.Retention, src.Derived.Retention...)
	}
	m.Derived.Retention = mergeExpiries(append(m.Derived.Retention, f.expire...))
	m.Tombstones = unionIDs(src.Tombstones, f.tomb.ids())
	key := func(prefix string) func(i int) string {
		return func(i int) string { return fmt.Sprintf("%s%s-%05d.tsf", RunDir(m.Shard, w, id), prefix, i) }
	}
	if m.Parts, err = rw.upload(own, key("part")); err != nil {
		return nil, err
	}
	if m.LateParts, err = rw.upload(late, key("late")); err != nil {
		return nil, err
	}
	if m.ArrivalParts, err = rw.upload(arr, key("arrival")); err != nil {
		return nil, err
	}
	if len(m.ArrivalParts) == 0 {
		m.ArrivalParts = nil
	}
	m.Rollups = nil
	for _, s := range sets {
		set := RollupSet{Resolution: s.set.Resolution, ResolutionMs: s.set.ResolutionMs}
		if set.Parts, err = rw.upload(s.parts, func(i int) string { return RollupPartKey(m.Shard, w, id, s.set.ResolutionMs, i) }); err != nil {
			return nil, err
		}
		if len(set.Parts) > 0 {
			m.Rollups = append(m.Rollups, set)
		}
	}
	if len(m.Rollups) == 0 {
		m.Rollups, m.RollupConfig = nil, nil
	}
	m.Counts = Counts{PointsIn: rw.c.in, Deleted: rw.c.deleted, Expired: rw.c.expired}
	for _, p := range m.Parts {
		m.Counts.PointsOut += p.Points
		m.Counts.Series += p.Series
	}
	for _, p := range m.LateParts {
		m.Counts.PointsOut += p.Points
		m.Counts.LatePointsOut += p.Points
		m.Counts.Series += p.Series
		m.Counts.LateSeries += p.Series
	}
	m.Retired = len(m.Parts) == 0 && len(m.LateParts) == 0 && len(m.Rollups) == 0
	return &m, publishDerived(ctx, st, &m, []*Manifest{src})
}

// rewriter rewrites the files of one run.
type rewriter struct {
	ctx     context.Context
	st      storage.Store
	f       *rewriteFilter
	tempDir string
	changed bool
	temps   []*tempPart
	c       struct{ in, deleted, expired uint64 }
	rs      []tsRange
}

// outPart is a file of the rewritten run: a file of the source kept as it is (keep), or
// a new one (temp); nil when the source file's every point went.
type outPart struct {
	keep *Part
	temp *tempPart
}

func (rw *rewriter) close() {
	for _, t := range rw.temps {
		t.close()
	}
}

// seriesParts rewrites series files (own, late or arrival parts) whose points are at
// resolution res. It returns the new list, and by index of ps the new file when one was
// written (nil when the part was kept or dropped).
func (rw *rewriter) seriesParts(ps []Part, res string) ([]outPart, []*tempPart, error) {
	out := make([]outPart, 0, len(ps))
	made := make([]*tempPart, len(ps))
	for i := range ps {
		p := &ps[i]
		rd, err := encoder.Open(storeReaderAt{rw.ctx, rw.st, p.Key}, p.Size)
		if err != nil {
			return nil, nil, fmt.Errorf("rewrite: open %s: %w", p.Key, err)
		}
		if !rw.affects(rd.Index(), res, 0) {
			out = append(out, outPart{keep: p})
			rw.c.in += p.Points
			continue
		}
		rw.changed = true
		b, err := storage.ReadAll(rw.ctx, rw.st, p.Key)
		if err != nil {
			return nil, nil, err
		}
		if rd, err = encoder.Open(bytes.NewReader(b), int64(len(b))); err != nil {
			return nil, nil, fmt.Errorf("rewrite: open %s: %w", p.Key, err)
		}
		pw := &partWriter{dir: rw.tempDir}
		it := rd.Iterator(nil)
		for it.Next() {
			s := it.At()
			rw.c.in += uint64(len(s.Ts))
			if rw.f.drops(res, s.Key.Org) {
				rw.c.expired += uint64(len(s.Ts))
				continue
			}
			rw.rs = rw.f.tomb.ranges(s.Key, rw.rs)
			ts, vals, n := filterPoints(rw.rs, s.Ts, s.Values)
			rw.c.deleted += uint64(n)
			if err := pw.add(s.Key, s.Tags, ts, vals); err != nil {
				return nil, nil, err
			}
		}
		if err := it.Err(); err != nil {
			return nil, nil, fmt.Errorf("rewrite: decode %s: %w", p.Key, err)
		}
		if err := pw.finish(); err != nil {
			return nil, nil, err
		}
		if len(pw.done) == 1 {
			rw.temps = append(rw.temps, pw.done[0])
			out = append(out, outPart{temp: pw.done[0]})
			made[i] = pw.done[0]
		}
	}
	return out, made, nil
}

// affects reports whether f leaves out anything of the series of idx (at resolution
// res; a rollup's buckets span span ms past their start).
func (rw *rewriter) affects(idx []encoder.IndexEntry, res string, span int64) bool {
	for _, e := range idx {
		if rw.f.drops(res, e.Key.Org) {
			return true
		}
		for i := range rw.f.tomb {
			if rw.f.tomb[i].mayHold(e.Key, e.MinTs, e.MaxTs+span) {
				return true
			}
		}
	}
	return false
}

type rollupOut struct {
	set   RollupSet
	parts []outPart
}

// rollupParts rewrites one resolution's rollup parts: a rollup of an own part that was
// rewritten is made again from the new part; without raw points (retention dropped them)
// the buckets are filtered: a tombstone drops every bucket it touches.
func (rw *rewriter) rollupParts(set RollupSet, own []Part, ownNew []*tempPart, cfg *RollupConfig) (rollupOut, error) {
	out := rollupOut{set: set}
	res := set.ResolutionMs
	for i := range set.Parts {
		p := &set.Parts[i]
		b, err := storage.ReadAll(rw.ctx, rw.st, p.Key)
		if err != nil {
			return out, err
		}
		rd, err := rollup.Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return out, fmt.Errorf("rewrite: open %s: %w", p.Key, err)
		}
		rawChanged := i < len(ownNew) && ownNew[i] != nil
		if !rawChanged && !rw.affects(rd.Index(), set.Resolution, res) {
			out.parts = append(out.parts, outPart{keep: p})
			continue
		}
		rw.changed = true
		// Made again from the rewritten raw part when only tombstones changed it (part i
		// of a rollup set rolls up own part i); when retention drops raw points, the
		// rollups outlive them, so they are filtered instead.
		if rawChanged && len(own) == len(set.Parts) && !rw.f.expires(RawResolution) {
			one := &RollupConfig{ResolutionsMs: []int64{res}, CounterTags: cfg.counterTags()}
			t := ownNew[i]
			rs, err := rollupsOf(t.readerAt(), t.part.Size, one)
			if err != nil {
				return out, err
			}
			if rs[0] != nil {
				rw.temps = append(rw.temps, rs[0])
				out.parts = append(out.parts, outPart{temp: rs[0]})
			}
			continue
		}
		t, err := rw.filterRollup(rd, set.Resolution, res)
		if err != nil {
			return out, fmt.Errorf("rewrite %s: %w", p.Key, err)
		}
		if t != nil {
			rw.temps = append(rw.temps, t)
			out.parts = append(out.parts, outPart{temp: t})
		}
	}
	return out, nil
}

func (c *RollupConfig) counterTags() []string {
	if c == nil {
		return nil
	}
	return c.CounterTags
}

// filterRollup copies a rollup file without what f leaves out.
func (rw *rewriter) filterRollup(rd *rollup.Reader, name string, res int64) (*tempPart, error) {
	w := rollup.NewWriter(res)
	it := rd.Iterator()
	var keep []rollup.Bucket
	for it.Next() {
		s := it.At()
		if rw.f.drops(name, s.Key.Org) {
			continue
		}
		rw.rs = rw.f.tomb.ranges(s.Key, rw.rs)
		keep = keep[:0]
		for _, b := range s.Buckets {
			if !hidden(rw.rs, b.Start, b.Start+res) {
				keep = append(keep, b)
			}
		}
		if err := w.Append(s.Key, s.Tags, keep, s.Counter); err != nil {
			return nil, err
		}
	}
	if err := it.Err(); err != nil {
		return nil, err
	}
	if w.Series() == 0 {
		return nil, nil
	}
	b, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	return memPart(b, w.Series(), w.Buckets()), nil
}

// upload stores the new files of out under key(i), i their place in the list.
func (rw *rewriter) upload(out []outPart, key func(i int) string) ([]Part, error) {
	ps := []Part{}
	for _, o := range out {
		if o.keep != nil {
			ps = append(ps, *o.keep)
			continue
		}
		up, err := upload(rw.ctx, rw.st, []*tempPart{o.temp}, func(int) string { return key(len(ps)) })
		if err != nil {
			return nil, err
		}
		ps = append(ps, up...)
	}
	return ps, nil
}

// mergeExpiries merges expiries per resolution: All wins, orgs are united.
func mergeExpiries(es []Expiry) []Expiry {
	by := map[string]*Expiry{}
	var names []string
	for _, e := range es {
		cur := by[e.Resolution]
		if cur == nil {
			cur = &Expiry{Resolution: e.Resolution}
			by[e.Resolution] = cur
			names = append(names, e.Resolution)
		}
		cur.All = cur.All || e.All
		cur.Orgs = append(cur.Orgs, e.Orgs...)
	}
	sort.Strings(names)
	out := make([]Expiry, 0, len(names))
	for _, n := range names {
		e := by[n]
		if e.All {
			e.Orgs = nil
		} else {
			sort.Slice(e.Orgs, func(i, j int) bool { return e.Orgs[i] < e.Orgs[j] })
			e.Orgs = compactOrgs(e.Orgs)
		}
		out = append(out, *e)
	}
	return out
}

func compactOrgs(orgs []uint32) []uint32 {
	out := orgs[:0]
	for i, o := range orgs {
		if i == 0 || o != orgs[i-1] {
			out = append(out, o)
		}
	}
	return out
}

func unionIDs(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range append(append([]string(nil), a...), b...) {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// memPart is a file held in memory.
func memPart(b []byte, series, points int64) *tempPart {
	t := &tempPart{mem: b}
	t.part = Part{Size: int64(len(b)), Series: uint64(series), Points: uint64(points), SHA256: sha256Hex(b)}
	return t
}

var _ io.ReaderAt = storeReaderAt{}
