package workload

import (
	"math"
	"testing"

	"github.com/tailor-metrics/tailor/columnar"
)

// TestExpectedMatchesRecords replays the records with the latest-arrival rule in a map
// and checks that Expected gives exactly the same points, bit for bit.
func TestExpectedMatchesRecords(t *testing.T) {
	spec := Default()
	spec.Series, spec.PointsPerSeries, spec.PointsPerPayload, spec.Redeliver = 300, 250, 40, 0.2
	t.Run("default", func(t *testing.T) { checkExpectedMatchesRecords(t, spec) })
	mix := Mix(300)
	mix.PointsPerPayload, mix.Redeliver = 40, 0.2
	t.Run("mix", func(t *testing.T) { checkExpectedMatchesRecords(t, mix) })
}

func checkExpectedMatchesRecords(t *testing.T, spec Spec) {
	g, err := New(spec)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		k  columnar.SeriesKey
		ts int64
	}
	type val struct {
		bits  uint64
		recTs int64
	}
	latest := map[key]val{}
	recs, redel := 0, 0
	err = g.Records(func(r *Record) error {
		recs++
		if r.Redelivery {
			redel++
		}
		for i, ts := range r.Payload.Timestamps {
			k := key{r.Payload.SeriesKey, ts}
			if cur, ok := latest[k]; !ok || r.Timestamp > cur.recTs {
				latest[k] = val{math.Float64bits(r.Payload.Values[i]), r.Timestamp}
			} else if r.Timestamp == cur.recTs {
				t.Fatalf("record timestamps tie for %+v", k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if redel != g.Redeliveries() || redel == 0 || recs != spec.Series*spec.Chunks()+redel {
		t.Fatalf("records %d, redeliveries %d (gen says %d)", recs, redel, g.Redeliveries())
	}
	n := 0
	var prev key
	err = g.Expected(func(k columnar.SeriesKey, ts int64, v float64) error {
		cur := key{k, ts}
		if n > 0 && !(prev.k.Less(k) || prev.k == k && prev.ts < ts) {
			t.Fatalf("expected out of order at %d: %+v after %+v", n, cur, prev)
		}
		prev = cur
		n++
		if got, ok := latest[cur]; !ok || got.bits != math.Float64bits(v) {
			t.Fatalf("point %+v: expected bits %x, records say %x (present %v)", cur, math.Float64bits(v), got.bits, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(latest) || int64(n) != spec.Points() {
		t.Fatalf("expected %d points, records hold %d, spec says %d", n, len(latest), spec.Points())
	}
}

// TestMix: the load test's mix has its large orgs, every resolution and every kind of
// series, and the default spec is unchanged by the new fields (same first series).
func TestMix(t *testing.T) {
	g, err := New(Mix(3000))
	if err != nil {
		t.Fatal(err)
	}
	large, intervals, kinds := 0, map[int64]int{}, map[kind]int{}
	for _, s := range g.series {
		if s.key.Org <= 3 {
			large++
		}
		intervals[s.interval]++
		kinds[s.kind]++
	}
	// 40% go to the large orgs by draw; the power law adds none to them.
	if share := float64(large) / 3000; share < 0.35 || share > 0.45 {
		t.Errorf("large orgs hold %.2f of the series, want about 0.40", share)
	}
	if len(intervals) != 3 || intervals[10_000] < intervals[1_000] {
		t.Errorf("intervals %v, want 1 s, 10 s (most) and 60 s", intervals)
	}
	if len(kinds) != 5 {
		t.Errorf("kinds %v, want all five", kinds)
	}
	d, err := New(Default())
	if err != nil {
		t.Fatal(err)
	}
	// Pinned from the generator before Mix existed: the demo's workload must not move.
	first, last := d.series[0], d.series[len(d.series)-1]
	if first.key.Org != 6 || first.key.Metric != 16090773559087534678 || last.key.Context != 11585923099554546085 || first.interval != 10_000 {
		t.Errorf("default workload moved: first series %+v interval %d, last %+v", first.key, first.interval, last.key)
	}
}
