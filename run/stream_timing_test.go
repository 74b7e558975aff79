package run

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/ingest/workload"
)

// BenchmarkKeyedStream measures what a run does after the sort: the Arrow adapter (keyed
// rows of the load test's workload mix, 100-point payloads in batches of about 64Ki
// points, 1% of payloads redelivered), the merge, the spool's encoding and its key-order
// write of the part files. Profile it with
//
//	go test ./run/ -run '^$' -bench KeyedStream -cpuprofile cpu.prof && go tool pprof -top run.test cpu.prof
func BenchmarkKeyedStream(b *testing.B) {
	gen, err := workload.New(workload.Mix(1440))
	if err != nil {
		b.Fatal(err)
	}
	// The groups in the order the sort hands them over: by series id, then first ts;
	// a later record gets a higher gid, so laterGid ranks arrivals.
	type group struct {
		sid, gid uint32
		ts       []int64
		vs       []float64
	}
	var groups []group
	sids := map[columnar.SeriesKey]uint32{}
	var keys []columnar.SeriesKey
	err = gen.Records(func(rec *workload.Record) error {
		sid, ok := sids[rec.Payload.SeriesKey]
		if !ok {
			sid = uint32(len(keys))
			sids[rec.Payload.SeriesKey] = sid
			keys = append(keys, rec.Payload.SeriesKey)
		}
		groups = append(groups, group{sid: sid, gid: uint32(len(groups)), ts: slices.Clone(rec.Payload.Timestamps), vs: slices.Clone(rec.Payload.Values)})
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	slices.SortFunc(groups, func(a, b group) int {
		return cmp.Or(cmp.Compare(a.sid, b.sid), cmp.Compare(a.ts[0], b.ts[0]), cmp.Compare(a.gid, b.gid))
	})
	base := slices.MinFunc(groups, func(a, b group) int { return cmp.Compare(a.ts[0], b.ts[0]) }).ts[0]
	l := columnar.KeyLayout{Base: base}
	ps := NewPointStore(b.TempDir(), 1<<30)
	defer ps.Close()
	pw := ps.Writer()
	bld := array.NewRecordBuilder(memory.DefaultAllocator, l.Schema())
	defer bld.Release()
	var recs []arrow.RecordBatch
	rows, batched := 0, 0
	for _, g := range groups {
		dst, err := pw.Reserve(len(g.ts) * columnar.RunPointBytes)
		if err != nil {
			b.Fatal(err)
		}
		for i := range g.ts {
			binary.LittleEndian.PutUint64(dst[16*i:], uint64(g.ts[i]))
			binary.LittleEndian.PutUint64(dst[16*i+8:], math.Float64bits(g.vs[i]))
		}
		bld.Field(0).(*array.Uint64Builder).Append(uint64(g.sid)<<32 | uint64(g.ts[0]-l.Base))
		bld.Field(1).(*array.Uint32Builder).Append(g.gid)
		bld.Field(2).(*array.Uint32Builder).Append(uint32(len(g.ts)))
		bld.Field(3).(*array.Uint64Builder).Append(pw.Commit(len(dst)))
		rows += len(g.ts)
		if rows-batched >= 64<<10 {
			recs, batched = append(recs, bld.NewRecordBatch()), rows
		}
	}
	if err := pw.Close(); err != nil {
		b.Fatal(err)
	}
	recs = append(recs, bld.NewRecordBatch())
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	want := gen.Spec().Points()
	b.ReportAllocs()
	b.SetBytes(int64(16 * rows))
	cpu0 := cpuTime()
	for b.Loop() {
		sp := encoder.NewSpool(b.TempDir(), 64<<20)
		s := NewKeyedStream(l, laterGid, ps.Points, func(sid uint32, ts []int64, vals []float64) error {
			return sp.Add(keys[sid], nil, ts, vals)
		})
		for _, r := range recs {
			if err := s.Write(r); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if st := s.Stats(); st.PointsIn != int64(rows) || st.PointsOut != want {
			b.Fatalf("stats %+v, want %d points in and %d out", st, rows, want)
		}
		var out int64
		if err := sp.WriteSorted(256<<20, func(_ []byte, _, pts int64) error { out += pts; return nil }); err != nil {
			b.Fatal(err)
		}
		if out != want {
			b.Fatalf("the parts hold %d points, want %d", out, want)
		}
		if err := sp.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "pts/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(rows)*float64(b.N)/cpu.Seconds(), "pts/cpu-s")
	}
}

// cpuTime is the process' user+system CPU time: on a shared machine, points per CPU
// second measure the code and not the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
