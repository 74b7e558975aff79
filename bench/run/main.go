// Command run is `make bench-run`: it times `tailor-batch run --all` against the
// baseline a user would write instead, on the same points, in one go on one machine.
//
//  1. A workload (ingest/workload) of 20,000 series × 1,000 points, payloads of 100
//     points interleaved over 8 partitions as a balancing service spreads them, 1%
//     redelivered (a fifth of those with corrected values), is written as segments the
//     way the sink cuts them, and the same rows (provenance included) as one zstd Parquet
//     file.
//  2. Tailor: `tailor-batch run --all` over the segments, in a child process.
//  3. Baseline: DuckDB reads the Parquet file, de-duplicates (latest arrival wins) with
//     arg_max, and again with QUALIFY row_number(), sorts by series and time, and writes
//     zstd Parquet; each in a child process. The faster one is the baseline.
//
// It prints the times, the ratio, points/s per core and each child's peak RSS, and checks
// that Tailor and both baselines give the workload's 20 million distinct points.
//
// Profile the Tailor side with: go tool pprof -http=: <dir>/cpu.pprof after passing
// -cpuprofile to the printed tailor-batch command.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// Goals of issue 7.
const (
	goalRatio         = 2.0
	goalPointsPerCore = 2.7e6
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		if err := baseline(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		return
	}
	dir := flag.String("dir", filepath.Join(os.TempDir(), "tailor-bench-run"), "work directory (segments, Parquet, outputs)")
	bin := flag.String("bin", "bin/tailor-batch", "the tailor-batch binary to time")
	series := flag.Int("series", 20_000, "series in the workload")
	points := flag.Int("points", 1_000, "points per series")
	parallel := flag.Int("parallel", 0, "run --all --parallel (default: the number of cores)")
	extra := flag.String("run-flags", "", "extra flags for tailor-batch run, space-separated")
	flag.Parse()
	if err := bench(*dir, *bin, *series, *points, *parallel, strings.Fields(*extra)); err != nil {
		fmt.Fprintln(os.Stderr, "bench-run:", err)
		os.Exit(1)
	}
}

