package main

import (
	"github.com/tailor-metrics/tailor/run"

	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the bar's ticker goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// setProgressEvery sets how often the bar redraws, for one test.
func setProgressEvery(t *testing.T, d time.Duration) {
	old := progressEvery
	progressEvery = d
	t.Cleanup(func() { progressEvery = old })
}

func TestProgressBar(t *testing.T) {
	setProgressEvery(t, time.Hour) // only the draws the test makes
	var out syncBuffer
	b := newProgressBar(newConsole(&out))
	b.stage("org-mod-1", "20251124T0000Z-4h", "read+sort")
	b.done(1, 4, &run.Report{Shard: "org-mod-0", Window: "20251124T0000Z-4h", Counts: run.Counts{PointsOut: 1234}})
	b.draw()
	line := out.String()
	last := line[strings.LastIndex(line, "\r")+1:]
	for _, want := range []string{"[######..................] 1/4 runs", "1234 points out", "org-mod-1 20251124T0000Z-4h: read+sort"} {
		if !strings.Contains(last, want) {
			t.Fatalf("progress line %q lacks %q", last, want)
		}
	}
	b.stop()
	b.stop() // idempotent
	if s := out.String(); !strings.HasSuffix(s, "\r\033[K") || strings.Count(s[len(line):], "\r") != 1 {
		t.Fatalf("stop did not clear the bar's line once: %q", s[len(line):])
	}
}

func TestSummaryNamesLateAndResources(t *testing.T) {
	reps := []*run.Report{
		{Counts: run.Counts{PointsIn: 10, PointsOut: 8, Duplicates: 2, Late: 3, LatePointsOut: 3, BytesOut: 40}, Seconds: map[string]float64{"duckdb": 1, "list": 0.5, "zstd": 0.25},
			PointStore: run.PointStoreStats{SpilledBytes: 3 << 20}},
		{Skipped: true},
		{NoData: true, Skipped: true},
		{Err: "boom"},
	}
	s := summarize(reps, 0)
	s.Resources = run.Resources{PeakRSSBytes: 300 << 20, CPUSeconds: 2, GCShare: 0.05}
	s.MemoryLimit = "2GB"
	var out bytes.Buffer
	s.print(&out)
	got := out.String()
	for _, want := range []string{"runs: 4 (1 already complete, 1 without data, 1 failed)", "3 late + 0 early", "5.00 bytes/point", "list=0.50 zstd=0.25 duckdb=1.00", "peak RSS 300 MiB", "5.0% in Go GC", "memory limit 2GB per run", "3.0 MiB of points spilled"} {
		if !strings.Contains(got, want) {
			t.Fatalf("summary lacks %q:\n%s", want, got)
		}
	}
}

// TestMemoryLimitFlag checks that a size the run cannot read fails before any work,
// naming the flag and the forms it takes.
func TestMemoryLimitFlag(t *testing.T) {
	_, err := runCLI(t, "run", "--store", "file://"+t.TempDir(), "--all", "--memory-limit", "lots")
	if err == nil || !strings.Contains(err.Error(), "--memory-limit") || !strings.Contains(err.Error(), "4GB") {
		t.Fatalf("error %v, want one naming --memory-limit and an example", err)
	}
}
