package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/cmd/tailor-batch/internal/pipeline"
	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/storage"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

type csvPoint struct {
	k  columnar.SeriesKey
	ts int64
	v  float64
}

// TestImportRunCatEdgeCases: import + run --all + cat give back exactly the
// de-duplicated, sorted points of the CSV, bit for bit.
func TestImportRunCatEdgeCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	specials := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, 5e-324, -5e-324, 2.2250738585072009e-308, math.MaxFloat64, -math.SmallestNonzeroFloat64, 0.1, 1e21, 1.7179869184e+10}
	var rows []csvPoint
	add := func(k columnar.SeriesKey, ts int64, v float64) { rows = append(rows, csvPoint{k, ts, v}) }
	maxKey := columnar.SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: math.MaxUint64}
	add(maxKey, 1763942400000, 42)                                      // single-point series, max ids
	add(columnar.SeriesKey{Org: 0, Metric: 1 << 63, Context: 0}, 0, -1) // ts 0
	for i, v := range specials {
		add(columnar.SeriesKey{Org: 7, Metric: 9, Context: 1}, 1763942400000+int64(i)*1000, v)
	}
	big := columnar.SeriesKey{Org: 3, Metric: 12345678901234567890, Context: 5}
	for i := 0; i < 40000; i++ {
		add(big, 1763942400000+int64(i)*15000, math.Round(rng.NormFloat64()*1e4)/100)
	}
	for i := 0; i < 3000; i++ {
		add(columnar.SeriesKey{Org: uint32(rng.IntN(200)), Metric: rng.Uint64(), Context: rng.Uint64N(4)}, 1763942400000+rng.Int64N(3*86400000), rng.Float64()*100)
	}
	// Later rows for an existing (series, ts) replace earlier ones.
	// (Never the special values' rows: their output is pinned below as literal text.)
	for i := 0; i < 500; i++ {
		r := rows[2+len(specials)+rng.IntN(len(rows)-2-len(specials))]
		add(r.k, r.ts, r.v+1)
	}
	add(big, 1763942400000, math.NaN())
	rng.Shuffle(len(rows)-501, func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })

	var csv bytes.Buffer
	csv.WriteString(columnar.CSVHeader + "\n")
	for _, r := range rows {
		csv.Write(columnar.AppendCSVPoint(nil, r.k, r.ts, r.v))
	}
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "points.csv")
	if err := os.WriteFile(csvPath, csv.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	store := "file://" + filepath.Join(dir, "store")
	if out, err := runCLI(t, "import", "--csv", csvPath, "--store", store, "--flush-payloads", "700"); err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "run", "--store", store, "--all", "--readers", "2", "--temp-dir", filepath.Join(dir, "tmp")); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	out, err := runCLI(t, "cat", "--store", store)
	if err != nil {
		t.Fatalf("cat: %v", err)
	}

	// Expected: the last row per (series, ts), sorted.
	type key struct {
		k  columnar.SeriesKey
		ts int64
	}
	last := map[key]float64{}
	for _, r := range rows {
		last[key{r.k, r.ts}] = r.v
	}
	want := make([]key, 0, len(last))
	for k := range last {
		want = append(want, k)
	}
	sort.Slice(want, func(i, j int) bool {
		if want[i].k != want[j].k {
			return want[i].k.Less(want[j].k)
		}
		return want[i].ts < want[j].ts
	})
	var exp strings.Builder
	exp.WriteString(columnar.CSVHeader + "\n")
	for _, k := range want {
		exp.Write(columnar.AppendCSVPoint(nil, k.k, k.ts, last[k]))
	}
	if out != exp.String() {
		gl, wl := strings.Split(out, "\n"), strings.Split(exp.String(), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("cat line %d: got %q, want %q (got %d lines, want %d)", i+1, gl[i], wl[i], len(gl), len(wl))
			}
		}
		t.Fatalf("cat: got %d lines, want %d", len(gl), len(wl))
	}
	// The special values and the extreme keys, as literal text: the shortest decimal that
	// reads back to the same bits, with NaN, ±Inf and -0 spelled out.
	pinned := []string{
		"0,9223372036854775808,0,0,-1",
		"7,9,1,1763942400000,NaN",
		"7,9,1,1763942401000,+Inf",
		"7,9,1,1763942402000,-Inf",
		"7,9,1,1763942403000,-0",
		"7,9,1,1763942404000,0",
		"7,9,1,1763942405000,5e-324",
		"7,9,1,1763942406000,-5e-324",
		"7,9,1,1763942407000,2.225073858507201e-308",
		"7,9,1,1763942408000,1.7976931348623157e+308",
		"7,9,1,1763942409000,-5e-324",
		"7,9,1,1763942410000,0.1",
		"7,9,1,1763942411000,1e+21",
		"7,9,1,1763942412000,1.7179869184e+10",
		"4294967295,18446744073709551615,18446744073709551615,1763942400000,42",
	}
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "7,9,1,") || strings.HasPrefix(l, "0,9223372036854775808,0,") || strings.HasPrefix(l, "4294967295,") {
			got = append(got, l)
		}
	}
	if strings.Join(got, "\n") != strings.Join(pinned, "\n") {
		t.Fatalf("cat's special lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(pinned, "\n"))
	}

	// A second run of the same inputs is skipped and leaves every byte as it was; a
	// forced one writes the same bytes again.
	before := seriesFiles(t, filepath.Join(dir, "store"))
	out2, err := runCLI(t, "run", "--store", store, "--all", "--json")
	if err != nil || !strings.Contains(out2, `"skipped": true`) || strings.Contains(out2, `"skipped": false`) {
		t.Fatalf("re-run: %v\n%s", err, out2)
	}
	if after := seriesFiles(t, filepath.Join(dir, "store")); !maps.Equal(before, after) {
		t.Fatal("a skipped re-run changed the series files")
	}
	if out, err := runCLI(t, "run", "--store", store, "--all", "--force", "--readers", "1", "--split-bytes", "4096", "--temp-dir", filepath.Join(dir, "tmp")); err != nil {
		t.Fatalf("forced re-run: %v\n%s", err, out)
	}
	if after := seriesFiles(t, filepath.Join(dir, "store")); !maps.Equal(before, after) {
		t.Fatal("a forced re-run with other readers and splits wrote other bytes")
	}
}

