//go:build duckdb_arrow

package run

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// A read of the published series (docs/validation.md, "Pruning") opens only what its
// restriction can use:
//
//   - shards: of an org restriction, only the shards the shard map gives those orgs
//     (org-mod-N, or the org's dedicated shard and its parts), by listing their prefixes;
//   - windows: of the listed (shard, window)s, only those whose window overlaps the ts
//     restriction, and those with a late output (which may hold points of any window);
//   - parts: of the manifests read, only the parts whose recorded ts and org ranges
//     overlap the restriction;
//   - series and blocks: inside a part, only the index entries of admitted keys, and of
//     those only the blocks inside the ts range, read with ranged reads;
//   - values: not decoded at all when the statement reads no value column.
//
// Parts are decoded ahead of the merger by a pool of workers, one per core, in chunks
// of a few hundred series, so that a full scan uses every core while the merger and
// DuckDB consume in key order.

// ScanOptions narrows a read of the published series (OpenSeriesWith).
type ScanOptions struct {
	Scope query.Scope
	// Restriction is what the reader may skip, beyond the scope: parts, series and blocks
	// outside it are not read, and without the value column values are not decoded.
	Restriction query.Restriction
	// Workers decode parts in parallel; 0 means GOMAXPROCS.
	Workers int
}

const (
	// chunkPoints and chunkSeries bound one decoding job: large enough that handing it
	// over costs nothing next to decoding it, small enough that one part of a few
	// thousand series keeps every worker busy.
	chunkPoints = 256 << 10
	chunkSeries = 512
	// aheadChunks is how many chunks a source keeps decoding ahead of the merger.
	aheadChunks = 4
	// wholeFileBytes: a part this small, or one whose series are mostly wanted, is read
	// with one GET rather than ranged reads (local files are read in place).
	wholeFileBytes = 1 << 20
	// tailBytes is what encoder.Open reads from the end of a file at least: a file no
	// larger is read whole, once.
	tailBytes = 64 << 10
	// localTailBytes is the first read from the end of a local file by a scan of a few
	// series: just the trailer (encoder.TailRead reads at least that), then exactly
	// the index, then the series' blocks.
	localTailBytes = 0
)

// scanner is the shared state of one read: what it admits, its workers and its counts.
type scanner struct {
	ctx    context.Context
	cancel context.CancelFunc
	st     storage.Store
	r      query.Restriction
	lo, hi int64 // ts bounds
	keep   func(encoder.IndexEntry) bool
	noVals bool

	jobs    chan func(*scanWorker)
	workers sync.WaitGroup
	closed  atomic.Bool

	filesRead, filesSkipped   atomic.Int64
	bytesRead, bytesSkipped   atomic.Int64
	seriesRead, seriesSkipped atomic.Int64
}

type scanWorker struct {
	it *encoder.SeriesIterator
}

