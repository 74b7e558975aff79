package realdata

import (
	"bytes"
	"compress/gzip"
	"errors"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func gz(t *testing.T, text string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func requireSeries(t *testing.T, got Series, key columnar.SeriesKey, name string, ts []int64, vals []float64) {
	t.Helper()
	if got.Key != key || got.Name != name || !slices.Equal(got.Ts, ts) || !slices.Equal(got.Values, vals) {
		t.Fatalf("got %v %q %v %v, want %v %q %v %v", got.Key, got.Name, got.Ts, got.Values, key, name, ts, vals)
	}
}

// TestNABLastRowWins: rows out of time order are sorted, a repeated timestamp keeps its
// last row (the DST hour of the NAB files), and series come in key order.
func TestNABLastRowWins(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.csv"), []byte("series,ts_ms,value\n"+
		"s/one,3000,3\ns/one,1000,1\ns/one,2000,20\ns/one,2000,21\ns/one,2000,22\n"+
		"s/two,5,0.5\n"))
	write(t, filepath.Join(dir, "a.csv"), []byte("series,ts_ms,value\nx,1,NaN\n"))
	sets, err := NAB(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0].Name != "a.csv" || sets[1].Name != "b.csv" {
		t.Fatalf("sets %+v, want a.csv then b.csv", sets)
	}
	key := func(name string) columnar.SeriesKey {
		h := fnv.New64a()
		h.Write([]byte(name))
		return columnar.SeriesKey{Org: 1, Metric: h.Sum64(), Context: uint64(len(name))}
	}
	b := sets[1].Series
	if len(b) != 2 || !b[0].Key.Less(b[1].Key) {
		t.Fatalf("series not in key order: %+v", b)
	}
	for _, s := range b {
		switch s.Name {
		case "s/one":
			requireSeries(t, s, key("s/one"), "s/one", []int64{1000, 2000, 3000}, []float64{1, 22, 3})
		case "s/two":
			requireSeries(t, s, key("s/two"), "s/two", []int64{5}, []float64{0.5})
		default:
			t.Fatalf("series %q", s.Name)
		}
	}

	if sets, err := NAB(t.TempDir()); err != nil || len(sets) != 0 {
		t.Fatalf("empty dir: %d sets, %v; want none and no error", len(sets), err)
	}
	write(t, filepath.Join(dir, "c.csv"), []byte("series,ts_ms,value\nx,1,one\n"))
	if _, err := NAB(dir); err == nil {
		t.Fatal("a value that is not a number loaded")
	}
}

// TestBitbrainsLastRowWins: the raw files' layout (`;` and tabs, seconds), VMs in number
// order, not name order, context numbering across files, and the last row of a repeated
// timestamp.
func TestBitbrainsLastRowWins(t *testing.T) {
	dir := t.TempDir()
	bb := filepath.Join(dir, "bitbrains")
	head := "Timestamp [ms];\tCPU cores;\tCPU usage [%]\r\n"
	write(t, filepath.Join(bb, "10.csv.gz"), gz(t, head+"20;\t4;\t0.5\r\n10;\t4;\t0.25\r\n20;\t4;\t0.75\r\n\r\n"))
	write(t, filepath.Join(bb, "2.csv.gz"), gz(t, head+"7;\t2;\t1.5\n"))
	set, err := bitbrains(bb)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Series) != 4 {
		t.Fatalf("%d series, want 4", len(set.Series))
	}
	k := func(ctx uint64) columnar.SeriesKey { return columnar.SeriesKey{Org: 1, Metric: 1, Context: ctx} }
	requireSeries(t, set.Series[0], k(0), "vm2 CPU cores", []int64{7000}, []float64{2})
	requireSeries(t, set.Series[1], k(1), "vm2 CPU usage [%]", []int64{7000}, []float64{1.5})
	requireSeries(t, set.Series[2], k(2), "vm10 CPU cores", []int64{10_000, 20_000}, []float64{4, 4})
	requireSeries(t, set.Series[3], k(3), "vm10 CPU usage [%]", []int64{10_000, 20_000}, []float64{0.25, 0.75})

	if _, err := More(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("More without files: %v, want fs.ErrNotExist", err)
	}
}

// TestDir: $TAILOR_REAL_DATA wins; else shared/data/real beside the module root, from this
// package's directory two levels below it.
func TestDir(t *testing.T) {
	t.Setenv("TAILOR_REAL_DATA", "")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(wd, "..", "..", "..", "shared", "data", "real")
	if got := Dir(); got != want {
		t.Fatalf("Dir() = %s, want %s", got, want)
	}
	t.Setenv("TAILOR_REAL_DATA", "/elsewhere")
	if got := Dir(); got != "/elsewhere" {
		t.Fatalf("Dir() = %s with TAILOR_REAL_DATA set", got)
	}
}
