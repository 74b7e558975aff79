package validate

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBuildReportThreshold(t *testing.T) {
	gs := []Group{
		{Org: 1, Metric: 1, Kind: Equal, Points: 999_999},
		{Org: 1, Metric: 2, Kind: ValueDiffers, Points: 1}, // exactly one in a million
		{Org: 2, Metric: 1, Kind: Equal, Points: 999_998},
		{Org: 2, Metric: 1, Bucket: 3_600_000, Kind: MissingInNew, Points: 1},
		{Org: 2, Metric: 3, Bucket: 3_600_000, Kind: MissingInLegacy, Points: 1},
	}
	rep, err := BuildReport(gs, ReportOptions{MaxDiffPct: DefaultMaxDiffPct, Bucket: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	o1, o2 := rep.Orgs[0], rep.Orgs[1]
	if !o1.Pass || o1.PointsCompared != 1_000_000 || o1.DiffPct != 0.0001 {
		t.Fatalf("org 1: %+v", o1)
	}
	if o2.Pass || o2.Differences != 2 || o2.PointsCompared != 1_000_000 || rep.Pass {
		t.Fatalf("org 2 must fail with 2 in a million: %+v", o2)
	}
	if len(o2.Timeline) != 2 || o2.Timeline[1].Start != 3_600_000 || o2.Timeline[1].Differences != 2 {
		t.Fatalf("timeline %+v", o2.Timeline)
	}
	if len(o2.TopMetrics) != 2 || o2.TopMetrics[0].Metric != 1 || o2.TopMetrics[1].Metric != 3 {
		t.Fatalf("top metrics %+v", o2.TopMetrics)
	}
	if rep.Total.Equal != 1_999_997 || rep.Total.Differences != 3 {
		t.Fatalf("total %+v", rep.Total)
	}
	rep0, _ := BuildReport(gs, ReportOptions{MaxDiffPct: 0})
	if rep0.Orgs[0].Pass {
		t.Fatal("--max-diff-pct 0 must allow no difference")
	}
	if _, err := BuildReport(gs, ReportOptions{MaxDiffPct: -1}); err == nil {
		t.Fatal("a negative threshold must be rejected")
	}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"# Migration report: FAIL", "| 1 | 1000000 | 999999 | 0 | 0 | 1 | 0.0001% | PASS |", "| 2 | 1000000 | 999998 | 1 | 1 | 0 | 0.0002% | FAIL |", "## Org 2: top metrics"} {
		if !strings.Contains(md.String(), s) {
			t.Fatalf("markdown lacks %q:\n%s", s, md.String())
		}
	}
}
