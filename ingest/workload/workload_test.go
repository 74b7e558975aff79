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
