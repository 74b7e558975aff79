package realdata

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/tailor-metrics/tailor/columnar"
)

// More reads the two sets of dir/more from their raw files, as more/convert.py reads
// them: bitbrains, then dctraces. Keys are org 1, metric 1 (bitbrains) or 2 (dctraces),
// context the series' number in convert.py's order, which is also its series.txt. A set
// whose files are missing is an error that wraps fs.ErrNotExist.
func More(dir string) ([]Set, error) {
	more := filepath.Join(dir, "more")
	bb, err := bitbrains(filepath.Join(more, "bitbrains"))
	if err != nil {
		return nil, fmt.Errorf("read bitbrains: %w", err)
	}
	dc, err := dctraces(filepath.Join(more, "dctraces"))
	if err != nil {
		return nil, fmt.Errorf("read dctraces: %w", err)
	}
	return []Set{bb, dc}, nil
}

// bitbrains reads the GWA-T-12 Bitbrains files N.csv.gz, one per VM in VM order: a
// `;`-separated table whose first column is Unix seconds (its header says ms; the values
// are seconds) and whose other columns are one series each, named "vmN <column>".
func bitbrains(dir string) (Set, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.csv.gz"))
	if err != nil {
		return Set{}, err
	}
	if len(paths) == 0 {
		return Set{}, fmt.Errorf("no *.csv.gz in %s: %w", dir, fs.ErrNotExist)
	}
	vms := make(map[string]int, len(paths))
	for _, p := range paths {
		n, err := strconv.Atoi(strings.Split(filepath.Base(p), ".")[0])
		if err != nil {
			return Set{}, fmt.Errorf("%s: file name is not a VM number: %w", p, err)
		}
		vms[p] = n
	}
	slices.SortFunc(paths, func(a, b string) int { return cmp.Compare(vms[a], vms[b]) })
	set := Set{Name: "bitbrains"}
	for _, p := range paths {
		t, err := readTable(p, ";")
		if err != nil {
			return Set{}, err
		}
		ts := make([]int64, len(t.rows))
		for k := range t.rows {
			sec, err := t.int(k, 0)
			if err != nil {
				return Set{}, err
			}
			ts[k] = sec * 1000
		}
		cols, err := t.columns(1)
		if err != nil {
			return Set{}, err
		}
		for j, vals := range cols {
			key := columnar.SeriesKey{Org: 1, Metric: 1, Context: uint64(len(set.Series))}
			set.Series = append(set.Series, newSeries(key, fmt.Sprintf("vm%d %s", vms[p], t.header[1+j]), ts, vals))
		}
	}
	sortByKey(set.Series)
	return set, nil
}

// t0 is 2025-11-24T00:00:00Z in ms, where convert.py starts the traces that carry no
// timestamps.
const t0 = 1763942400000

// dctraces reads the cluster traces: 8 Alibaba 2018 days of one row per 10 s and a Google
// 2019 month of one row per 300 s, neither with a timestamp column, then an Azure v2 month
// whose first column is seconds from the trace start. Every other column is one series,
// named for its trace and column.
func dctraces(dir string) (Set, error) {
	set := Set{Name: "dctraces"}
	add := func(trace string, names []string, cols [][]float64, ts []int64) {
		for j, vals := range cols {
			key := columnar.SeriesKey{Org: 1, Metric: 2, Context: uint64(len(set.Series))}
			set.Series = append(set.Series, newSeries(key, trace+" "+names[j], ts, vals))
		}
	}
	every := func(n int, step int64) []int64 {
		ts := make([]int64, n)
		for k := range ts {
			ts[k] = t0 + int64(k)*step
		}
		return ts
	}

	// The Alibaba days are one trace: their columns are concatenated.
	var aliNames []string
	var ali [][]float64
	for day := 1; day <= 8; day++ {
		t, err := readTable(filepath.Join(dir, fmt.Sprintf("alibaba_day_%d.csv.gz", day)), ",")
		if err != nil {
			return Set{}, err
		}
		if ali == nil {
			aliNames, ali = t.header, make([][]float64, len(t.header))
		} else if !slices.Equal(t.header, aliNames) {
			return Set{}, fmt.Errorf("%s: header %q, day 1 has %q", t.path, t.header, aliNames)
		}
		cols, err := t.columns(0)
		if err != nil {
			return Set{}, err
		}
		for j := range ali {
			ali[j] = append(ali[j], cols[j]...)
		}
	}
	add("alibaba2018", aliNames, ali, every(len(ali[0]), 10_000))

	g, err := readTable(filepath.Join(dir, "google_month.csv.gz"), ",")
	if err != nil {
		return Set{}, err
	}
	cols, err := g.columns(0)
	if err != nil {
		return Set{}, err
	}
	add("google2019", g.header, cols, every(len(g.rows), 300_000))

	az, err := readTable(filepath.Join(dir, "azure_month.csv.gz"), ",")
	if err != nil {
		return Set{}, err
	}
	ts := make([]int64, len(az.rows))
	for k := range az.rows {
		sec, err := az.int(k, 0)
		if err != nil {
			return Set{}, err
		}
		ts[k] = t0 + sec*1000
	}
	if cols, err = az.columns(1); err != nil {
		return Set{}, err
	}
	add("azure_v2", az.header[1:], cols, ts)
	sortByKey(set.Series)
	return set, nil
}

// table is a gzipped CSV-like file: a header and rows of as many fields, every field
// with its surrounding white space trimmed (convert.py strips bitbrains' fields, and
// Python's float and int ignore surrounding white space). Blank lines are left out.
type table struct {
	path   string
	header []string
	rows   [][]string
	lines  []int // the line number of each row, for errors
}

func readTable(path, sep string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t := &table{path: path}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20) // the longest line of the raw files is under 300 bytes
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		fields := strings.Split(sc.Text(), sep)
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if t.header == nil {
			t.header = fields
			continue
		}
		if len(fields) != len(t.header) {
			return nil, fmt.Errorf("%s:%d: %d fields, header has %d", path, line, len(fields), len(t.header))
		}
		t.rows = append(t.rows, fields)
		t.lines = append(t.lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if t.header == nil {
		return nil, fmt.Errorf("%s: no header", path)
	}
	return t, nil
}

// int parses field j of row k as an integer.
func (t *table) int(k, j int) (int64, error) {
	n, err := strconv.ParseInt(t.rows[k][j], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s:%d: %s: %w", t.path, t.lines[k], t.header[j], err)
	}
	return n, nil
}

// columns parses the columns from j on.
func (t *table) columns(from int) ([][]float64, error) {
	var cols [][]float64
	for j := from; j < len(t.header); j++ {
		vals, err := t.floats(j)
		if err != nil {
			return nil, err
		}
		cols = append(cols, vals)
	}
	return cols, nil
}

// floats parses column j.
func (t *table) floats(j int) ([]float64, error) {
	out := make([]float64, len(t.rows))
	for k, r := range t.rows {
		v, err := strconv.ParseFloat(r[j], 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", t.path, t.lines[k], t.header[j], err)
		}
		out[k] = v
	}
	return out, nil
}
