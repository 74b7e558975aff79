package columnar

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

// benchSegment is a segment of about 2M points of an agent-like mix (regular 10 s
// timestamps, counters, gauges, 2-decimal percentages, random floats), 60 points a
// record, built once per process.
var benchSegment = sync.OnceValues(func() ([]byte, error) {
	rng := rand.New(rand.NewPCG(7, 7))
	w := NewSegmentWriter(Header{Topic: "metrics", StartOffset: 0}, DefaultShardMap(), 0)
	const series, perSeries, perRecord = 2000, 1000, 60
	state := make([]float64, series)
	var p Payload
	off := int64(0)
	for start := 0; start < perSeries; start += perRecord {
		for i := 0; i < series; i++ {
			p.SeriesKey = SeriesKey{Org: 1, Metric: uint64(i % 97), Context: uint64(i)}
			p.Timestamps, p.Values = p.Timestamps[:0], p.Values[:0]
			for j := start; j < min(start+perRecord, perSeries); j++ {
				p.Timestamps = append(p.Timestamps, 1_790_000_000_000+int64(j)*10_000)
				p.Values = append(p.Values, agentValue(rng, i, j, &state[i]))
			}
			if err := w.Add(Source{Topic: "metrics", Offset: off, Timestamp: 1_790_000_000_000}, []Payload{p}); err != nil {
				return nil, err
			}
			off++
		}
	}
	var buf bytes.Buffer
	_, err := w.WriteTo(&buf)
	return buf.Bytes(), err
})

// agentValue is value j of series i in the agent-like mix: by i%4 a constant, a counter
// (its running total in *state), a 2-decimal percentage or a random float.
func agentValue(rng *rand.Rand, i, j int, state *float64) float64 {
	switch i % 4 {
	case 0:
		return float64(i % 8)
	case 1:
		*state += float64(rng.IntN(5000))
		return *state
	case 2:
		return math.Round((40+10*math.Sin(float64(j)/300)+rng.NormFloat64())*100) / 100
	default:
		return rng.ExpFloat64()
	}
}

func benchSegmentOpen(b *testing.B) ([]byte, *Segment) {
	b.Helper()
	data, err := benchSegment()
	if err != nil {
		b.Fatal(err)
	}
	seg, err := parseSegment("bench", int64(len(data)), func(off, n int64) ([]byte, error) { return data[off : off+n], nil })
	if err != nil {
		b.Fatal(err)
	}
	return data, seg
}

// BenchmarkFrameDecode decodes every frame of the bench segment into reused columns,
// the per-frame work of a reader: verify, zstd, decode. After the warm-up pass it must
// not allocate: allocs/frame is reported, and the benchmark fails if it is not 0.
//
//	go test ./columnar -run '^$' -bench FrameDecode -benchmem -memprofile mem.prof
func BenchmarkFrameDecode(b *testing.B) {
	data, seg := benchSegmentOpen(b)
	dec := NewFrameDecoder()
	defer dec.Close()
	var c Columns
	var fs FrameStats
	sp := Split{Seg: seg, Frames: seg.Footer.Frames}
	pass := func() {
		for _, f := range seg.Footer.Frames {
			c.Reset()
			if err := dec.DecodeFrame(&sp, f, data[f.Offset:f.Offset+uint64(f.Length)], DecodeOptions{}, &c, &fs); err != nil {
				b.Fatal(err)
			}
		}
	}
	// A GC empties sync.Pools, zstd's among them, which then allocate again: collect
	// first, so that the warm-up pass refills them and the counted passes see steady
	// state (they allocate nothing, so nothing triggers another GC).
	runtime.GC()
	// One P, as testing.AllocsPerRun does, so that other goroutines of the test binary
	// do not run (and allocate) in between. The warm-up runs on it too, twice: a
	// sync.Pool is per P, and zstd's huffman decoders, taken from the other P's pool
	// or the victim cache and put back on this one, grew its chain now and then (one
	// allocation in the counted passes, in about 1 run in 10 before, 4 in 10 after the
	// writer's chunks changed how the process allocated before).
	procs := runtime.GOMAXPROCS(1)
	pass() // warm-up: buffers grow to the largest frame
	pass()
	// Allocations are counted over passes of their own, outside the benchmark loop,
	// whose bookkeeping allocates now and then.
	fs = FrameStats{}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range 5 {
		pass()
	}
	runtime.ReadMemStats(&m1)
	runtime.GOMAXPROCS(procs)
	allocs := float64(m1.Mallocs-m0.Mallocs) / float64(fs.Frames)
	fs = FrameStats{}
	b.SetBytes(int64(seg.Size))
	for b.Loop() {
		pass()
	}
	b.ReportMetric(allocs, "allocs/frame")
	b.ReportMetric(float64(fs.RowsOut)/b.Elapsed().Seconds(), "points/s")
	if allocs != 0 {
		b.Errorf("%.3f allocations per frame after warm-up, want 0", allocs)
	}
}

// BenchmarkPointReader reads the bench segment through a PointReader from a local store
// (mapped) on one reader goroutine into Arrow record batches, as a run does, and
// reports points/s, allocs per frame of the whole read (Arrow record wrappers included),
// and the reader's peak memory.
func BenchmarkPointReader(b *testing.B) {
	data, _ := benchSegmentOpen(b)
	st, err := storage.OpenLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	key := SegmentKey("metrics", 0, 0, 0)
	if err := st.Put(ctx, key, bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	seg, err := OpenSegment(ctx, st, key, -1)
	if err != nil {
		b.Fatal(err)
	}
	segs := []*Segment{seg}
	var splits []Split
	for _, sh := range seg.Footer.Shards {
		splits = append(splits, PlanSplits(segs, sh, AllTime, 0)...)
	}
	var rows, frames uint64
	var peak int64
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.SetBytes(seg.Size)
	for b.Loop() {
		r := NewPointReader(ctx, st, splits, Topics(segs), ReadOptions{Readers: 1})
		n := uint64(0)
		for r.Next() {
			n += uint64(r.RecordBatch().NumRows())
		}
		if err := r.Err(); err != nil {
			b.Fatal(err)
		}
		if n != seg.Footer.Rows {
			b.Fatalf("read %d rows, the segment holds %d", n, seg.Footer.Rows)
		}
		rows += n
		s := r.ReadStats()
		frames += s.Frames
		peak = max(peak, s.Memory.PeakBytes)
		r.Release()
	}
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(frames), "allocs/frame")
	b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
}
