// Package workload generates reproducible synthetic metric traffic: payloads as a
// balancing service would spread them over Kafka partitions, redeliveries included, and
// the exact set of points a correct pipeline must end up with.
//
// Everything derives from the Spec (and its seed), so the expected output is recomputed
// instead of remembered: a 20-million-point check needs no 20-million-entry map.
package workload

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/tailor-metrics/tailor/columnar"
)

// Spec describes a workload.
type Spec struct {
	Seed uint64
	// Series is the number of series; Orgs the number of orgs they belong to (a few
	// large orgs hold most series, as in real platforms).
	Series, Orgs int
	// PointsPerSeries and PointsPerPayload shape each series' payloads.
	PointsPerSeries, PointsPerPayload int
	// IntervalMs is the spacing of a series' points; Start the first ts (Unix ms).
	IntervalMs, Start int64
	// Partitions the payloads are spread over: a series' successive payloads go to
	// successive partitions, so a series is whole only after every partition is read.
	Partitions int
	// Redeliver is the share of payloads sent twice (about 0.01); Corrections is the
	// share of those redeliveries that carry changed values (a producer's fix).
	Redeliver, Corrections float64
	// Resolutions, when set, gives each series an interval picked from it instead of
	// IntervalMs (every series still has PointsPerSeries points, so a coarse series
	// spans more time).
	Resolutions []int64
	// LargeOrgs, when set, are orgs 1..LargeOrgs that together hold LargeShare of the
	// series (the few very large customers); the other orgs share the rest by the
	// power law.
	LargeOrgs  int
	LargeShare float64
}

// Default is the demo's workload: 5,000 series × 1,000 points = 5 million points.
func Default() Spec {
	return Spec{
		Seed: 42, Series: 5000, Orgs: 40, PointsPerSeries: 1000, PointsPerPayload: 100,
		IntervalMs: 10_000, Start: 1763949600000, // 2025-11-24T02:00Z: spans two 4h windows
		Partitions: 8, Redeliver: 0.01, Corrections: 0.2,
	}
}

// Mix is the load test's workload: the realistic mix of series kinds (gauges, counters,
// constants, noisy floats, special values), resolutions (1 s, 10 s, 60 s) and org sizes
// with three very large orgs holding 40% of the series. Every series has 500 points,
// so points = 500 × series.
func Mix(series int) Spec {
	s := Default()
	s.Series, s.PointsPerSeries = series, 500
	s.Orgs = max(40, series/50)
	s.Resolutions = []int64{1_000, 10_000, 10_000, 60_000}
	s.LargeOrgs, s.LargeShare = 3, 0.4
	return s
}

// Validate checks the spec, naming the field.
func (s Spec) Validate() error {
	switch {
	case s.Series <= 0 || s.Orgs <= 0 || s.Partitions <= 0:
		return fmt.Errorf("workload: series %d, orgs %d and partitions %d must be positive", s.Series, s.Orgs, s.Partitions)
	case s.PointsPerSeries <= 0 || s.PointsPerPayload <= 0:
		return fmt.Errorf("workload: points per series %d and per payload %d must be positive", s.PointsPerSeries, s.PointsPerPayload)
	case s.IntervalMs <= 0:
		return fmt.Errorf("workload: interval %d ms must be positive", s.IntervalMs)
	case s.Redeliver < 0 || s.Redeliver > 1 || s.Corrections < 0 || s.Corrections > 1:
		return fmt.Errorf("workload: redeliver %g and corrections %g must be in [0, 1]", s.Redeliver, s.Corrections)
	case s.LargeOrgs < 0 || s.LargeOrgs >= s.Orgs || s.LargeShare < 0 || s.LargeShare > 1:
		return fmt.Errorf("workload: large orgs %d must be in [0, orgs %d) and large share %g in [0, 1]", s.LargeOrgs, s.Orgs, s.LargeShare)
	}
	for _, r := range s.Resolutions {
		if r <= 0 {
			return fmt.Errorf("workload: resolution %d ms must be positive", r)
		}
	}
	return nil
}

// Points is the number of distinct points the workload produces.
func (s Spec) Points() int64 { return int64(s.Series) * int64(s.PointsPerSeries) }

// Chunks is the number of payloads per series.
func (s Spec) Chunks() int { return (s.PointsPerSeries + s.PointsPerPayload - 1) / s.PointsPerPayload }