func bench(dir, bin string, series, points, parallel int, extra []string) error {
	ctx := context.Background()
	cores := runtime.NumCPU()
	if parallel <= 0 {
		parallel = cores
	}
	spec := workload.Default()
	spec.Series, spec.PointsPerSeries = series, points
	spec.Start = 1763942400000 // 2025-11-24T00:00Z: 1,000 points 10 s apart fit one 4 h window
	gen, err := workload.New(spec)
	if err != nil {
		return err
	}
	storeDir := filepath.Join(dir, "store")
	in := filepath.Join(dir, "points.parquet")
	if err := prepare(ctx, gen, dir, storeDir, in); err != nil {
		return err
	}
	want := uint64(spec.Points())

	// Tailor.
	if err := os.RemoveAll(filepath.Join(storeDir, "series")); err != nil {
		return err
	}
	args := append([]string{"run", "--store", "file://" + storeDir, "--all", "--parallel", fmt.Sprint(parallel),
		"--temp-dir", filepath.Join(dir, "tmp"), "--json"}, extra...)
	fmt.Printf("tailor: %s %s\n", bin, strings.Join(args, " "))
	out, tt, trss, err := child(bin, args...)
	tcpu := cpuOf
	if err != nil {
		return fmt.Errorf("tailor-batch run: %w\n%s", err, out)
	}
	var rep struct {
		Summary struct {
			Counts       run.Counts         `json:"counts"`
			Runs         int                `json:"runs"`
			StageSeconds map[string]float64 `json:"stage_seconds"`
			Resources    run.Resources      `json:"resources"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return fmt.Errorf("tailor-batch run --json: %w", err)
	}
	c := rep.Summary.Counts
	if c.PointsOut != want {
		return fmt.Errorf("tailor wrote %d points, want %d", c.PointsOut, want)
	}
	pointsIn := c.PointsIn

	// Baselines.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	type result struct {
		name string
		secs float64
		cpu  float64
		rss  int64
	}
	var base []result
	for _, v := range []string{"arg_max", "qualify"} {
		outPq := filepath.Join(dir, "out-"+v+".parquet")
		o, t, rss, err := child(self, "baseline", v, in, outPq, filepath.Join(dir, "tmp"))
		if err != nil {
			return fmt.Errorf("baseline %s: %w\n%s", v, err, o)
		}
		if got := strings.TrimSpace(string(o)); got != fmt.Sprint(want) {
			return fmt.Errorf("baseline %s wrote %s rows, want %d", v, got, want)
		}
		base = append(base, result{v, t, cpuOf, rss})
	}
	best := base[0]
	if base[1].secs < best.secs {
		best = base[1]
	}

	perCore := func(secs float64) float64 { return float64(pointsIn) / secs / float64(cores) }
	fmt.Printf("\n%d points in (%d distinct, %d series, %d shard runs), %d cores\n", pointsIn, want, series, rep.Summary.Runs, cores)
	// points/s/core divides by wall time × cores; points/CPU-s by the CPU the child
	// actually got, which is what the Spark figure (points per core-second) measures.
	fmt.Printf("%-28s %8s %14s %8s %14s %10s\n", "", "seconds", "points/s/core", "CPU s", "points/CPU-s", "peak RSS")
	fmt.Printf("%-28s %8.2f %14.0f %8.1f %14.0f %7.0f MiB\n", "tailor run --all", tt, perCore(tt), tcpu, float64(pointsIn)/tcpu, float64(trss)/(1<<20))
	for _, b := range base {
		fmt.Printf("%-28s %8.2f %14.0f %8.1f %14.0f %7.0f MiB\n", "duckdb parquet "+b.name, b.secs, perCore(b.secs), b.cpu, float64(pointsIn)/b.cpu, float64(b.rss)/(1<<20))
	}
	fmt.Printf("load average at the end: %s\n", loadavg())
	ratio := best.secs / tt
	fmt.Printf("\nratio: tailor is %.2fx faster than the faster baseline (%s); goal %.1fx: %s\n", ratio, best.name, goalRatio, verdict(ratio >= goalRatio))
	fmt.Printf("tailor: %.2fM points/s per core; goal %.1fM: %s\n", perCore(tt)/1e6, goalPointsPerCore/1e6, verdict(perCore(tt) >= goalPointsPerCore))
	fmt.Print("tailor stage seconds (summed over runs; reader steps over reader goroutines):")
	for _, k := range []string{"list", "plan", "fetch", "verify", "zstd", "decode", "duckdb", "encode", "upload", "publish"} {
		fmt.Printf(" %s=%.2f", k, rep.Summary.StageSeconds[k])
	}
	fmt.Printf("\ntailor GC share of CPU: %.1f%%\n", 100*rep.Summary.Resources.GCShare)
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// cpuOf is the CPU seconds (user+system) of the last child run; on a shared machine it
// shows what the work cost, independent of the other load.
var cpuOf float64

// child runs a command and returns its stdout, wall seconds and peak RSS.
func child(name string, args ...string) ([]byte, float64, int64, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	start := time.Now()
	out, err := cmd.Output()
	secs := time.Since(start).Seconds()
	var rss int64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = int64(ru.Maxrss) * 1024
			cpuOf = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		}
	}
	return out, secs, rss, err
}

// prepare writes the segments and the Parquet file once; later runs reuse them.
func prepare(ctx context.Context, gen *workload.Gen, dir, storeDir, parquet string) error {
	stamp := filepath.Join(dir, "prepared-"+fmt.Sprint(gen.Spec().Points()))
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	st, err := storage.OpenLocal(storeDir)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Println("writing segments …")
	if err := writeSegments(ctx, gen, st); err != nil {
		return err
	}
	fmt.Println("writing the same rows as zstd Parquet …")
	if err := writeParquet(ctx, st, parquet); err != nil {
		return err
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// writeSegments cuts each partition's records into segments as the sink does (every
// 100,000 payloads).
func writeSegments(ctx context.Context, gen *workload.Gen, st storage.Store) error {
	const flushPayloads = 100_000
	spec := gen.Spec()
	sm := columnar.DefaultShardMap()
	ws := make([]*columnar.SegmentWriter, spec.Partitions)
	next := make([]int64, spec.Partitions)
	n := make([]int, spec.Partitions)
	flush := func(p int) error {
		w := ws[p]
		if w == nil {
			return nil
		}
		ws[p] = nil
		f, err := os.CreateTemp("", "seg")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := w.WriteTo(f); err != nil {
			return err
		}
		if _, err := f.Seek(0, 0); err != nil {
			return err
		}
		return st.Create(ctx, w.Key(), f)
	}
	err := gen.Records(func(rec *workload.Record) error {
		p := int(rec.Partition)
		if ws[p] == nil {
			ws[p] = columnar.NewSegmentWriter(columnar.Header{Topic: "metrics", Partition: rec.Partition, StartOffset: next[p], StartTimestamp: rec.Timestamp}, sm, 0)
			n[p] = 0
		}
		src := columnar.Source{Topic: "metrics", Partition: rec.Partition, Offset: next[p], Timestamp: rec.Timestamp}
		next[p]++
		if err := ws[p].Add(src, []columnar.Payload{rec.Payload}); err != nil {
			return err
		}
		if n[p]++; n[p] >= flushPayloads {
			return flush(p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for p := range ws {
		if err := flush(p); err != nil {
			return err
		}
	}
	return nil
}

// writeParquet reads every point of the segments (provenance included) and has DuckDB
// write them, in arrival order, as one zstd Parquet file.
func writeParquet(ctx context.Context, st storage.Store, path string) error {
	segs, err := run.ListWindowSegments(ctx, st, nil, run.Arrival{}, false, nil)
	if err != nil {
		return err
	}
	var splits []columnar.Split
	for _, s := range segs {
		for _, shard := range s.Footer.Shards {
			splits = append(splits, columnar.PlanSplits([]*columnar.Segment{s}, shard, columnar.AllTime, 0)...)
		}
	}
	eng, err := query.Open(ctx, query.Options{})
	if err != nil {
		return err
	}
	defer eng.Close()
	rd := columnar.NewPointReader(ctx, st, splits, columnar.Topics(segs), columnar.ReadOptions{Readers: 1})
	defer rd.Release()
	res, err := eng.Query(ctx, fmt.Sprintf("COPY (SELECT * FROM points) TO '%s' (FORMAT parquet, COMPRESSION zstd)", path), map[string]array.RecordReader{"points": rd})
	if err != nil {
		return err
	}
	res.Release()
	return rd.Err()
}

// The baseline statements: the same de-duplication (latest arrival wins, docs/dedup.md)
// and sort, over the Parquet file, into zstd Parquet.
var baselineSQL = map[string]string{
	"arg_max": `SELECT org_id, metric_id, context_key, ts,
       arg_max(value, (record_ts, topic_id, "partition", "offset")) AS value
FROM read_parquet('%[1]s')
GROUP BY org_id, metric_id, context_key, ts
ORDER BY org_id, metric_id, context_key, ts`,
	"qualify": `SELECT org_id, metric_id, context_key, ts, value
FROM read_parquet('%[1]s')
QUALIFY row_number() OVER (PARTITION BY org_id, metric_id, context_key, ts
    ORDER BY record_ts DESC, topic_id DESC, "partition" DESC, "offset" DESC) = 1
ORDER BY org_id, metric_id, context_key, ts`,
}

// baseline runs one baseline statement: baseline VARIANT IN OUT TEMPDIR. It prints the
// rows written.
func baseline(args []string) error {
	if len(args) != 4 {
		return fmt.Errorf("want VARIANT IN OUT TEMPDIR")
	}
	stmt, ok := baselineSQL[args[0]]
	if !ok {
		return fmt.Errorf("no variant %q", args[0])
	}
	ctx := context.Background()
	eng, err := query.Open(ctx, query.Options{Threads: runtime.NumCPU(), TempDir: args[3], MemoryLimit: run.DefaultMemoryLimit(1)})
	if err != nil {
		return err
	}
	defer eng.Close()
	copyStmt := fmt.Sprintf("COPY ("+stmt+") TO '%[2]s' (FORMAT parquet, COMPRESSION zstd)", args[1], args[2])
	if err := eng.Exec(ctx, copyStmt); err != nil {
		return err
	}
	res, err := eng.Query(ctx, fmt.Sprintf("SELECT count(*)::BIGINT FROM read_parquet('%s')", args[2]), nil)
	if err != nil {
		return err
	}
	defer res.Release()
	for res.Next() {
		fmt.Println(res.RecordBatch().Column(0).(*array.Int64).Value(0))
	}
	return res.Err()
}
