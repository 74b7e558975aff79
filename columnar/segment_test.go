package columnar

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

type row struct {
	k      SeriesKey
	ts     int64
	bits   uint64
	recTs  int64
	offset int64
}

func genPayloads(rng *rand.Rand, n int) ([]Payload, []Source) {
	specials := []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 5e-324, math.MaxFloat64}
	var ps []Payload
	var srcs []Source
	for i := 0; i < n; i++ {
		k := SeriesKey{Org: uint32(rng.IntN(5)) * 1000003, Metric: rng.Uint64(), Context: uint64(rng.IntN(3))}
		if i%7 == 0 {
			k = SeriesKey{Org: math.MaxUint32, Metric: math.MaxUint64, Context: math.MaxUint64}
		}
		np := 1 + rng.IntN(200)
		p := Payload{SeriesKey: k, Tags: []string{"env:prod", "host:h" + string(rune('a'+i%26))}}
		t := int64(1763942400000) + rng.Int64N(1e8)
		for j := 0; j < np; j++ {
			t += 1 + rng.Int64N(20000)
			v := rng.NormFloat64()
			if j%11 == 0 {
				v = specials[rng.IntN(len(specials))]
			}
			p.Timestamps = append(p.Timestamps, t)
			p.Values = append(p.Values, v)
		}
		ps = append(ps, p)
		srcs = append(srcs, Source{Topic: "metrics", Partition: 3, Offset: int64(100 + i), Timestamp: 1763942400000 + int64(i)})
	}
	return ps, srcs
}

func writeSegment(t *testing.T, st storage.Store, ps []Payload, srcs []Source, frameRows int) *Segment {
	t.Helper()
	w := NewSegmentWriter(Header{Topic: srcs[0].Topic, Partition: srcs[0].Partition, StartOffset: srcs[0].Offset, StartTimestamp: srcs[0].Timestamp}, DefaultShardMap(), frameRows)
	for i := range ps {
		if err := w.Add(srcs[i], ps[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(context.Background(), w.Key(), &buf); err != nil {
		t.Fatal(err)
	}
	seg, err := OpenSegment(context.Background(), st, w.Key(), -1)
	if err != nil {
		t.Fatal(err)
	}
	return seg
}

func readAll(t *testing.T, st storage.Store, segs []*Segment, shard string, win TimeRange, split int64, readers int) ([]row, FrameStats) {
	t.Helper()
	splits := PlanSplits(segs, shard, win, split)
	r := NewPointReader(context.Background(), st, splits, Topics(segs), ReadOptions{Readers: readers, BatchRows: 1000, Window: win})
	defer r.Release()
	var out []row
	for r.Next() {
		rec := r.RecordBatch()
		c := func(i int) []byte { return rec.Column(i).Data().Buffers()[1].Bytes() }
		_ = c
		org := rec.Column(0).(interface{ Value(int) uint32 })
		met := rec.Column(1).(interface{ Value(int) uint64 })
		ctx := rec.Column(2).(interface{ Value(int) uint64 })
		ts := rec.Column(3).(interface{ Value(int) int64 })
		val := rec.Column(4).(interface{ Value(int) float64 })
		rts := rec.Column(5).(interface{ Value(int) int64 })
		off := rec.Column(8).(interface{ Value(int) int64 })
		for i := 0; i < int(rec.NumRows()); i++ {
			out = append(out, row{SeriesKey{org.Value(i), met.Value(i), ctx.Value(i)}, ts.Value(i), math.Float64bits(val.Value(i)), rts.Value(i), off.Value(i)})
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if m := r.ReadStats().Memory; len(splits) > 0 && (m.PeakBytes <= 0 || m.PeakBytes > m.BoundBytes) {
		t.Fatalf("reader memory peak %d outside its bound %d", m.PeakBytes, m.BoundBytes)
	}
	return out, r.Stats()
}

func sortRows(rs []row) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if a.k != b.k {
			return a.k.Less(b.k)
		}
		if a.ts != b.ts {
			return a.ts < b.ts
		}
		return a.offset < b.offset
	})
}

func TestSegmentRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		frameRows int
		split     int64
		readers   int
	}{
		{"one-frame-per-payload", 1, 1 << 30, 1},
		{"small-frames-small-splits", 300, 4096, 3},
		{"default", 0, 1 << 30, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := storage.OpenLocal(t.TempDir())
			rng := rand.New(rand.NewPCG(1, 2))
			ps, srcs := genPayloads(rng, 300)
			seg := writeSegment(t, st, ps, srcs, tc.frameRows)
			var want []row
			shards := map[string]bool{}
			for i, p := range ps {
				shards[DefaultShardMap().Shard(p.Org, p.Metric)] = true
				for j := range p.Timestamps {
					want = append(want, row{p.SeriesKey, p.Timestamps[j], math.Float64bits(p.Values[j]), srcs[i].Timestamp, srcs[i].Offset})
				}
			}
			var got []row
			all := TimeRange{math.MinInt64, math.MaxInt64}
			for sh := range shards {
				rs, stats := readAll(t, st, []*Segment{seg}, sh, all, tc.split, tc.readers)
				if stats.CorruptFrames != 0 || stats.OutOfWindow != 0 {
					t.Fatalf("stats %+v", stats)
				}
				got = append(got, rs...)
			}
			sortRows(got)
			sortRows(want)
			if len(got) != len(want) {
				t.Fatalf("got %d rows, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("row %d: got %+v want %+v", i, got[i], want[i])
				}
			}
			if seg.Footer.EndOffset != 400 || seg.Footer.Records != 300 || seg.Footer.Rows != uint64(len(want)) {
				t.Fatalf("footer %+v", seg.Footer)
			}
		})
	}
}

