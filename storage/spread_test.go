package storage_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tailor-metrics/tailor/storage"
)

// TestSpreadPrefixGolden freezes SpreadPrefix: keys written with it must be found again
// by every later version, so a change here is a format change.
func TestSpreadPrefixGolden(t *testing.T) {
	f := func(want string, parts ...string) {
		t.Helper()
		if got := storage.SpreadPrefix(parts...); got != want {
			t.Errorf("SpreadPrefix(%q) = %q, want %q", parts, got, want)
		}
	}
	f("cb")
	f("44", "metrics", "0", "0")
	f("2f", "metrics", "7", "123456")
	f("86", "metrics-eu", "12", "9000000000")
}

func TestSpreadPrefixDistribution(t *testing.T) {
	all := storage.SpreadPrefixes()
	if len(all) != 256 || !slices.IsSorted(all) || all[0] != "00" || all[255] != "ff" {
		t.Fatalf("SpreadPrefixes: %d values, first %q, last %q", len(all), all[0], all[len(all)-1])
	}
	counts := map[string]int{}
	const n = 256 * 200
	for i := range n {
		p := storage.SpreadPrefix("metrics", fmt.Sprint(i%64), fmt.Sprint(i*1000))
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
