package encoder

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
)

// Benchmarks. Profile one with, e.g.,
//
//	go test ./encoder/ -run '^$' -bench 'Decode/nab' -benchmem -cpuprofile cpu.prof
//	go tool pprof -top encoder.test cpu.prof
//
// SetBytes counts 16 bytes per point (an int64 timestamp and a float64 value), so MB/s
// reads as raw point throughput; pts/s is reported too, and B/point is the encoded size.

// benchInputs are the data sets: a synthetic agent mix, every NAB file pooled, and all
// the real data pooled (NAB, bitbrains and dctraces: what issue 20's speed goals are
// about). The real sets are left out when the data is not there.
func benchInputs(b *testing.B) map[string][]testSeries {
	in := map[string][]testSeries{"agent-mix": agentMix(2000, 360)}
	var nab, real []testSeries
	for _, f := range loadNABQuiet() {
		nab = append(nab, f.Series...)
	}
	real = append(real, nab...)
	for _, f := range loadMoreQuiet() {
		real = append(real, f.Series...)
	}
	if len(nab) > 0 {
		sortSeries(nab)
		in["nab"] = nab
	}
	if len(real) > len(nab) {
		sortSeries(real)
		in["real"] = real
	}
	return in
}

// agentMix is a synthetic one-second agent scrape: regular 1 s timestamps with rare
// jitter, values that are constants, counters, gauges with 2 decimals and raw floats.
func agentMix(nSeries, nPoints int) []testSeries {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]testSeries, nSeries)
	for i := range out {
		s := &out[i]
		s.Key = columnar.SeriesKey{Org: uint32(i % 7), Metric: uint64(i / 7 % 50), Context: uint64(i)}
		s.Ts = make([]int64, nPoints)
		s.Values = make([]float64, nPoints)
		t := int64(1700000000000)
		v := float64(rng.IntN(1000))
		kind := i % 4
		for j := range nPoints {
			s.Ts[j] = t
			t += 1000
			if rng.IntN(50) == 0 {
				t += rng.Int64N(20) - 10
			}
			switch kind {
			case 0:
				s.Values[j] = 1
			case 1:
				v += float64(rng.IntN(100))
				s.Values[j] = v
			case 2:
				s.Values[j] = math.Round((50+rng.NormFloat64()*10)*100) / 100
			default:
				s.Values[j] = rng.Float64() * 1e6
			}
		}
	}
	sortSeries(out)
	return out
}

// cpuTime is the process' user+system CPU time. The benchmarks report points per CPU
// second beside points per wall second, because on a shared machine wall time measures the
// neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportRates(b *testing.B, pts int, cpu0 time.Duration) {
	b.ReportMetric(float64(pts)*float64(b.N)/b.Elapsed().Seconds(), "pts/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(pts)*float64(b.N)/cpu.Seconds(), "pts/cpu-s")
	}
}

func points(series []testSeries) int {
	n := 0
	for _, s := range series {
		n += len(s.Ts)
	}
	return n
}

// benchVersions are the format versions the codec benchmarks compare: the current one
// and the one before, in the same run (the machine is shared, so absolute figures vary).
var benchVersions = []uint16{Version2, CurrentVersion}

func BenchmarkEncode(b *testing.B) {
	for name, series := range benchInputs(b) {
		for _, v := range benchVersions {
			b.Run(fmt.Sprintf("%s/v%d", name, v), func(b *testing.B) {
				n := points(series)
				var buf bytes.Buffer
				b.ReportAllocs()
				b.SetBytes(int64(16 * n))
				cpu0 := cpuTime()
				for b.Loop() {
					buf.Reset()
					w := NewWriter(&buf, FormatVersion(v))
					for _, s := range series {
						if err := w.Append(s.Key, s.Tags, s.Ts, s.Values); err != nil {
							b.Fatal(err)
						}
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(buf.Len())/float64(n), "B/point")
				reportRates(b, n, cpu0)
				// What was timed must decode to the input, bit for bit.
				requireSameSeries(b, series, decodeFile(b, buf.Bytes()))
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for name, series := range benchInputs(b) {
		for _, v := range benchVersions {
			b.Run(fmt.Sprintf("%s/v%d", name, v), func(b *testing.B) {
				n := points(series)
				enc := encodeFile(b, series, FormatVersion(v))
				r, err := Open(bytes.NewReader(enc), int64(len(enc)))
				if err != nil {
					b.Fatal(err)
				}
				var it *SeriesIterator
				b.ReportAllocs()
				b.SetBytes(int64(16 * n))
				cpu0 := cpuTime()
				for b.Loop() {
					it = r.Iterator(it)
					got := 0
					for it.Next() {
						got += len(it.At().Ts)
					}
					if it.Err() != nil || got != n {
						b.Fatalf("decoded %d of %d points: %v", got, n, it.Err())
					}
				}
				b.ReportMetric(float64(len(enc))/float64(n), "B/point")
				reportRates(b, n, cpu0)
			})
		}
	}
}

func BenchmarkRecordReader(b *testing.B) {
	series := agentMix(2000, 360)
	n := points(series)
	enc := encodeFile(b, series)
	r, err := Open(bytes.NewReader(enc), int64(len(enc)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(16 * n))
	cpu0 := cpuTime()
	for b.Loop() {
		rr := r.RecordReader(0)
		got := 0
		for rr.Next() {
			got += int(rr.RecordBatch().NumRows())
		}
		if rr.Err() != nil || got != n {
			b.Fatalf("decoded %d of %d rows: %v", got, n, rr.Err())
		}
		rr.Release()
	}
	reportRates(b, n, cpu0)
}
