package columnar

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

// TestFrameBuilderDoesNotCopyRows checks that adding rows to a frame allocates about the
// rows' own 16 bytes each: rows are held in chunks, so holding more never copies the rows
// already held (slices that double allocated and copied about twice that).
func TestFrameBuilderDoesNotCopyRows(t *testing.T) {
	const rows, per = DefaultFrameRows, 100
	ts := make([]int64, per)
	vals := make([]float64, per)
	for i := range ts {
		ts[i], vals[i] = int64(i), float64(i)
	}
	var b frameBuilder
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for g := 0; g < rows/per; g++ {
		b.add(SeriesKey{Org: 1, Metric: uint64(g)}, Source{Offset: int64(g)}, nil, ts, vals)
	}
	runtime.ReadMemStats(&after)
	groups := rows / per
	// The group columns (44 bytes a group) still grow as slices: count them at twice.
	limit := uint64(16*rows)*5/4 + uint64(2*44*groups)
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Fatalf("adding %d rows allocated %d bytes, more than %d", b.rows(), got, limit)
	}
	if b.rows() != rows/per*per || b.groups() != groups {
		t.Fatalf("builder holds %d rows in %d groups", b.rows(), b.groups())
	}
}

// TestSegmentRowChunks writes segments whose shards hold several full chunks of rows and
// groups that straddle chunk boundaries, one segment after another so that the second
// one's frames take the chunks the first gave back, and reads every point back.
func TestSegmentRowChunks(t *testing.T) {
	st, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	all := TimeRange{math.MinInt64, math.MaxInt64}
	for seg := 0; seg < 2; seg++ {
		ps, srcs := genPayloads(rng, 2000)
		for i := range srcs {
			srcs[i].Offset += int64(seg * 10_000)
		}
		s := writeSegment(t, st, ps, srcs, 0)
		var want, got []row
		shards := map[string]bool{}
		for i, p := range ps {
			shards[DefaultShardMap().Shard(p.Org, p.Metric)] = true
			for j := range p.Timestamps {
				want = append(want, row{p.SeriesKey, p.Timestamps[j], math.Float64bits(p.Values[j]), srcs[i].Timestamp, srcs[i].Offset})
			}
		}
		for sh := range shards {
			rs, _ := readAll(t, st, []*Segment{s}, sh, all, 1<<30, 1)
			got = append(got, rs...)
		}
		sortRows(got)
		sortRows(want)
		if len(got) != len(want) {
			t.Fatalf("segment %d: got %d rows, want %d", seg, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("segment %d row %d: got %+v want %+v", seg, i, got[i], want[i])
			}
		}
	}
}
