package realdata

import (
	"encoding/csv"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tailor-metrics/tailor/columnar"
)

// NAB reads every *.csv of dir (the NAB files, header `series,ts_ms,value`), one set per
// file in file name order. Series keys are org 1, metric the FNV-64a hash of the name,
// context the name's length. A directory without CSV files gives no sets and no error:
// callers decide whether the data must be there. The first file that fails to parse
// fails the load.
func NAB(dir string) ([]Set, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil {
		return nil, fmt.Errorf("list NAB files in %s: %w", dir, err)
	}
	// Glob returns the names sorted, so the sets come in file name order.
	var sets []Set
	for _, p := range paths {
		s, err := readNAB(p)
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	return sets, nil
}

func readNAB(path string) (Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return Set{}, fmt.Errorf("read NAB file: %w", err)
	}
	defer f.Close()
	s, err := parseNAB(f)
	if err != nil {
		return Set{}, fmt.Errorf("read NAB file %s: %w", path, err)
	}
	s.Name = filepath.Base(path)
	return s, nil
}

// parseNAB reads one NAB CSV. Its rows are grouped by series, but a series' rows need not
// be in time order (machine_temperature_system_failure has one point out of order).
func parseNAB(r io.Reader) (Set, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	if _, err := cr.Read(); err != nil {
		return Set{}, fmt.Errorf("header: %w", err)
	}
	type rows struct {
		ts   []int64
		vals []float64
	}
	bySeries := map[string]*rows{}
	var names []string // in order of first appearance; the keys sort them at the end
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Set{}, err // csv's errors name the line
		}
		line, _ := cr.FieldPos(0)
		ts, err := strconv.ParseInt(rec[1], 10, 64)
		if err != nil {
			return Set{}, fmt.Errorf("line %d: ts_ms: %w", line, err)
		}
		v, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			return Set{}, fmt.Errorf("line %d: value: %w", line, err)
		}
		rs := bySeries[rec[0]]
		if rs == nil {
			// A copy, so that the map does not keep the whole line of the first row alive.
			name := strings.Clone(rec[0])
			rs = &rows{}
			bySeries[name] = rs
			names = append(names, name)
		}
		rs.ts = append(rs.ts, ts)
		rs.vals = append(rs.vals, v)
	}
	var s Set
	for _, name := range names {
		h := fnv.New64a()
		h.Write([]byte(name))
		// Context is the name's length, as the encoder's tests have keyed NAB series
		// since format v1 (bench/codec sets it to 0 for its figures; see there).
		key := columnar.SeriesKey{Org: 1, Metric: h.Sum64(), Context: uint64(len(name))}
		rs := bySeries[name]
		s.Series = append(s.Series, newSeries(key, name, rs.ts, rs.vals))
	}
	sortByKey(s.Series)
	return s, nil
}
