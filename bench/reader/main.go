// Command reader measures Tailor's segment reader against arrow-go's Parquet reader
// (pqarrow) on the same points: decode throughput into Arrow record batches in points/s
// per core, allocations per frame and the reader's peak memory, on the real NAB series and
// on a synthetic 20-million-point agent mix.
//
// Run it from this directory with `go run .` (make bench-reader). It lives in its own
// module so that pqarrow's dependencies (thrift, snappy, ...) stay out of the product's.
package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// Goals of issue 4.
const (
	goalPointsPerCore = 30e6
	goalRatio         = 1.5
)

// record is one Kafka record's payload: points of one series.
type record struct {
	src columnar.Source
	p   columnar.Payload
}

// dataset yields its records in Kafka order, one partition each.
type dataset struct {
	name       string
	partitions int
	// each calls fn for every record of partition part, offsets increasing.
	each func(part int, fn func(record) error) error
}

func main() {
	dataDir := flag.String("data", filepath.Join("..", "..", "..", "shared", "data", "real"), "directory of the NAB CSV files")
	synth := flag.Int("synthetic-points", 20_000_000, "points in the synthetic agent mix")
	minTime := flag.Duration("min-time", 3*time.Second, "measure each reader for at least this long (best of the passes counts)")
	flag.Parse()

	nab, err := loadNAB(*dataDir)
	if err != nil {
		fail("load NAB: %v (pass -data DIR)", err)
	}
	sets := []dataset{nab, agentMix(*synth)}
	tw := tabwriter.NewWriter(os.Stdout, 2, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "dataset\tpoints\tsegment B/pt\tparquet B/pt\ttailor pts/s/core\tpqarrow pts/s/core\tratio\tallocs/frame decode\tallocs/frame read\tallocs/batch read\treader peak\treader bound\t")
	ok := true
	for _, d := range sets {
		r, err := measure(d, *minTime)
		if err != nil {
			fail("%s: %v", d.name, err)
		}
		ratio := r.tailor / r.parquet
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.1fM\t%.1fM\t%.2fx\t%.3f\t%.1f\t%.1f\t%.1f MiB\t%.1f MiB\t\n",
			d.name, r.points, r.segBytes/float64(r.points), r.pqBytes/float64(r.points),
			r.tailor/1e6, r.parquet/1e6, ratio, r.decodeAllocs, r.allocsPerFrame, r.allocsPerBatch,
			float64(r.peak)/(1<<20), float64(r.bound)/(1<<20))
		ok = ok && r.same
		if !r.same {
			fmt.Fprintf(tw, "%s: Tailor and Parquet read back different points\t\n", d.name)
		}
		defer func(name string, r result) {
			fmt.Printf("goal %s: tailor %.1fM pts/s/core >= %.0fM: %s; tailor/pqarrow %.2fx >= %.1fx: %s; allocs/frame (decode) %.3f == 0: %s\n",
				name, r.tailor/1e6, goalPointsPerCore/1e6, pass(r.tailor >= goalPointsPerCore),
				r.tailor/r.parquet, goalRatio, pass(r.tailor/r.parquet >= goalRatio),
				r.decodeAllocs, pass(r.decodeAllocs == 0))
		}(d.name, r)
	}
	tw.Flush()
	fmt.Printf("peak RSS of this process (all datasets, generation included): %.0f MiB\n", float64(peakRSS())/(1<<20))
	if !ok {
		defer os.Exit(1)
	}
}

func pass(b bool) string {
	if b {
		return "PASS"
	}
	return "FAIL"
}

type result struct {
	points            uint64
	segBytes, pqBytes float64
	// tailor and parquet are points per CPU-second: per core.
	tailor, parquet float64
	allocsPerFrame  float64 // whole read, Arrow record wrappers included
	allocsPerBatch  float64
	decodeAllocs    float64 // per frame: verify, zstd, decode into reused columns
	peak, bound     int64
	same            bool
}

