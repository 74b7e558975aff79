// Command codec compares Tailor series files with Prometheus XOR chunks and zstd Parquet on
// the real NAB data and a synthetic one-second agent mix: bytes per point, encode and
// decode throughput on one core, and a bit-exact check of every point.
//
// Run it from this directory with `go run .` (see README.md). It lives in its own module so
// that the Prometheus module, which is large, stays out of the product's dependencies.
package main

import (
	"bytes"
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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
)

// series is one input series, sorted by time with unique timestamps.
type series struct {
	key  columnar.SeriesKey
	name string
	ts   []int64
	vals []float64
}

type dataset struct {
	name   string
	series []series
	real   bool
}

func (d *dataset) points() int {
	n := 0
	for _, s := range d.series {
		n += len(s.ts)
	}
	return n
}

type result struct {
	name                    string
	points                  int
	tailorBytes, promBytes  int
	parquetBytes            int
	encodeNs, decodeNs      float64 // best run, whole data set
	exact                   bool
	exactProm, exactParquet bool
	encodings               map[string]int
}

func main() {
	dataDir := flag.String("data", filepath.Join("..", "..", "..", "shared", "data", "real"), "directory of the NAB CSV files")
	minTime := flag.Duration("benchtime", 400*time.Millisecond, "least total time spent timing each encode and decode")
	agentSeries := flag.Int("agent-series", 1000, "series in the synthetic agent mix")
	agentPoints := flag.Int("agent-points", 3600, "points per series in the synthetic agent mix (one a second)")
	flag.Parse()

	paths, _ := filepath.Glob(filepath.Join(*dataDir, "*.csv"))
	if len(paths) == 0 {
		fmt.Fprintf(os.Stderr, "no CSV files in %s (set -data)\n", *dataDir)
		os.Exit(2)
	}
	sort.Strings(paths)
	var sets []dataset
	for _, p := range paths {
		d, err := loadCSV(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", p, err)
			os.Exit(2)
		}
		sets = append(sets, d)
	}
	sets = append(sets, agentMix(*agentSeries, *agentPoints))

	fmt.Printf("Tailor series files (format v%d) vs Prometheus XOR chunks (120 samples) and Parquet (zstd, delta ts, byte-stream-split values)\n", encoder.CurrentVersion)
	fmt.Printf("%s %s/%s, GOMAXPROCS=%d, one goroutine; throughput = points / best run's wall time\n\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))

	var results []result
	ok := true
	for _, d := range sets {
		r := measure(d, *minTime)
		results = append(results, r)
		ok = ok && r.exact && r.exactProm && r.exactParquet
	}

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "file\tpoints\tTailor B/pt\tProm XOR B/pt\tParquet B/pt\tencode Mpts/s\tdecode Mpts/s\tbit-exact\t")
	var pooled result
	pooled.name = "pooled (real files)"
	pooled.exact, pooled.exactProm, pooled.exactParquet = true, true, true
	for _, r := range results {
		printRow(tw, r)
		if strings.HasPrefix(r.name, "synthetic") {
			continue
		}
		pooled.points += r.points
		pooled.tailorBytes += r.tailorBytes
		pooled.promBytes += r.promBytes
		pooled.parquetBytes += r.parquetBytes
		pooled.encodeNs += r.encodeNs
		pooled.decodeNs += r.decodeNs
		pooled.exact = pooled.exact && r.exact
		pooled.exactProm = pooled.exactProm && r.exactProm
		pooled.exactParquet = pooled.exactParquet && r.exactParquet
	}
	printRow(tw, pooled)
	tw.Flush()

	fmt.Println()
	fmt.Println("Encodings chosen per block (values / timestamps):")
	for _, r := range results {
		fmt.Printf("  %-28s %s\n", r.name, formatCounts(r.encodings))
	}

	fmt.Println()
	bpp := func(b, n int) float64 { return float64(b) / float64(n) }
	check := func(name string, pass bool, detail string) {
		mark := "PASS"
		if !pass {
			mark = "FAIL"
		}
		fmt.Printf("  %s  %s: %s\n", mark, name, detail)
	}
	fmt.Println("Goals:")
	check("pooled size", bpp(pooled.tailorBytes, pooled.points) <= 3.0,
		fmt.Sprintf("%.3f B/pt pooled over the real files (goal <= 3.0)", bpp(pooled.tailorBytes, pooled.points)))
	smaller := true
	var losers []string
	for _, r := range results[:len(results)-1] {
		if r.tailorBytes >= r.promBytes || r.tailorBytes >= r.parquetBytes {
			smaller = false
			losers = append(losers, r.name)
		}
	}
	check("every real file smaller than Prometheus XOR and Parquet", smaller, fmt.Sprintf("%d files, larger on %v", len(results)-1, losers))
	encRate := float64(pooled.points) / pooled.encodeNs * 1e3
	decRate := float64(pooled.points) / pooled.decodeNs * 1e3
	check("encode throughput", encRate >= 40, fmt.Sprintf("%.1f Mpts/s per core on the real files (goal >= 40)", encRate))
	check("decode throughput", decRate >= 150, fmt.Sprintf("%.1f Mpts/s per core on the real files (goal >= 150)", decRate))
	check("bit-exact", ok, "every point of every file through all three codecs")
	if !ok {
		os.Exit(1)
	}
}