// kind of a series' values.
type kind uint8

const (
	kindGauge2  kind = iota // random walk rounded to 2 decimals
	kindCounter             // monotonic integers
	kindConst               // one value
	kindFloat               // full-precision noise
	kindSpecial             // floats with NaN, ±Inf, -0 and subnormals mixed in
)

// series is one generated series.
type series struct {
	key      columnar.SeriesKey
	kind     kind
	seed     uint64
	tags     []string
	interval int64 // ms between points
}

// Gen produces a Spec's payloads and expected points.
type Gen struct {
	spec   Spec
	series []series // in generation order
	sorted []int    // indexes of series in key order
	// redelivered maps (series, chunk) to whether the redelivery is a correction.
	redelivered map[[2]int]bool
}

// New builds the generator.
func New(spec Spec) (*Gen, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x7a11))
	g := &Gen{spec: spec, redelivered: map[[2]int]bool{}}
	seen := map[columnar.SeriesKey]bool{}
	for i := 0; i < spec.Series; i++ {
		// Org sizes follow a power law: org k gets weight 1/(k+1). With LargeOrgs, a
		// share of the series goes to the large orgs first. (No extra draws without
		// LargeOrgs or Resolutions, so older specs generate exactly what they did.)
		var org uint32
		if spec.LargeOrgs > 0 && rng.Float64() < spec.LargeShare {
			org = uint32(rng.IntN(spec.LargeOrgs)) + 1
		} else if spec.LargeOrgs > 0 {
			org = uint32(spec.LargeOrgs+zipf(rng, spec.Orgs-spec.LargeOrgs)) + 1
		} else {
			org = uint32(zipf(rng, spec.Orgs)) + 1
		}
		k := columnar.SeriesKey{Org: org, Metric: rng.Uint64N(200) * 0x9e3779b97f4a7c15, Context: rng.Uint64()}
		if seen[k] {
			i--
			continue
		}
		seen[k] = true
		kd := kind(rng.IntN(10))
		switch {
		case kd < 3:
			kd = kindGauge2
		case kd < 5:
			kd = kindCounter
		case kd < 7:
			kd = kindConst
		case kd < 9:
			kd = kindFloat
		default:
			kd = kindSpecial
		}
		tags := []string{fmt.Sprintf("host:h%d", i%97), fmt.Sprintf("env:%s", [...]string{"prod", "staging"}[i%2])}
		sr := series{key: k, kind: kd, seed: rng.Uint64(), tags: tags, interval: spec.IntervalMs}
		if len(spec.Resolutions) > 0 {
			sr.interval = spec.Resolutions[rng.IntN(len(spec.Resolutions))]
		}
		g.series = append(g.series, sr)
	}
	g.sorted = make([]int, len(g.series))
	for i := range g.sorted {
		g.sorted[i] = i
	}
	sort.Slice(g.sorted, func(a, b int) bool { return g.series[g.sorted[a]].key.Less(g.series[g.sorted[b]].key) })
	for s := range g.series {
		for c := 0; c < spec.Chunks(); c++ {
			if rng.Float64() < spec.Redeliver {
				g.redelivered[[2]int{s, c}] = rng.Float64() < spec.Corrections
			}
		}
	}
	return g, nil
}

func zipf(rng *rand.Rand, n int) int {
	// Inverse-CDF sampling of weights 1/(k+1); n is small, so a linear scan is fine.
	var total float64
	for k := 0; k < n; k++ {
		total += 1 / float64(k+1)
	}
	x := rng.Float64() * total
	for k := 0; k < n; k++ {
		x -= 1 / float64(k+1)
		if x <= 0 {
			return k
		}
	}
	return n - 1
}

// Spec returns the generator's spec.
func (g *Gen) Spec() Spec { return g.spec }

// Redeliveries is the number of payloads sent twice.
func (g *Gen) Redeliveries() int { return len(g.redelivered) }

