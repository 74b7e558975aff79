// Command history is `make bench-history` (issue 16): queries over a month of history,
// through Tailor's series view beside the same points as hive-partitioned zstd Parquet
// read by plain DuckDB, in one process on one machine.
//
//  1. A store of -days days of -window windows for -shards shards (one org each, org N in
//     org-mod-N as the default shard map puts it), -series series per org and -points
//     points per series and window, each series on its own scrape phase (so no two share
//     blocks), gauge-like values; one window in ten per shard also has a late output
//     holding points of the window two before it. Series files are written directly
//     (what run would write for these points) and published with manifests.
//  2. The same points as zstd Parquet, hive-partitioned by org_id and date
//     (org_id=…/date=…/), written by DuckDB, each file in (window, series, ts) order.
//  3. Three queries, each run -runs times alternating with its Parquet twin: (a) one org
//     for one day, (b) one series over all days, (c) a full scan. Both must agree.
//
// It prints each side's median wall and CPU time, the bytes the process read (from
// /proc/self/io, so both sides are measured alike) against the size of its layout,
// Tailor's own read report, and issue 16's goals: (a) and (b) read at most 1% of the
// store and run at least 2x faster than Parquet, (c) within 1.2x of Parquet's full scan.
//
// The data is written once under -dir and reused.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// Goals of issue 16.
const (
	goalBytesPct  = 1.0
	goalPruned    = 2.0           // Parquet time / Tailor time, at least
	goalFullScan  = 1.2           // Tailor time / Parquet time, at most
	startUnixMs   = 1761955200000 // 2025-11-01T00:00Z
	lateEvery     = 10
	latePerSeries = 20
)

type spec struct {
	days, shards, series, points int
	window                       time.Duration
}

func (s spec) windows() int { return s.days * int(24*time.Hour/s.window) }

func (s spec) name() string {
	return fmt.Sprintf("d%d-s%d-n%d-p%d-w%s", s.days, s.shards, s.series, s.points, s.window)
}

// key is series i of org o.
func (s spec) key(o, i int) columnar.SeriesKey {
	return columnar.SeriesKey{Org: uint32(o), Metric: uint64(1000 + i), Context: uint64(o)*7919 + uint64(i)*104729 + 1}
}

// phase offsets series i of org o inside the scrape interval, so no two series share
// timestamps.
func (s spec) phase(o, i int) int64 {
	step := s.window.Milliseconds() / int64(s.points)
	return int64((o*s.series+i)*997) % step
}

// onTime appends the points of series (o, i) in window w.
func (s spec) onTime(o, i, w int, ts []int64, vs []float64) ([]int64, []float64) {
	step := s.window.Milliseconds() / int64(s.points)
	from := startUnixMs + int64(w)*s.window.Milliseconds()
	rng := rand.New(rand.NewPCG(uint64(o*s.series+i), uint64(w)))
	v := 100 + 50*math.Sin(float64(o+i))
	for j := range s.points {
		v += rng.NormFloat64() * 0.5
		ts = append(ts, from+int64(j)*step+s.phase(o, i))
		vs = append(vs, math.Round(v*100)/100)
	}
	return ts, vs
}

// hasLate reports whether window w of org o has a late output.
func hasLate(o, w int) bool { return w >= 2 && (w*7+o)%lateEvery == 0 }

// late appends the points the late output of window w holds of series (o, i): points of
// window w-2, half a step off the on-time ones.
func (s spec) late(o, i, w int, ts []int64, vs []float64) ([]int64, []float64) {
	step := s.window.Milliseconds() / int64(s.points)
	from := startUnixMs + int64(w-2)*s.window.Milliseconds()
	for j := range latePerSeries {
		ts = append(ts, from+int64(j*97)*step+s.phase(o, i)+step/2)
		vs = append(vs, float64(o*1000+i)+float64(j)/4)
	}
	return ts, vs
}

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "tailor-bench-history"), "work directory (store and Parquet, reused)")
	var s spec
	flag.IntVar(&s.days, "days", 30, "days of history")
	flag.IntVar(&s.shards, "shards", 64, "shards (one org each)")
	flag.IntVar(&s.series, "series", 4, "series per org")
	flag.IntVar(&s.points, "points", 2000, "points per series and window")
	flag.DurationVar(&s.window, "window", 4*time.Hour, "window size")
	runs := flag.Int("runs", 5, "runs of each query and of its Parquet twin")
	flag.Parse()
	if err := bench(*dir, s, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench-history:", err)
		os.Exit(1)
	}
}

