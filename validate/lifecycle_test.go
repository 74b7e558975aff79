package validate

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/storage"
)

// TestResolveAfterCompactionAndDelete: after Tailor's root is compacted, resolve names
// the compacted runs' files and a dependent pipeline reads exactly the points it read
// before; a delete recorded in the root hides its points from it at once.
func TestResolveAfterCompactionAndDelete(t *testing.T) {
	ctx := context.Background()
	legacy, tailor := cutoverStores(t)
	p := planFor(t, legacy, tailor, "partial", 1, "2025-11-24T02:30:00Z tailor")
	from, to := base, base+6*hour
	rsBefore, before := readThrough(t, p, from, to)
	st, err := storage.Open(ctx, tailor)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := run.Compact(ctx, run.CompactOptions{Store: st, Levels: []time.Duration{6 * time.Hour}, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	rsAfter, after := readThrough(t, p, from, to)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("resolve read %d points before compaction and %d after, or others", len(before), len(after))
	}
	files := func(rs []Resolved) int {
		n := 0
		for _, r := range rs {
			if r.Serve == "tailor" {
				n += len(r.Files)
			}
		}
		return n
	}
	if files(rsAfter) >= files(rsBefore) {
		t.Fatalf("tailor files: %d before compaction, %d after", files(rsBefore), files(rsAfter))
	}
	// Delete series 1 of the org in Tailor's root: the pipeline stops reading it there.
	m := uint64(1)
	if _, _, err := run.RecordTombstone(ctx, st, run.Tombstone{Org: cutOrg, Metric: &m, From: base, To: base + 6*hour}); err != nil {
		t.Fatal(err)
	}
	rs, err := Resolve(ctx, ResolveOptions{Plan: p}, cutOrg, from, to)
	if err != nil {
		t.Fatal(err)
	}
	tailorPts := map[uint64]int{}
	if err := ReadResolved(ctx, nil, rs, cutOrg, func(k columnar.SeriesKey, ts int64, v float64) error {
		if v != float64((ts-base)/step) { // Tailor's values are the legacy's + 0.25
			tailorPts[k.Metric]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if tailorPts[1] != 0 || tailorPts[2] == 0 {
		t.Fatalf("points served from Tailor's root after deleting series 1: %v", tailorPts)
	}
}
