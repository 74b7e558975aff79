// Package realdata loads the real metric data beside the repository
// (../shared/data/real): the NAB CSVs, and the bitbrains and dctraces sets of more/, read
// from their raw files as more/convert.py reads them (see more/README.md there).
//
// Every loader gives series the way the pipeline would see them: each series sorted by
// time, a repeated timestamp keeping its last row (the latest arrival wins; the NAB files
// repeat the spring-forward DST hour, two bitbrains files repeat rows), and the series of
// a set sorted by key. The encoder's tests and bench/codec read the data through here, so
// that they measure the same points.
//
// The package has no testing.TB helper, so that bench/codec, a main program, does not
// link the testing package; tests use realdatatest.
package realdata

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tailor-metrics/tailor/columnar"
)

// Series is one series of a set: sorted by time, timestamps unique.
type Series struct {
	Key columnar.SeriesKey
	// Name is the series' name in the source: NAB's series column, or what
	// more/convert.py writes to series.txt ("vm1 CPU cores", "alibaba2018 net_in").
	Name   string
	Ts     []int64 // Unix milliseconds
	Values []float64
}

// Set is one data set: a NAB CSV file, bitbrains or dctraces.
type Set struct {
	// Name is the NAB file's base name ("nab_realTweets.csv"), "bitbrains" or "dctraces".
	Name   string
	Series []Series // in key order
}

// modulePath is the module whose root the data lies beside. Dir looks for its go.mod by
// name, because bench/codec and the other benchmark modules have a go.mod of their own
// below the root.
const modulePath = "github.com/tailor-metrics/tailor"

// Dir is where the real data lives: $TAILOR_REAL_DATA if set, else shared/data/real
// beside the root of the Tailor module found by walking up from the working directory
// (tests run in their package's directory, at any depth). Outside the repository it is
// ../shared/data/real, which the loaders then report as missing.
func Dir() string {
	if d := os.Getenv("TAILOR_REAL_DATA"); d != "" {
		return d
	}
	rel := filepath.Join("..", "shared", "data", "real")
	wd, err := os.Getwd()
	if err != nil {
		return rel
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isModuleRoot(d) {
			return filepath.Join(d, rel)
		}
		if filepath.Dir(d) == d {
			return rel
		}
	}
}

// isModuleRoot reports whether dir holds the go.mod of modulePath.
func isModuleRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == modulePath
		}
	}
	return false
}

// Load reads every set of dir: each NAB CSV (in file name order), then bitbrains and
// dctraces.
func Load(dir string) ([]Set, error) {
	nab, err := NAB(dir)
	if err != nil {
		return nil, err
	}
	more, err := More(dir)
	if err != nil {
		return nil, err
	}
	return append(nab, more...), nil
}

// newSeries turns the raw rows of one series into a Series: sorted by time, a repeated
// timestamp keeping its last row. ts and vals are rows in file order; they are not
// modified.
func newSeries(key columnar.SeriesKey, name string, ts []int64, vals []float64) Series {
	if len(ts) != len(vals) {
		panic(fmt.Sprintf("BUG: %d timestamps, %d values", len(ts), len(vals)))
	}
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	// Stable, so that rows of one timestamp stay in file order and the last one wins.
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case ts[a] < ts[b]:
			return -1
		case ts[a] > ts[b]:
			return 1
		}
		return 0
	})
	s := Series{Key: key, Name: name, Ts: make([]int64, 0, len(ts)), Values: make([]float64, 0, len(ts))}
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

func sortByKey(series []Series) {
	slices.SortFunc(series, func(a, b Series) int { return a.Key.Compare(b.Key) })
}
