package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// TestImportFailsThenFixed: an import that fails at line N stores nothing and says so;
// after the file is fixed, import, run and cat give every point exactly once.
func TestImportFailsThenFixed(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "points.csv")
	store := "file://" + filepath.Join(dir, "store")
	var lines []string
	for i := range 5000 {
		k := columnar.SeriesKey{Org: uint32(i % 7), Metric: uint64(i % 5), Context: uint64(i % 3)}
		lines = append(lines, string(columnar.AppendCSVPoint(nil, k, 1763942400000+int64(i)*1000, float64(i)/4)))
	}
	write := func(bad int) {
		t.Helper()
		var b strings.Builder
		b.WriteString(columnar.CSVHeader + "\n")
		for i, l := range lines {
			if i == bad {
				l = "1,2,3,4,five\n"
			}
			b.WriteString(l)
		}
		if err := os.WriteFile(csvPath, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(4000) // line 4002: the header is line 1
	out, err := runCLI(t, "import", "--csv", csvPath, "--store", store, "--flush-payloads", "100")
	if err == nil || !strings.Contains(err.Error(), "line 4002: value") || !strings.Contains(err.Error(), "nothing was stored") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, "store", "segments")); err == nil && len(ents) > 0 {
		t.Fatalf("the failed import left %d entries under segments/", len(ents))
	}
	write(-1)
	if out, err := runCLI(t, "import", "--csv", csvPath, "--store", store, "--flush-payloads", "100"); err != nil || !strings.Contains(out, "imported 5000 rows") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "run", "--store", store, "--all", "--temp-dir", filepath.Join(dir, "tmp")); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	got, err := runCLI(t, "cat", "--store", store)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(lines)
	slices.SortFunc(want, func(a, b string) int {
		var ka, kb [4]int64
		fmt.Sscanf(a, "%d,%d,%d,%d", &ka[0], &ka[1], &ka[2], &ka[3])
		fmt.Sscanf(b, "%d,%d,%d,%d", &kb[0], &kb[1], &kb[2], &kb[3])
		return slices.Compare(ka[:], kb[:])
	})
	if exp := columnar.CSVHeader + "\n" + strings.Join(want, ""); got != exp {
		t.Fatalf("cat printed %d lines, want %d, each point once", strings.Count(got, "\n"), strings.Count(exp, "\n"))
	}
}

// TestImportFlagsOutOfRange: a topic or partition that segment keys cannot hold is a
// usage error naming the flag, before the store is touched.
func TestImportFlagsOutOfRange(t *testing.T) {
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "p.csv")
	if err := os.WriteFile(csvPath, []byte(columnar.CSVHeader+"\n1,2,3,4,5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--topic", "a/b"}, []string{`--topic: topic "a/b": character '/' at 1 is not allowed`}},
		{[]string{"--topic", strings.Repeat("t", 300)}, []string{"--topic: topic", "topic length 300 is larger than max allowed 249"}},
		{[]string{"--partition", "-1"}, []string{"--partition -1 is out of range"}},
	} {
		store := filepath.Join(dir, "store")
		_, err := runCLI(t, append([]string{"import", "--csv", csvPath, "--store", store}, tc.args...)...)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("import %.40q: err = %v, want %q", tc.args, err, w)
			}
		}
		if code := exitCode(err, io.Discard); code != 2 {
			t.Errorf("import %.40q: exit code %d, want 2 (usage)", tc.args, code)
		}
		if _, err := os.Stat(store); err == nil {
			t.Errorf("import %v created the store", tc.args)
		}
	}
}
