//go:build duckdb_arrow

package run

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	"github.com/tailor-metrics/tailor/storage"
)

// TestShardLargerThanMemorySpills runs one shard whose points take more than four times
// the run's memory limit, in groups small enough that DuckDB's half of the limit cannot
// hold the group rows either. The run must complete, with every point, with both the
// point store and DuckDB spilling to the temp directory (watched while it runs).
func TestShardLargerThanMemorySpills(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and sorts 8.6M points")
	}
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const (
		limitMiB = 32
		series   = 2000
		perSer   = 4300 // 8.6M points of 16 B: 131 MiB in the point store, 4.1× the limit
		perPay   = 10   // 860,000 group rows of 24 B: 20 MiB, over DuckDB's 16 MiB
	)
	rng := rand.New(rand.NewPCG(11, 11))
	base := int64(1763942400000)
	var spec segSpec
	spec.startTs = base
	var off int64
	flush := func() {
		if len(spec.payloads) == 0 {
			return
		}
		writeSeg(t, st, spec, 0)
		off += int64(len(spec.payloads))
		spec = segSpec{start: off, startTs: base}
	}
	// Payloads interleaved as they arrive: chunk c of every series, then chunk c+1.
	for c := 0; c < perSer/perPay; c++ {
		for s := 0; s < series; s++ {
			p := columnar.Payload{SeriesKey: columnar.SeriesKey{Org: 7, Metric: uint64(s) * 0x9e3779b97f4a7c15, Context: uint64(s % 5)}}
			for i := 0; i < perPay; i++ {
				p.Timestamps = append(p.Timestamps, base+int64(c*perPay+i)*1000)
				p.Values = append(p.Values, rng.Float64())
			}
			spec.payloads = append(spec.payloads, p)
			spec.recTs = append(spec.recTs, base+int64(c)*perPay*1000)
		}
		if len(spec.payloads) >= 6000 {
			flush()
		}
	}
	flush()

	tmp := filepath.Join(dir, "spill")
	mem := query.Options{MemoryLimit: fmt.Sprintf("%dMiB", limitMiB), TempDir: tmp, Threads: 1}

	// DuckDB must spill: with its half of the limit and spilling switched off, the same
	// sort runs out of memory. (Proved this way rather than by watching its temp files,
	// which a loaded machine's scheduler can make a watcher miss.)
	duck, _, err := RunMemory(mem)
	if err != nil {
		t.Fatal(err)
	}
	duck.TempDir = ""
	noSpill, err := query.Open(ctx, duck)
	if err != nil {
		t.Fatal(err)
	}
	if err := noSpill.Exec(ctx, "SET temp_directory = ''"); err != nil {
		t.Fatal(err)
	}
	segs, err := ListWindowSegments(ctx, st, nil, DefaultArrival(), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := WindowOf(base, DefaultWindowSize)
	if _, err := RunShard(ctx, RunOptions{Store: st, Shard: "org-mod-7", Window: w, Arrival: DefaultArrival(), Segments: segs, Readers: 2, Engine: mem, DB: noSpill}); err == nil || !strings.Contains(err.Error(), "Out of Memory") {
		t.Fatalf("without spilling: %v, want DuckDB out of memory (the test would prove nothing)", err)
	}
	noSpill.Close()

	reps, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{Store: st, Arrival: DefaultArrival(), Readers: 2, Engine: mem}})
	if err != nil {
		t.Fatalf("run with a %d MiB limit: %v", limitMiB, err)
	}
	if len(reps) != 1 {
		t.Fatalf("%d runs, want 1", len(reps))
	}
	c := reps[0].Counts
	const want = series * perSer
	if c.PointsIn != want || c.PointsOut != want || c.Series != series {
		t.Fatalf("counts %+v, want %d points in %d series", c, want, series)
	}
	ps := reps[0].PointStore
	if ps.Bytes != want*columnar.RunPointBytes || ps.Bytes < 4*limitMiB<<20 {
		t.Fatalf("point store held %d bytes, want %d, 4× the limit", ps.Bytes, want*columnar.RunPointBytes)
	}
	if ps.SpilledBytes == 0 {
		t.Fatalf("the point store did not spill: %+v", ps)
	}
	t.Logf("%d points under a %d MiB limit: point store spilled %.1f MiB of %.1f (peak %.1f MiB in memory)",
		want, limitMiB, float64(ps.SpilledBytes)/(1<<20), float64(ps.Bytes)/(1<<20), float64(ps.PeakMemory)/(1<<20))
}
