package storage_test

import (
	"slices"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

// TestSpreadPrefixGolden freezes SpreadPrefix: keys written with it must be found again
// by every later version, so a change here is a format change. The values are the
// prefixes of segment keys the sink wrote before SpreadPrefix moved here from columnar.
func TestSpreadPrefixGolden(t *testing.T) {
	f := func(want, topic string, partition int32, start int64) {
		t.Helper()
		if got := storage.SpreadPrefix(storage.SegmentSpreadID(nil, topic, partition, start)); got != want {
			t.Errorf("SpreadPrefix(%q, %d, %d) = %q, want %q", topic, partition, start, got, want)
		}
	}
	f("b9", "m", 0, 7)
	f("5d", "metrics", 0, 0)
	f("6e", "metrics", 7, 123456)
	f("a1", "metrics-eu", 12, 9000000000)
	f("09", "", 0, 0)
}

func TestSpreadPrefixDistribution(t *testing.T) {
	all := storage.SpreadPrefixes()
	if len(all) != 256 || !slices.IsSorted(all) || all[0] != "00" || all[255] != "ff" {
		t.Fatalf("SpreadPrefixes: %d values, first %q, last %q", len(all), all[0], all[len(all)-1])
	}
	counts := map[string]int{}
	const n = 256 * 200
	for i := range n {
		p := storage.SpreadPrefix(storage.SegmentSpreadID(nil, "metrics", int32(i%64), int64(i)*1000))
		if len(p) != storage.SpreadWidth {
			t.Fatalf("prefix %q has width %d", p, len(p))
		}
		counts[p]++
	}
	if len(counts) != 256 {
		t.Fatalf("only %d of 256 prefixes used", len(counts))
	}
	for p, c := range counts {
		if c < 100 || c > 300 {
			t.Errorf("prefix %s got %d of %d keys; want about 200", p, c, n)
		}
	}
}
