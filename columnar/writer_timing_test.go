package columnar

import (
	"io"
	"math/rand/v2"
	"sync"
	"testing"
)

// benchRecords are the records of one partition's segment in `make bench-sink`: 500,000
// points in 100-point records from 5,000 series of 40 orgs (about 30 shards of the
// default map, none of whose frames fill), the agent-like mix at 10 s.
var benchRecords = sync.OnceValue(func() []Payload {
	rng := rand.New(rand.NewPCG(9, 9))
	const series, perSeries, perRecord = 5000, 100, 100
	var ps []Payload
	for i := 0; i < series; i++ {
		p := Payload{SeriesKey: SeriesKey{Org: uint32(i%40) * 7919, Metric: uint64(i % 97), Context: uint64(i)}, Tags: []string{"env:prod"}}
		state := 0.0
		for j := 0; j < perSeries; j++ {
			p.Timestamps = append(p.Timestamps, 1_790_000_000_000+int64(j)*10_000)
			p.Values = append(p.Values, agentValue(rng, i, j, &state))
		}
		ps = append(ps, p)
	}
	return ps
})

// BenchmarkSegmentWriter is the sink's per-point work after decoding: adding records to
// a segment writer and writing the segment (frames built, compressed and written).
func BenchmarkSegmentWriter(b *testing.B) {
	ps := benchRecords()
	points := 0
	for i := range ps {
		points += len(ps[i].Timestamps)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w := NewSegmentWriter(Header{Topic: "metrics"}, DefaultShardMap(), 0)
		for i := range ps {
			if err := w.Add(Source{Topic: "metrics", Offset: int64(i), Timestamp: 1_790_000_000_000}, ps[i:i+1]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(points)*float64(b.N)/b.Elapsed().Seconds(), "points/s")
}
