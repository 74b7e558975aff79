package payload

import (
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// Benchmarks decode one 100-point payload per op (remote-write: one request of 10
// series of 100 samples per op), reusing dst as the sink does, and report points/s.
//
// Profile with:
//
//	go test -run '^$' -bench 'Decode/json' -cpuprofile cpu.out ./ingest/payload/
//	go tool pprof -top cpu.out

const benchPoints = 100

func benchDecode(b *testing.B, f Format, rec []byte, pointsPerOp int, want []columnar.Payload) {
	b.Helper()
	var d Decoder
	dst, err := d.Decode(f, rec, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Correctness check once, outside the timed loop.
	if len(dst) != len(want) {
		b.Fatalf("decoded %d payloads, want %d", len(dst), len(want))
	}
	for i := range want {
		if !equalPayload(&dst[i], &want[i]) {
			b.Fatalf("payload %d decoded wrong", i)
		}
	}
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if dst, err = d.Decode(f, rec, dst[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*pointsPerOp)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(len(rec))/float64(pointsPerOp), "B/point")
}

func BenchmarkDecode(b *testing.B) {
	p := samplePayload(benchPoints)
	b.Run("proto", func(b *testing.B) {
		benchDecode(b, Proto, AppendProto(nil, &p), benchPoints, []columnar.Payload{p})
	})
	b.Run("json", func(b *testing.B) {
		benchDecode(b, JSON, AppendJSON(nil, &p), benchPoints, []columnar.Payload{p})
	})
	b.Run("auto-json", func(b *testing.B) {
		benchDecode(b, Auto, AppendJSON(nil, &p), benchPoints, []columnar.Payload{p})
	})
	b.Run("remote-write-10x100", func(b *testing.B) {
		series := benchSeries(10, benchPoints)
		rec := AppendRemoteWrite(nil, series)
		var d Decoder
		want, err := d.Decode(RemoteWrite, rec, nil)
		if err != nil {
			b.Fatal(err)
		}
		benchDecode(b, RemoteWrite, rec, 10*benchPoints, want)
	})
	b.Run("remote-write-1x100", func(b *testing.B) {
		rec := AppendRemoteWrite(nil, benchSeries(1, benchPoints))
		var d Decoder
		want, err := d.Decode(RemoteWrite, rec, nil)
		if err != nil {
			b.Fatal(err)
		}
		benchDecode(b, RemoteWrite, rec, benchPoints, want)
	})
}

func BenchmarkAppend(b *testing.B) {
	p := samplePayload(benchPoints)
	var buf []byte
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendProto(buf[:0], &p)
		}
		b.SetBytes(int64(len(buf)))
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendJSON(buf[:0], &p)
		}
		b.SetBytes(int64(len(buf)))
	})
}
