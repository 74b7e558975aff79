package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage/s3test"
)

// findFiles lists the files under dir whose names match pattern, sorted.
func findFiles(t *testing.T, dir, pattern string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if ok, _ := filepath.Match(pattern, info.Name()); ok && !info.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func copyFile(t *testing.T, from, to string, edit func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		b = edit(b)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// seriesCSV writes n series of 10 one-minute points each, from org first on.
func seriesCSV(t *testing.T, path string, first, n int) {
	t.Helper()
	var pts []csvPoint
	for s := first; s < first+n; s++ {
		for i := int64(0); i < 10; i++ {
			pts = append(pts, csvPoint{columnar.SeriesKey{Org: uint32(s), Metric: uint64(s) + 1, Context: 1}, 1763942400000 + i*60_000, float64(i)})
		}
	}
	writePointsCSV(t, path, pts)
}

// TestLsShowsGapsOverlapsAndRunStates damages a store in the ways ls must show: a
// deleted segment (a gap), a copied one (an overlap), a garbage one (unreadable), runs
// replaced by newer inputs (superseded), a killed run (incomplete), and manifests that
// mark a run degraded or superseded.
func TestLsShowsGapsOverlapsAndRunStates(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "store")
	store := "file://" + root
	a, b, c := filepath.Join(dir, "a.csv"), filepath.Join(dir, "b.csv"), filepath.Join(dir, "c.csv")
	seriesCSV(t, a, 0, 2)
	seriesCSV(t, b, 2, 1)
	seriesCSV(t, c, 10, 6)
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := runCLI(t, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	mustRun("import", "--csv", a, "--store", store)
	mustRun("run", "--store", store, "--all", "--temp-dir", t.TempDir())
	// More points of org 0's window: its run is replaced, org 1's is not.
	seriesCSV(t, b, 0, 1)
	mustRun("import", "--csv", b, "--store", store)
	mustRun("run", "--store", store, "--all", "--temp-dir", t.TempDir())

	// Partition 1: three segments, the middle one deleted, the first copied under
	// another key.
	mustRun("import", "--csv", c, "--store", store, "--partition", "1", "--flush-payloads", "2")
	p1 := findFiles(t, root, "import-1-*.tseg")
	if len(p1) != 3 {
		t.Fatalf("partition 1 has %d segments, want 3", len(p1))
	}
	os.Remove(p1[1])
	copyFile(t, p1[0], strings.Replace(p1[0], "-00000000000000000000.tseg", "-00000000000000000005.tseg", 1), nil)
	// Partition 2: one segment of garbage.
	garbage := filepath.Join(root, "segments/00/2025112400/import-2-00000000000000000007.tseg")
	copyFile(t, a, garbage, nil)

	// A killed run (a part, no manifest), and manifests marked degraded and superseded
	// as the manifest rule writes them.
	win := "20251124T0000Z-4h"
	cur := findFiles(t, filepath.Join(root, "series/org-mod-1", win), "_MANIFEST.json")
	if len(cur) != 1 {
		t.Fatalf("org-mod-1 has %d manifests", len(cur))
	}
	part := findFiles(t, filepath.Dir(cur[0]), "part-*.tsf")[0]
	copyFile(t, part, filepath.Join(root, "series/org-mod-1", win, "00000000deadbeef/part-00000.tsf"), nil)
	mark := func(id, field string) {
		copyFile(t, cur[0], filepath.Join(root, "series/org-mod-1", win, id, "_MANIFEST.json"), func(b []byte) []byte {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["run_id"] = id
			json.Unmarshal([]byte(field), &m)
			out, _ := json.Marshal(m)
			return out
		})
	}
	mark("1111111111111111", `{"degraded": {"skipped_frames": [{"segment": "segments/x.tseg", "offset": 44, "rows": 10, "length": 99}, {"segment": "segments/x.tseg", "offset": 143, "rows": 10, "length": 99}], "points": 20, "bytes": 198}}`)
	mark("2222222222222222", `{"superseded_by": "3333333333333333"}`)
	copyFile(t, a, filepath.Join(root, "rejects/2025112400/import-0-1.json"), nil)
	copyFile(t, a, filepath.Join(root, "rejects/2025112400/import-0-2.json"), nil)

	out := mustRun("ls", "--store", store, "--json")
	var l storeListing
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	if len(l.Segments.Partitions) != 3 {
		t.Fatalf("partitions: %+v", l.Segments.Partitions)
	}
	p0, pp1, pp2 := l.Segments.Partitions[0], l.Segments.Partitions[1], l.Segments.Partitions[2]
	if len(p0.Ranges) != 1 || p0.Ranges[0].Start != 0 || p0.Ranges[0].Segments != 2 || len(p0.Gaps)+len(p0.Overlaps)+len(p0.Unreadable) != 0 {
		t.Fatalf("partition 0: %+v", p0)
	}
	s0, s1 := pp1.Segments[0], pp1.Segments[2]
	wantGaps := []offsetRange{{Start: s0.EndOffset, End: s1.StartOffset, Prev: s0.Key, Next: s1.Key}}
	wantOverlaps := []offsetRange{{Start: 0, End: s0.EndOffset, Prev: s0.Key, Next: pp1.Segments[1].Key}}
	if pp1.Partition != 1 || !reflect.DeepEqual(pp1.Gaps, wantGaps) || !reflect.DeepEqual(pp1.Overlaps, wantOverlaps) || len(pp1.Ranges) != 2 {
		t.Fatalf("partition 1: gaps %+v (want %+v), overlaps %+v, ranges %+v", pp1.Gaps, wantGaps, pp1.Overlaps, pp1.Ranges)
	}
	if pp2.Partition != 2 || len(pp2.Unreadable) != 1 || !strings.Contains(pp2.Segments[0].Error, "corrupt segment") {
		t.Fatalf("partition 2: %+v", pp2)
	}

	states := map[string]string{}
	for _, r := range l.Runs {
		states[r.Shard+" "+r.RunID] = fmt.Sprintf("%s current=%v", r.State, r.Current)
	}
	count := func(state runState) int { return l.States[string(state)] }
	if count(runComplete) != 2 || count(runSuperseded) != 2 || count(runDegraded) != 1 || count(runIncomplete) != 1 || len(l.Runs) != 6 {
		t.Fatalf("states %v:\n%v", l.States, states)
	}
	for _, r := range l.Runs {
		switch {
		case r.RunID == "00000000deadbeef" && (r.State != runIncomplete || r.Objects != 1):
			t.Fatalf("killed run: %+v", r)
		case r.RunID == "1111111111111111" && (r.State != runDegraded || r.Corrupt != 2 || r.SkippedPoints != 20):
			t.Fatalf("degraded run: %+v", r)
		case r.RunID == "2222222222222222" && (r.State != runSuperseded || r.SupersededBy != "3333333333333333"):
			t.Fatalf("marked superseded: %+v", r)
		case r.Shard == "org-mod-0" && r.State == runSuperseded && (r.Current || r.Points != 10):
			t.Fatalf("replaced run: %+v", r)
		case r.State == runComplete && (!r.Current || r.Parts != 1):
			t.Fatalf("complete run: %+v", r)
		}
	}
	if len(l.Other) != 1 || l.Other[0].Prefix != "rejects/" || l.Other[0].Objects != 2 {
		t.Fatalf("other: %+v", l.Other)
	}

	text := mustRun("ls", "--store", store)
	for _, want := range []string{
		fmt.Sprintf("gap [%d, %d)", s0.EndOffset, s1.StartOffset),
		fmt.Sprintf("%d offsets in no segment", s1.StartOffset-s0.EndOffset),
		fmt.Sprintf("overlap [0, %d)", s0.EndOffset),
		"unreadable from 7",
		"corrupt segment segments/00/2025112400/import-2-00000000000000000007.tseg at byte 0",
		"runs: 6 (2 complete, 1 degraded, 2 superseded, 1 incomplete)",
		"2 corrupt frames skipped; up to 20 points not read",
		"rejects/: 2 objects",
	} {
		if !strings.Contains(text, want) {
			t.Fatalf("ls lacks %q:\n%s", want, text)
		}
	}
	if long := mustRun("ls", "--store", store, "--long"); strings.Count(long, "  segments/") != 5 {
		t.Fatalf("ls --long lists %d segments, want 5:\n%s", strings.Count(long, "  segments/"), long)
	}
}

func TestRunStateOf(t *testing.T) {
	m := func(extra string) *manifestState {
		var s manifestState
		if err := json.Unmarshal([]byte(`{"run_id":"x"`+extra+`}`), &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	for _, tc := range []struct {
		m                      *manifestState
		current, windowCurrent bool
		want                   runState
	}{
		{nil, false, true, runIncomplete},
		{m(""), true, true, runComplete},
		{m(""), false, false, runComplete}, // published, _CURRENT not yet written
		{m(""), false, true, runSuperseded},
		{m(`,"degraded":{"skipped_frames":[],"points":3}`), true, true, runDegraded},
		{m(`,"degraded":{"points":3}`), false, true, runDegraded},
		{m(`,"degraded":null,"superseded_by":""`), true, true, runComplete},
		{m(`,"superseded_by":null`), true, true, runComplete},
		{m(`,"superseded_by":"abc"`), true, true, runSuperseded},
	} {
		if got := runStateOf(tc.m, tc.current, tc.windowCurrent); got != tc.want {
			t.Fatalf("runStateOf(%+v, %v, %v) = %s, want %s", tc.m, tc.current, tc.windowCurrent, got, tc.want)
		}
	}
}

// TestS3LsAndInspect: ls and inspect --store read an s3:// store (a real versitygw) as
// they read a local one: the same listing, the same segment and series file.
func TestS3LsAndInspect(t *testing.T) {
	srv := s3test.Start(t)
	srv.Setenv(t)
	dir := t.TempDir()
	csv := filepath.Join(dir, "a.csv")
	seriesCSV(t, csv, 0, 6)
	listing := func(store string) (storeListing, string) {
		t.Helper()
		for _, args := range [][]string{
			{"import", "--csv", csv, "--store", store, "--flush-payloads", "2"},
			{"run", "--store", store, "--all", "--temp-dir", t.TempDir()},
		} {
			if out, err := runCLI(t, args...); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
		}
		out, err := runCLI(t, "ls", "--store", store, "--json")
		if err != nil {
			t.Fatalf("ls %s: %v", store, err)
		}
		var l storeListing
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatal(err)
		}
		return l, store
	}
	fileL, _ := listing("file://" + filepath.Join(dir, "store"))
	s3L, s3Store := listing(srv.URL("ls/x"))
	fileL.Store, s3L.Store = "", ""
	if !reflect.DeepEqual(fileL, s3L) {
		t.Fatalf("s3:// listing differs from file://:\n%+v\n%+v", s3L, fileL)
	}
	if s3L.Segments.Count != 3 || len(s3L.Runs) != 6 || s3L.States["complete"] != 6 {
		t.Fatalf("s3:// listing: %+v", s3L)
	}
	seg := s3L.Segments.Partitions[0].Segments[1].Key
	part := run.PartKey(s3L.Runs[0].Shard, mustWindow(t, s3L.Runs[0].Window), s3L.Runs[0].RunID, 0)
	for _, key := range []string{seg, part} {
		s3Out, err := runCLI(t, "inspect", "--store", s3Store, "--json", key)
		if err != nil {
			t.Fatalf("inspect s3 %s: %v", key, err)
		}
		fileOut, err := runCLI(t, "inspect", "--json", filepath.Join(dir, "store", key))
		if err != nil {
			t.Fatalf("inspect file %s: %v", key, err)
		}
		if strings.ReplaceAll(fileOut, filepath.Join(dir, "store")+"/", "") != s3Out {
			t.Fatalf("inspect %s: s3:// %s\nfile:// %s", key, s3Out, fileOut)
		}
	}
}

func mustWindow(t *testing.T, name string) run.Window {
	t.Helper()
	w, err := run.ParseWindowName(name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}