func printRow(tw io.Writer, r result) {
	bpp := func(b int) string { return fmt.Sprintf("%.3f", float64(b)/float64(r.points)) }
	rate := func(ns float64) string { return fmt.Sprintf("%.1f", float64(r.points)/ns*1e3) }
	exact := "yes"
	if !r.exact || !r.exactProm || !r.exactParquet {
		exact = "NO"
	}
	fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.name, r.points, bpp(r.tailorBytes), bpp(r.promBytes),
		bpp(r.parquetBytes), rate(r.encodeNs), rate(r.decodeNs), exact)
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s=%d ", k, m[k])
	}
	return sb.String()
}

// measure encodes and decodes one data set with all three codecs.
func measure(d dataset, minTime time.Duration) result {
	r := result{name: d.name, points: d.points()}

	var file []byte
	r.encodeNs = bestOf(minTime, func() {
		var buf bytes.Buffer
		buf.Grow(len(file))
		w := encoder.NewWriter(&buf)
		for _, s := range d.series {
			if err := w.Append(s.key, nil, s.ts, s.vals); err != nil {
				fail("encode %s: %v", s.name, err)
			}
		}
		if err := w.Close(); err != nil {
			fail("encode %s: %v", d.name, err)
		}
		file = buf.Bytes()
	})
	r.tailorBytes = len(file)

	rd, err := encoder.Open(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		fail("open %s: %v", d.name, err)
	}
	var it *encoder.SeriesIterator
	r.decodeNs = bestOf(minTime, func() {
		it = rd.Iterator(it)
		n := 0
		for it.Next() {
			n += len(it.At().Ts)
		}
		if it.Err() != nil || n != r.points {
			fail("decode %s: %d of %d points: %v", d.name, n, r.points, it.Err())
		}
	})
	r.exact = checkTailor(rd, d)
	r.encodings = blockEncodings(file)

	r.promBytes, r.exactProm = promXOR(d)
	r.parquetBytes, r.exactParquet = parquetZstd(d)
	return r
}

