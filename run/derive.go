package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/rollup"
	"github.com/tailor-metrics/tailor/storage"
)

// Derived runs (docs/lifecycle.md): compaction, a delete applied and retention each make
// a run from published runs instead of from segments. Its files are written to local
// temporary files first, because its run id is known only once the sources are read
// (like a degraded run's), then uploaded, then published manifest-last. Its id hashes
// what it was made from, so two processes deriving the same run write the same bytes
// under the same keys, and a killed one is finished by the next.

// deriveAlgo changes whenever the same sources would give different derived bytes.
const deriveAlgo = "tailor-derive/1"

// ArrivalPartKey, RollupPartKey: the keys of a derived run's arrival parts and of a
// run's rollup parts.
func ArrivalPartKey(shard string, w Window, runID string, i int) string {
	return fmt.Sprintf("%sarrival-%05d.tsf", RunDir(shard, w, runID), i)
}

func RollupPartKey(shard string, w Window, runID string, res int64, i int) string {
	return fmt.Sprintf("%srollup-%s-%05d.trf", RunDir(shard, w, runID), rollup.Name(res), i)
}

// derivedID hashes a derived run's recipe: what it is, its window, its sources and every
// choice that changes its bytes.
func derivedID(kind, shard string, w Window, srcs []*Manifest, extra ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", deriveAlgo, kind, shard, w.Name())
	refs := make([]string, len(srcs))
	for i, m := range srcs {
		refs[i] = m.Window + "/" + m.RunID
	}
	sort.Strings(refs)
	for _, r := range refs {
		fmt.Fprintf(h, "\x00src\x00%s", r)
	}
	for _, e := range extra {
		fmt.Fprintf(h, "\x00%s", e)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// tempPart is one file of a derived run, waiting in a temporary file (or in memory) for
// its key.
type tempPart struct {
	f    *os.File // nil when the bytes are in mem
	mem  []byte
	part Part // Key unset
}

func (t *tempPart) reader() io.Reader {
	if t.f == nil {
		return bytes.NewReader(t.mem)
	}
	return io.NewSectionReader(t.f, 0, t.part.Size)
}

func (t *tempPart) readerAt() io.ReaderAt {
	if t.f == nil {
		return bytes.NewReader(t.mem)
	}
	return t.f
}

func (t *tempPart) close() error {
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	return err
}

// partWriter writes series files of about partBytes each into temporary files.
type partWriter struct {
	dir       string
	partBytes int64
	f         *os.File
	h         hash.Hash
	n         countingWriter
	w         *encoder.Writer
	minTs     int64
	maxTs     int64
	orgs      [2]uint32 // the first and last series' orgs: series come in key order
	done      []*tempPart
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// add appends one series, starting a new part once the current one reached partBytes.
func (p *partWriter) add(key columnar.SeriesKey, tags []string, ts []int64, vals []float64) error {
	if len(ts) == 0 {
		return nil
	}
	if p.w == nil {
		f, err := storage.SpillFile(p.dir, "tailor-derived-*")
		if err != nil {
			return fmt.Errorf("derived run: temp file: %w", err)
		}
		p.f, p.h = f, sha256.New()
		p.n = countingWriter{w: io.MultiWriter(f, p.h)}
		p.w = encoder.NewWriter(&p.n)
		p.minTs, p.maxTs = ts[0], ts[len(ts)-1]
		p.orgs[0] = key.Org
	}
	if err := p.w.Append(key, tags, ts, vals); err != nil {
		return err
	}
	p.minTs, p.maxTs = min(p.minTs, ts[0]), max(p.maxTs, ts[len(ts)-1])
	p.orgs[1] = key.Org
	if p.partBytes > 0 && p.w.Stats().Bytes >= p.partBytes {
		return p.finish()
	}
	return nil
}

// finish closes the current part.
func (p *partWriter) finish() error {
	if p.w == nil {
		return nil
	}
	if err := p.w.Close(); err != nil {
		return err
	}
	st := p.w.Stats()
	p.done = append(p.done, &tempPart{f: p.f, part: Part{
		Size: p.n.n, Series: uint64(st.Series), Points: uint64(st.Points),
		SHA256: hex.EncodeToString(p.h.Sum(nil)), Ts: []int64{p.minTs, p.maxTs}, Orgs: []uint32{p.orgs[0], p.orgs[1]},
	}})
	p.w, p.f = nil, nil
	return nil
}

func (p *partWriter) close() error {
	var errs []error
	if p.f != nil {
		errs = append(errs, p.f.Close())
		p.f = nil
	}
	for _, t := range p.done {
		errs = append(errs, t.close())
	}
	return errors.Join(errs...)
}

// rollupsOf rolls up the series file r (size bytes) at every resolution of cfg, one
// rollup file each (nil where the file has no series).
func rollupsOf(r io.ReaderAt, size int64, cfg *RollupConfig) ([]*tempPart, error) {
	if cfg == nil || len(cfg.ResolutionsMs) == 0 {
		return nil, nil
	}
	rd, err := encoder.Open(r, size)
	if err != nil {
		return nil, fmt.Errorf("roll up: %w", err)
	}
	ws := make([]*rollup.Writer, len(cfg.ResolutionsMs))
	for i, res := range cfg.ResolutionsMs {
		ws[i] = rollup.NewWriter(res)
	}
	var buckets []rollup.Bucket
	it := rd.Iterator(nil)
	for it.Next() {
		s := it.At()
		counter := rollup.IsCounter(s.Tags, cfg.CounterTags)
		for i, res := range cfg.ResolutionsMs {
			buckets = rollup.Aggregate(buckets[:0], s.Ts, s.Values, res, counter)
			if err := ws[i].Append(s.Key, s.Tags, buckets, counter); err != nil {
				return nil, err
			}
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("roll up: %w", err)
	}
	out := make([]*tempPart, len(ws))
	for i, w := range ws {
		if w.Series() == 0 {
			continue
		}
		b, err := w.Bytes()
		if err != nil {
			return nil, err
		}
		out[i] = memPart(b, w.Series(), w.Buckets())
	}
	return out, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// upload stores each temp part under key(i) and returns the parts with their keys.
func upload(ctx context.Context, st storage.Store, tps []*tempPart, key func(i int) string) ([]Part, error) {
	out := make([]Part, 0, len(tps))
	for i, t := range tps {
		p := t.part
		p.Key = key(i)
		if err := st.Put(ctx, p.Key, t.reader()); err != nil {
			return nil, fmt.Errorf("upload %s: %w", p.Key, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// uploadRollups stores the rollup files of each own part: sets[i][j] rolls up own
// part j at resolution cfg.ResolutionsMs[i].
func uploadRollups(ctx context.Context, st storage.Store, cfg *RollupConfig, perPart [][]*tempPart, key func(res int64, i int) string) ([]RollupSet, error) {
	if cfg == nil {
		return nil, nil
	}
	var out []RollupSet
	for r, res := range cfg.ResolutionsMs {
		set := RollupSet{Resolution: rollup.Name(res), ResolutionMs: res, Parts: []Part{}}
		for _, parts := range perPart {
			t := parts[r]
			if t == nil {
				continue
			}
			ps, err := upload(ctx, st, []*tempPart{t}, func(int) string { return key(res, len(set.Parts)) })
			if err != nil {
				return nil, err
			}
			set.Parts = append(set.Parts, ps...)
		}
		out = append(out, set)
	}
	return out, nil
}

// mergeRollupConfigs is the rollup config of a run derived from srcs with extra: the
// union of the resolutions (those that divide the window size w) and of the counter tags.
func mergeRollupConfigs(w int64, extra *RollupConfig, srcs []*Manifest) *RollupConfig {
	res := map[int64]bool{}
	tags := map[string]bool{}
	add := func(c *RollupConfig) {
		if c == nil {
			return
		}
		for _, r := range c.ResolutionsMs {
			if r > 0 && w%r == 0 {
				res[r] = true
			}
		}
		for _, t := range c.CounterTags {
			tags[t] = true
		}
	}
	add(extra)
	for _, m := range srcs {
		add(m.RollupConfig)
	}
	if len(res) == 0 {
		return nil
	}
	c := &RollupConfig{ResolutionsMs: []int64{}, CounterTags: []string{}}
	for r := range res {
		c.ResolutionsMs = append(c.ResolutionsMs, r)
	}
	for t := range tags {
		c.CounterTags = append(c.CounterTags, t)
	}
	sort.Slice(c.ResolutionsMs, func(i, j int) bool { return c.ResolutionsMs[i] < c.ResolutionsMs[j] })
	sort.Strings(c.CounterTags)
	return c
}

// validate checks that every resolution divides the window size, so that no bucket
// crosses a window's edge.
func (c *RollupConfig) validate(window time.Duration) error {
	if c == nil {
		return nil
	}
	w := window.Milliseconds()
	for i, r := range c.ResolutionsMs {
		switch {
		case r <= 0 || r%1000 != 0:
			return fmt.Errorf("rollup resolution %d ms: want a positive whole number of seconds", r)
		case w%r != 0:
			return fmt.Errorf("rollup resolution %s does not divide the window size %s: a bucket would cross windows", rollup.Name(r), window)
		case i > 0 && r <= c.ResolutionsMs[i-1]:
			return fmt.Errorf("rollup resolutions must ascend without repeats: %s after %s", rollup.Name(r), rollup.Name(c.ResolutionsMs[i-1]))
		}
	}
	return nil
}

func (c *RollupConfig) String() string {
	if c == nil {
		return "none"
	}
	var b strings.Builder
	for _, r := range c.ResolutionsMs {
		fmt.Fprintf(&b, "%d,", r)
	}
	b.WriteString("/")
	b.WriteString(strings.Join(c.CounterTags, ","))
	return b.String()
}
