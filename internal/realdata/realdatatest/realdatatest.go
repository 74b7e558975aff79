// Package realdatatest gives tests the real data of package realdata. It is apart from
// realdata so that the testing package stays out of the programs that import realdata
// (bench/codec).
package realdatatest

import (
	"os"
	"testing"

	"github.com/tailor-metrics/tailor/internal/realdata"
)

// Sets reads the real data in realdata.Dir(): the NAB sets and the more/ sets (bitbrains,
// dctraces). Without the data the test is skipped, and under CI (the CI environment
// variable set) it fails: a CI run must not pass by testing nothing. Data that is there
// but does not load fails the test, and so do missing more/ sets beside the NAB files.
func Sets(tb testing.TB) (nab, more []realdata.Set) {
	tb.Helper()
	dir := realdata.Dir()
	ci := os.Getenv("CI") != ""
	nab, err := realdata.NAB(dir)
	if err != nil {
		tb.Fatal(err)
	}
	more, err = realdata.More(dir)
	if err != nil && (len(nab) > 0 || ci) {
		tb.Fatal(err)
	}
	if len(nab) == 0 || err != nil {
		if ci {
			tb.Fatalf("CI is set but the real data is not in %s (set TAILOR_REAL_DATA)", dir)
		}
		tb.Skipf("no real data in %s", dir)
	}
	return nab, more
}