func newScanner(ctx context.Context, st storage.Store, r query.Restriction, workers int) *scanner {
	ctx, cancel := context.WithCancel(ctx)
	sc := &scanner{ctx: ctx, cancel: cancel, st: st, r: r, noVals: !r.Uses("value")}
	sc.lo, sc.hi = r.TsBounds()
	if r.Orgs != nil || r.Metrics != nil || r.Contexts != nil {
		sc.keep = func(e encoder.IndexEntry) bool { return r.MatchKey(e.Key) }
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// Jobs are queued, never waited for by a worker, so the queue only needs room for
	// what the sources keep in flight; a full queue makes a source wait, not deadlock.
	sc.jobs = make(chan func(*scanWorker), 1<<12)
	for range workers {
		sc.workers.Add(1)
		go func() {
			defer sc.workers.Done()
			w := &scanWorker{}
			for job := range sc.jobs {
				job(w)
			}
		}()
	}
	return sc
}

// submit queues a job; after close it runs the job on the caller, which then sees the
// cancelled context.
func (sc *scanner) submit(job func(*scanWorker)) {
	if sc.closed.Load() {
		job(&scanWorker{})
		return
	}
	sc.jobs <- job
}

// close stops the workers once the queued jobs ran (each sees the cancelled context).
func (sc *scanner) close() {
	if sc.closed.Swap(true) {
		return
	}
	sc.cancel()
	close(sc.jobs)
	sc.workers.Wait()
}

func (sc *scanner) reads() query.ReadStats {
	return query.ReadStats{
		FilesRead: sc.filesRead.Load(), FilesSkipped: sc.filesSkipped.Load(),
		BytesRead: sc.bytesRead.Load(), BytesSkipped: sc.bytesSkipped.Load(),
		SeriesRead: sc.seriesRead.Load(), SeriesSkipped: sc.seriesSkipped.Load(),
	}
}

func (sc *scanner) skipPart(p Part) {
	sc.filesSkipped.Add(1)
	sc.bytesSkipped.Add(p.Size)
	sc.seriesSkipped.Add(int64(p.Series))
}

// admitted returns the keys of the parts of ps that the scan admits.
func (sc *scanner) admitted(ps []Part) []string {
	var keys []string
	for _, p := range ps {
		if sc.admits(p) {
			keys = append(keys, p.Key)
		}
	}
	return keys
}

// admits reports whether part p may hold rows the scan reads.
func (sc *scanner) admits(p Part) bool {
	if len(p.Ts) == 2 && (p.Ts[1] < sc.lo || p.Ts[0] > sc.hi) {
		return false
	}
	return len(p.Orgs) != 2 || sc.r.Orgs.Overlaps(uint64(p.Orgs[0]), uint64(p.Orgs[1]))
}

// shardPrefixes are the key prefixes of the shards that can hold rows of r: all of
// series/ unless the scope names a shard or r names few enough orgs to look them up in
// the shard map.
func shardPrefixes(scope query.Scope, r query.Restriction) []string {
	if scope.Shard != "" {
		return []string{SeriesPrefix + scope.Shard + "/"}
	}
	m := scope.ShardMap
	if m == nil {
		m = columnar.DefaultShardMap()
	}
	seen, ok := r.Shards(m)
	if !ok {
		return []string{SeriesPrefix}
	}
	var out []string
	for sh := range seen {
		out = append(out, SeriesPrefix+sh+"/")
	}
	slices.Sort(out)
	return out
}

// listedWindow is what a listing shows of one (shard, window).
type listedWindow struct {
	shard   string
	w       Window
	current bool
	// runs maps each run id to its part files (own and late); every run directory the
	// listing shows has an entry.
	runs map[string][]storage.Attrs
	late bool // some run of it has a late output
}

// planScan lists the shards the scan can use and reads the manifests of the windows it
// can use: those overlapping its ts range, and those with a late output. What it skips
// without reading is counted as skipped. A window's keys are contiguous in the listing,
// so its manifest is fetched as soon as the listing moves past it, while it goes on;
// the shards of a local store are listed in parallel.
func planScan(ctx context.Context, sc *scanner, scope query.Scope) ([]*Manifest, error) {
	var (
		mu     sync.Mutex
		out    []*Manifest
		errs   []error
		misses []error
		wg     sync.WaitGroup
		sem    = make(chan struct{}, 8) // manifests are small and many: a few GETs at a time
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	fetch := func(lw *listedWindow) {
		if !lw.current {
			return
		}
		win := lw.w.TsRange()
		if !(win.From <= sc.hi && win.To-1 >= sc.lo) && !lw.late {
			if len(lw.runs) == 1 { // the current run's parts, known without reading it
				for _, files := range lw.runs {
					for _, a := range files {
						if a.Size < 0 { // listed without sizes (listLocal)
							if fi, err := os.Stat(sc.st.(storage.LocalFiler).LocalPath(a.Key)); err == nil {
								a.Size = fi.Size()
							}
						}
						sc.filesSkipped.Add(1)
						sc.bytesSkipped.Add(max(a.Size, 0))
					}
				}
			}
			return
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			m, missing, err := currentOf(ctx, sc.st, lw)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case missing != nil:
				misses = append(misses, missing)
			case m != nil:
				out = append(out, m)
			}
		}()
	}
	list := func(prefix string) error {
		if lf, ok := sc.st.(storage.LocalFiler); ok && strings.Count(prefix, "/") == 2 {
			return listLocal(ctx, lf, prefix, fetch)
		}
		var lw *listedWindow
		var lastKey string
		err := sc.st.List(ctx, prefix, func(a storage.Attrs) error {
			parts := strings.Split(strings.TrimPrefix(a.Key, SeriesPrefix), "/")
			if len(parts) < 3 || len(parts) > 4 {
				return nil
			}
			if k := parts[0] + "/" + parts[1]; lw == nil || k != lastKey {
				if lw != nil {
					fetch(lw)
				}
				w, err := ParseWindowName(parts[1])
				if err != nil {
					return fmt.Errorf("list outputs: %s: %w", a.Key, err)
				}
				lw, lastKey = &listedWindow{shard: parts[0], w: w, runs: map[string][]storage.Attrs{}}, k
			}
			switch {
			case len(parts) == 3 && parts[2] == currentName:
				lw.current = true
			case len(parts) == 4:
				files := lw.runs[parts[2]]
				if strings.HasSuffix(parts[3], ".tsf") {
					files = append(files, a)
					lw.late = lw.late || strings.HasPrefix(parts[3], "late-")
				}
				lw.runs[parts[2]] = files
			}
			return nil
		})
		if lw != nil && err == nil {
			fetch(lw)
		}
		return err
	}
	prefixes := shardPrefixes(scope, sc.r)
	if lf, ok := sc.st.(storage.LocalFiler); ok && len(prefixes) == 1 && prefixes[0] == SeriesPrefix {
		// The shards, from the directory: each is listed on its own.
		if ents, err := os.ReadDir(lf.LocalPath(strings.TrimSuffix(SeriesPrefix, "/"))); err == nil {
			prefixes = prefixes[:0]
			for _, e := range ents {
				if e.IsDir() {
					prefixes = append(prefixes, SeriesPrefix+e.Name()+"/")
				}
			}
		}
	}
	lists := make(chan struct{}, runtime.GOMAXPROCS(0))
	var lwg sync.WaitGroup
	for _, prefix := range prefixes {
		lwg.Add(1)
		lists <- struct{}{}
		go func() {
			defer func() { <-lists; lwg.Done() }()
			if err := list(prefix); err != nil {
				fail(err)
			}
		}()
	}
	lwg.Wait()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return servingRuns(out, misses)
}

// readCurrent reads the manifest of the run that serves (shard, w). It returns nil
// without an error when the window has no _CURRENT any more (gc replaced it with a
// _COMPACTED pointer since the listing), and the error in missing when _CURRENT names a
// run without a manifest, which servingRuns decides on.
func readCurrent(ctx context.Context, st storage.Store, shard string, w Window) (m *Manifest, missing error, err error) {
	var c current
	if err := getJSON(ctx, st, currentKey(shard, w), &c); err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("list outputs: %w", err)
	}
	m, err = ReadManifest(ctx, st, shard, w, c.RunID)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, &missingRun{RunRef{shard, w.Name(), c.RunID}, fmt.Errorf("list outputs: %w", err)}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list outputs: %w", err)
	}
	return m, nil, nil
}

