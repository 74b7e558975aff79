package main

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/tailor-metrics/tailor/columnar"
)

// The synthetic kinds. Each has a fixed seed, so every run measures the same points, and
// each mimics one character of real data that a codec tuned on NAB can miss.

// staleNaN is Prometheus' staleness marker, a NaN with a payload: a codec that keeps only
// "NaN" loses it.
var staleNaN = math.Float64frombits(0x7ff0000000000002)

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// sortSeries puts the series of d in key order (the real sets come sorted from realdata).
func sortSeries(d *dataset) {
	sort.Slice(d.series, func(i, j int) bool { return d.series[i].key.Less(d.series[j].key) })
}

// agentMix is a synthetic one-second agent: nSeries series of nPoints points, one a
// second, with the value shapes a host agent reports.
func agentMix(nSeries, nPoints int) dataset {
	rng := rand.New(rand.NewPCG(2026, 11))
	d := dataset{name: "synthetic agent mix 1s"}
	t0 := int64(1_790_000_000_000)
	for i := range nSeries {
		s := series{key: columnar.SeriesKey{Org: uint32(1 + i%5), Metric: uint64(i % 97), Context: uint64(i)}}
		s.ts = make([]int64, nPoints)
		s.vals = make([]float64, nPoints)
		jitter := i%5 == 0 // some agents stamp with the collection time, not the tick
		kind := i % 20
		v := float64(rng.IntN(1 << 20))
		for j := range nPoints {
			t := t0 + int64(j)*1000
			if jitter {
				t += rng.Int64N(15)
			}
			s.ts[j] = t
			switch {
			case kind < 5: // constant gauges: limits, up, cores
				s.vals[j] = float64(1 + i%8)
			case kind < 9: // monotonic counters: bytes, packets, requests
				v += float64(rng.IntN(5000))
				s.vals[j] = v
			case kind < 13: // percentages with 2 decimals
				s.vals[j] = math.Round((40+10*math.Sin(float64(j)/300)+rng.NormFloat64())*100) / 100
			case kind < 16: // integer gauges in pages: memory, disk
				s.vals[j] = float64(int64(v) + 4096*int64(rng.IntN(64)))
			case kind < 18: // rates computed in floating point
				s.vals[j] = float64(rng.IntN(3000)) / 3
			default: // latencies in seconds, full precision
				s.vals[j] = rng.ExpFloat64() * 0.05
			}
		}
		d.series = append(d.series, s)
	}
	sortSeries(&d)
	return d
}

// shortScrapes is Kubernetes cAdvisor scraped every 10 s for 25 minutes: 150 points per
// series, 20 nodes × 30 containers × 12 metrics. Every series of one node carries the
// same scrape timestamps (the scrape start, with a few ms of jitter), but keys are hashes
// of the metric name and of the labels, so in key order a node's series are far apart.
// Containers that stop end with a staleness marker.
func shortScrapes() dataset {
	rng := rand.New(rand.NewPCG(150, 10))
	d := dataset{name: "synthetic short scrape-aligned 10s"}
	const (
		nodes, containers, points = 20, 30, 150
		t0                        = int64(1_790_000_000_000)
	)
	metrics := []string{
		"container_cpu_usage_seconds_total", "container_cpu_user_seconds_total", "container_cpu_system_seconds_total",
		"container_memory_usage_bytes", "container_memory_working_set_bytes", "container_memory_rss",
		"container_network_receive_bytes_total", "container_network_transmit_bytes_total",
		"container_fs_usage_bytes", "container_spec_memory_limit_bytes", "container_spec_cpu_shares", "container_threads",
	}
	for n := range nodes {
		ts := make([]int64, points)
		off := rng.Int64N(10_000)
		for i := range ts {
			ts[i] = t0 + off + int64(i)*10_000 + rng.Int64N(25)
		}
		for c := range containers {
			ctx := hash64("node=n" + string(rune('a'+n)) + ",pod=p" + string(rune('a'+c)))
			stops := rng.IntN(10) == 0
			cpu := rng.Float64() * 1000
			rate := rng.Float64() * 0.5
			mem := float64(4096 * (1000 + rng.IntN(100000)))
			net := float64(rng.IntN(1 << 30))
			fs := float64(4096 * rng.IntN(1<<20))
			limit := float64(int64(1<<28) << rng.IntN(5))
			threads := float64(1 + rng.IntN(60))
			for m, name := range metrics {
				s := series{key: columnar.SeriesKey{Org: 1, Metric: hash64(name), Context: ctx}}
				s.ts = append([]int64(nil), ts...)
				s.vals = make([]float64, points)
				v := [...]float64{cpu, cpu * 0.7, cpu * 0.3, mem, mem * 0.8, mem * 0.6, net, net / 3, fs, limit, 1024, threads}[m]
				for i := range s.vals {
					switch m {
					case 0, 1, 2: // CPU seconds: float counters, full precision
						v += rate * 10 * [...]float64{1, 0.7, 0.3}[m] * (0.5 + rng.Float64())
					case 3, 4, 5: // memory: whole pages, moving
						v += float64(4096 * (rng.IntN(65) - 32))
					case 6, 7: // bytes counters
						v += float64(rng.IntN(200_000))
					case 8: // filesystem usage: rarely changes
						if rng.IntN(30) == 0 {
							v += float64(4096 * rng.IntN(100))
						}
					case 11: // threads: small integer, rarely changes
						if rng.IntN(20) == 0 {
							v = max(1, v+float64(rng.IntN(3)-1))
						}
					}
					s.vals[i] = v
				}
				if stops {
					s.vals[points-1] = staleNaN
				}
				d.series = append(d.series, s)
			}
		}
	}
	sortSeries(&d)
	return d
}