// measure writes d as segments and as one zstd Parquet file of the same points, then
// reads both into Arrow record batches on one goroutine each, several passes, and keeps
// each reader's best pass.
func measure(d dataset, minTime time.Duration) (result, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tailor-bench-reader-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	st, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		return result{}, err
	}
	if err := writeSegments(ctx, st, d); err != nil {
		return result{}, err
	}
	segs, err := columnar.ListSegments(ctx, st)
	if err != nil {
		return result{}, err
	}
	var splits []columnar.Split
	shards := map[string]bool{}
	var segBytes int64
	for _, s := range segs {
		segBytes += s.Size
		for _, sh := range s.Footer.Shards {
			if !shards[sh] {
				shards[sh] = true
				splits = append(splits, columnar.PlanSplits(segs, sh, columnar.AllTime, 0)...)
			}
		}
	}
	topics := columnar.Topics(segs)

	// The Parquet file holds exactly what the segment reader returns.
	pqPath := filepath.Join(dir, "points.parquet")
	want, err := writeParquet(ctx, st, splits, topics, pqPath)
	if err != nil {
		return result{}, err
	}
	fi, err := os.Stat(pqPath)
	if err != nil {
		return result{}, err
	}
	r := result{segBytes: float64(segBytes), pqBytes: float64(fi.Size())}

	var stats columnar.ReadStats
	tailorPass := func() (uint64, sum, error) {
		pr := columnar.NewPointReader(ctx, st, splits, topics, columnar.ReadOptions{Readers: 1})
		defer pr.Release()
		n, s := consume(pr)
		stats = pr.ReadStats()
		return n, s, pr.Err()
	}
	parquetPass := func() (uint64, sum, error) {
		return readParquet(ctx, pqPath)
	}
	var tailorSum, pqSum sum
	r.points, r.tailor, tailorSum, err = best(minTime, tailorPass)
	if err != nil {
		return r, fmt.Errorf("tailor: %w", err)
	}
	var pqPoints uint64
	pqPoints, r.parquet, pqSum, err = best(minTime, parquetPass)
	if err != nil {
		return r, fmt.Errorf("pqarrow: %w", err)
	}
	r.same = tailorSum == want && pqSum == want && pqPoints == r.points

	// Allocations: one more pass, counted.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := tailorPass(); err != nil {
		return r, err
	}
	runtime.ReadMemStats(&after)
	allocs := float64(after.Mallocs - before.Mallocs)
	r.allocsPerFrame = allocs / float64(stats.Frames)
	batches := (stats.RowsOut + columnar.DefaultBatchRows - 1) / columnar.DefaultBatchRows
	r.allocsPerBatch = allocs / float64(max(batches, 1))
	r.peak, r.bound = stats.Memory.PeakBytes, stats.Memory.BoundBytes
	if r.decodeAllocs, err = decodeAllocsPerFrame(ctx, st, splits); err != nil {
		return r, err
	}
	fmt.Printf("%s: %s\n", d.name, stats)
	return r, nil
}

// decodeAllocsPerFrame decodes every frame of splits into reused columns with one
// FrameDecoder, after a warm-up pass, and returns the allocations per frame: the
// per-frame work of a reader without the per-batch Arrow wrappers. One P while counting,
// as testing.AllocsPerRun does, so other goroutines do not add theirs.
func decodeAllocsPerFrame(ctx context.Context, st storage.Store, splits []columnar.Split) (float64, error) {
	type frame struct {
		sp   *columnar.Split
		info columnar.FrameInfo
		b    []byte
	}
	var frames []frame
	for i := range splits {
		sp := &splits[i]
		b, err := columnar.ReadSplitBytes(ctx, st, sp, nil)
		if err != nil {
			return 0, err
		}
		for _, f := range sp.Frames {
			frames = append(frames, frame{sp, f, b[f.Offset-sp.Start() : f.Offset-sp.Start()+uint64(f.Length)]})
		}
	}
	dec := columnar.NewFrameDecoder()
	defer dec.Close()
	var c columnar.Columns
	var fs columnar.FrameStats
	pass := func() error {
		for _, f := range frames {
			c.Reset()
			if err := dec.DecodeFrame(f.sp, f.info, f.b, columnar.DecodeOptions{}, &c, &fs); err != nil {
				return err
			}
		}
		return nil
	}
	runtime.GC() // refill sync.Pools (zstd's) in the warm-up, not while counting
	if err := pass(); err != nil {
		return 0, err
	}
	procs := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(procs)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const passes = 3
	for range passes {
		if err := pass(); err != nil {
			return 0, err
		}
	}
	runtime.ReadMemStats(&m1)
	return float64(m1.Mallocs-m0.Mallocs) / float64(passes*len(frames)), nil
}

// sum is an order-independent digest of points: the wrapping sums of every column.
type sum struct{ org, metric, context, ts, value, recordTs, topic, partition, offset uint64 }

func consume(rr array.RecordReader) (uint64, sum) {
	var n uint64
	var s sum
	for rr.Next() {
		rec := rr.RecordBatch()
		s.add(rec)
		n += uint64(rec.NumRows())
	}
	return n, s
}

