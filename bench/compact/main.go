// Command compact is `make bench-compact`: it times `tailor-batch compact` against
// `tailor-batch run` on the same points, and measures what compaction changes for
// readers (docs/lifecycle.md, issue 17's goals):
//
//  1. A workload of -series series (default 3,200, over 128 orgs, so every one of the 64
//     shared shards holds some) with a point every -interval (default 1 min) for 7 days
//     from 2025-11-20T00:00Z (a week aligned to the epoch), 20% of the series counters,
//     arrives as payloads of 10 points, in arrival order over 8 partitions, cut into
//     segments every 10 minutes of arrivals as the sink does: 2% of the payloads arrive
//     1 to 10 hours late, 1% are redelivered, a fifth of those with corrected values.
//  2. `tailor-batch run --all` with 4 h windows, 1 h lateness and 10 min flush age:
//     7 days × 6 windows × 64 shards, each with its late output.
//  3. `tailor-batch compact --levels 1d,7d`: every shard's week into one run.
//
// Both run in child processes; points per CPU-second divides the points each one read by
// the CPU it used (user + system, getrusage), which is what a shared machine cannot
// distort much. Before and after compaction it counts the series files a one-series
// 7-day read opens (through run.OpenSeries, counting the GETs of a store wrapper), the
// bytes per stored point, and checks that readers read the same points, bit for bit (a
// hash over every (series, ts, value bits) OpenSeries returns).
package main

import (
	"container/heap"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/internal/benchproc"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// Goals of issue 17.
const (
	goalFilesRatio = 20.0 // at least 20× fewer files for a one-series 7-day read
)

const (
	start          = int64(1763596800000) // 2025-11-20T00:00Z, a Thursday: 7 d windows start there
	days           = 7
	pointsPerRec   = 10
	partitions     = 8
	segmentSpanMs  = 10 * 60_000
	flushPayloads  = 100_000
	orgs           = 128
	lateShare      = 50  // 1 in 50 payloads late (2%)
	redeliverShare = 100 // 1 in 100 redelivered (1%)
)

func main() {
	dir := flag.String("dir", filepath.Join(os.TempDir(), "tailor-bench-compact"), "work directory (segments, outputs)")
	bin := flag.String("bin", "bin/tailor-batch", "the tailor-batch binary to time")
	series := flag.Int("series", 3_200, "series in the workload")
	interval := flag.Duration("interval", time.Minute, "time between a series' points")
	parallel := flag.Int("parallel", 0, "run and compact --parallel (default: the number of cores)")
	flag.Parse()
	if err := bench(*dir, *bin, *series, interval.Milliseconds(), *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "bench-compact:", err)
		os.Exit(1)
	}
}

