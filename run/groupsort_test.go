//go:build duckdb_arrow

package run

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/query"
	tsql "github.com/tailor-metrics/tailor/sql"
)

type pt struct {
	org         uint32
	metric, ctx uint64
	ts          int64
	value       float64
	recTs       int64
	topic       uint16
	part        int32
	off         int64
}

func pointsReader(t *testing.T, pts []pt) array.RecordReader {
	t.Helper()
	b := array.NewRecordBuilder(memory.DefaultAllocator, columnar.PointSchema)
	defer b.Release()
	for _, p := range pts {
		b.Field(0).(*array.Uint32Builder).Append(p.org)
		b.Field(1).(*array.Uint64Builder).Append(p.metric)
		b.Field(2).(*array.Uint64Builder).Append(p.ctx)
		b.Field(3).(*array.Int64Builder).Append(p.ts)
		b.Field(4).(*array.Float64Builder).Append(p.value)
		b.Field(5).(*array.Int64Builder).Append(p.recTs)
		b.Field(6).(*array.Uint16Builder).Append(p.topic)
		b.Field(7).(*array.Int32Builder).Append(p.part)
		b.Field(8).(*array.Int64Builder).Append(p.off)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	r, err := array.NewRecordReader(columnar.PointSchema, []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func collect(t *testing.T, r array.RecordReader) []pt {
	t.Helper()
	defer r.Release()
	var out []pt
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			out = append(out, pt{
				org:    rec.Column(0).(*array.Uint32).Value(i),
				metric: rec.Column(1).(*array.Uint64).Value(i),
				ctx:    rec.Column(2).(*array.Uint64).Value(i),
				ts:     rec.Column(3).(*array.Int64).Value(i),
				value:  rec.Column(4).(*array.Float64).Value(i),
			})
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// keyedGroupSort runs pts the way a shard run does: an IDTable numbers their series and
// groups (one group per point), GroupSort sorts the keyed rows in layout l, and a
// KeyedStream keeps each (series, ts)'s latest arrival. It returns the kept points in
// series key order, as SortedSchema.
func keyedGroupSort(t *testing.T, e *query.Engine, l columnar.KeyLayout, pts []pt) (array.RecordReader, error) {
	t.Helper()
	var g IDTable
	b := array.NewRecordBuilder(memory.DefaultAllocator, l.Schema())
	defer b.Release()
	sids, gids := make([]uint32, 1), make([]uint32, 1)
	ps := NewPointStore(t.TempDir(), 1<<20)
	defer ps.Close()
	pw := ps.Writer()
	for _, p := range pts {
		k := columnar.SeriesKey{Org: p.org, Metric: p.metric, Context: p.ctx}
		prov := columnar.Provenance{RecordTs: p.recTs, Offset: p.off, Partition: p.part, Topic: p.topic}
		if err := g.Assign([]columnar.SeriesKey{k}, []columnar.Provenance{prov}, sids, gids); err != nil {
			t.Fatal(err)
		}
		c := 0
		if l.Wide {
			b.Field(0).(*array.Uint64Builder).Append(uint64(sids[0]))
			b.Field(1).(*array.Int64Builder).Append(p.ts)
			c = 1
		} else {
			b.Field(0).(*array.Uint64Builder).Append(uint64(sids[0])<<32 | uint64(p.ts-l.Base))
		}
		// Each point is a group of its own here.
		dst, err := pw.Reserve(columnar.RunPointBytes)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint64(dst, uint64(p.ts))
		binary.LittleEndian.PutUint64(dst[8:], math.Float64bits(p.value))
		b.Field(c + 1).(*array.Uint32Builder).Append(gids[0])
		b.Field(c + 2).(*array.Uint32Builder).Append(1)
		b.Field(c + 3).(*array.Uint64Builder).Append(pw.Commit(len(dst)))
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	in, err := array.NewRecordReader(l.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	sorted, err := e.GroupSort(context.Background(), l, in)
	if err != nil {
		return nil, err
	}
	defer sorted.Release()
	type series struct {
		k    columnar.SeriesKey
		ts   []int64
		vals []float64
	}
	var out []series
	s := NewKeyedStream(l, g.Later, ps.Points, func(sid uint32, ts []int64, vals []float64) error {
		out = append(out, series{g.Key(sid), slices.Clone(ts), slices.Clone(vals)})
		return nil
	})
	for sorted.Next() {
		if err := s.Write(sorted.RecordBatch()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, func(a, b series) int { return a.k.Compare(b.k) })
	ob := array.NewRecordBuilder(memory.DefaultAllocator, columnar.SortedSchema)
	defer ob.Release()
	for _, se := range out {
		for i := range se.ts {
			ob.Field(0).(*array.Uint32Builder).Append(se.k.Org)
			ob.Field(1).(*array.Uint64Builder).Append(se.k.Metric)
			ob.Field(2).(*array.Uint64Builder).Append(se.k.Context)
			ob.Field(3).(*array.Int64Builder).Append(se.ts[i])
			ob.Field(4).(*array.Float64Builder).Append(se.vals[i])
		}
	}
	orec := ob.NewRecordBatch()
	defer orec.Release()
	return array.NewRecordReader(columnar.SortedSchema, []arrow.RecordBatch{orec})
}

// TestGroupSortLatestFirst checks the arrival rule: record timestamp first, then topic,
// partition and offset; unsigned keys above 2^63 sort as unsigned; NaN bits survive.
func TestGroupSortLatestFirst(t *testing.T) {
	e, err := query.Open(context.Background(), query.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	nan := math.Float64frombits(0x7ff8000000000bad)
	pts := []pt{
		{org: 1, metric: math.MaxUint64, ts: 5, value: 1, recTs: 10, off: 1},
		{org: 1, metric: 1 << 63, ts: 5, value: 2, recTs: 10, off: 2},
		{org: 1, metric: 7, ts: 5, value: 3, recTs: 9, part: 9, off: 100},  // older record
		{org: 1, metric: 7, ts: 5, value: 4, recTs: 10, part: 0, off: 1},   // latest by record ts
		{org: 1, metric: 7, ts: 6, value: 5, recTs: 10, part: 1, off: 1},   // tie → partition 2 wins
		{org: 1, metric: 7, ts: 6, value: nan, recTs: 10, part: 2, off: 0}, //
		{org: 1, metric: 7, ts: 7, value: 7, recTs: 10, topic: 1, off: 0},  // tie → topic 1 wins
		{org: 1, metric: 7, ts: 7, value: 8, recTs: 10, topic: 0, off: 9},
		{org: 0, metric: 7, ts: 1, value: 9},
		{org: 0, metric: 8, ts: 1, value: math.Copysign(0, -1), recTs: 10}, // -0 keeps its sign
		{org: 0, metric: 8, ts: 1, value: 0, recTs: 9},
	}
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(pts), func(i, j int) { pts[i], pts[j] = pts[j], pts[i] })
	for _, stmt := range []struct {
		name string
		run  func() (array.RecordReader, error)
	}{
		{"groupsort narrow", func() (array.RecordReader, error) {
			return keyedGroupSort(t, e, columnar.LayoutFor(columnar.TimeRange{From: 0, To: 100}), pts)
		}},
		{"groupsort wide", func() (array.RecordReader, error) { return keyedGroupSort(t, e, columnar.KeyLayout{Wide: true}, pts) }},
		{"latest", func() (array.RecordReader, error) {
			return e.Query(context.Background(), tsql.Latest, map[string]array.RecordReader{"points": pointsReader(t, pts)})
		}},
	} {
		r, err := stmt.run()
		if err != nil {
			t.Fatal(err)
		}
		got := collect(t, r)
		// Keep the first row of each (series, ts): the latest, by the SQL's order.
		var dedup []pt
		for _, p := range got {
			if n := len(dedup); n > 0 && dedup[n-1].org == p.org && dedup[n-1].metric == p.metric && dedup[n-1].ctx == p.ctx && dedup[n-1].ts == p.ts {
				continue
			}
			dedup = append(dedup, p)
		}
		want := []struct {
			org    uint32
			metric uint64
			ts     int64
			bits   uint64
		}{
			{0, 7, 1, math.Float64bits(9)},
			{0, 8, 1, math.Float64bits(math.Copysign(0, -1))},
			{1, 7, 5, math.Float64bits(4)},
			{1, 7, 6, math.Float64bits(nan)},
			{1, 7, 7, math.Float64bits(7)},
			{1, 1 << 63, 5, math.Float64bits(2)},
			{1, math.MaxUint64, 5, math.Float64bits(1)},
		}
		if len(dedup) != len(want) {
			t.Fatalf("%s: got %d rows %+v, want %d", stmt.name, len(dedup), dedup, len(want))
		}
		for i, w := range want {
			g := dedup[i]
			if g.org != w.org || g.metric != w.metric || g.ts != w.ts || math.Float64bits(g.value) != w.bits {
				t.Fatalf("%s row %d: got %+v (bits %x), want %+v", stmt.name, i, g, math.Float64bits(g.value), w)
			}
		}
	}
}