func bench(dir string, s spec, runs int) error {
	ctx := context.Background()
	dir = filepath.Join(dir, s.name())
	storeDir, pqDir := filepath.Join(dir, "store"), filepath.Join(dir, "parquet")
	if _, err := os.Stat(filepath.Join(dir, "COMPLETE")); err != nil {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		start := time.Now()
		if err := writeStore(ctx, s, storeDir); err != nil {
			return err
		}
		fmt.Printf("store: %d windows x %d shards written in %.1fs\n", s.windows(), s.shards, time.Since(start).Seconds())
		start = time.Now()
		if err := writeParquet(ctx, s, pqDir); err != nil {
			return err
		}
		fmt.Printf("parquet written in %.1fs\n", time.Since(start).Seconds())
		if err := os.WriteFile(filepath.Join(dir, "COMPLETE"), nil, 0o644); err != nil {
			return err
		}
	}
	storeBytes, storeFiles, err := du(filepath.Join(storeDir, "series"))
	if err != nil {
		return err
	}
	pqBytes, pqFiles, err := du(pqDir)
	if err != nil {
		return err
	}
	total := int64(s.shards*s.series*s.windows()*s.points) + int64(latePoints(s))
	fmt.Printf("%d points: store %d files, %s; Parquet %d files, %s (%d cores, GOMAXPROCS %d)\n",
		total, storeFiles, mib(storeBytes), pqFiles, mib(pqBytes), runtime.NumCPU(), runtime.GOMAXPROCS(0))

	st, err := storage.Open(ctx, "file://"+storeDir)
	if err != nil {
		return err
	}
	defer st.Close()
	eng, err := query.Open(ctx, query.Options{Threads: runtime.NumCPU()})
	if err != nil {
		return err
	}
	defer eng.Close()

	org := s.shards / 2
	day := s.days / 3
	dayFrom := startUnixMs + int64(day)*86_400_000
	k := s.key(org, s.series-1)
	date := time.UnixMilli(dayFrom).UTC().Format("2006-01-02")
	pq := fmt.Sprintf("read_parquet('%s/*/*/*.parquet', hive_partitioning = true)", pqDir)
	sel := "SELECT count(*) AS n, sum(value) AS s, min(ts) AS lo, max(ts) AS hi FROM "
	queries := []struct {
		name, tailor, parquet string
		pruned                bool
	}{
		{"(a) one org, one day", fmt.Sprintf("%sseries WHERE org_id = %d AND ts >= %d AND ts < %d", sel, org, dayFrom, dayFrom+86_400_000),
			fmt.Sprintf("%s%s WHERE org_id = %d AND date = '%s' AND ts >= %d AND ts < %d", sel, pq, org, date, dayFrom, dayFrom+86_400_000), true},
		{"(b) one series, all days", fmt.Sprintf("%sseries WHERE org_id = %d AND metric_id = %d AND context_key = %d", sel, k.Org, k.Metric, k.Context),
			fmt.Sprintf("%s%s WHERE org_id = %d AND metric_id = %d AND context_key = %d", sel, pq, k.Org, k.Metric, k.Context), true},
		{"(c) full scan", sel + "series", sel + pq, false},
	}
	views := []query.View{run.SeriesView("series", st, query.Scope{})}
	fmt.Printf("\n%-26s %10s %10s %8s %10s %10s   %-34s %s\n", "query", "tailor s", "parquet s", "ratio", "tailor cpu", "pq cpu", "bytes read: tailor / parquet", "tailor read report")
	var fails []string
	for _, q := range queries {
		var tw, pw, tc, pc []float64
		var tb, pb int64
		var tr query.ReadStats
		var tAns, pAns answer
		for i := range 2 * runs {
			tailorFirst := i%2 == 0
			for j := range 2 {
				if (j == 0) == tailorFirst {
					m, ans, reads, err := measure(func() (answer, query.ReadStats, error) { return tailorQuery(ctx, eng, q.tailor, views) })
					if err != nil {
						return fmt.Errorf("%s: %w", q.name, err)
					}
					if i >= 2 || runs == 1 { // the first pair warms up
						tw, tc, tb, tr = append(tw, m.wall), append(tc, m.cpu), m.bytes, reads
					}
					tAns = ans
				} else {
					m, ans, _, err := measure(func() (answer, query.ReadStats, error) { return plainQuery(ctx, eng, q.parquet) })
					if err != nil {
						return fmt.Errorf("%s (Parquet): %w", q.name, err)
					}
					if i >= 2 || runs == 1 {
						pw, pc, pb = append(pw, m.wall), append(pc, m.cpu), m.bytes
					}
					pAns = ans
				}
			}
		}
		if !tAns.same(pAns) {
			return fmt.Errorf("%s: Tailor answers %+v, Parquet %+v", q.name, tAns, pAns)
		}
		if tAns.n == 0 {
			return fmt.Errorf("%s: no points", q.name)
		}
		t, p := median(tw), median(pw)
		tPct, pPct := 100*float64(tb)/float64(storeBytes), 100*float64(pb)/float64(pqBytes)
		fmt.Printf("%-26s %10.3f %10.3f %8.2f %10.3f %10.3f   %9s (%5.2f%%) / %9s (%5.2f%%)   files %d read, %d skipped; %s read, %s skipped; series %d read, %d skipped\n",
			q.name, t, p, t/p, median(tc), median(pc), mib(tb), tPct, mib(pb), pPct,
			tr.FilesRead, tr.FilesSkipped, mib(tr.BytesRead), mib(tr.BytesSkipped), tr.SeriesRead, tr.SeriesSkipped)
		switch {
		case q.pruned && tPct > goalBytesPct:
			fails = append(fails, fmt.Sprintf("%s read %.2f%% of the store (goal <= %.0f%%)", q.name, tPct, goalBytesPct))
		case q.pruned && p/t < goalPruned:
			fails = append(fails, fmt.Sprintf("%s: Parquet/Tailor %.2f (goal >= %.0f)", q.name, p/t, goalPruned))
		case !q.pruned && t/p > goalFullScan:
			fails = append(fails, fmt.Sprintf("%s: Tailor/Parquet %.2f (goal <= %.1f)", q.name, t/p, goalFullScan))
		}
	}
	fmt.Printf("\nmedians of %d runs each after a warm-up, Tailor and Parquet alternating; ratio = tailor/parquet wall time\n", runs)
	if len(fails) > 0 {
		fmt.Println("goals missed: " + strings.Join(fails, "; "))
	} else {
		fmt.Println("goals met: (a), (b) <= 1% of the store and >= 2x faster than Parquet; (c) within 1.2x of Parquet")
	}
	return nil
}

