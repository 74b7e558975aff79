package legacy

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/tailor-metrics/tailor/columnar"
)

type row struct {
	Org    uint32  `parquet:"org_id"`
	Metric uint64  `parquet:"metric_id"`
	Ctx    uint64  `parquet:"context_key"`
	Ts     int64   `parquet:"ts"`
	Value  float64 `parquet:"value"`
}

func (r row) key() pkey { return pkey{r.Org, r.Metric, r.Ctx, r.Ts} }

// writeRows writes rows as Parquet, perGroup rows a row group.
func writeRows[T any](t *testing.T, path string, rows []T, perGroup int) {
	t.Helper()
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[T](&buf)
	for i := 0; i < len(rows); i += perGroup {
		if _, err := w.Write(rows[i:min(i+perGroup, len(rows))]); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomRows(rng *rand.Rand, n int) []row {
	var out []row
	for range n {
		r := row{uint32(rng.IntN(5)), rng.Uint64() >> 62, uint64(rng.IntN(3)), rng.Int64N(1000) - 500, rng.NormFloat64()}
		out = append(out, r)
		if rng.IntN(10) == 0 {
			out = append(out, r) // a copy
		}
	}
	return out
}

// drain reads a source whole, checking that its runs are single series in order.
func drain(t *testing.T, s *Source) []row {
	t.Helper()
	var out []row
	for s.Next() {
		r := s.At()
		for i, ts := range r.Ts {
			out = append(out, row{r.Org, r.Metric, r.Context, ts, r.Values[i]})
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(out); i++ {
		if out[i].key().compare(out[i-1].key()) < 0 {
			t.Fatalf("row %d %+v after %+v", i, out[i], out[i-1])
		}
	}
	return out
}

func sameMultiset(t *testing.T, got, want []row) {
	t.Helper()
	sortRows := func(rs []row) {
		slices.SortFunc(rs, func(a, b row) int {
			return cmp.Or(a.key().compare(b.key()), cmp.Compare(math.Float64bits(a.Value), math.Float64bits(b.Value)))
		})
	}
	got, want = slices.Clone(got), slices.Clone(want)
	sortRows(got)
	sortRows(want)
	if !slices.Equal(got, want) {
		t.Fatalf("got %d rows, want %d (first differences: %v)", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []row) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("row %d: %+v vs %+v", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}

// TestParquetInOrder: shuffled rows over many row groups, sorted ones, and row groups
// that overlap come out as every row, in (series, ts) order, filtered by the scope.
func TestParquetInOrder(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(4, 4))
	rows := randomRows(rng, 3000)
	shuffled := slices.Clone(rows)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	sorted := slices.Clone(rows)
	slices.SortStableFunc(sorted, func(a, b row) int { return a.key().compare(b.key()) })
	writeRows(t, filepath.Join(dir, "shuffled.parquet"), shuffled, 97)
	writeRows(t, filepath.Join(dir, "sorted.parquet"), sorted, 101)
	for _, name := range []string{"shuffled", "sorted"} {
		s, err := OpenParquet([]string{filepath.Join(dir, name+".parquet")}, ParquetOptions{Filter: All})
		if err != nil {
			t.Fatal(err)
		}
		sameMultiset(t, drain(t, s), rows)
	}
	// Two files at once, filtered: ts inside [-100, 100], orgs 1 and 3, metric not 0.
	f := Filter{MinTs: -100, MaxTs: 100, Keep: func(org uint32, m uint64) bool { return (org == 1 || org == 3) && m != 0 },
		Orgs: func(lo, hi uint32) bool { return lo <= 3 && hi >= 1 }}
	s, err := OpenParquet([]string{filepath.Join(dir, "shuffled.parquet"), filepath.Join(dir, "sorted.parquet")}, ParquetOptions{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	var want []row
	for _, r := range append(slices.Clone(rows), rows...) {
		if f.keep(r.Org, r.Metric, r.Ts) {
			want = append(want, r)
		}
	}
	sameMultiset(t, drain(t, s), want)
	if st := s.Stats(); st.RowGroupsSkipped == 0 || st.Files != 2 {
		t.Fatalf("stats %+v: the sorted file's row groups outside orgs 1-3 should be skipped", st)
	}
	// The merge of overlapping runs past the bound is refused, for the SQL to run.
	_, err = OpenParquet([]string{filepath.Join(dir, "shuffled.parquet")}, ParquetOptions{Filter: All, MaxRows: 500})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("MaxRows 500 over shuffled row groups: %v, want ErrUnsupported", err)
	}
}

// TestParquetTypes: narrower and signed integer columns and FLOAT values are read as
// DuckDB casts them; NULLs, timestamps and missing columns are left to the SQL; a
// value that does not fit fails naming where.
func TestParquetTypes(t *testing.T) {
	dir := t.TempDir()
	type narrow struct {
		Org    int64   `parquet:"org"`
		Metric int32   `parquet:"metric_id"`
		Ctx    uint32  `parquet:"context_key"`
		Ts     int32   `parquet:"ts"`
		Value  float32 `parquet:"value"`
	}
	p := filepath.Join(dir, "narrow.parquet")
	writeRows(t, p, []narrow{{2, 5, 7, -3, 1.5}, {1, 6, 8, 4, float32(math.Inf(-1))}}, 10)
	s, err := OpenParquet([]string{p}, ParquetOptions{Columns: map[string]string{"org_id": "org"}, Filter: All})
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, s)
	want := []row{{1, 6, 8, 4, math.Inf(-1)}, {2, 5, 7, -3, 1.5}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	bad := filepath.Join(dir, "negative.parquet")
	writeRows(t, bad, []narrow{{-1, 5, 7, 1, 1}}, 10)
	s, err = OpenParquet([]string{bad}, ParquetOptions{Columns: map[string]string{"org_id": "org"}, Filter: All})
	if err != nil {
		t.Fatal(err)
	}
	for s.Next() {
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), `row group 0 row 0: column "org_id" value -1 does not fit UINTEGER`) {
		t.Fatalf("negative org: %v", err)
	}
	s.Close()

	type nulls struct {
		Org    uint32   `parquet:"org_id"`
		Metric uint64   `parquet:"metric_id"`
		Ctx    uint64   `parquet:"context_key"`
		Ts     int64    `parquet:"ts"`
		Value  *float64 `parquet:"value,optional"`
	}
	one := 1.0
	writeRows(t, filepath.Join(dir, "nulls.parquet"), []nulls{{1, 1, 1, 1, &one}, {1, 1, 1, 2, nil}}, 10)
	type stamps struct {
		Org    uint32    `parquet:"org_id"`
		Metric uint64    `parquet:"metric_id"`
		Ctx    uint64    `parquet:"context_key"`
		Ts     time.Time `parquet:"ts,timestamp(millisecond)"`
		Value  float64   `parquet:"value"`
	}
	writeRows(t, filepath.Join(dir, "stamps.parquet"), []stamps{{1, 1, 1, time.UnixMilli(5), 1}}, 10)
	writeRows(t, filepath.Join(dir, "missing.parquet"), []narrow{{1, 1, 1, 1, 1}}, 10) // no org_id
	for _, name := range []string{"nulls", "stamps", "missing"} {
		if _, err := OpenParquet([]string{filepath.Join(dir, name+".parquet")}, ParquetOptions{Filter: All}); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("%s: %v, want ErrUnsupported", name, err)
		}
	}
}

// TestCSV: a file parsed in several slices comes out whole and sorted, and a bad row
// fails naming its line, wherever it is.
func TestCSV(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	var b bytes.Buffer
	b.WriteString("\ufeff" + columnar.CSVHeader + "\r\n\r\n")
	var want []row
	for b.Len() < 3*csvChunkBytes {
		r := row{uint32(rng.IntN(5)), rng.Uint64(), uint64(rng.IntN(9)), rng.Int64N(1 << 40), []float64{rng.NormFloat64(), math.NaN(), math.Copysign(0, -1), math.Inf(1)}[rng.IntN(4)]}
		want = append(want, r)
		b.Write(columnar.AppendCSVPoint(nil, columnar.SeriesKey{Org: r.Org, Metric: r.Metric, Context: r.Ctx}, r.Ts, r.Value))
	}
	good := filepath.Join(dir, "good.csv")
	if err := os.WriteFile(good, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenCSV(good, All)
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, s)
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	sameBits := func(rs []row) []row {
		out := slices.Clone(rs)
		for i := range out {
			out[i].Value = math.Float64frombits(math.Float64bits(out[i].Value)) // NaN payloads compare by bits below
		}
		return out
	}
	gb, wb := sameBits(got), sameBits(want)
	key := func(a, b row) int {
		return cmp.Or(a.key().compare(b.key()), cmp.Compare(math.Float64bits(a.Value), math.Float64bits(b.Value)))
	}
	slices.SortFunc(gb, key)
	slices.SortFunc(wb, key)
	for i := range gb {
		if gb[i].key() != wb[i].key() || math.Float64bits(gb[i].Value) != math.Float64bits(wb[i].Value) {
			t.Fatalf("row %d: %+v, want %+v", i, gb[i], wb[i])
		}
	}
	// A bad row in the last slice: its line is the header, the empty line, and the rows.
	lines := strings.Split(b.String(), "\n")
	n := len(lines) - 5
	lines[n] = "1,2,3,4,not-a-number"
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCSV(bad, All); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d:", n+1)) {
		t.Fatalf("bad row on line %d: %v", n+1, err)
	}
	hdr := filepath.Join(dir, "header.csv")
	if err := os.WriteFile(hdr, []byte("a,b\n1,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCSV(hdr, All); err == nil || !strings.Contains(err.Error(), "line 1: header") {
		t.Fatalf("bad header: %v", err)
	}
}
