package main

import (
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tailor-metrics/tailor/columnar"
)

// The loaders turn each real data set into series the way the pipeline would see them:
// every series sorted by time, a repeated timestamp keeping its last row (the latest
// arrival wins), series in key order.

// point is one raw row of a series, before sorting.
type point struct {
	ts int64
	v  float64
}

// finish sorts raw rows by time, keeping the last row of a repeated timestamp.
func finish(key columnar.SeriesKey, name string, pts []point) series {
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].ts < pts[j].ts })
	s := series{key: key, name: name}
	for _, p := range pts {
		if n := len(s.ts); n > 0 && s.ts[n-1] == p.ts {
			s.vals[n-1] = p.v
			continue
		}
		s.ts = append(s.ts, p.ts)
		s.vals = append(s.vals, p.v)
	}
	return s
}

func sortSeries(d *dataset) {
	sort.Slice(d.series, func(i, j int) bool { return d.series[i].key.Less(d.series[j].key) })
}

// loadNAB reads a `series,ts_ms,value` file of ../shared/data/real. Keys are an FNV-64a
// hash of the name.
func loadNAB(path string) (dataset, error) {
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
	by := map[string][]point{}
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
		by[rec[0]] = append(by[rec[0]], point{ts, v})
	}
	d := dataset{name: filepath.Base(path), real: true}
	for _, name := range names {
		h := fnv.New64a()
		h.Write([]byte(name))
		d.series = append(d.series, finish(columnar.SeriesKey{Org: 1, Metric: h.Sum64()}, name, by[name]))
	}
	sortSeries(&d)
	return d, nil
}

// The raw files of ../shared/data/real/more, read as its convert.py reads them (see its
// README): org 1, metric 1 (bitbrains) or 2 (dctraces), context the series' number.

func gzLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), nil
}

// loadBitbrains reads the GWA-T-12 Bitbrains files: per VM a `;`-separated table whose
// first column is Unix seconds and whose other columns are one series each.
func loadBitbrains(dir string) (dataset, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, "bitbrains", "*.csv.gz"))
	if len(paths) == 0 {
		return dataset{}, fmt.Errorf("no bitbrains files in %s", dir)
	}
	vm := func(p string) int {
		n, _ := strconv.Atoi(strings.Split(filepath.Base(p), ".")[0])
		return n
	}
	sort.Slice(paths, func(i, j int) bool { return vm(paths[i]) < vm(paths[j]) })
	d := dataset{name: "bitbrains", real: true}
	for _, p := range paths {
		lines, err := gzLines(p)
		if err != nil {
			return dataset{}, err
		}
		cols := strings.Split(lines[0], ";")
		raw := make([][]point, len(cols)-1)
		for ln, line := range lines[1:] {
			if strings.TrimSpace(line) == "" {
				continue
			}
			f := strings.Split(line, ";")
			if len(f) != len(cols) {
				return dataset{}, fmt.Errorf("%s:%d: %d fields, header has %d", p, ln+2, len(f), len(cols))
			}
			sec, err := strconv.ParseInt(strings.TrimSpace(f[0]), 10, 64)
			if err != nil {
				return dataset{}, fmt.Errorf("%s:%d: %w", p, ln+2, err)
			}
			for j, x := range f[1:] {
				v, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
				if err != nil {
					return dataset{}, fmt.Errorf("%s:%d: %w", p, ln+2, err)
				}
				raw[j] = append(raw[j], point{sec * 1000, v})
			}
		}
		for j, pts := range raw {
			key := columnar.SeriesKey{Org: 1, Metric: 1, Context: uint64(len(d.series))}
			d.series = append(d.series, finish(key, fmt.Sprintf("vm%d %s", vm(p), strings.TrimSpace(cols[j+1])), pts))
		}
	}
	sortSeries(&d)
	return d, nil
}

// t0 is 2025-11-24T00:00:00Z in ms, where convert.py starts the traces that carry no
// timestamps.
const t0 = 1763942400000

// loadDCTraces reads the cluster traces: 8 Alibaba days of one row per 10 s, a Google
// month of one row per 300 s (neither with a timestamp column) and an Azure month whose
// first column is seconds from the trace start.
func loadDCTraces(dir string) (dataset, error) {
	d := dataset{name: "dctraces", real: true}
	rows := func(path string) ([]string, [][]string, error) {
		lines, err := gzLines(path)
		if err != nil {
			return nil, nil, err
		}
		var out [][]string
		for _, l := range lines[1:] {
			if l != "" {
				out = append(out, strings.Split(l, ","))
			}
		}
		return strings.Split(lines[0], ","), out, nil
	}
	add := func(name string, tsOf func(k int, row []string) (int64, error), header []string, rs [][]string, from int) error {
		for j := from; j < len(header); j++ {
			pts := make([]point, 0, len(rs))
			for k, r := range rs {
				ts, err := tsOf(k, r)
				if err != nil {
					return err
				}
				v, err := strconv.ParseFloat(r[j], 64)
				if err != nil {
					return fmt.Errorf("%s row %d: %w", name, k, err)
				}
				pts = append(pts, point{ts, v})
			}
			key := columnar.SeriesKey{Org: 1, Metric: 2, Context: uint64(len(d.series))}
			d.series = append(d.series, finish(key, name+" "+header[j], pts))
		}
		return nil
	}
	var header []string
	var all [][]string
	for day := 1; day <= 8; day++ {
		h, rs, err := rows(filepath.Join(dir, "dctraces", fmt.Sprintf("alibaba_day_%d.csv.gz", day)))
		if err != nil {
			return dataset{}, err
		}
		header, all = h, append(all, rs...)
	}
	every := func(step int64) func(int, []string) (int64, error) {
		return func(k int, _ []string) (int64, error) { return t0 + int64(k)*step, nil }
	}
	if err := add("alibaba2018", every(10_000), header, all, 0); err != nil {
		return dataset{}, err
	}
	h, rs, err := rows(filepath.Join(dir, "dctraces", "google_month.csv.gz"))
	if err != nil {
		return dataset{}, err
	}
	if err := add("google2019", every(300_000), h, rs, 0); err != nil {
		return dataset{}, err
	}
	h, rs, err = rows(filepath.Join(dir, "dctraces", "azure_month.csv.gz"))
	if err != nil {
		return dataset{}, err
	}
	secs := func(_ int, r []string) (int64, error) {
		s, err := strconv.ParseInt(r[0], 10, 64)
		return t0 + s*1000, err
	}
	if err := add("azure_v2", secs, h, rs, 1); err != nil {
		return dataset{}, err
	}
	sortSeries(&d)
	return d, nil
}
