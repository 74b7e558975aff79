//go:build duckdb_arrow

package query

import (
	"context"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/storage"
)

// rowBytes is one point's width across the point schema's fixed-width columns: what the
// sort holds per point before DuckDB's own overhead.
func rowBytes() int {
	n := 0
	for _, f := range columnar.PointSchema.Fields() {
		n += f.Type.(arrow.FixedWidthDataType).BitWidth() / 8
	}
	return n
}

// dirBytes returns the bytes of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestShardLargerThanMemorySpills runs one shard whose points take more than four times
// DuckDB's memory limit. The run must complete, with every point, by spilling to the
// temp directory (watched while it runs).
func TestShardLargerThanMemorySpills(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and sorts 2.6M points")
	}
	ctx := context.Background()
	dir := t.TempDir()
	st, err := storage.Open(ctx, "file://"+filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const (
		limitMiB = 32
		series   = 2000
		perSer   = 1300 // 2.6M points: 2.6M × 58 B ≈ 144 MiB, 4.5× the limit
		perPay   = 100
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
	var peak atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if n := dirBytes(tmp); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	}()
	reps, err := RunAll(ctx, AllOptions{RunOptions: RunOptions{
		Store: st, Arrival: DefaultArrival(), Readers: 2,
		Engine: Options{MemoryLimit: "32MiB", TempDir: tmp, Threads: 1},
	}})
	close(stop)
	wg.Wait()
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
	if shard := uint64(want * rowBytes()); shard < 4*limitMiB<<20 {
		t.Fatalf("shard of %d bytes is not 4× the limit", shard)
	}
	if peak.Load() == 0 {
		t.Fatal("DuckDB never wrote to its temp directory: the shard did not spill")
	}
	t.Logf("%d points (%d MiB of columns) under a %d MiB limit; temp files peaked at %.1f MiB", want, want*rowBytes()>>20, limitMiB, float64(peak.Load())/(1<<20))
}
