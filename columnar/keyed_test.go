package columnar

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/tailor-metrics/tailor/storage"
)

func cmpRow(a, b row) int {
	if c := a.k.Compare(b.k); c != 0 {
		return c
	}
	for _, d := range [...][2]int64{{a.ts, b.ts}, {a.recTs, b.recTs}, {a.offset, b.offset}, {int64(a.bits), int64(b.bits)}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// TestKeyedReadMatchesPoints reads every shard of a segment as points and as keyed rows,
// narrow and wide, over windows that cut frames, and checks that both give the same
// points with the same provenance, bit for bit.
func TestKeyedReadMatchesPoints(t *testing.T) {
	st, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	seg, want := multiShardSegment(t, st, 11, 61)
	ctx := context.Background()
	topics := Topics([]*Segment{seg})
	from := int64(1763942400000) + 3e7
	for _, win := range []TimeRange{AllTime, {From: from, To: from + 4*3600_000}, {From: from, To: from + 3e7}, {From: math.MinInt64, To: from}} {
		for shard := range want {
			splits := PlanSplits([]*Segment{seg}, shard, win, 1<<30)
			pr := NewPointReader(ctx, st, splits, topics, ReadOptions{Readers: 2, Window: win, BatchRows: 1000})
			var points []row
			for pr.Next() {
				rec := pr.RecordBatch()
				for i := 0; i < int(rec.NumRows()); i++ {
					points = append(points, row{
						k:  SeriesKey{Org: rec.Column(0).(*array.Uint32).Value(i), Metric: rec.Column(1).(*array.Uint64).Value(i), Context: rec.Column(2).(*array.Uint64).Value(i)},
						ts: rec.Column(3).(*array.Int64).Value(i), bits: math.Float64bits(rec.Column(4).(*array.Float64).Value(i)),
						recTs: rec.Column(5).(*array.Int64).Value(i), offset: rec.Column(8).(*array.Int64).Value(i),
					})
				}
			}
			if err := pr.Err(); err != nil {
				t.Fatal(err)
			}
			pstats := pr.Stats()
			pr.Release()
			slices.SortFunc(points, cmpRow)

			layouts := []KeyLayout{{Wide: true}}
			if l := LayoutFor(win); !l.Wide {
				layouts = append(layouts, l)
			}
			for _, l := range layouts {
				var g testIDs
				ps := &memSink{}
				kr := NewPointReader(ctx, st, splits, topics, ReadOptions{Readers: 2, Window: win, BatchRows: 1000, Groups: g.Assign, Layout: l, Points: ps})
				if !kr.Schema().Equal(l.Schema()) {
					t.Fatalf("schema %s, want %s", kr.Schema(), l.Schema())
				}
				var keyed []row
				for kr.Next() {
					rec := kr.RecordBatch()
					if !rec.Schema().Equal(l.Schema()) {
						t.Fatalf("batch schema %s", rec.Schema())
					}
					c := 0
					var tss []int64
					if l.Wide {
						c, tss = 1, rec.Column(1).(*array.Int64).Int64Values()
					}
					ks := rec.Column(0).(*array.Uint64).Uint64Values()
					gids := rec.Column(c + 1).(*array.Uint32).Uint32Values()
					counts := rec.Column(c + 2).(*array.Uint32).Uint32Values()
					refs := rec.Column(c + 3).(*array.Uint64).Uint64Values()
					for i, k := range ks {
						var tc int64
						if tss != nil {
							tc = tss[i]
						}
						sid, first := l.Split(k, tc)
						p := g.Provenance(gids[i])
						b, err := ps.Points(refs[i], int(counts[i])*RunPointBytes)
						if err != nil || counts[i] == 0 {
							t.Fatalf("row %d: %d points: %v", i, counts[i], err)
						}
						prev := int64(math.MinInt64)
						for j := range int(counts[i]) {
							ts, bits := RunPoint(b, j)
							if j == 0 && ts != first || ts <= prev {
								t.Fatalf("row %d point %d: ts %d (first %d, previous %d)", i, j, ts, first, prev)
							}
							prev = ts
							keyed = append(keyed, row{k: g.Key(sid), ts: ts, bits: bits, recTs: p.RecordTs, offset: p.Offset})
						}
					}
				}
				if err := kr.Err(); err != nil {
					t.Fatal(err)
				}
				kstats := kr.Stats()
				kr.Release()
				slices.SortFunc(keyed, cmpRow)
				if !slices.Equal(points, keyed) {
					t.Fatalf("window %+v shard %s layout %+v: keyed read gives %d points, point read %d, or they differ", win, shard, l, len(keyed), len(points))
				}
				if kstats.RowsIn != pstats.RowsIn || kstats.RowsOut != pstats.RowsOut || kstats.OutOfWindow != pstats.OutOfWindow {
					t.Fatalf("keyed stats %+v, point stats %+v", kstats, pstats)
				}
			}
		}
	}
}

func TestKeyedReadGroupError(t *testing.T) {
	st, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	seg, want := multiShardSegment(t, st, 12, 61)
	var shard string
	for shard = range want {
		break
	}
	full := errors.New("ids ran out")
	r := NewPointReader(context.Background(), st, PlanSplits([]*Segment{seg}, shard, AllTime, 1<<30), Topics([]*Segment{seg}), ReadOptions{
		Groups: func([]SeriesKey, []Provenance, []uint32, []uint32) error { return full },
		Points: &memSink{},
	})
	defer r.Release()
	for r.Next() {
	}
	if err := r.Err(); !errors.Is(err, full) || !strings.Contains(err.Error(), seg.Key) {
		t.Fatalf("error %v, want one naming %s", err, seg.Key)
	}
}

func TestKeyLayout(t *testing.T) {
	for _, c := range []struct {
		win  TimeRange
		wide bool
	}{
		{TimeRange{From: 0, To: 4 * 3600_000}, false},
		{TimeRange{From: -5, To: -5 + 1<<32}, false},
		{TimeRange{From: 0, To: 1<<32 + 1}, true},
		{TimeRange{From: math.MinInt64, To: 0}, true},
		{TimeRange{From: 0, To: math.MaxInt64}, true},
		{AllTime, true},
	} {
		l := LayoutFor(c.win)
		if l.Wide != c.wide {
			t.Fatalf("%+v: wide %v, want %v", c.win, l.Wide, c.wide)
		}
		if l.Wide {
			continue
		}
		for _, sid := range []uint32{0, 1, math.MaxUint32} {
			for _, ts := range []int64{c.win.From, c.win.To - 1, c.win.From + (c.win.To-c.win.From)/2} {
				k := uint64(sid)<<32 | uint64(ts-l.Base)
				if gs, gt := l.Split(k, 0); gs != sid || gt != ts {
					t.Fatalf("%+v: split(%d, %d) = %d, %d", c.win, sid, ts, gs, gt)
				}
			}
		}
	}
	a := Provenance{RecordTs: 2}
	for _, later := range []Provenance{{RecordTs: 3}, {RecordTs: 2, Topic: 1}, {RecordTs: 2, Partition: 1}, {RecordTs: 2, Offset: 1}} {
		if !later.After(a) || a.After(later) {
			t.Fatalf("%+v should be after %+v", later, a)
		}
	}
	if a.After(a) {
		t.Fatal("a provenance is after itself")
	}
}

// TestUnsortedGroupIsCorrupt builds a frame whose second group repeats a ts, which the
// writer never does, and checks that point and keyed decodes both reject it as a corrupt
// frame naming the segment, offset and group, and that skipping it loses only it.
func TestUnsortedGroupIsCorrupt(t *testing.T) {
	for _, ts := range [][]int64{{5, 5}, {7, 6}} {
		var b frameBuilder
		b.add(SeriesKey{Org: 1}, Source{Offset: 1}, nil, []int64{1, 2}, []float64{1, 2})
		b.add(SeriesKey{Org: 2}, Source{Offset: 2}, nil, ts, []float64{3, 4})
		var raw []byte
		info, fb, err := b.encode(&raw)
		if err != nil {
			t.Fatal(err)
		}
		info.Offset = 99
		sp := Split{Seg: &Segment{Key: "seg.tseg", Header: Header{Version: SegmentVersion}}, Frames: []FrameInfo{info}}
		dec := NewFrameDecoder()
		var c Columns
		var k Keyed
		var g testIDs
		var st FrameStats
		pw := (&memSink{}).Writer()
		for name, err := range map[string]error{
			"point": dec.DecodeFrame(&sp, info, fb, DecodeOptions{}, &c, &st),
			"keyed": dec.decodeFrameKeyed(&sp, info, fb, DecodeOptions{Layout: KeyLayout{Wide: true}, Groups: g.Assign, Points: pw}, &k, &st),
		} {
			var ce *CorruptSegmentError
			if !errors.As(err, &ce) || ce.Offset != 99 || !strings.Contains(err.Error(), "seg.tseg") || !strings.Contains(err.Error(), "group 1") {
				t.Fatalf("%s decode of ts %v: error %v, want a corrupt frame naming the segment, offset 99 and group 1", name, ts, err)
			}
		}
		if err := dec.decodeFrameKeyed(&sp, info, fb, DecodeOptions{SkipCorrupt: true, Layout: KeyLayout{Wide: true}, Groups: g.Assign, Points: pw}, &k, &st); err != nil || k.Len() != 0 || st.CorruptFrames != 1 {
			t.Fatalf("skipping: error %v, %d rows, %d corrupt frames", err, k.Len(), st.CorruptFrames)
		}
		dec.Close()
	}
}