// answer is what every query returns.
type answer struct {
	n      int64
	sum    float64
	lo, hi int64
}

// same compares exactly, but the sums only up to rounding: DuckDB adds in its own order.
func (a answer) same(b answer) bool {
	return a.n == b.n && a.lo == b.lo && a.hi == b.hi && math.Abs(a.sum-b.sum) <= 1e-9*math.Max(1, math.Abs(a.sum))
}

func readAnswer(res array.RecordReader) (answer, error) {
	defer res.Release()
	var a answer
	for res.Next() {
		rec := res.RecordBatch()
		if rec.NumRows() == 0 {
			continue
		}
		a.n = rec.Column(0).(*array.Int64).Value(0)
		if rec.Column(1).IsValid(0) {
			a.sum = rec.Column(1).(*array.Float64).Value(0)
			a.lo = rec.Column(2).(*array.Int64).Value(0)
			a.hi = rec.Column(3).(*array.Int64).Value(0)
		}
	}
	return a, res.Err()
}

func tailorQuery(ctx context.Context, eng *query.Engine, stmt string, views []query.View) (answer, query.ReadStats, error) {
	vs, err := eng.DefineViews(ctx, []string{stmt}, views, query.Scope{})
	if err != nil {
		return answer{}, query.ReadStats{}, err
	}
	res, err := vs.Query(ctx, stmt)
	if err != nil {
		return answer{}, query.ReadStats{}, errors.Join(err, vs.Close())
	}
	a, err := readAnswer(res)
	err = errors.Join(err, vs.Close())
	return a, vs.Reads()["series"], err
}