// add sums a record's columns. It touches every value, as a consumer would.
func (s *sum) add(rec arrow.RecordBatch) {
	for _, v := range rec.Column(0).(*array.Uint32).Uint32Values() {
		s.org += uint64(v)
	}
	for _, v := range rec.Column(1).(*array.Uint64).Uint64Values() {
		s.metric += v
	}
	for _, v := range rec.Column(2).(*array.Uint64).Uint64Values() {
		s.context += v
	}
	for _, v := range rec.Column(3).(*array.Int64).Int64Values() {
		s.ts += uint64(v)
	}
	for _, v := range rec.Column(4).(*array.Float64).Float64Values() {
		s.value += math.Float64bits(v)
	}
	for _, v := range rec.Column(5).(*array.Int64).Int64Values() {
		s.recordTs += uint64(v)
	}
	for _, v := range rec.Column(6).(*array.Uint16).Uint16Values() {
		s.topic += uint64(v)
	}
	for _, v := range rec.Column(7).(*array.Int32).Int32Values() {
		s.partition += uint64(v)
	}
	for _, v := range rec.Column(8).(*array.Int64).Int64Values() {
		s.offset += uint64(v)
	}
}

// best runs pass until minTime has gone by (at least three times) and returns the
// points of a pass and the best points per CPU-second. CPU time (user + system of the
// process) rather than wall time, so that other load on a shared machine does not count,
// and "per core" means per CPU-second however many threads ran.
func best(minTime time.Duration, pass func() (uint64, sum, error)) (uint64, float64, sum, error) {
	var bestRate float64
	var points uint64
	var s sum
	start := time.Now()
	for i := 0; i < 3 || time.Since(start) < minTime; i++ {
		runtime.GC()
		c0 := cpuTime()
		n, ps, err := pass()
		c := cpuTime() - c0
		if err != nil {
			return 0, 0, s, err
		}
		points, s = n, ps
		if rate := float64(n) / c.Seconds(); rate > bestRate {
			bestRate = rate
		}
	}
	return points, bestRate, s, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fail("getrusage: %v", err)
	}
	return ru.Maxrss << 10 // kB on Linux
}

// writeSegments writes each partition of d as one segment.
func writeSegments(ctx context.Context, st storage.Store, d dataset) error {
	for part := 0; part < d.partitions; part++ {
		var w *columnar.SegmentWriter
		err := d.each(part, func(r record) error {
			if w == nil {
				w = columnar.NewSegmentWriter(columnar.Header{Topic: r.src.Topic, Partition: r.src.Partition, StartOffset: r.src.Offset, StartTimestamp: r.src.Timestamp}, columnar.DefaultShardMap(), 0)
			}
			return w.Add(r.src, []columnar.Payload{r.p})
		})
		if err != nil {
			return err
		}
		pr, pw := io.Pipe()
		go func() { _, err := w.WriteTo(pw); pw.CloseWithError(err) }()
		if err := st.Create(ctx, w.Key(), pr); err != nil {
			return err
		}
	}
	return nil
}

// writeParquet reads the splits once and writes the points to a zstd Parquet file with
// arrow-go's writer (default properties, zstd at its default level, row groups of 1Mi
// rows), returning the points' digest.
func writeParquet(ctx context.Context, st storage.Store, splits []columnar.Split, topics map[string]uint16, path string) (sum, error) {
	f, err := os.Create(path)
	if err != nil {
		return sum{}, err
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithMaxRowGroupLength(1<<20))
	w, err := pqarrow.NewFileWriter(columnar.PointSchema, f, props, pqarrow.DefaultWriterProps())
	if err != nil {
		return sum{}, err
	}
	pr := columnar.NewPointReader(ctx, st, splits, topics, columnar.ReadOptions{Readers: 1})
	defer pr.Release()
	var s sum
	for pr.Next() {
		rec := pr.RecordBatch()
		s.add(rec)
		if err := w.WriteBuffered(rec); err != nil {
			return s, err
		}
	}
	if err := pr.Err(); err != nil {
		return s, err
	}
	// Close closes f too.
	return s, w.Close()
}

// readParquet reads the file into Arrow record batches on one goroutine (the reader's
// Parallel off), batches of DefaultBatchRows like the segment reader's.
func readParquet(ctx context.Context, path string) (uint64, sum, error) {
	pf, err := file.OpenParquetFile(path, true)
	if err != nil {
		return 0, sum{}, err
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{Parallel: false, BatchSize: columnar.DefaultBatchRows}, memory.DefaultAllocator)
	if err != nil {
		return 0, sum{}, err
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		return 0, sum{}, err
	}
	defer rr.Release()
	n, s := consume(rr)
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return n, s, err
	}
	return n, s, nil
}

