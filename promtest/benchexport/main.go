// Command benchexport measures export: samples per second per core written as
// Prometheus TSDB blocks by Tailor's block writer (blocks.Export, what tailor-batch
// export runs once it has read the series files), beside Prometheus' own block writer
// (tsdb.BlockWriter, one per 2h range, committing every 5,000 samples as promtool's
// backfill does) fed the same samples. Run it with `make bench-export`.
//
// Each side runs in a child process that first builds its input in memory (not
// timed), then writes the blocks; the CPU time (user+sys, getrusage) and the wall time
// of the writing alone are reported. The blocks of both sides are read back and
// compared sample for sample before the figures are printed.
//
// Profile a side with: go run . -child tailor -cpuprofile cpu.out; go tool pprof cpu.out
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	pstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/tailor-metrics/tailor/blocks"
	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/ingest/payload"
	"github.com/tailor-metrics/tailor/storage"
)

const blockRange = int64(2 * 3600 * 1000)

func main() {
	var (
		child   = flag.String("child", "", "internal: write blocks with one side (tailor or prometheus) into -out")
		out     = flag.String("out", "", "internal: output directory")
		series  = flag.Int("series", 2000, "series")
		points  = flag.Int("points", 2880, "points per series, 15 s apart (2880: 12 h, six 2h blocks)")
		profile = flag.String("cpuprofile", "", "write a CPU profile of the child's writing")
	)
	flag.Parse()
	log.SetFlags(0)
	if *child != "" {
		if err := runChild(*child, *out, *series, *points, *profile); err != nil {
			log.Fatalf("%s: %v", *child, err)
		}
		return
	}
	if err := run(*series, *points); err != nil {
		log.Fatal(err)
	}
}

// input is the benchmark's samples: node-exporter-like series, gauges with two
// decimals, 15 s apart.
type input struct {
	labels [][]payload.Label
	ts     []int64
	values [][]float64
}

func makeInput(series, points int) input {
	t0 := time.Date(2025, 11, 24, 0, 0, 0, 0, time.UTC).UnixMilli()
	in := input{ts: make([]int64, points)}
	for k := range in.ts {
		in.ts[k] = t0 + int64(k)*15000
	}
	for s := 0; s < series; s++ {
		in.labels = append(in.labels, []payload.Label{
			{Name: "__name__", Value: []string{"node_cpu_seconds_total", "node_memory_Active_bytes", "node_load1", "node_disk_io_time_seconds_total"}[s%4]},
			{Name: "cpu", Value: fmt.Sprint(s % 16)},
			{Name: "instance", Value: fmt.Sprintf("host-%03d:9100", s/64)},
			{Name: "job", Value: "node"},
			{Name: "mode", Value: []string{"idle", "user", "system", "iowait"}[s/16%4]},
		})
		vs := make([]float64, points)
		v := float64(s)
		for k := range vs {
			v += math.Round(math.Sin(float64(k+s)/50)*100) / 100
			vs[k] = v
		}
		in.values = append(in.values, vs)
	}
	return in
}