func bench(dir, bin string, series int, interval int64, parallel int) error {
	ctx := context.Background()
	cores := runtime.NumCPU()
	if parallel <= 0 {
		parallel = cores
	}
	storeDir := filepath.Join(dir, "store")
	if err := prepare(ctx, dir, storeDir, series, interval); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(storeDir, "series")); err != nil {
		return err
	}
	store := "file://" + storeDir
	tmp := filepath.Join(dir, "tmp")

	args := []string{"run", "--store", store, "--all", "--window-size", "4h", "--lateness", "1h", "--flush-age", "10m",
		"--parallel", fmt.Sprint(parallel), "--temp-dir", tmp, "--json"}
	fmt.Printf("run:     %s %s\n", bin, strings.Join(args, " "))
	out, runR, err := benchproc.Run(bin, args...)
	if err != nil {
		return fmt.Errorf("tailor-batch run: %w\n%s", err, out)
	}
	var rr struct {
		Summary struct {
			Counts run.Counts `json:"counts"`
			Runs   int        `json:"runs"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(out, &rr); err != nil {
		return fmt.Errorf("run --json: %w", err)
	}
	before, err := measure(ctx, storeDir)
	if err != nil {
		return err
	}

	args = []string{"compact", "--store", store, "--levels", "1d,7d", "--parallel", fmt.Sprint(parallel), "--temp-dir", tmp,
		"--now", time.UnixMilli(start).Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339), "--json"}
	fmt.Printf("compact: %s %s\n", bin, strings.Join(args, " "))
	out, cR, err := benchproc.Run(bin, args...)
	if err != nil {
		return fmt.Errorf("tailor-batch compact: %w\n%s", err, out)
	}
	var cr run.CompactReport
	if err := json.Unmarshal(out, &cr); err != nil {
		return fmt.Errorf("compact --json: %w", err)
	}
	var cIn uint64
	var cRuns, cSources int
	for _, s := range cr.Shards {
		for _, r := range s.Runs {
			cIn += r.Counts.PointsIn
			cRuns++
			cSources += r.Sources
		}
	}
	after, err := measure(ctx, storeDir)
	if err != nil {
		return err
	}
	if after.hash != before.hash || after.points != before.points {
		return fmt.Errorf("readers read %d points (hash %x) before compaction and %d (hash %x) after", before.points, before.hash, after.points, after.hash)
	}

	// gc after the grace: the superseded runs go (segments are kept, with a replay
	// retention longer than the bench, so that the next bench run finds them); a dry run
	// with the default retention says what it would collect of them.
	gcAt := func(days int, extra ...string) ([]byte, error) {
		a := append([]string{"gc", "--store", store, "--now", time.UnixMilli(start).Add(time.Duration(days) * 24 * time.Hour).UTC().Format(time.RFC3339), "--json"}, extra...)
		out, _, err := benchproc.Run(bin, a...)
		return out, err
	}
	for _, d := range []int{30, 32} {
		if out, err := gcAt(d, "--replay-retention", "876000h"); err != nil {
			return fmt.Errorf("tailor-batch gc: %w\n%s", err, out)
		}
	}
	out, err = gcAt(32, "--dry-run")
	if err != nil {
		return fmt.Errorf("tailor-batch gc --dry-run: %w\n%s", err, out)
	}
	var gr run.GCReport
	if err := json.Unmarshal(out, &gr); err != nil {
		return fmt.Errorf("gc --json: %w", err)
	}
	collected, err := measure(ctx, storeDir)
	if err != nil {
		return err
	}
	if collected.hash != before.hash {
		return fmt.Errorf("readers read other points after gc")
	}

	fmt.Printf("\n%d series, a point every %s for %d days: %d points read by readers (the same, bit for bit, before and after)\n",
		series, time.Duration(interval)*time.Millisecond, days, before.points)
	fmt.Printf("run: %d shard runs; compact: %d compacted runs from %d runs (%d levels); %d cores; load average at the end %s\n",
		rr.Summary.Runs, cRuns, cSources, 2, cores, benchproc.Loadavg())
	fmt.Printf("%-10s %12s %9s %8s %16s %16s %10s\n", "", "points in", "seconds", "CPU s", "points/CPU-s", "points/s/core", "peak RSS")
	row := func(name string, pts uint64, wall, cpu float64, rss int64) {
		fmt.Printf("%-10s %12d %9.2f %8.1f %16.0f %16.0f %6.0f MiB\n", name, pts, wall, cpu, float64(pts)/cpu, float64(pts)/wall/float64(cores), float64(rss)/(1<<20))
	}
	row("run", rr.Summary.Counts.PointsIn, runR.Secs, runR.CPU, runR.RSS)
	row("compact", cIn, cR.Secs, cR.CPU, cR.RSS)
	ratio := (float64(cIn) / cR.CPU) / (float64(rr.Summary.Counts.PointsIn) / runR.CPU)
	fmt.Printf("compaction throughput: %.2fx run's per CPU-second; goal >= 1: %s\n", ratio, benchproc.Verdict(ratio >= 1))
	fr := float64(before.files) / float64(max(1, after.files))
	fmt.Printf("files a one-series 7-day read opens: %d before, %d after (%.1fx fewer); goal >= %.0fx: %s\n", before.files, after.files, fr, goalFilesRatio, benchproc.Verdict(fr >= goalFilesRatio))
	fmt.Printf("objects under series/: %d before, %d after compaction, %d after gc; gc would then collect %d segments (%d MiB) past the 72 h replay retention\n",
		before.objects, after.objects, collected.objects, len(gr.Segments), gr.SegmentBytes>>20)
	bb, ab := float64(before.bytes)/float64(before.stored), float64(after.bytes)/float64(after.stored)
	fmt.Printf("bytes per stored point: %.3f before (%d points in %d serving files), %.3f after (%d in %d); goal no worse: %s\n",
		bb, before.stored, before.servingFiles, ab, after.stored, after.servingFiles, benchproc.Verdict(ab <= bb))
	return nil
}

// footprint is what readers see of a store.
type footprint struct {
	files         int    // series files a one-series 7-day read opens
	objects       int    // objects under series/
	servingFiles  int    // own and late parts of the serving runs
	bytes, stored uint64 // their bytes and points
	points        uint64 // points readers read
	hash          uint64
}

func measure(ctx context.Context, storeDir string) (footprint, error) {
	var f footprint
	st, err := storage.Open(ctx, "file://"+storeDir)
	if err != nil {
		return f, err
	}
	defer st.Close()
	runs, err := run.Published(ctx, st)
	if err != nil {
		return f, err
	}
	for _, m := range runs {
		for _, p := range append(append([]run.Part(nil), m.Parts...), m.LateParts...) {
			f.servingFiles++
			f.bytes += uint64(p.Size)
			f.stored += p.Points
		}
	}
	if err := st.List(ctx, run.SeriesPrefix, func(storage.Attrs) error { f.objects++; return nil }); err != nil {
		return f, err
	}
	// One series' week: the shard's files the merger opens for that scope.
	k := columnar.SeriesKey{Org: 5, Metric: 0, Context: 1}
	cs := &countingStore{Store: st, keys: map[string]bool{}}
	scope := query.Scope{Shard: columnar.DefaultShardMap().Shard(k.Org, k.Metric), Window: columnar.TimeRange{From: start, To: start + days*24*3_600_000}}
	m, err := run.OpenSeries(ctx, cs, scope)
	if err != nil {
		return f, err
	}
	for m.Next() {
	}
	if err := m.Err(); err != nil {
		return f, err
	}
	f.files = len(cs.keys)
	// Every point readers read, hashed in order.
	f.points, f.hash, err = run.Digest(ctx, st, query.Scope{})
	return f, err
}

// countingStore records the series files read through it.
type countingStore struct {
	storage.Store
	mu   sync.Mutex
	keys map[string]bool
}

func (c *countingStore) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if strings.HasSuffix(key, ".tsf") {
		c.mu.Lock()
		c.keys[key] = true
		c.mu.Unlock()
	}
	return c.Store.GetRange(ctx, key, off, n)
}

// prepare writes the segments once; later runs reuse them.
func prepare(ctx context.Context, dir, storeDir string, series int, interval int64) error {
	stamp := filepath.Join(dir, fmt.Sprintf("prepared-%d-%d", series, interval))
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	st, err := storage.Open(ctx, "file://"+storeDir)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Println("writing segments …")
	if err := writeSegments(ctx, st, series, interval); err != nil {
		return err
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// record is one Kafka record: one payload of one series, with its arrival time.
type record struct {
	arrival int64
	seq     int64 // ties broken in generation order
	p       columnar.Payload
}

type recHeap []record

func (h recHeap) Len() int { return len(h) }
func (h recHeap) Less(i, j int) bool {
	return h[i].arrival < h[j].arrival || h[i].arrival == h[j].arrival && h[i].seq < h[j].seq
}
func (h recHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *recHeap) Push(x any)   { *h = append(*h, x.(record)) }
func (h *recHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	*h = old[:len(old)-1]
	return r
}

// writeSegments generates the records step by step in ts order, releases them in
// arrival order (a heap holds those that arrive later), and cuts each partition's
// records into segments every 10 minutes of arrivals.
func writeSegments(ctx context.Context, st storage.Store, series int, interval int64) error {
	rng := rand.New(rand.NewPCG(17, 17))
	sm := columnar.DefaultShardMap()
	step := interval * pointsPerRec
	end := start + days*24*3_600_000
	vals := make([]float64, series)
	var seq int64
	var h recHeap
	ws := make([]*columnar.SegmentWriter, partitions)
	segStart := make([]int64, partitions)
	next := make([]int64, partitions)
	n := make([]int, partitions)
	flush := func(p int) error {
		w := ws[p]
		if w == nil {
			return nil
		}
		ws[p] = nil
		return workload.StoreSegment(ctx, st, w)
	}
	part := 0
	emit := func(r record) error {
		p := part
		part = (part + 1) % partitions
		if ws[p] != nil && (r.arrival >= segStart[p]+segmentSpanMs || n[p] >= flushPayloads) {
			if err := flush(p); err != nil {
				return err
			}
		}
		if ws[p] == nil {
			ws[p] = columnar.NewSegmentWriter(columnar.Header{Topic: "metrics", Partition: int32(p), StartOffset: next[p], StartTimestamp: r.arrival}, sm, 0)
			segStart[p], n[p] = r.arrival, 0
		}
		src := columnar.Source{Topic: "metrics", Partition: int32(p), Offset: next[p], Timestamp: r.arrival}
		next[p]++
		n[p]++
		return ws[p].Add(src, []columnar.Payload{r.p})
	}
	for t := start; t < end; t += step {
		for i := 0; i < series; i++ {
			k := columnar.SeriesKey{Org: uint32(i % orgs), Metric: uint64(i / orgs), Context: 1}
			p := columnar.Payload{SeriesKey: k, Tags: []string{"host:h" + fmt.Sprint(i%97)}}
			counter := i%5 == 0
			if counter {
				p.Tags = append(p.Tags, "type:counter")
			}
			for j := int64(0); j < pointsPerRec; j++ {
				if counter {
					vals[i] += float64(rng.IntN(20))
					if rng.IntN(2000) == 0 {
						vals[i] = 0 // a restart
					}
				} else {
					vals[i] = math.Round((vals[i]+rng.NormFloat64())*100) / 100
				}
				p.Timestamps = append(p.Timestamps, t+j*interval)
				p.Values = append(p.Values, vals[i])
			}
			arrival := t + step + rng.Int64N(60_000)
			if rng.IntN(lateShare) == 0 {
				arrival += (1 + rng.Int64N(10)) * 3_600_000
			}
			seq++
			heap.Push(&h, record{arrival, seq, p})
			if rng.IntN(redeliverShare) == 0 {
				q := p
				if rng.IntN(5) == 0 {
					q.Values = append([]float64(nil), p.Values...)
					for j := range q.Values {
						q.Values[j] += 0.5
					}
				}
				seq++
				heap.Push(&h, record{arrival + rng.Int64N(1_800_000), seq, q})
			}
		}
		// Release everything that arrived before the next step's first arrival.
		for h.Len() > 0 && h[0].arrival < t+step {
			if err := emit(heap.Pop(&h).(record)); err != nil {
				return err
			}
		}
	}
	for h.Len() > 0 {
		if err := emit(heap.Pop(&h).(record)); err != nil {
			return err
		}
	}
	for p := range ws {
		if err := flush(p); err != nil {
			return err
		}
	}
	return nil
}