// missingRun is a run a _CURRENT names whose manifest is gone.
type missingRun struct {
	ref RunRef
	err error
}

func (e *missingRun) Error() string { return e.err.Error() }

// servingRuns applies Published's rule to the current runs a plan read (nil entries are
// windows without a run any more): a missing manifest is an error unless a read run
// supersedes its run, and the runs another read run supersedes are dropped. A plan that
// reads a superseded run reads its superseder too, since a derived run's window holds
// its sources' windows and its late outputs hold their late points. Sorted by shard,
// then window.
func servingRuns(read []*Manifest, misses []error) ([]*Manifest, error) {
	var cur []*Manifest
	for _, m := range read {
		if m != nil {
			cur = append(cur, m)
		}
	}
	hidden := supersededBy(cur)
	for _, e := range misses {
		if e == nil {
			continue
		}
		if _, ok := hidden[e.(*missingRun).ref]; !ok {
			return nil, e
		}
	}
	out := visible(cur)
	slices.SortFunc(out, func(a, b *Manifest) int {
		return cmp.Or(strings.Compare(a.Shard, b.Shard), cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return out, nil
}

// listLocal lists the windows of one shard (prefix series/<shard>/) of a local store
// straight from its directories: what storage.Local.List gives, without a stat of every
// file (sizes are -1, looked up only for windows skipped unread). Names that start with
// a dot (files still being written) are not keys.
func listLocal(ctx context.Context, lf storage.LocalFiler, prefix string, fetch func(*listedWindow)) error {
	shard := strings.TrimSuffix(strings.TrimPrefix(prefix, SeriesPrefix), "/")
	dir := lf.LocalPath(strings.TrimSuffix(prefix, "/"))
	wins, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	for _, we := range wins {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !we.IsDir() || strings.HasPrefix(we.Name(), ".") {
			continue
		}
		w, err := ParseWindowName(we.Name())
		if err != nil {
			return fmt.Errorf("list outputs: %s%s: %w", prefix, we.Name(), err)
		}
		lw := &listedWindow{shard: shard, w: w, runs: map[string][]storage.Attrs{}}
		ents, err := os.ReadDir(filepath.Join(dir, we.Name()))
		if err != nil {
			return fmt.Errorf("list %s%s: %w", prefix, we.Name(), err)
		}
		for _, e := range ents {
			switch name := e.Name(); {
			case strings.HasPrefix(name, "."):
			case !e.IsDir():
				lw.current = lw.current || name == currentName
			default:
				files, err := os.ReadDir(filepath.Join(dir, we.Name(), name))
				if err != nil {
					return fmt.Errorf("list %s%s/%s: %w", prefix, we.Name(), name, err)
				}
				var parts []storage.Attrs
				for _, f := range files {
					if fn := f.Name(); !f.IsDir() && strings.HasSuffix(fn, ".tsf") && !strings.HasPrefix(fn, ".") {
						parts = append(parts, storage.Attrs{Key: prefix + we.Name() + "/" + name + "/" + fn, Size: -1})
						lw.late = lw.late || strings.HasPrefix(fn, "late-")
					}
				}
				lw.runs[name] = parts
			}
		}
		fetch(lw)
	}
	return nil
}

// currentOf reads the manifest of the run that serves a listed window, as readCurrent.
// With one run directory under the window, that is the run _CURRENT names (a run is made
// current after its manifest is written, and only ever replaces another; gc deletes a
// run's _CURRENT before its manifest), so its manifest is read without reading _CURRENT;
// otherwise _CURRENT decides.
func currentOf(ctx context.Context, st storage.Store, lw *listedWindow) (m *Manifest, missing, err error) {
	if len(lw.runs) == 1 {
		for id := range lw.runs {
			if m, err := ReadManifest(ctx, st, lw.shard, lw.w, id); err == nil {
				return m, nil, nil
			}
		}
	}
	return readCurrent(ctx, st, lw.shard, lw.w)
}

// chunk is one decoding job's result: consecutive series of one part.
type chunk struct {
	done   chan struct{}
	keys   []columnar.SeriesKey
	tags   [][]string
	ends   []int // ends[i] is where series i's points end in ts and vals
	ts     []int64
	vals   []float64
	err    error
	last   bool // the part's last chunk
	part   *openPart
	series int
}

var chunkPool = sync.Pool{New: func() any { return &chunk{} }}

func getChunk() *chunk {
	c := chunkPool.Get().(*chunk)
	c.done = make(chan struct{})
	c.keys, c.tags, c.ends, c.ts, c.vals = c.keys[:0], c.tags[:0], c.ends[:0], c.ts[:0], c.vals[:0]
	c.err, c.last, c.part, c.series = nil, false, nil, 0
	return c
}

func putChunk(c *chunk) {
	clear(c.tags) // drop the strings
	c.part = nil
	chunkPool.Put(c)
}

// decode fills c with the admitted series of index positions [first, end) of p.
func (c *chunk) decode(w *scanWorker, sc *scanner, p *openPart, first, end int) {
	defer close(c.done)
	if err := sc.ctx.Err(); err != nil {
		c.err = err
		return
	}
	opts := []encoder.IterOpt{encoder.IterIndexRange(first, end), encoder.IterTimeRange(sc.lo, sc.hi)}
	if sc.keep != nil {
		opts = append(opts, encoder.IterFilter(sc.keep))
	}
	if sc.noVals {
		opts = append(opts, encoder.IterNoValues())
	}
	w.it = p.r.Iterator(w.it, opts...)
	for w.it.Next() {
		s := w.it.At()
		c.keys = append(c.keys, s.Key)
		c.tags = append(c.tags, slices.Clone(s.Tags))
		c.ts = append(c.ts, s.Ts...)
		c.vals = append(c.vals, s.Values...)
		c.ends = append(c.ends, len(c.ts))
	}
	c.err = w.it.Err()
	c.series = len(c.keys)
}

// openPart is one part file being read.
type openPart struct {
	done  chan struct{}
	p     Part
	r     *encoder.Reader
	read  atomic.Int64 // bytes read from it
	close func() error
	spans [][2]int // index positions of the chunks to decode
	err   error
	// decoded counts the series its chunks decoded, for the skipped count at the end.
	decoded int
}

// open opens part p for reading and plans its chunks.
func (op *openPart) open(sc *scanner) {
	defer close(op.done)
	if err := sc.ctx.Err(); err != nil {
		op.err = err
		return
	}
	ra, closeFn, err := sc.partReader(op, op.p, false)
	if err != nil {
		op.err = err
		return
	}
	opts := []encoder.OpenOpt{encoder.FileName(op.p.Key)}
	if _, local := sc.st.(storage.LocalFiler); local && sc.keep != nil {
		// After a few series: the index first, then only their blocks. A local read
		// costs no round trip, so a second one for a large index is cheap.
		opts = append(opts, encoder.TailRead(localTailBytes))
	}
	r, err := encoder.Open(ra, op.p.Size, opts...)
	if err != nil {
		op.err = errors.Join(fmt.Errorf("open %s: %w", op.p.Key, err), closeFn())
		return
	}
	op.spans = sc.spans(r)
	if _, local := sc.st.(storage.LocalFiler); !local && op.p.Size > wholeFileBytes && wantsMost(r, op.spans) {
		// Most of a remote file: one GET of it beats a ranged read per block.
		if err := closeFn(); err != nil {
			op.err = err
			return
		}
		if ra, closeFn, err = sc.partReader(op, op.p, true); err != nil {
			op.err = err
			return
		}
		if r, err = encoder.Open(ra, op.p.Size, encoder.FileName(op.p.Key)); err != nil {
			op.err = errors.Join(fmt.Errorf("open %s: %w", op.p.Key, err), closeFn())
			return
		}
	}
	op.r, op.close = r, closeFn
}

// wantsMost reports whether the spans cover more than half of the file's series.
func wantsMost(r *encoder.Reader, spans [][2]int) bool {
	n := 0
	for _, s := range spans {
		n += s[1] - s[0]
	}
	return 2*n > len(r.Index())
}

// spans splits the admitted index positions of r into chunks.
func (sc *scanner) spans(r *encoder.Reader) [][2]int {
	idx := r.Index()
	var out [][2]int
	add := func(first, end int) {
		pts, start := int64(0), first
		for i := first; i < end; i++ {
			e := &idx[i]
			if e.MaxTs < sc.lo || e.MinTs > sc.hi {
				continue
			}
			pts += e.Points
			if pts >= chunkPoints || i+1-start >= chunkSeries {
				out = append(out, [2]int{start, i + 1})
				start, pts = i+1, 0
			}
		}
		if start < end && pts > 0 {
			out = append(out, [2]int{start, end})
		}
	}
	if sc.r.Orgs == nil {
		add(0, len(idx))
		return out
	}
	for _, o := range r.OrgRanges() {
		if sc.r.Orgs.Contains(uint64(o.Org)) {
			add(o.First, o.First+o.Count)
		}
	}
	return out
}

// partReader returns a reader of p's bytes that counts them into op.read: the file
// itself for a local store, the whole object in memory when whole, else ranged reads.
func (sc *scanner) partReader(op *openPart, p Part, whole bool) (io.ReaderAt, func() error, error) {
	if lf, ok := sc.st.(storage.LocalFiler); ok {
		f, err := os.Open(lf.LocalPath(p.Key))
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", p.Key, err)
		}
		if p.Size <= tailBytes && sc.keep == nil {
			// encoder.Open reads this much from the end: the whole file, once.
			b := make([]byte, p.Size)
			n, err := f.ReadAt(b, 0)
			op.read.Add(int64(n))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
				return nil, nil, fmt.Errorf("read %s: %w", p.Key, err)
			}
			return bytes.NewReader(b), func() error { return nil }, nil
		}
		return &countingReaderAt{r: f, n: &op.read}, f.Close, nil
	}
	if whole || p.Size <= wholeFileBytes {
		b, err := storage.ReadAll(sc.ctx, sc.st, p.Key)
		if err != nil {
			return nil, nil, err
		}
		op.read.Add(int64(len(b)))
		return bytes.NewReader(b), func() error { return nil }, nil
	}
	return &rangeReaderAt{ctx: sc.ctx, st: sc.st, key: p.Key, n: &op.read}, func() error { return nil }, nil
}

type countingReaderAt struct {
	r io.ReaderAt
	n *atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// rangeReaderAt reads an object with one ranged GET per read.
type rangeReaderAt struct {
	ctx context.Context
	st  storage.Store
	key string
	n   *atomic.Int64
}

func (r *rangeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rc, err := r.st.GetRange(r.ctx, r.key, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	r.n.Add(int64(n))
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

// sourceStream hands over the series of one run output (its parts in order), decoded
// ahead by the scanner's workers. Not safe for concurrent use; it implements
// encoder.SeriesSource.
type sourceStream struct {
	sc    *scanner
	parts []Part
	next  int         // next part to open
	open  []*openPart // opened or opening, in order; open[0] is being consumed
	sub   int         // the open part chunks are submitted from
	span  int         // its next span to submit
	queue []*chunk    // submitted, in order
	cur   *chunk
	ci    int // next series of cur
	at    encoder.Series
	err   error
}

func newSourceStream(sc *scanner, parts []Part) *sourceStream {
	return &sourceStream{sc: sc, parts: parts}
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// fill keeps aheadChunks chunks in flight, opening parts as it goes, without waiting.
func (s *sourceStream) fill() {
	for len(s.queue) < aheadChunks {
		// The part after the one submitted from opens early, so that its open overlaps
		// the decoding before it.
		for len(s.open) < s.sub+2 && s.next < len(s.parts) {
			op := &openPart{done: make(chan struct{}), p: s.parts[s.next]}
			s.next++
			s.open = append(s.open, op)
			s.sc.submit(func(*scanWorker) { op.open(s.sc) })
		}
		if s.sub >= len(s.open) {
			return
		}
		op := s.open[s.sub]
		if !isDone(op.done) || op.err != nil {
			return // still opening, or failed: advance waits and reports
		}
		if s.span >= len(op.spans) {
			if s.sub+1 >= len(s.open) {
				return
			}
			s.sub, s.span = s.sub+1, 0
			continue
		}
		c := getChunk()
		c.part, c.last = op, s.span == len(op.spans)-1
		first, end := op.spans[s.span][0], op.spans[s.span][1]
		s.span++
		s.queue = append(s.queue, c)
		s.sc.submit(func(w *scanWorker) { c.decode(w, s.sc, op, first, end) })
	}
}

// Next moves to the next series; false at the end or on an error.
func (s *sourceStream) Next() bool {
	for s.err == nil {
		if s.cur != nil && s.ci < len(s.cur.keys) {
			c, i := s.cur, s.ci
			s.ci++
			from := 0
			if i > 0 {
				from = c.ends[i-1]
			}
			s.at.Key, s.at.Tags = c.keys[i], c.tags[i]
			s.at.Ts = c.ts[from:c.ends[i]]
			s.at.Values = nil
			if !s.sc.noVals {
				s.at.Values = c.vals[from:c.ends[i]]
			}
			return true
		}
		if s.cur != nil {
			s.finish(s.cur)
			s.cur = nil
		}
		if !s.advance() {
			return false
		}
	}
	return false
}

// advance makes the next chunk current, waiting for it; false at the end.
func (s *sourceStream) advance() bool {
	for s.err == nil {
		s.fill()
		if len(s.queue) > 0 {
			c := s.queue[0]
			s.queue = s.queue[1:]
			<-c.done
			if c.err != nil {
				s.err = c.err
				putChunk(c)
				return false
			}
			s.cur, s.ci = c, 0
			s.fill()
			return true
		}
		if s.sub >= len(s.open) {
			if s.next >= len(s.parts) {
				return false // every part read
			}
			continue
		}
		// Nothing in flight: the part chunks come from next is opening, failed, or has
		// nothing to decode; every part before it is closed.
		op := s.open[s.sub]
		<-op.done
		if op.err != nil {
			s.err = op.err
			return false
		}
		if len(op.spans) == 0 {
			s.closePart(op)
		}
	}
	return false
}

// finish accounts for a consumed chunk, closing its part after its last chunk.
func (s *sourceStream) finish(c *chunk) {
	op := c.part
	op.decoded += c.series
	last := c.last
	putChunk(c)
	if last {
		s.closePart(op)
	}
}

// closePart closes the first open part and counts what was read of it.
func (s *sourceStream) closePart(op *openPart) {
	if len(s.open) == 0 || s.open[0] != op {
		s.err = errors.New("BUG: parts closed out of order")
		return
	}
	s.open = s.open[1:]
	if s.sub > 0 {
		s.sub--
	} else {
		s.span = 0
	}
	sc := s.sc
	sc.filesRead.Add(1)
	read := op.read.Load()
	sc.bytesRead.Add(read)
	sc.bytesSkipped.Add(max(0, op.p.Size-read))
	sc.seriesRead.Add(int64(op.decoded))
	if op.r != nil {
		sc.seriesSkipped.Add(int64(len(op.r.Index()) - op.decoded))
	}
	if op.close != nil {
		if err := op.close(); err != nil && s.err == nil {
			s.err = err
		}
		op.close = nil
	}
}

// At returns the current series, valid until the next call to Next.
func (s *sourceStream) At() *encoder.Series { return &s.at }

// Err returns the error that stopped the stream, if any.
func (s *sourceStream) Err() error { return s.err }

// release waits for what is in flight and closes the open parts; after the scanner was
// cancelled that is quick.
func (s *sourceStream) release() {
	if s.cur != nil {
		putChunk(s.cur)
		s.cur = nil
	}
	for _, c := range s.queue {
		<-c.done
		putChunk(c)
	}
	s.queue = nil
	for _, op := range s.open {
		<-op.done
		if op.close != nil {
			op.close()
		}
	}
	s.open = nil
}
