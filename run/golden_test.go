//go:build duckdb_arrow

package run

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/ingest/workload"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden-parts.txt (only on purpose: say why in the commit)")

const goldenParts = "testdata/golden-parts.txt"

// TestGoldenPartSHA256s pins the bytes of a run's outputs across changes of the code: a
// fixed workload (late and early points, redeliveries with corrections, series long
// enough for sampled estimates, the generator's mix of value kinds) run with the
// defaults must publish parts whose keys and SHA-256s, as the manifests record them, are
// those in testdata/golden-parts.txt. Faster code must not change a byte; a change of the
// format or of the writer's choices updates the file with -update-golden, deliberately,
// with the reason in the commit.
func TestGoldenPartSHA256s(t *testing.T) {
	ctx := context.Background()
	st := storage.NewMem("golden")
	lateWorkload(t, st, 3, 16)
	spec := workload.Default()
	spec.Series, spec.PointsPerSeries, spec.Partitions, spec.Seed = 300, 2500, 4, 7
	gen, err := workload.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.WriteSegments(context.Background(), st, 2000, nil); err != nil {
		t.Fatal(err)
	}
	opt := AllOptions{RunOptions: RunOptions{Store: st, Arrival: testArrival(), Engine: query.Options{Threads: 1, TempDir: t.TempDir()}}, Parallel: 2}
	if _, err := RunAll(ctx, opt); err != nil {
		t.Fatal(err)
	}
	ms, err := Published(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, m := range ms {
		for _, p := range append(slices.Clone(m.Parts), m.LateParts...) {
			lines = append(lines, fmt.Sprintf("%s %s %d points", p.Key, p.SHA256, p.Points))
		}
	}
	slices.Sort(lines)
	got := strings.Join(lines, "\n") + "\n"
	if *updateGolden {
		if err := os.WriteFile(goldenParts, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenParts)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 20 {
		t.Fatalf("only %d parts: the workload should publish many runs", len(lines))
	}
	if got != string(want) {
		wantLines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n")
		for i, l := range lines {
			if i >= len(wantLines) || l != wantLines[i] {
				t.Fatalf("part %d of %d: %s, %s has %d lines, there: %q (run with -update-golden only if the change is meant)", i, len(lines), l, filepath.Base(goldenParts), len(wantLines), wantLines[min(i, len(wantLines)-1)])
			}
		}
		t.Fatalf("%d parts, %s has %d", len(lines), goldenParts, len(wantLines))
	}
}