func plainQuery(ctx context.Context, eng *query.Engine, stmt string) (answer, query.ReadStats, error) {
	res, err := eng.Query(ctx, stmt, nil)
	if err != nil {
		return answer{}, query.ReadStats{}, err
	}
	a, err := readAnswer(res)
	return a, query.ReadStats{}, err
}

type measured struct {
	wall, cpu float64
	bytes     int64
}

// measure runs fn, timing it and counting the bytes the process read meanwhile.
func measure(fn func() (answer, query.ReadStats, error)) (measured, answer, query.ReadStats, error) {
	var ru0, ru1 syscall.Rusage
	r0 := rchar()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	a, reads, err := fn()
	wall := time.Since(start).Seconds()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()).Seconds()
	return measured{wall, cpu, rchar() - r0}, a, reads, err
}

// rchar is the bytes this process has read through read(2) and pread(2) so far.
func rchar() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "rchar: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n - int64(len(b)) // this read of /proc/self/io itself
		}
	}
	return 0
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s) == 0 {
		return math.NaN()
	}
	return s[len(s)/2]
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func du(dir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		bytes += info.Size()
		files++
		return nil
	})
	return bytes, files, err
}

func latePoints(s spec) int {
	n := 0
	for o := range s.shards {
		for w := range s.windows() {
			if hasLate(o, w) {
				n += s.series * latePerSeries
			}
		}
	}
	return n
}

