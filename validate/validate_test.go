package validate

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

func TestMergerRandomInterleavings(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for iter := 0; iter < 200; iter++ {
		var all []Point
		for i := 0; i < 50; i++ {
			all = append(all, Point{Key: columnar.SeriesKey{Org: uint32(rng.IntN(3)), Metric: rng.Uint64N(3)}, Ts: rng.Int64N(20), Value: float64(rng.IntN(3))})
		}
		sort.Slice(all, func(i, j int) bool { return less(all[i], all[j]) })
		var newS, legS []Point
		var want Counts
		for i, p := range all {
			if i > 0 && all[i-1].Key == p.Key && all[i-1].Ts == p.Ts {
				continue
			}
			switch rng.IntN(4) {
			case 0:
				newS = append(newS, p)
				want.MissingInLegacy++
			case 1:
				legS = append(legS, p)
				want.MissingInNew++
			case 2:
				newS, legS = append(newS, p), append(legS, p)
				want.Equal++
			case 3:
				q := p
				q.Value = math.NaN()
				newS, legS = append(newS, p), append(legS, q)
				want.ValueDiffers++
			}
		}
		var m Merger
		i, j := 0, 0
		for i < len(newS) || j < len(legS) {
			if j >= len(legS) || i < len(newS) && rng.IntN(2) == 0 {
				m.AddNew(newS[i])
				i++
			} else {
				m.AddLegacy(legS[j])
				j++
			}
		}
		if got := m.Close(); got != want {
			t.Fatalf("iter %d: got %+v, want %+v", iter, got, want)
		}
	}
}

func TestSameValueNaN(t *testing.T) {
	if !SameValue(math.NaN(), math.Float64frombits(0x7ff8000000000bad)) || SameValue(0, math.Copysign(0, -1)) {
		t.Fatal("NaN must equal NaN; 0 and -0 differ by bits")
	}
}
