package columnar_test

import (
	"bytes"
	"context"
	"math"
	"slices"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/internal/realdata/realdatatest"
	"github.com/tailor-metrics/tailor/storage"
)

// TestSegmentRoundTripReal writes every real data set through a segment, as the sink
// would get it (100-point payloads, the series' payloads interleaved in time), reads every
// shard back and requires every point with its value bits unchanged. It logs the bytes a
// point each set takes in a version-2 segment.
func TestSegmentRoundTripReal(t *testing.T) {
	nab, more := realdatatest.Sets(t)
	ctx := context.Background()
	st, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for si, set := range append(nab, more...) {
		type point struct {
			k  columnar.SeriesKey
			ts int64
			v  uint64
		}
		var want []point
		w := columnar.NewSegmentWriter(columnar.Header{Topic: "real", Partition: int32(si), StartTimestamp: 1763942400000}, columnar.DefaultShardMap(), 0)
		off := int64(0)
		for lo := 0; ; lo += 100 {
			added := false
			for _, s := range set.Series {
				if lo >= len(s.Ts) {
					continue
				}
				hi := min(lo+100, len(s.Ts))
				p := columnar.Payload{SeriesKey: s.Key, Timestamps: s.Ts[lo:hi], Values: s.Values[lo:hi]}
				if err := w.Add(columnar.Source{Topic: "real", Partition: int32(si), Offset: off, Timestamp: 1763942400000}, []columnar.Payload{p}); err != nil {
					t.Fatal(err)
				}
				off++
				added = true
				for i := lo; i < hi; i++ {
					want = append(want, point{s.Key, s.Ts[i], math.Float64bits(s.Values[i])})
				}
			}
			if !added {
				break
			}
		}
		var buf bytes.Buffer
		if _, err := w.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		key := w.Key()
		if err := st.Put(ctx, key, bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
		seg, err := columnar.OpenSegment(ctx, st, key, -1)
		if err != nil {
			t.Fatal(err)
		}
		if seg.Header.Version != columnar.SegmentVersion {
			t.Fatalf("segment version %d, want %d", seg.Header.Version, columnar.SegmentVersion)
		}
		dec := columnar.NewFrameDecoder()
		var got []point
		for _, shard := range seg.Footer.Shards {
			for _, sp := range columnar.PlanSplits([]*columnar.Segment{seg}, shard, columnar.AllTime, 0) {
				for _, f := range sp.Frames {
					var c columnar.Columns
					var fs columnar.FrameStats
					if err := dec.DecodeFrame(&sp, f, buf.Bytes()[f.Offset:f.Offset+uint64(f.Length)], columnar.DecodeOptions{}, &c, &fs); err != nil {
						t.Fatal(err)
					}
					for r := range c.Len() {
						got = append(got, point{columnar.SeriesKey{Org: c.Org[r], Metric: c.Metric[r], Context: c.Context[r]}, c.Ts[r], math.Float64bits(c.Value[r])})
					}
				}
			}
		}
		dec.Close()
		order := func(a, b point) int {
			if c := a.k.Compare(b.k); c != 0 {
				return c
			}
			return int(a.ts - b.ts)
		}
		slices.SortFunc(want, order)
		slices.SortFunc(got, order)
		if len(got) != len(want) {
			t.Fatalf("%s: %d points read back, %d written", set.Name, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: point %d = %+v, want %+v", set.Name, i, got[i], want[i])
			}
		}
		t.Logf("%-26s %8d points  %.3f bytes a point", set.Name, len(want), float64(buf.Len())/float64(len(want)))
	}
}
