// Command run is `make bench-run`: it times `tailor-batch run --all` at its default flags
// against the baselines a user would write instead, on the same points, in one go on one
// machine.
//
//  1. A workload (ingest/workload) of 20,000 × scale series × 1,000 points, payloads of
//     100 points interleaved over 8 partitions as a balancing service spreads them, 1%
//     redelivered (a fifth of those with corrected values), is written as segments the
//     way the sink cuts them, and the same rows (provenance included, and one int64
//     arrival rank a user could precompute) as one zstd Parquet file. Both are written
//     once per scale under -dir and reused.
//  2. Tailor: `tailor-batch run --all` with no tuning flags, in a child process.
//  3. Baselines, each in a child process: DuckDB reads the Parquet file, de-duplicates
//     (latest arrival wins, docs/dedup.md) and sorts by series and time, and writes zstd
//     Parquet, three ways: arg_max over the arrival struct, arg_max over the precomputed
//     rank, and QUALIFY row_number(). The fastest is the baseline.
//
// It prints each one's seconds, points/s per core, CPU seconds, points per CPU-second and
// peak RSS, the ratio against the fastest baseline and issue 18's goals, and checks that
// Tailor and every baseline give the workload's distinct points. With -scale N (make
// bench-run SCALE=10) it measures scale 1 too and prints the growth of each figure, and
// checks that Tailor's peak RSS stays within the default memory limit plus 256 MiB.
//
// Profile the Tailor side with: go tool pprof -http=: <dir>/cpu.pprof after passing
// -cpuprofile to the printed tailor-batch command.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/bits"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/internal/benchproc"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// Goals of issue 18.
const (
	goalRatio         = 5.0
	goalPointsPerCore = 8e6
	goalGrowth        = 10.5
	rssSlack          = 256 << 20
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		if err := baseline(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			if strings.Contains(err.Error(), "Out of Memory Error") {
				os.Exit(exitOutOfMemory)
			}
			os.Exit(1)
		}
		return
	}
	dir := flag.String("dir", filepath.Join(os.TempDir(), "tailor-bench-run"), "work directory (segments, Parquet, outputs), one subdirectory per scale")
	bin := flag.String("bin", "bin/tailor-batch", "the tailor-batch binary to time")
	scale := flag.Int("scale", 1, "multiple of 20M points (20,000 series × 1,000 points); above 1, scale 1 is measured too, for the growth")
	extra := flag.String("run-flags", "", "extra flags for tailor-batch run, space-separated (the bench's point is the defaults)")
	skipBase := flag.Bool("skip-baselines", false, "time Tailor only")
	flag.Parse()
	if *scale < 1 {
		fmt.Fprintln(os.Stderr, "bench-run: -scale must be 1 or more")
		os.Exit(2)
	}
	b := bench{dir: *dir, bin: *bin, extra: strings.Fields(*extra), baselines: !*skipBase, cores: run.AvailableCPU().Cores()}
	if err := b.main(*scale); err != nil {
		fmt.Fprintln(os.Stderr, "bench-run:", err)
		os.Exit(1)
	}
}

type bench struct {
	dir, bin  string
	extra     []string
	baselines bool
	cores     int
}

// result is one child process's figures.
type result struct {
	name string
	benchproc.Result
	// failed says why a baseline did not finish (DuckDB out of memory at its default
	// limit): it is printed, and left out of the ratio and the growth.
	failed string
}

// exitOutOfMemory is the baseline child's exit status when DuckDB runs out of memory: a
// result of the baseline at that scale, not a failure of the bench.
const exitOutOfMemory = 3

// measured is what one scale gave.
type measured struct {
	scale     int
	pointsIn  uint64
	distinct  uint64
	series    int
	runs      int
	tailor    result
	base      []result
	stages    map[string]float64
	gcShare   float64
	sizing    run.Sizing
	memLimit  string
	loadStart string
	loadEnd   string
}

func (b bench) main(scale int) error {
	var one *measured
	if scale > 1 {
		m, err := b.measure(1)
		if err != nil {
			return err
		}
		b.print(m)
		one = &m
	}
	m, err := b.measure(scale)
	if err != nil {
		return err
	}
	b.print(m)
	if one != nil {
		b.growth(*one, m)
	}
	return nil
}