// loadNAB reads every NAB CSV (header series,ts_ms,value) into records of up to 60
// points of one series, in file order, one partition per file.
func loadNAB(dir string) (dataset, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "nab_*.csv"))
	if err != nil || len(paths) == 0 {
		return dataset{}, fmt.Errorf("no nab_*.csv in %s (%v)", dir, err)
	}
	sort.Strings(paths)
	parts := make([][]record, len(paths))
	for i, path := range paths {
		if parts[i], err = nabRecords(path, int32(i)); err != nil {
			return dataset{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	return dataset{name: "NAB (5 files)", partitions: len(parts), each: func(part int, fn func(record) error) error {
		for _, r := range parts[part] {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}}, nil
}

const pointsPerRecord = 60

func nabRecords(path string, partition int32) ([]record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	if _, err := cr.Read(); err != nil {
		return nil, err
	}
	var out []record
	var cur *record
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		ts, err := strconv.ParseInt(rec[1], 10, 64)
		if err != nil {
			return nil, err
		}
		v, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			return nil, err
		}
		h := fnv.New64a()
		h.Write([]byte(rec[0]))
		key := columnar.SeriesKey{Org: 1, Metric: h.Sum64()}
		if cur == nil || cur.p.SeriesKey != key || len(cur.p.Timestamps) == pointsPerRecord {
			off := int64(len(out))
			out = append(out, record{
				src: columnar.Source{Topic: "metrics", Partition: partition, Offset: off, Timestamp: ts},
				p:   columnar.Payload{SeriesKey: key, Tags: []string{"series:" + rec[0]}},
			})
			cur = &out[len(out)-1]
		}
		cur.p.Timestamps = append(cur.p.Timestamps, ts)
		cur.p.Values = append(cur.p.Values, v)
	}
	return out, nil
}

// agentMix is a synthetic agent fleet of about n points: 20,000 series reporting every
// 10 s, 60 points a record, over 8 partitions, with the value shapes a host agent sends
// (constant gauges, counters, 2-decimal percentages, page-sized integers, float rates,
// full-precision latencies) and ms jitter on some timestamps. Generated record by record,
// fixed seed, so every run measures the same points without holding them all.
func agentMix(n int) dataset {
	const series, parts = 20_000, 8
	perSeries := max(1, n/series)
	name := fmt.Sprintf("synthetic %dM", n/1_000_000)
	return dataset{name: name, partitions: parts, each: func(part int, fn func(record) error) error {
		rng := rand.New(rand.NewPCG(2026, uint64(part)))
		t0 := int64(1_790_000_000_000)
		state := make([]float64, series)
		p := columnar.Payload{}
		var off int64
		for start := 0; start < perSeries; start += pointsPerRecord {
			for i := part; i < series; i += parts {
				p.SeriesKey = columnar.SeriesKey{Org: uint32(1 + i%5), Metric: uint64(i % 97), Context: uint64(i)}
				p.Timestamps, p.Values = p.Timestamps[:0], p.Values[:0]
				jitter := i%5 == 0
				kind := i % 20
				for j := start; j < min(start+pointsPerRecord, perSeries); j++ {
					t := t0 + int64(j)*10_000
					if jitter {
						t += rng.Int64N(15)
					}
					var v float64
					switch {
					case kind < 5:
						v = float64(1 + i%8)
					case kind < 9:
						state[i] += float64(rng.IntN(5000))
						v = state[i]
					case kind < 13:
						v = math.Round((40+10*math.Sin(float64(j)/300)+rng.NormFloat64())*100) / 100
					case kind < 16:
						v = float64(4096 * int64(rng.IntN(1<<16)))
					case kind < 18:
						v = float64(rng.IntN(3000)) / 3
					default:
						v = rng.ExpFloat64() * 0.05
					}
					p.Timestamps = append(p.Timestamps, t)
					p.Values = append(p.Values, v)
				}
				src := columnar.Source{Topic: "metrics", Partition: int32(part), Offset: off, Timestamp: t0 + int64(start)*10_000}
				off++
				if err := fn(record{src: src, p: p}); err != nil {
					return err
				}
			}
		}
		return nil
	}}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-reader: "+format+"\n", args...)
	os.Exit(1)
}