// writeStore writes and publishes every (shard, window)'s series files.
func writeStore(ctx context.Context, s spec, dir string) error {
	st, err := storage.Open(ctx, "file://"+dir)
	if err != nil {
		return err
	}
	defer st.Close()
	type job struct{ o, w int }
	jobs := make(chan job)
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 2 * runtime.NumCPU() { // the local store fsyncs every object
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ts []int64
			var vs []float64
			for j := range jobs {
				if failed.Load() != nil {
					continue
				}
				if err := writeWindow(ctx, st, s, j.o, j.w, ts, vs); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for o := range s.shards {
		for w := range s.windows() {
			jobs <- job{o, w}
		}
	}
	close(jobs)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	return nil
}

func writeWindow(ctx context.Context, st storage.Store, s spec, o, w int, ts []int64, vs []float64) error {
	shard := fmt.Sprintf("org-mod-%d", o)
	win := run.Window{From: time.UnixMilli(startUnixMs + int64(w)*s.window.Milliseconds()).UTC(), Size: s.window}
	runID := fmt.Sprintf("bench%06d", w)
	put := func(key string, gen func(i int, ts []int64, vs []float64) ([]int64, []float64)) (run.Part, error) {
		var buf bytes.Buffer
		enc := encoder.NewWriter(&buf)
		for i := range s.series {
			ts, vs = gen(i, ts[:0], vs[:0])
			if err := enc.Append(s.key(o, i), []string{"host:h" + strconv.Itoa(i)}, ts, vs); err != nil {
				return run.Part{}, err
			}
		}
		if err := enc.Close(); err != nil {
			return run.Part{}, err
		}
		if err := st.Put(ctx, key, bytes.NewReader(buf.Bytes())); err != nil {
			return run.Part{}, err
		}
		return run.DescribePart(key, buf.Bytes())
	}
	own, err := put(run.PartKey(shard, win, runID, 0), func(i int, ts []int64, vs []float64) ([]int64, []float64) { return s.onTime(o, i, w, ts, vs) })
	if err != nil {
		return err
	}
	tr := win.TsRange()
	m := run.Manifest{RunID: runID, Shard: shard, Window: win.Name(), From: tr.From, To: tr.To, Parts: []run.Part{own}}
	if hasLate(o, w) {
		late, err := put(run.LatePartKey(shard, win, runID, 0), func(i int, ts []int64, vs []float64) ([]int64, []float64) { return s.late(o, i, w, ts, vs) })
		if err != nil {
			return err
		}
		m.LateParts = []run.Part{late}
	}
	return run.Publish(ctx, st, &m, run.PublishOptions{})
}

// pointsReader hands DuckDB every point with its date, org by org and window by window.
type pointsReader struct {
	refs  atomic.Int64
	s     spec
	o, w  int
	cur   arrow.RecordBatch
	sch   *arrow.Schema
	ts    []int64
	vs    []float64
	dates map[int64]string
}

func (r *pointsReader) Retain()                        { r.refs.Add(1) }
func (r *pointsReader) Release()                       {}
func (r *pointsReader) Schema() *arrow.Schema          { return r.sch }
func (r *pointsReader) Err() error                     { return nil }
func (r *pointsReader) RecordBatch() arrow.RecordBatch { return r.cur }
func (r *pointsReader) Record() arrow.RecordBatch      { return r.cur }

func (r *pointsReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.o == r.s.shards {
		return false
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, r.sch)
	defer b.Release()
	for i := range r.s.series {
		k := r.s.key(r.o, i)
		for _, late := range []bool{false, true} {
			if late && !hasLate(r.o, r.w) {
				continue
			}
			if late {
				r.ts, r.vs = r.s.late(r.o, i, r.w, r.ts[:0], r.vs[:0])
			} else {
				r.ts, r.vs = r.s.onTime(r.o, i, r.w, r.ts[:0], r.vs[:0])
			}
			for j, t := range r.ts {
				b.Field(0).(*array.Uint32Builder).Append(k.Org)
				b.Field(1).(*array.Uint64Builder).Append(k.Metric)
				b.Field(2).(*array.Uint64Builder).Append(k.Context)
				b.Field(3).(*array.Int64Builder).Append(t)
				b.Field(4).(*array.Float64Builder).Append(r.vs[j])
				d := t / 86_400_000
				if r.dates[d] == "" {
					r.dates[d] = time.UnixMilli(d * 86_400_000).UTC().Format("2006-01-02")
				}
				b.Field(5).(*array.StringBuilder).Append(r.dates[d])
			}
		}
	}
	if r.w++; r.w == r.s.windows() {
		r.o, r.w = r.o+1, 0
	}
	r.cur = b.NewRecordBatch()
	return true
}

// writeParquet writes the points as zstd Parquet, hive-partitioned by org_id and date.
func writeParquet(ctx context.Context, s spec, dir string) error {
	eng, err := query.Open(ctx, query.Options{Threads: runtime.NumCPU()})
	if err != nil {
		return err
	}
	defer eng.Close()
	fields := append(slices.Clone(columnar.SortedSchema.Fields()), arrow.Field{Name: "date", Type: arrow.BinaryTypes.String})
	r := &pointsReader{s: s, sch: arrow.NewSchema(fields, nil), dates: map[int64]string{}}
	// In input order, so each file holds its rows by window, series and ts.
	if err := eng.Exec(ctx, "SET preserve_insertion_order = true"); err != nil {
		return err
	}
	res, err := eng.Query(ctx, fmt.Sprintf("COPY (SELECT * FROM pts) TO '%s' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (org_id, date))", dir),
		map[string]array.RecordReader{"pts": r})
	if err != nil {
		return err
	}
	res.Release()
	return nil
}
