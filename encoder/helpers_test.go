package encoder

import (
	"bytes"
	"encoding/csv"
	"errors"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// testSeries is one series of test input.
type testSeries struct {
	Key    columnar.SeriesKey
	Tags   []string
	Ts     []int64
	Values []float64
}

// encodeFile writes series (already in key order) to a byte slice.
func encodeFile(t testing.TB, series []testSeries, opts ...Opt) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, opts...)
	for _, s := range series {
		if err := w.Append(s.Key, s.Tags, s.Ts, s.Values); err != nil {
			t.Fatalf("append %v: %v", s.Key, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := w.Stats().Bytes; got != int64(buf.Len()) {
		t.Fatalf("stats say %d bytes, wrote %d", got, buf.Len())
	}
	return buf.Bytes()
}

// decodeFile reads every series back.
func decodeFile(t testing.TB, b []byte) []testSeries {
	t.Helper()
	r, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	var out []testSeries
	it := r.Iterator(nil)
	for it.Next() {
		s := it.At()
		out = append(out, testSeries{
			Key:    s.Key,
			Tags:   append([]string(nil), s.Tags...),
			Ts:     append([]int64(nil), s.Ts...),
			Values: append([]float64(nil), s.Values...),
		})
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterate: %v", err)
	}
	return out
}

// requireSameSeries compares bit for bit: float64 bit patterns, not ==, so NaN payloads
// and -0.0 count.
func requireSameSeries(t testing.TB, want, got []testSeries) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("got %d series, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := &want[i], &got[i]
		if w.Key != g.Key {
			t.Fatalf("series %d: key %v, want %v", i, g.Key, w.Key)
		}
		if len(w.Tags) != len(g.Tags) {
			t.Fatalf("series %v: tags %q, want %q", w.Key, g.Tags, w.Tags)
		}
		for j := range w.Tags {
			if w.Tags[j] != g.Tags[j] {
				t.Fatalf("series %v: tags %q, want %q", w.Key, g.Tags, w.Tags)
			}
		}
		if len(w.Ts) != len(g.Ts) || len(g.Values) != len(g.Ts) {
			t.Fatalf("series %v: %d/%d points, want %d", w.Key, len(g.Ts), len(g.Values), len(w.Ts))
		}
		for j := range w.Ts {
			if w.Ts[j] != g.Ts[j] {
				t.Fatalf("series %v point %d: ts %d, want %d", w.Key, j, g.Ts[j], w.Ts[j])
			}
			if math.Float64bits(w.Values[j]) != math.Float64bits(g.Values[j]) {
				t.Fatalf("series %v point %d: value %#x, want %#x", w.Key, j, math.Float64bits(g.Values[j]), math.Float64bits(w.Values[j]))
			}
		}
	}
}

func roundTrip(t testing.TB, series []testSeries, opts ...Opt) []byte {
	t.Helper()
	b := encodeFile(t, series, opts...)
	requireSameSeries(t, series, decodeFile(t, b))
	return b
}

// realDataDir is where the real data lives: ../shared/data/real beside the repository
// (the NAB CSVs, and more/ with the bitbrains and dctraces sets), or $TAILOR_REAL_DATA.
func realDataDir() string {
	if d := os.Getenv("TAILOR_REAL_DATA"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "shared", "data", "real")
}

type nabFile struct {
	Name   string
	Series []testSeries
}

// realSets reads every real data set: each NAB CSV, then bitbrains and dctraces. Each
// series is sorted by time and de-duplicated keeping the last row of a timestamp (the
// raw files repeat the DST hour), the way the pipeline keeps the latest arrival. NAB
// series keys are an FNV hash of the name, sorted. Without the data the test is skipped,
// and under CI (the CI environment variable set) it fails: a CI run must not pass by
// testing nothing.
func realSets(t testing.TB) []nabFile {
	t.Helper()
	files := readNAB(func(path string, err error) { t.Fatalf("%s: %v", path, err) })
	more := readMore(func(path string, err error) {
		if len(files) > 0 || os.Getenv("CI") != "" {
			t.Fatalf("%s: %v", path, err)
		}
	})
	if len(files) == 0 || len(more) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but the real data is not in %s (set TAILOR_REAL_DATA)", realDataDir())
		}
		t.Skipf("no real data in %s", realDataDir())
	}
	return append(files, more...)
}

// loadNABQuiet loads the real data, or nothing when it is not there: for benchmarks and
// fuzz seeds, which must not depend on it.
func loadNABQuiet() []nabFile {
	return readNAB(func(string, error) {})
}

// readNAB parses every real-data CSV; a file that fails is reported to onErr and left out.
func readNAB(onErr func(path string, err error)) []nabFile {
	paths, _ := filepath.Glob(filepath.Join(realDataDir(), "*.csv"))
	var files []nabFile
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			onErr(p, err)
			continue
		}
		nf, err := parseNAB(f)
		f.Close()
		if err != nil {
			onErr(p, err)
			continue
		}
		nf.Name = filepath.Base(p)
		files = append(files, nf)
	}
	return files
}

func parseNAB(r io.Reader) (nabFile, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	if _, err := cr.Read(); err != nil {
		return nabFile{}, err
	}
	type pt struct {
		ts  int64
		v   float64
		ord int
	}
	bySeries := map[string][]pt{}
	var names []string
	for ord := 0; ; ord++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nabFile{}, err
		}
		ts, err := strconv.ParseInt(rec[1], 10, 64)
		if err != nil {
			return nabFile{}, err
		}
		v, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			return nabFile{}, err
		}
		if _, ok := bySeries[rec[0]]; !ok {
			names = append(names, rec[0])
		}
		bySeries[rec[0]] = append(bySeries[rec[0]], pt{ts, v, ord})
	}
	var nf nabFile
	for _, name := range names {
		pts := bySeries[name]
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].ts < pts[j].ts })
		var s testSeries
		h := fnv.New64a()
		h.Write([]byte(name))
		s.Key = columnar.SeriesKey{Org: 1, Metric: h.Sum64(), Context: uint64(len(name))}
		s.Tags = []string{"name:" + name}
		for _, p := range pts {
			if n := len(s.Ts); n > 0 && s.Ts[n-1] == p.ts {
				s.Values[n-1] = p.v // keep the last row of a repeated timestamp
				continue
			}
			s.Ts = append(s.Ts, p.ts)
			s.Values = append(s.Values, p.v)
		}
		nf.Series = append(nf.Series, s)
	}
	sort.Slice(nf.Series, func(i, j int) bool { return nf.Series[i].Key.Less(nf.Series[j].Key) })
	return nf, nil
}