func TestSegmentWindowFilter(t *testing.T) {
	st, _ := storage.OpenLocal(t.TempDir())
	ps := []Payload{{SeriesKey: SeriesKey{Org: 1}, Timestamps: []int64{5, 10, 15, 20}, Values: []float64{1, 2, 3, 4}}}
	seg := writeSegment(t, st, ps, []Source{{Topic: "t", Offset: 0}}, 0)
	rs, stats := readAll(t, st, []*Segment{seg}, "org-mod-1", TimeRange{10, 20}, 1<<20, 1)
	if len(rs) != 2 || rs[0].ts != 10 || rs[1].ts != 15 || stats.OutOfWindow != 2 {
		t.Fatalf("rows %+v stats %+v", rs, stats)
	}
	if got := PlanSplits([]*Segment{seg}, "org-mod-1", TimeRange{21, 30}, 1<<20); len(got) != 0 {
		t.Fatalf("frame outside the window was planned: %+v", got)
	}
}

func TestPayloadNormalize(t *testing.T) {
	st, _ := storage.OpenLocal(t.TempDir())
	ps := []Payload{{SeriesKey: SeriesKey{Org: 1}, Timestamps: []int64{30, 10, 20, 10, 30}, Values: []float64{1, 2, 3, 4, 5}}}
	seg := writeSegment(t, st, ps, []Source{{Topic: "t", Offset: 7}}, 0)
	rs, _ := readAll(t, st, []*Segment{seg}, "org-mod-1", TimeRange{math.MinInt64, math.MaxInt64}, 1<<20, 1)
	want := []struct {
		ts int64
		v  float64
	}{{10, 4}, {20, 3}, {30, 5}}
	if len(rs) != 3 || seg.Footer.Collapsed != 2 {
		t.Fatalf("rows %+v footer %+v", rs, seg.Footer)
	}
	for i, w := range want {
		if rs[i].ts != w.ts || math.Float64frombits(rs[i].bits) != w.v {
			t.Fatalf("row %d = %+v, want %+v", i, rs[i], w)
		}
	}
}

func TestCorruptFrameNamesFileAndOffset(t *testing.T) {
	dir := t.TempDir()
	st, _ := storage.OpenLocal(dir)
	rng := rand.New(rand.NewPCG(3, 4))
	ps, srcs := genPayloads(rng, 50)
	for i := range ps {
		ps[i].Org = 1
	}
	seg := writeSegment(t, st, ps, srcs, 500)
	// Flip a byte inside the second frame's compressed bytes.
	f := seg.Footer.Frames[1]
	b, _ := storage.ReadAll(context.Background(), st, seg.Key)
	b[f.Offset+FrameHeaderSize+3] ^= 0xff
	if err := st.Put(context.Background(), seg.Key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	splits := PlanSplits([]*Segment{seg}, "org-mod-1", TimeRange{math.MinInt64, math.MaxInt64}, 1<<30)
	r := NewPointReader(context.Background(), st, splits, Topics([]*Segment{seg}), ReadOptions{})
	for r.Next() {
	}
	var ce *CorruptSegmentError
	if !errors.As(r.Err(), &ce) || ce.Key != seg.Key || ce.Offset != f.Offset {
		t.Fatalf("err = %v, want a CorruptSegmentError at %s byte %d", r.Err(), seg.Key, f.Offset)
	}
	r.Release()
	// With skipCorrupt the other frames are read and the bad one is counted.
	r = NewPointReader(context.Background(), st, splits, Topics([]*Segment{seg}), ReadOptions{SkipCorrupt: true})
	n := 0
	for r.Next() {
		n += int(r.RecordBatch().NumRows())
	}
	if r.Err() != nil || r.Stats().CorruptFrames != 1 || n != int(seg.Footer.Rows)-int(f.Rows) {
		t.Fatalf("skip: err %v stats %+v rows %d", r.Err(), r.Stats(), n)
	}
	r.Release()
}

func TestSegmentKey(t *testing.T) {
	k := SegmentKey("metrics.v1", 7, 123, 1763942400000)
	topic, p, s, err := ParseSegmentKey(k)
	if err != nil || topic != "metrics.v1" || p != 7 || s != 123 {
		t.Fatalf("%s -> %q %d %d %v", k, topic, p, s, err)
	}
	if k != SegmentKey("metrics.v1", 7, 123, 1763942400000) {
		t.Fatal("key not deterministic")
	}
	if want := "/2025112400/metrics.v1-7-00000000000000000123.tseg"; k[len("segments/xx"):] != want {
		t.Fatalf("key %s", k)
	}
}