func runChild(side, out string, series, points int, profile string) error {
	in := makeInput(series, points)
	var write func() error
	switch side {
	case "tailor":
		// The series as the store yields them: key order, tags as the sink keeps
		// remote-write labels.
		var dec payload.Decoder
		var p columnar.Payload
		ss := make([]encoder.Series, series)
		for s := range ss {
			lbs := append(slices.Clone(in.labels[s]), payload.Label{Name: payload.TenantLabel, Value: "1"})
			if err := dec.MapLabels(lbs, &p); err != nil {
				return err
			}
			ss[s] = encoder.Series{Key: p.SeriesKey, Tags: slices.Clone(p.Tags), Ts: in.ts, Values: in.values[s]}
		}
		slices.SortFunc(ss, func(a, b encoder.Series) int { return a.Key.Compare(b.Key) })
		st, err := storage.OpenLocal(out)
		if err != nil {
			return err
		}
		write = func() error {
			_, err := blocks.Export(context.Background(), &sliceSource{s: ss}, st, blocks.ExportOptions{TempDir: out})
			return err
		}
	case "prometheus":
		lsets := make([]labels.Labels, series)
		for s := range lsets {
			b := labels.NewScratchBuilder(5)
			for _, l := range in.labels[s] {
				b.Add(l.Name, l.Value)
			}
			b.Sort()
			lsets[s] = b.Labels()
		}
		dir := filepath.Join(out, "1")
		write = func() error {
			first := in.ts[0] - in.ts[0]%blockRange
			for start := first; start <= in.ts[len(in.ts)-1]; start += blockRange {
				w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, blockRange)
				if err != nil {
					return err
				}
				app := w.Appender(context.Background())
				n := 0
				// In time order, as a scrape (and promtool's backfill, reading a
				// file) appends: the head refuses samples more than half a block
				// range older than its newest. Series refs are kept, which only
				// helps Prometheus' side.
				refs := make([]pstorage.SeriesRef, len(lsets))
				for k, ts := range in.ts {
					if ts < start || ts >= start+blockRange {
						continue
					}
					for s, lset := range lsets {
						if refs[s], err = app.Append(refs[s], lset, ts, in.values[s][k]); err != nil {
							return err
						}
						if n++; n%5000 == 0 { // promtool's backfill commits every 5,000 samples
							if err := app.Commit(); err != nil {
								return err
							}
							app = w.Appender(context.Background())
						}
					}
				}
				if err := app.Commit(); err != nil {
					return err
				}
				if _, err := w.Flush(context.Background()); err != nil {
					return err
				}
				if err := w.Close(); err != nil {
					return err
				}
			}
			return nil
		}
	default:
		return fmt.Errorf("unknown side %q", side)
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	before := cpuTime()
	start := time.Now()
	if err := write(); err != nil {
		return err
	}
	fmt.Printf("%s %s\n", cpuTime()-before, time.Since(start))
	return nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type sliceSource struct {
	s []encoder.Series
	i int
}

func (s *sliceSource) Next() bool          { s.i++; return s.i <= len(s.s) }
func (s *sliceSource) At() *encoder.Series { return &s.s[s.i-1] }
func (s *sliceSource) Err() error          { return nil }

func run(series, points int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchexport-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	samples := series * points
	fmt.Printf("%d series × %d points (%d samples, 15 s apart, %.0f h) into 2h blocks\n\n", series, points, samples, float64(points)*15/3600)
	type result struct {
		name      string
		cpu, wall time.Duration
		bytes     int64
	}
	var res []result
	for _, side := range []string{"prometheus", "tailor"} {
		out := filepath.Join(dir, side)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		b, err := exec.Command(self, "-child", side, "-out", out, "-series", fmt.Sprint(series), "-points", fmt.Sprint(points)).Output()
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return fmt.Errorf("%s: %v\n%s", side, err, ee.Stderr)
			}
			return err
		}
		f := strings.Fields(string(b))
		if len(f) != 2 {
			return fmt.Errorf("%s printed %q", side, b)
		}
		r := result{name: side}
		if r.cpu, err = time.ParseDuration(f[0]); err != nil {
			return err
		}
		if r.wall, err = time.ParseDuration(f[1]); err != nil {
			return err
		}
		r.bytes = dirSize(filepath.Join(out, "1"))
		res = append(res, r)
	}
	// Both sides wrote the same samples: read both back with Prometheus' tsdb.
	a, err := readAll(filepath.Join(dir, "prometheus", "1"))
	if err != nil {
		return err
	}
	b, err := readAll(filepath.Join(dir, "tailor", "1"))
	if err != nil {
		return err
	}
	if len(a) != samples || len(b) != samples {
		return fmt.Errorf("read back %d (prometheus) and %d (tailor) samples, want %d", len(a), len(b), samples)
	}
	for k, v := range a {
		if b[k] != v {
			return fmt.Errorf("sample %v: prometheus %x, tailor %x", k, v, b[k])
		}
	}
	fmt.Printf("%-11s %9s %9s %15s %13s %10s\n", "", "wall", "cpu", "samples/s/core", "samples/s", "size")
	perCore := map[string]float64{}
	for _, r := range res {
		pc := float64(samples) / r.cpu.Seconds()
		perCore[r.name] = pc
		fmt.Printf("%-11s %9s %9s %15.0f %13.0f %6.1f MiB\n", r.name, r.wall.Round(time.Millisecond), r.cpu.Round(time.Millisecond), pc, float64(samples)/r.wall.Seconds(), float64(r.bytes)/(1<<20))
	}
	ratio := perCore["tailor"] / perCore["prometheus"]
	verdict := "met"
	if ratio < 1 {
		verdict = "NOT met"
	}
	fmt.Printf("\nread back with Prometheus' tsdb: the same %d samples on both sides\n", samples)
	fmt.Printf("tailor / prometheus, samples per CPU second: %.2fx; goal >= 1 (at least as fast): %s\n", ratio, verdict)
	return nil
}

type key struct {
	labels string
	ts     int64
}

func readAll(dir string) (map[key]uint64, error) {
	// promtool and Prometheus want a wal directory in a data directory.
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o755); err != nil {
		return nil, err
	}
	db, err := tsdb.OpenDBReadOnly(dir, "", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	out := map[key]uint64{}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for ss.Next() {
		s := ss.At()
		ls := s.Labels().String()
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			out[key{ls, ts}] = math.Float64bits(v)
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
	}
	return out, ss.Err()
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
