package realdata_test

import (
	"slices"
	"testing"

	"github.com/tailor-metrics/tailor/internal/realdata"
	"github.com/tailor-metrics/tailor/internal/realdata/realdatatest"
)

// TestLoadReal checks the real data's shape against the READMEs beside it: five NAB
// files, bitbrains and dctraces, each series sorted with unique timestamps.
func TestLoadReal(t *testing.T) {
	nab, more := realdatatest.Sets(t) // skips without the data, fails under CI
	sets, err := realdata.Load(realdata.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != len(nab)+len(more) {
		t.Fatalf("Load: %d sets, NAB and More: %d and %d", len(sets), len(nab), len(more))
	}
	type shape struct {
		name           string
		series, points int
	}
	var got []shape
	for _, set := range sets {
		sh := shape{name: set.Name, series: len(set.Series)}
		for i, s := range set.Series {
			if i > 0 && !set.Series[i-1].Key.Less(s.Key) {
				t.Fatalf("%s: series %d (%v) not after %v", set.Name, i, s.Key, set.Series[i-1].Key)
			}
			for j := 1; j < len(s.Ts); j++ {
				if s.Ts[j] <= s.Ts[j-1] {
					t.Fatalf("%s %s: ts %d at %d after %d", set.Name, s.Name, s.Ts[j], j, s.Ts[j-1])
				}
			}
			sh.points += len(s.Ts)
		}
		got = append(got, sh)
	}
	// The NAB README counts rows (67,740 for AWS); these are points after the repeated
	// timestamps are folded. bitbrains and dctraces are more/README.md's counts.
	want := []shape{
		{"nab_realAWSCloudwatch.csv", 17, 67718},
		{"nab_realAdExchange.csv", 6, 9608},
		{"nab_realKnownCause.csv", 7, 69538},
		{"nab_realTraffic.csv", 7, 15662},
		{"nab_realTweets.csv", 10, 158631},
		{"bitbrains", 200, 1614320},
		{"dctraces", 11, 385746},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sets\n%+v\nwant\n%+v", got, want)
	}
}