func (b bench) measure(scale int) (measured, error) {
	ctx := context.Background()
	spec := workload.Default()
	spec.Series, spec.PointsPerSeries = 20_000*scale, 1_000
	spec.Start = 1763942400000 // 2025-11-24T00:00Z: 1,000 points 10 s apart fit one 4 h window
	gen, err := workload.New(spec)
	if err != nil {
		return measured{}, err
	}
	dir := filepath.Join(b.dir, fmt.Sprintf("x%d", scale))
	storeDir, in, tmp := filepath.Join(dir, "store"), filepath.Join(dir, "points.parquet"), filepath.Join(dir, "tmp")
	if err := prepare(ctx, gen, dir, storeDir, in); err != nil {
		return measured{}, err
	}
	m := measured{scale: scale, distinct: uint64(spec.Points()), series: spec.Series, loadStart: benchproc.Loadavg()}

	// Tailor, at its defaults.
	if err := os.RemoveAll(filepath.Join(storeDir, "series")); err != nil {
		return m, err
	}
	args := append([]string{"run", "--store", "file://" + storeDir, "--all", "--temp-dir", tmp, "--json"}, b.extra...)
	fmt.Printf("scale %d, tailor: %s %s\n", scale, b.bin, strings.Join(args, " "))
	out, t, err := benchproc.Run(b.bin, args...)
	if err != nil {
		return m, fmt.Errorf("tailor-batch run: %w\n%s", err, out)
	}
	var rep struct {
		Summary struct {
			Counts       run.Counts         `json:"counts"`
			Runs         int                `json:"runs"`
			StageSeconds map[string]float64 `json:"stage_seconds"`
			Resources    run.Resources      `json:"resources"`
			Sizing       run.Sizing         `json:"sizing"`
			MemoryLimit  string             `json:"memory_limit"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return m, fmt.Errorf("tailor-batch run --json: %w", err)
	}
	s := rep.Summary
	if s.Counts.PointsOut != m.distinct {
		return m, fmt.Errorf("tailor wrote %d points, want %d", s.Counts.PointsOut, m.distinct)
	}
	m.tailor = result{"tailor run --all", t, ""}
	m.pointsIn, m.runs, m.stages, m.gcShare = s.Counts.PointsIn, s.Runs, s.StageSeconds, s.Resources.GCShare
	m.sizing, m.memLimit = s.Sizing, s.MemoryLimit

	if b.baselines {
		self, err := os.Executable()
		if err != nil {
			return m, err
		}
		for _, v := range baselineOrder {
			outPq := filepath.Join(dir, "out-"+v+".parquet")
			o, r, err := benchproc.Run(self, "baseline", v, in, outPq, tmp)
			if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() == exitOutOfMemory {
				_ = os.Remove(outPq)
				m.base = append(m.base, result{"duckdb parquet " + v, r, "DuckDB out of memory at its default limit"})
				continue
			}
			if err != nil {
				return m, fmt.Errorf("baseline %s: %w\n%s", v, err, o)
			}
			if got := strings.TrimSpace(string(o)); got != fmt.Sprint(m.distinct) {
				return m, fmt.Errorf("baseline %s wrote %s rows, want %d", v, got, m.distinct)
			}
			_ = os.Remove(outPq)
			m.base = append(m.base, result{"duckdb parquet " + v, r, ""})
		}
	}
	m.loadEnd = benchproc.Loadavg()
	return m, nil
}

func (b bench) perCore(m measured, secs float64) float64 {
	return float64(m.pointsIn) / secs / float64(b.cores)
}

func (b bench) print(m measured) {
	fmt.Printf("\nscale %d: %d points in (%d distinct, %d series, %d shard runs), %d CPUs\n", m.scale, m.pointsIn, m.distinct, m.series, m.runs, b.cores)
	// points/s/core divides by wall time × cores; points/CPU-s by the CPU the child
	// actually got, which is what the Spark figure (points per core-second) measures.
	fmt.Printf("%-32s %8s %14s %8s %14s %10s\n", "", "seconds", "points/s/core", "CPU s", "points/CPU-s", "peak RSS")
	for _, r := range append([]result{m.tailor}, m.base...) {
		if r.failed != "" {
			fmt.Printf("%-32s failed after %.2f s, %.1f CPU s, peak RSS %.0f MiB: %s\n", r.name, r.Secs, r.CPU, float64(r.RSS)/(1<<20), r.failed)
			continue
		}
		fmt.Printf("%-32s %8.2f %14.0f %8.1f %14.0f %7.0f MiB\n", r.name, r.Secs, b.perCore(m, r.Secs), r.CPU, float64(m.pointsIn)/r.CPU, float64(r.RSS)/(1<<20))
	}
	fmt.Printf("load average at the start: %s, at the end: %s\n", m.loadStart, m.loadEnd)
	z := m.sizing
	fmt.Printf("tailor's defaults: --parallel %d --readers %d --threads %d, memory limit %s per run\n", z.Parallel, z.Readers, z.Threads, m.memLimit)
	var done []result
	for _, r := range m.base {
		if r.failed == "" {
			done = append(done, r)
		}
	}
	if len(m.base) > 0 && len(done) == 0 {
		fmt.Printf("ratio: no baseline finished; tailor did, in %.2f s\n", m.tailor.Secs)
	}
	if len(done) > 0 {
		best := done[0]
		for _, r := range done[1:] {
			if r.Secs < best.Secs {
				best = r
			}
		}
		ratio := best.Secs / m.tailor.Secs
		fmt.Printf("ratio: tailor is %.2fx faster than the fastest baseline (%s); goal %.1fx: %s\n", ratio, best.name, goalRatio, benchproc.Verdict(ratio >= goalRatio))
	}
	pc := b.perCore(m, m.tailor.Secs)
	fmt.Printf("tailor: %.2fM points/s per core; goal %.1fM: %s\n", pc/1e6, goalPointsPerCore/1e6, benchproc.Verdict(pc >= goalPointsPerCore))
	fmt.Print("tailor stage seconds (summed over runs; reader steps over reader goroutines):")
	for _, k := range []string{"list", "plan", "fetch", "verify", "zstd", "decode", "duckdb", "encode", "upload", "publish"} {
		fmt.Printf(" %s=%.2f", k, m.stages[k])
	}
	fmt.Printf("\ntailor GC share of CPU: %.1f%%\n", 100*m.gcShare)
	if m.scale > 1 {
		bound := run.AvailableMemory().Bytes*6/10 + rssSlack
		fmt.Printf("tailor peak RSS %s; goal within the default memory limit (60%% of %s) + 256 MiB = %s: %s\n",
			run.FormatBytes(m.tailor.RSS), run.AvailableMemory(), run.FormatBytes(bound), benchproc.Verdict(m.tailor.RSS <= bound))
	}
}

// growth prints each figure at the larger scale over the same figure at scale 1.
func (b bench) growth(one, m measured) {
	fmt.Printf("\ngrowth from scale 1 to scale %d (%.1fx the points):\n", m.scale, float64(m.pointsIn)/float64(one.pointsIn))
	rows := append([]result{m.tailor}, m.base...)
	ones := append([]result{one.tailor}, one.base...)
	for i, r := range rows {
		if i >= len(ones) {
			break
		}
		o := ones[i]
		if r.failed != "" || o.failed != "" {
			fmt.Printf("%-32s did not finish at both scales\n", r.name)
			continue
		}
		fmt.Printf("%-32s time %.2fx, CPU %.2fx, peak RSS %.2fx\n", r.name, r.Secs/o.Secs, r.CPU/o.CPU, float64(r.RSS)/float64(o.RSS))
	}
	g := m.tailor.Secs / one.tailor.Secs
	fmt.Printf("tailor time grows %.2fx; goal at most %.1fx: %s\n", g, goalGrowth, benchproc.Verdict(g <= goalGrowth))
}

// prepareVersion names the layout of what prepare writes; a directory prepared by an
// older bench (without the rank column) is written again.
const prepareVersion = 2

// prepare writes the segments and the Parquet file once; later runs reuse them. The stamp
// names the segment version too: segments of an older format would time the reading of
// a format the sink no longer writes.
func prepare(ctx context.Context, gen *workload.Gen, dir, storeDir, parquet string) error {
	stamp := filepath.Join(dir, fmt.Sprintf("prepared-v%d-seg%d-%d", prepareVersion, columnar.SegmentVersion, gen.Spec().Points()))
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	st, err := storage.OpenWith(ctx, "file://"+storeDir, storage.Options{Create: true})
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	fmt.Printf("writing %d points as segments under %s …\n", gen.Spec().Points(), storeDir)
	arr, err := writeSegments(ctx, gen, st)
	if err != nil {
		return err
	}
	fmt.Printf("writing the same rows as zstd Parquet (%s) …\n", time.Since(start).Round(time.Second))
	if err := writeParquet(ctx, st, parquet, arr); err != nil {
		return err
	}
	fmt.Printf("prepared in %s\n", time.Since(start).Round(time.Second))
	return os.WriteFile(stamp, nil, 0o644)
}

// arrivals bounds the provenance of the records written, to size the rank's fields.
type arrivals struct {
	minTs, maxTs int64
	partitions   int
	maxOffset    int64
}

// writeSegments cuts each partition's records into segments as the sink does (every
// 100,000 payloads).
func writeSegments(ctx context.Context, gen *workload.Gen, st storage.Store) (arrivals, error) {
	const flushPayloads = 100_000
	arr := arrivals{minTs: 1<<63 - 1, maxTs: -1 << 63, partitions: gen.Spec().Partitions}
	err := gen.WriteSegments(ctx, st, flushPayloads, func(src columnar.Source) {
		arr.minTs, arr.maxTs, arr.maxOffset = min(arr.minTs, src.Timestamp), max(arr.maxTs, src.Timestamp), max(arr.maxOffset, src.Offset)
	})
	return arr, err
}

// rankSQL is the expression of one int64 that orders arrivals as (record_ts, topic_id,
// partition, offset) do, the fields packed side by side at the widths the data needs:
// what a user who precomputes an arrival rank would store.
func (a arrivals) rankSQL() (string, error) {
	bo := uint(bits.Len64(uint64(a.maxOffset)))
	bp := uint(bits.Len64(uint64(a.partitions)))
	bt := uint(1) // one topic
	bts := uint(bits.Len64(uint64(a.maxTs - a.minTs)))
	if bo+bp+bt+bts > 63 {
		return "", fmt.Errorf("arrival rank needs %d bits", bo+bp+bt+bts)
	}
	return fmt.Sprintf(`((record_ts - %d)::BIGINT << %d) | (topic_id::BIGINT << %d) | ("partition"::BIGINT << %d) | "offset"::BIGINT`,
		a.minTs, bt+bp+bo, bp+bo, bo), nil
}

// writeParquet reads every point of the segments (provenance included) and has DuckDB
// write them, in arrival order, as one zstd Parquet file, with the arrival rank.
func writeParquet(ctx context.Context, st storage.Store, path string, arr arrivals) error {
	rank, err := arr.rankSQL()
	if err != nil {
		return err
	}
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
	eng, err := query.Open(ctx, query.Options{Threads: runtime.NumCPU(), TempDir: filepath.Join(filepath.Dir(path), "tmp"), MemoryLimit: run.DefaultMemoryLimit(1)})
	if err != nil {
		return err
	}
	defer eng.Close()
	rd := columnar.NewPointReader(ctx, st, splits, columnar.Topics(segs), columnar.ReadOptions{Readers: 1})
	defer rd.Release()
	res, err := eng.Query(ctx, fmt.Sprintf("COPY (SELECT *, %s AS arrival FROM points) TO '%s' (FORMAT parquet, COMPRESSION zstd)", rank, path), map[string]array.RecordReader{"points": rd})
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
	"arg_max-rank": `SELECT org_id, metric_id, context_key, ts, arg_max(value, arrival) AS value
FROM read_parquet('%[1]s')
GROUP BY ALL
ORDER BY org_id, metric_id, context_key, ts`,
	"qualify": `SELECT org_id, metric_id, context_key, ts, value
FROM read_parquet('%[1]s')
QUALIFY row_number() OVER (PARTITION BY org_id, metric_id, context_key, ts
    ORDER BY record_ts DESC, topic_id DESC, "partition" DESC, "offset" DESC) = 1
ORDER BY org_id, metric_id, context_key, ts`,
}

var baselineOrder = []string{"arg_max", "arg_max-rank", "qualify"}

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
	eng, err := query.Open(ctx, query.Options{Threads: run.AvailableCPU().Cores(), TempDir: args[3], MemoryLimit: run.DefaultMemoryLimit(1)})
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
