package encoder

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tailor-metrics/tailor/columnar"
)

// The two sets of ../shared/data/real/more, read from their raw files as its convert.py
// reads them (see its README): org 1, metric 1 (bitbrains) or 2 (dctraces), context the
// series' number; a repeated timestamp keeps its last row.

// readMore returns the bitbrains and dctraces sets, or what onErr was told about them.
func readMore(onErr func(path string, err error)) []nabFile {
	dir := filepath.Join(realDataDir(), "more")
	var out []nabFile
	for _, l := range []struct {
		name string
		load func(string) ([]testSeries, error)
	}{{"bitbrains", loadBitbrains}, {"dctraces", loadDCTraces}} {
		s, err := l.load(dir)
		if err != nil {
			onErr(filepath.Join(dir, l.name), err)
			continue
		}
		out = append(out, nabFile{Name: l.name, Series: s})
	}
	return out
}

// moreSeries sorts raw rows by time, keeping the last row of a repeated timestamp.
func moreSeries(key columnar.SeriesKey, ts []int64, vals []float64) testSeries {
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return ts[idx[a]] < ts[idx[b]] })
	s := testSeries{Key: key}
	for _, i := range idx {
		if n := len(s.Ts); n > 0 && s.Ts[n-1] == ts[i] {
			s.Values[n-1] = vals[i]
			continue
		}
		s.Ts = append(s.Ts, ts[i])
		s.Values = append(s.Values, vals[i])
	}
	return s
}

func gzLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n"), nil
}

// table is the columns of a CSV-like file: cols[j][k] is row k's field j.
func table(path, sep string) (header []string, cols [][]string, err error) {
	lines, err := gzLines(path)
	if err != nil {
		return nil, nil, err
	}
	header = strings.Split(lines[0], sep)
	cols = make([][]string, len(header))
	for ln, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Split(l, sep)
		if len(f) != len(header) {
			return nil, nil, fmt.Errorf("%s:%d: %d fields, header has %d", path, ln+2, len(f), len(header))
		}
		for j, x := range f {
			cols[j] = append(cols[j], strings.TrimSpace(x))
		}
	}
	return header, cols, nil
}

func parseFloats(xs []string) ([]float64, error) {
	out := make([]float64, len(xs))
	for i, x := range xs {
		v, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func loadBitbrains(dir string) ([]testSeries, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, "bitbrains", "*.csv.gz"))
	if len(paths) == 0 {
		return nil, fmt.Errorf("no files")
	}
	vm := func(p string) int {
		n, _ := strconv.Atoi(strings.Split(filepath.Base(p), ".")[0])
		return n
	}
	sort.Slice(paths, func(i, j int) bool { return vm(paths[i]) < vm(paths[j]) })
	var out []testSeries
	for _, p := range paths {
		_, cols, err := table(p, ";")
		if err != nil {
			return nil, err
		}
		ts := make([]int64, len(cols[0]))
		for i, x := range cols[0] {
			sec, err := strconv.ParseInt(x, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			ts[i] = sec * 1000
		}
		for _, c := range cols[1:] {
			vals, err := parseFloats(c)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			out = append(out, moreSeries(columnar.SeriesKey{Org: 1, Metric: 1, Context: uint64(len(out))}, ts, vals))
		}
	}
	sortSeries(out)
	return out, nil
}

// dcT0 is 2025-11-24T00:00:00Z in ms, where convert.py starts the traces that carry no
// timestamps.
const dcT0 = 1763942400000

func loadDCTraces(dir string) ([]testSeries, error) {
	var out []testSeries
	add := func(ts []int64, cols [][]string) error {
		for _, c := range cols {
			vals, err := parseFloats(c)
			if err != nil {
				return err
			}
			out = append(out, moreSeries(columnar.SeriesKey{Org: 1, Metric: 2, Context: uint64(len(out))}, ts, vals))
		}
		return nil
	}
	every := func(n int, step int64) []int64 {
		ts := make([]int64, n)
		for k := range ts {
			ts[k] = dcT0 + int64(k)*step
		}
		return ts
	}
	var ali [][]string
	for day := 1; day <= 8; day++ {
		_, cols, err := table(filepath.Join(dir, "dctraces", fmt.Sprintf("alibaba_day_%d.csv.gz", day)), ",")
		if err != nil {
			return nil, err
		}
		if ali == nil {
			ali = make([][]string, len(cols))
		}
		for j := range cols {
			ali[j] = append(ali[j], cols[j]...)
		}
	}
	if err := add(every(len(ali[0]), 10_000), ali); err != nil {
		return nil, err
	}
	_, cols, err := table(filepath.Join(dir, "dctraces", "google_month.csv.gz"), ",")
	if err != nil {
		return nil, err
	}
	if err := add(every(len(cols[0]), 300_000), cols); err != nil {
		return nil, err
	}
	_, cols, err = table(filepath.Join(dir, "dctraces", "azure_month.csv.gz"), ",")
	if err != nil {
		return nil, err
	}
	ts := make([]int64, len(cols[0]))
	for k, x := range cols[0] {
		s, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return nil, err
		}
		ts[k] = dcT0 + s*1000
	}
	if err := add(ts, cols[1:]); err != nil {
		return nil, err
	}
	sortSeries(out)
	return out, nil
}