// value is point i of series s; version 1 is a redelivery's corrected value.
func (g *Gen) value(s, i, version int) float64 {
	sr := &g.series[s]
	h := mix(sr.seed ^ uint64(i)*0x9e3779b97f4a7c15 ^ uint64(version)<<63)
	var v float64
	switch sr.kind {
	case kindGauge2:
		// A bounded wave plus noise, rounded to cents: typical of CPU % and latencies.
		v = math.Round((50+40*math.Sin(float64(i)/50+float64(sr.seed%7))+float64(h%1000)/100)*100) / 100
	case kindCounter:
		v = float64(sr.seed%1000 + uint64(i)*uint64(1+sr.seed%13) + h%3)
	case kindConst:
		v = float64(sr.seed % 100)
	case kindFloat:
		v = float64(h>>11) / (1 << 53) * 1000
	case kindSpecial:
		switch h % 16 {
		case 0:
			v = math.NaN()
		case 1:
			v = math.Inf(1)
		case 2:
			v = math.Inf(-1)
		case 3:
			v = math.Copysign(0, -1)
		case 4:
			v = math.Float64frombits(h % (1 << 52)) // subnormal
		default:
			v = math.Float64frombits(h&^(0x7ff<<52) | 0x3ff<<52) // in [1, 2)
		}
	}
	if version == 1 && sr.kind != kindSpecial {
		v += 0.5
	}
	return v
}

func (g *Gen) ts(s, i int) int64 {
	t := g.spec.Start + int64(i)*g.series[s].interval
	if g.series[s].seed%10 == 0 {
		t += int64(mix(g.series[s].seed^uint64(i)) % 97) // agents with jittery clocks
	}
	return t
}

// Record is one Kafka record to produce.
type Record struct {
	Partition int32
	// Timestamp is the record timestamp (Unix ms): after the payload's last point, and
	// for a redelivery after the original's.
	Timestamp int64
	Payload   columnar.Payload
	// Redelivery and Correction mark the second delivery of a payload.
	Redelivery, Correction bool
}

// Records calls fn for every record in production order: chunk by chunk, every series'
// payload of a chunk, spread over the partitions, and each redelivery two chunks after
// its original. fn must not keep rec.Payload's slices.
func (g *Gen) Records(fn func(rec *Record) error) error {
	var rec Record
	spec := g.spec
	emit := func(s, c int, redelivery, correction bool) error {
		sr := &g.series[s]
		lo := c * spec.PointsPerPayload
		hi := min(lo+spec.PointsPerPayload, spec.PointsPerSeries)
		rec.Payload.Reset()
		rec.Payload.SeriesKey = sr.key
		rec.Payload.Tags = append(rec.Payload.Tags, sr.tags...)
		version := 0
		if correction {
			version = 1
		}
		for i := lo; i < hi; i++ {
			rec.Payload.Timestamps = append(rec.Payload.Timestamps, g.ts(s, i))
			rec.Payload.Values = append(rec.Payload.Values, g.value(s, i, version))
		}
		p := (s + c) % spec.Partitions
		rec.Timestamp = g.ts(s, hi-1) + 1000
		if redelivery {
			p = (p + 1 + s%max(1, spec.Partitions-1)) % spec.Partitions
			rec.Timestamp += 2 * int64(spec.PointsPerPayload) * g.series[s].interval
		}
		rec.Partition = int32(p)
		rec.Redelivery, rec.Correction = redelivery, correction
		return fn(&rec)
	}
	for c := 0; c < spec.Chunks()+2; c++ {
		for s := range g.series {
			if c < spec.Chunks() {
				if err := emit(s, c, false, false); err != nil {
					return err
				}
			}
			if c >= 2 {
				if corr, ok := g.redelivered[[2]int{s, c - 2}]; ok {
					if err := emit(s, c-2, true, corr); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// Expected calls fn for every distinct point in (series key, ts) order, with the value
// of its latest delivery.
func (g *Gen) Expected(fn func(k columnar.SeriesKey, ts int64, v float64) error) error {
	for _, s := range g.sorted {
		for i := 0; i < g.spec.PointsPerSeries; i++ {
			version := 0
			if g.redelivered[[2]int{s, i / g.spec.PointsPerPayload}] {
				version = 1
			}
			if err := fn(g.series[s].key, g.ts(s, i), g.value(s, i, version)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Tags returns the tags of the series with key k.
func (g *Gen) Tags(k columnar.SeriesKey) []string {
	i := sort.Search(len(g.sorted), func(i int) bool { return !g.series[g.sorted[i]].key.Less(k) })
	if i < len(g.sorted) && g.series[g.sorted[i]].key == k {
		return g.series[g.sorted[i]].tags
	}
	return nil
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