// heavyRepeats is agent data that rarely changes: counters that step now and then,
// capacities (shared by many series) that change once, averages quantized to 1/15 and
// printed at full precision, a few distinct states, and 1-decimal percentages; one point
// a minute with ±1 s of jitter for 3 days, 300 series.
func heavyRepeats() dataset {
	rng := rand.New(rand.NewPCG(55, 1))
	d := dataset{name: "synthetic heavy repeats"}
	const (
		nSeries, points = 300, 4320
		t0              = int64(1_790_000_000_000)
	)
	capacities := []float64{5851.9989, 11703.9978, 2925.99945, 8218624.0, 16437248.0, 4194304.0}
	for i := range nSeries {
		s := series{key: columnar.SeriesKey{Org: 1, Metric: uint64(1 + i%6), Context: uint64(i / 6)}}
		s.ts = make([]int64, points)
		s.vals = make([]float64, points)
		t := t0 + int64(i%7)*1000
		var v float64
		switch i % 6 {
		case 1:
			v = capacities[rng.IntN(len(capacities))]
		case 2:
			v = float64(rng.IntN(40)) / 15
		}
		stepAt := rng.IntN(points)
		for j := range points {
			s.ts[j] = t + 1000*int64(rng.IntN(3)-1)
			t += 60_000
			switch i % 6 {
			case 0: // error counters
				if rng.IntN(40) == 0 {
					v += float64(1 + rng.IntN(3))
				}
			case 1: // capacities, resized once
				if j == stepAt {
					v = capacities[rng.IntN(len(capacities))]
				}
			case 2: // averages of 15 samples, full precision
				if rng.IntN(4) == 0 {
					v = float64(rng.IntN(40)) / 15
				}
			case 3: // states
				if rng.IntN(50) == 0 {
					v = float64(rng.IntN(4))
				}
			case 4: // CPU % with one decimal, mostly idle
				if rng.IntN(3) == 0 {
					v = float64(rng.IntN(12)) / 10
				}
			default: // queue lengths: mostly zero
				v = 0
				if rng.IntN(25) == 0 {
					v = float64(rng.IntN(9))
				}
			}
			s.vals[j] = v
		}
		d.series = append(d.series, s)
	}
	sortSeries(&d)
	return d
}

// fullPrecision is cluster-wide averages and ratios computed in floating point: 15 to 17
// significant digits, no decimal structure, almost no repeats; 40 series of 20,000
// points every 10 s, one NaN gap per series.
func fullPrecision() dataset {
	rng := rand.New(rand.NewPCG(17, 16))
	d := dataset{name: "synthetic full-precision doubles"}
	const (
		nSeries, points = 40, 20000
		t0              = int64(1_790_000_000_000)
	)
	for i := range nSeries {
		s := series{key: columnar.SeriesKey{Org: 2, Metric: uint64(i % 4), Context: uint64(i)}}
		s.ts = make([]int64, points)
		s.vals = make([]float64, points)
		level := 0.2 + 0.6*rng.Float64()
		ewma := level
		hosts := 500 + rng.IntN(1000)
		for j := range points {
			s.ts[j] = t0 + int64(j)*10_000
			day := math.Sin(float64(j) / 8640 * 2 * math.Pi)
			switch i % 4 {
			case 0: // mean utilization over the hosts
				s.vals[j] = (level + 0.1*day + 0.02*rng.NormFloat64()) * float64(hosts) / float64(hosts)
				s.vals[j] = float64(int(s.vals[j]*1e6*float64(hosts))) / 1e6 / float64(hosts)
			case 1: // a ratio of two counts
				a := float64(1e6 + rng.IntN(1e5))
				s.vals[j] = a / (a + float64(rng.IntN(1e4)))
			case 2: // a load average (EWMA)
				ewma = ewma*0.92 + (level*10+2*day+rng.NormFloat64())*0.08
				s.vals[j] = ewma
			default: // cycles per instruction, in the hundreds
				s.vals[j] = 100 + 50*level + 3*day + rng.NormFloat64()
			}
		}
		s.vals[rng.IntN(points)] = math.NaN()
		d.series = append(d.series, s)
	}
	sortSeries(&d)
	return d
}