// seriesFiles returns every file under dir's series/ with its bytes.
func seriesFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(filepath.Join(dir, "series"), func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		out[path] = string(b)
		return err
	})
	if err != nil || len(out) == 0 {
		t.Fatalf("series files: %d, %v", len(out), err)
	}
	return out
}

func TestImportBadRowNamesLine(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.csv")
	os.WriteFile(p, []byte(columnar.CSVHeader+"\n1,2,3,4,5\n1,2,3,x,5\n"), 0o644)
	_, err := runCLI(t, "import", "--csv", p, "--store", dir+"/s")
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "ts") {
		t.Fatalf("err = %v, want line 3 and the ts field named", err)
	}
}

func TestRunCorruptSegmentNamesFileAndOffset(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.csv")
	var b strings.Builder
	b.WriteString(columnar.CSVHeader + "\n")
	// Two orgs, so two shards and at least two frames: one frame's damage costs only its
	// own points.
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&b, "%d,2,3,%d,%d\n", 1+i%2, 1763942400000+int64(i)*1000, i)
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	store := filepath.Join(dir, "s")
	if _, err := runCLI(t, "import", "--csv", p, "--store", store); err != nil {
		t.Fatal(err)
	}
	var seg string
	filepath.Walk(store, func(path string, info os.FileInfo, err error) error {
		if strings.HasSuffix(path, ".tseg") {
			seg = path
		}
		return nil
	})
	data, _ := os.ReadFile(seg)
	data[200] ^= 0xff // inside the first frame's compressed bytes
	os.WriteFile(seg, data, 0o644)
	_, err := runCLI(t, "run", "--store", store, "--all", "--temp-dir", filepath.Join(dir, "tmp"))
	if err == nil || !strings.Contains(err.Error(), ".tseg at byte") || !strings.Contains(err.Error(), "bad crc32c") || !strings.Contains(err.Error(), "--skip-corrupt") {
		t.Fatalf("err = %v, want the segment, byte offset and what was wrong named, and --skip-corrupt offered", err)
	}
	// Opted in, the run skips the bad frame, says so, and serves the other frames' points.
	out, err := runCLI(t, "run", "--store", store, "--all", "--skip-corrupt", "--json", "--temp-dir", filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatalf("run --skip-corrupt: %v", err)
	}
	var rep struct {
		Summary struct {
			Degraded int `json:"degraded"`
			Counts   struct {
				CorruptFrames uint64 `json:"corrupt_frames"`
				PointsOut     uint64 `json:"points_out"`
			} `json:"counts"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if s := rep.Summary; s.Degraded != 1 || s.Counts.CorruptFrames != 1 || s.Counts.PointsOut != 500 {
		t.Fatalf("summary %+v: want one degraded run that skipped one frame, and the other org's 500 points", s)
	}
	cat, err := runCLI(t, "cat", "--store", store)
	if err != nil || uint64(strings.Count(cat, "\n")-1) != rep.Summary.Counts.PointsOut {
		t.Fatalf("cat: %v, %d lines for %d points", err, strings.Count(cat, "\n")-1, rep.Summary.Counts.PointsOut)
	}
}

// TestDemoEndToEnd runs the demo (kfake → sink → run → cat → check) on a small workload.
func TestDemoEndToEnd(t *testing.T) {
	spec := workload.Default()
	spec.Series, spec.PointsPerSeries, spec.Redeliver = 300, 400, 0.05
	var progress bytes.Buffer
	store := t.TempDir()
	sum, err := runDemo(context.Background(), demoOptions{spec: spec, storeURL: store, flushPayloads: 150, jsonShare: 0.2, malformed: 3, parallel: 2}, &progress)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, progress.String())
	}
	if sum.Check != "passed" || sum.PointsOut != uint64(spec.Points()) || sum.DuplicatesRemove == 0 || sum.Rejected != 3 {
		t.Fatalf("summary %+v", sum)
	}
	// The legacy copy's injected differences are found, exactly.
	v := sum.Validation
	if v == nil || v.Found != "exactly the injected differences" || v.Diff.MissingInLegacy != demoDropped || v.Diff.ValueDiffers != demoChanged ||
		v.Diff.MissingInNew != 0 || v.Diff.Equal != uint64(spec.Points())-demoDropped-demoChanged || len(v.FailedOrgs) == 0 {
		t.Fatalf("validation %+v", v)
	}
	// The check must be able to fail: against another workload's points it reports diffs.
	other := spec
	other.Seed++
	gen, err := workload.New(other)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	res, err := pipeline.Check(context.Background(), st, gen, pipeline.Expect{
		PointsProduced: sum.PointsProduced, DuplicatesRemoved: sum.DuplicatesRemove, Rejected: sum.Rejected, Malformed: sum.Malformed,
	})
	if err != nil || res.Passed() || res.Diff.MissingInNew == 0 {
		t.Fatalf("check against another workload: %v, result %+v", err, res)
	}
}