// bestOf runs f until minTime has passed (at least 3 times) and returns the fastest run in
// nanoseconds: the run least disturbed by other work on the machine.
func bestOf(minTime time.Duration, f func()) float64 {
	best := math.Inf(1)
	start := time.Now()
	for i := 0; i < 3 || time.Since(start) < minTime; i++ {
		t0 := time.Now()
		f()
		best = math.Min(best, float64(time.Since(t0).Nanoseconds()))
	}
	return best
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func same(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// checkTailor compares every decoded point with the input, bit for bit.
func checkTailor(rd *encoder.Reader, d dataset) bool {
	it := rd.Iterator(nil)
	i := 0
	for it.Next() {
		s, want := it.At(), d.series[i]
		i++
		if s.Key != want.key || len(s.Ts) != len(want.ts) {
			return false
		}
		for j := range s.Ts {
			if s.Ts[j] != want.ts[j] || !same(s.Values[j], want.vals[j]) {
				return false
			}
		}
	}
	return it.Err() == nil && i == len(d.series)
}

// blockEncodings counts the encodings the writer chose, per block.
func blockEncodings(file []byte) map[string]int {
	m := map[string]int{}
	rd, err := encoder.Open(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		return m
	}
	for _, e := range rd.Index() {
		blocks, err := rd.BlockInfo(e)
		if err != nil {
			return m
		}
		for _, b := range blocks {
			m[b.ValueEncoding.String()+"/"+b.TsEncoding.String()]++
		}
	}
	return m
}

// promXOR encodes each series in Prometheus XOR chunks of 120 samples, as the Prometheus
// TSDB head cuts them, and counts the chunk bytes; then decodes and compares.
func promXOR(d dataset) (int, bool) {
	total := 0
	exact := true
	var it chunkenc.Iterator
	for _, s := range d.series {
		for i := 0; i < len(s.ts); i += 120 {
			j := min(i+120, len(s.ts))
			c := chunkenc.NewXORChunk()
			app, err := c.Appender()
			if err != nil {
				fail("prometheus appender: %v", err)
			}
			for k := i; k < j; k++ {
				app.Append(0, s.ts[k], s.vals[k])
			}
			total += len(c.Bytes())
			it = c.Iterator(it)
			k := i
			for it.Next() == chunkenc.ValFloat {
				t, v := it.At()
				if k >= j || t != s.ts[k] || !same(v, s.vals[k]) {
					exact = false
				}
				k++
			}
			exact = exact && k == j && it.Err() == nil
		}
	}
	return total, exact
}

// pqRow is one point in the Parquet comparison: a series number (delta-encoded, so it
// costs next to nothing), delta-encoded timestamps and byte-stream-split values, all
// zstd-compressed: the best lossless Parquet layout for this data we know of.
type pqRow struct {
	Series int32   `parquet:"series,delta,zstd"`
	Ts     int64   `parquet:"ts,delta,zstd"`
	Value  float64 `parquet:"value,split,zstd"`
}

func parquetZstd(d dataset) (int, bool) {
	rows := make([]pqRow, 0, d.points())
	for i, s := range d.series {
		for j := range s.ts {
			rows = append(rows, pqRow{Series: int32(i), Ts: s.ts[j], Value: s.vals[j]})
		}
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[pqRow](&buf, parquet.Compression(&parquet.Zstd))
	if _, err := w.Write(rows); err != nil {
		fail("parquet write: %v", err)
	}
	if err := w.Close(); err != nil {
		fail("parquet close: %v", err)
	}
	size := buf.Len()

	r := parquet.NewGenericReader[pqRow](bytes.NewReader(buf.Bytes()))
	defer r.Close()
	got := make([]pqRow, len(rows))
	n := 0
	for n < len(got) {
		k, err := r.Read(got[n:])
		n += k
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail("parquet read: %v", err)
		}
	}
	exact := n == len(rows)
	for i := 0; exact && i < n; i++ {
		exact = got[i].Series == rows[i].Series && got[i].Ts == rows[i].Ts && same(got[i].Value, rows[i].Value)
	}
	return size, exact
}

// loadCSV reads a `series,ts_ms,value` file. Each series is sorted by time and
// de-duplicated keeping the last row of a repeated timestamp (the raw files repeat the DST
// hour), the way the pipeline keeps the latest arrival. Keys are an FNV-64a hash of the
// name, in key order.
func loadCSV(path string) (dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return dataset{}, err
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.ReuseRecord = true
	if _, err := cr.Read(); err != nil {
		return dataset{}, err
	}
	type pt struct {
		ts int64
		v  float64
	}
	by := map[string][]pt{}
	var names []string
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return dataset{}, err
		}
		ts, err := strconv.ParseInt(rec[1], 10, 64)
		if err != nil {
			return dataset{}, err
		}
		v, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			return dataset{}, err
		}
		if _, ok := by[rec[0]]; !ok {
			names = append(names, strings.Clone(rec[0]))
		}
		by[rec[0]] = append(by[rec[0]], pt{ts, v})
	}
	d := dataset{name: filepath.Base(path), real: true}
	for _, name := range names {
		pts := by[name]
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].ts < pts[j].ts })
		h := fnv.New64a()
		h.Write([]byte(name))
		s := series{key: columnar.SeriesKey{Org: 1, Metric: h.Sum64()}, name: name}
		for _, p := range pts {
			if n := len(s.ts); n > 0 && s.ts[n-1] == p.ts {
				s.vals[n-1] = p.v
				continue
			}
			s.ts = append(s.ts, p.ts)
			s.vals = append(s.vals, p.v)
		}
		d.series = append(d.series, s)
	}
	sort.Slice(d.series, func(i, j int) bool { return d.series[i].key.Less(d.series[j].key) })
	return d, nil
}

// agentMix is a synthetic one-second agent: nSeries series of nPoints points, one a
// second, with the value shapes a host agent reports. Fixed seed, so every run measures
// the same points.
func agentMix(nSeries, nPoints int) dataset {
	rng := rand.New(rand.NewPCG(2026, 11))
	d := dataset{name: "synthetic agent mix 1s"}
	t0 := int64(1_790_000_000_000)
	for i := range nSeries {
		s := series{key: columnar.SeriesKey{Org: uint32(1 + i%5), Metric: uint64(i % 97), Context: uint64(i)}}
		s.ts = make([]int64, nPoints)
		s.vals = make([]float64, nPoints)
		jitter := i%5 == 0 // some agents stamp with the collection time, not the tick
		kind := i % 20
		v := float64(rng.IntN(1 << 20))
		for j := range nPoints {
			t := t0 + int64(j)*1000
			if jitter {
				t += rng.Int64N(15)
			}
			s.ts[j] = t
			switch {
			case kind < 5: // constant gauges: limits, up, cores
				s.vals[j] = float64(1 + i%8)
			case kind < 9: // monotonic counters: bytes, packets, requests
				v += float64(rng.IntN(5000))
				s.vals[j] = v
			case kind < 13: // percentages with 2 decimals
				s.vals[j] = math.Round((40+10*math.Sin(float64(j)/300)+rng.NormFloat64())*100) / 100
			case kind < 16: // integer gauges in pages: memory, disk
				s.vals[j] = float64(int64(v) + 4096*int64(rng.IntN(64)))
			case kind < 18: // rates computed in floating point
				s.vals[j] = float64(rng.IntN(3000)) / 3
			default: // latencies in seconds, full precision
				s.vals[j] = rng.ExpFloat64() * 0.05
			}
		}
		d.series = append(d.series, s)
	}
	sort.Slice(d.series, func(i, j int) bool { return d.series[i].key.Less(d.series[j].key) })
	d.name = "synthetic agent mix 1s"
	return d
}
