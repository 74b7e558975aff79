package validate

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/pointdiff"
)

func TestBuildReportThreshold(t *testing.T) {
	gs := []pointdiff.Group{
		{Org: 1, Metric: 1, Kind: pointdiff.Equal, Points: 999_999},
		{Org: 1, Metric: 2, Kind: pointdiff.ValueDiffers, Points: 1}, // exactly one in a million
		{Org: 2, Metric: 1, Kind: pointdiff.Equal, Points: 999_998},
		{Org: 2, Metric: 1, Bucket: 3_600_000, Kind: pointdiff.MissingInNew, Points: 1},
		{Org: 2, Metric: 3, Bucket: 3_600_000, Kind: pointdiff.MissingInLegacy, Points: 1},
	}
	rep, err := BuildReport(gs, ReportOptions{Thresholds: DefaultThresholds(), Bucket: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	o1, o2 := rep.Orgs[0], rep.Orgs[1]
	if !o1.Pass || o1.PointsCompared != 1_000_000 || o1.DiffPct != 0.0001 || o1.KindPct.ValueDiffers != 0.0001 || len(o1.FailedKinds) != 0 {
		t.Fatalf("org 1: %+v", o1)
	}
	// Per kind, one in a million of each is at the threshold: org 2 passes where the old
	// single threshold (two in a million differ) failed it.
	if !o2.Pass || o2.Differences != 2 || o2.PointsCompared != 1_000_000 || !rep.Pass {
		t.Fatalf("org 2 must pass with one in a million of each of two kinds: %+v", o2)
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
	rep0, _ := BuildReport(gs, ReportOptions{})
	if rep0.Orgs[0].Pass || rep0.Orgs[1].Pass || rep0.Pass {
		t.Fatal("zero thresholds must allow no difference")
	}
	for _, th := range []KindPcts{{MissingInNew: -1}, {ValueDiffers: 101}, {DuplicateInLegacy: math.NaN()}} {
		if _, err := BuildReport(gs, ReportOptions{Thresholds: th}); err == nil {
			t.Fatalf("threshold %+v must be rejected", th)
		}
	}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"# Migration report: PASS", "| 1 | 1,000,000 | 999,999 | 0 | 0 | 1 | 0 | 0.0001% | PASS |", "| 2 | 1,000,000 | 999,998 | 1 | 1 | 0 | 0 | 0.0002% | PASS |", "## Org 2: top metrics"} {
		if !strings.Contains(md.String(), s) {
			t.Fatalf("markdown lacks %q:\n%s", s, md.String())
		}
	}
}

// TestReportFailsPerDirection: each kind has its own threshold, and the report says
// which kinds failed an org. Duplicates in legacy are a kind of their own.
func TestReportFailsPerDirection(t *testing.T) {
	gs := []pointdiff.Group{
		{Org: 1, Metric: 1, Kind: pointdiff.Equal, Points: 9_900, FirstTs: 1000, LastTs: 5000},
		{Org: 1, Metric: 1, Kind: pointdiff.MissingInNew, Points: 50, FirstTs: 2000, LastTs: 2000},
		{Org: 1, Metric: 2, Kind: pointdiff.MissingInLegacy, Points: 30, FirstTs: 500, LastTs: 600},
		{Org: 1, Metric: 2, Kind: pointdiff.DuplicateInLegacy, Points: 20, FirstTs: 7000, LastTs: 9000},
		{Org: 2, Metric: 1, Kind: pointdiff.Equal, Points: 100, FirstTs: 1000, LastTs: 2000},
		{Org: 2, Metric: 1, Kind: pointdiff.DuplicateInLegacy, Points: 1, FirstTs: 1000, LastTs: 1000},
	}
	th := KindPcts{MissingInNew: 0.1, MissingInLegacy: 1, ValueDiffers: 0, DuplicateInLegacy: 0.5}
	rep, err := BuildReport(gs, ReportOptions{Thresholds: th, Bucket: time.Hour,
		Generated: time.Date(2026, 12, 3, 10, 0, 0, 0, time.FixedZone("CET", 3600)), Version: "v9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	o1, o2 := rep.Orgs[0], rep.Orgs[1]
	// Org 1: 10,000 compared; 0.5% missing in new (> 0.1), 0.3% missing in legacy (<= 1),
	// 0.2% duplicates (<= 0.5). Org 2: 1 duplicate in 101 is 0.99% (> 0.5).
	if o1.Pass || !kindsAre(o1.FailedKinds, pointdiff.MissingInNew) || o1.KindPct.MissingInNew != 0.5 || o1.KindPct.DuplicateInLegacy != 0.2 {
		t.Fatalf("org 1: %+v", o1)
	}
	if o2.Pass || !kindsAre(o2.FailedKinds, pointdiff.DuplicateInLegacy) || o2.PointsCompared != 101 {
		t.Fatalf("org 2: %+v", o2)
	}
	if rep.Range != (TimeRange{FromMs: 500, ToMs: 9000}) || rep.GeneratedAt != "2026-12-03T09:00:00Z" || rep.Version != "v9.9.9" {
		t.Fatalf("header: range %+v, generated %s, version %s", rep.Range, rep.GeneratedAt, rep.Version)
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"failed_kinds": [
        "missing_in_new"
      ]`, `"thresholds_pct": {
    "missing_in_new": 0.1,
    "missing_in_legacy": 1,
    "value_differs": 0,
    "duplicate_in_legacy": 0.5
  }`, `"duplicate_in_legacy": 20`, `"range": {
    "from_ms": 500,
    "to_ms": 9000,
    "window": false
  }`, `"generated_at": "2026-12-03T09:00:00Z"`, `"tailor_version": "v9.9.9"`} {
		if !strings.Contains(js.String(), s) {
			t.Fatalf("JSON lacks %s:\n%s", s, js.String())
		}
	}
	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"- time range: `1970-01-01T00:00:00.500Z` to `1970-01-01T00:00:09.000Z` (the first and the last point compared; no window given)",
		"- thresholds: an org fails when more of its points compared than these are missing in new 0.1%, missing in legacy 1%, value differs 0%, duplicate in legacy 0.5%",
		"- generated: 2026-12-03T09:00:00Z by Tailor `v9.9.9`",
		"| 1 | 10,000 | 9,900 | 50 | 30 | 0 | 20 | 1% | FAIL: missing in new 0.5% |",
		"| 2 | 101 | 100 | 0 | 0 | 0 | 1 | 0.990099% | FAIL: duplicate in legacy 0.990099% |",
		"| metric | missing in new | missing in legacy | value differs | duplicate in legacy |",
	} {
		if !strings.Contains(md.String(), s) {
			t.Fatalf("markdown lacks %q:\n%s", s, md.String())
		}
	}
	// With a window, the range is the window's.
	rep, _ = BuildReport(gs, ReportOptions{Window: "19700101T0000Z-1h", WindowRange: columnar.TimeRange{From: 0, To: 3_600_000}})
	md.Reset()
	rep.WriteMarkdown(&md)
	if rep.Range != (TimeRange{FromMs: 0, ToMs: 3_600_000, Window: true}) ||
		!strings.Contains(md.String(), "- time range: `1970-01-01T00:00:00.000Z` to `1970-01-01T01:00:00.000Z` (the window, end excluded)") {
		t.Fatalf("window range %+v:\n%s", rep.Range, md.String())
	}
	rep, _ = BuildReport(nil, ReportOptions{})
	md.Reset()
	rep.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "- time range: no point compared") || !rep.Pass {
		t.Fatalf("empty report:\n%s", md.String())
	}
}

func kindsAre(got []pointdiff.Kind, want ...pointdiff.Kind) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func TestReportJSONMetricIDsAreStrings(t *testing.T) {
	const id = uint64(18446744073709551557) // the largest 64-bit prime: a float64 rounds it
	rep, err := BuildReport([]pointdiff.Group{{Org: 1, Metric: id, Kind: pointdiff.ValueDiffers, Points: 1}}, ReportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(js.String(), `"metric_id": "18446744073709551557"`) {
		t.Fatalf("metric id not a string:\n%s", js.String())
	}
	// A generic JSON reader (a float64, like a browser) keeps it exact as a string.
	var generic struct {
		Orgs []struct {
			TopMetrics []map[string]any `json:"top_metrics"`
		} `json:"orgs"`
	}
	if err := json.Unmarshal(js.Bytes(), &generic); err != nil {
		t.Fatal(err)
	}
	if got := generic.Orgs[0].TopMetrics[0]["metric_id"]; got != "18446744073709551557" {
		t.Fatalf("metric id read back as %v", got)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Orgs[0].TopMetrics[0].Metric != id {
		t.Fatalf("report read back: %v %+v", err, back.Orgs)
	}
}

func TestFormatCount(t *testing.T) {
	f := func(n uint64, want string) {
		t.Helper()
		if got := FormatCount(n); got != want {
			t.Fatalf("FormatCount(%d) = %q, want %q", n, got, want)
		}
	}
	f(0, "0")
	f(999, "999")
	f(1000, "1,000")
	f(123456, "123,456")
	f(1234567, "1,234,567")
	f(math.MaxUint64, "18,446,744,073,709,551,615")
}

func TestChartBucket(t *testing.T) {
	const h = int64(3_600_000)
	day := int64(1761955200000) // 2025-11-01T00:00:00Z, a multiple of 12h
	f := func(r TimeRange, bucket, want int64) {
		t.Helper()
		got := chartBucket(r, bucket)
		if got != want {
			t.Fatalf("chartBucket(%+v, %d) = %d, want %d", r, bucket, got, want)
		}
		if got%bucket != 0 || chartSlots(r, got) > maxChartBars {
			t.Fatalf("chartBucket(%+v, %d) = %d: %d bars", r, bucket, got, chartSlots(r, got))
		}
	}
	f(TimeRange{FromMs: day, ToMs: day + 6*h, Window: true}, h, h)              // 6 bars
	f(TimeRange{FromMs: day, ToMs: day + 100*h, Window: true}, h, h)            // exactly 100
	f(TimeRange{FromMs: day, ToMs: day + 100*h}, h, 2*h)                        // 101 inclusive points
	f(TimeRange{FromMs: day, ToMs: day + 720*h, Window: true}, h, 12*h)         // 30 days: 60 bars, 6h would be 120
	f(TimeRange{FromMs: day + h/2, ToMs: day + 720*h - 1}, h, 12*h)             // unaligned
	f(TimeRange{FromMs: day, ToMs: day + 720*h, Window: true}, 90*60_000, 12*h) // 1.5h buckets: 12h is a multiple
	f(TimeRange{FromMs: day, ToMs: day + 720*h, Window: true}, 7*h, 14*h)       // 7d is a multiple of 7h, but far wider than needed
	f(TimeRange{FromMs: day, ToMs: day + 6*h, Window: true}, 60_000, 5*60_000)  // 360 minutes: 5 min, 72 bars
	f(TimeRange{FromMs: 0, ToMs: 20 * 365 * 24 * h, Window: true}, h, 1752*h)   // wider than every round width
	f(TimeRange{FromMs: -50 * h, ToMs: 50 * h, Window: true}, h, h)             // before the epoch
	f(TimeRange{}, h, h)
}

// TestMarkdownEscapesHostileStrings: user-controlled strings stay inside their code
// spans. The check parses the page's code spans by CommonMark's rule (a backtick run
// opens, the next run of the same length closes) independently of mdCode, and wants
// every hostile payload inside one, nothing that looks like HTML outside, and no line
// break taken from the strings.
func TestMarkdownEscapesHostileStrings(t *testing.T) {
	hostile := []string{
		"file:///tmp/x`<img src=x onerror=alert(1)>`",
		"``<script>alert(2)</script>",
		"legacy`.parquet\n\n# injected heading\n<b>bold</b>",
		"` leading and trailing `",
		"a|b\r\n- item\u2028<i>x</i>\x00",
		"\xff\xfe<u>invalid utf-8</u>",
	}
	for _, s := range hostile {
		t.Run("", func(t *testing.T) {
			rep, err := BuildReport([]pointdiff.Group{{Org: 1, Kind: pointdiff.Equal, Points: 1}}, ReportOptions{
				New: s, Legacy: s, Shard: s, Window: s, Version: s})
			if err != nil {
				t.Fatal(err)
			}
			var md bytes.Buffer
			if err := rep.WriteMarkdown(&md); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(md.String(), "\n")
			if len(lines) != 14 {
				t.Fatalf("%d lines, want 14: a string broke a line:\n%s", len(lines), md.String())
			}
			for _, l := range lines[2:8] {
				outside, spans := codeSpans(l)
				if regexp.MustCompile(`<[a-zA-Z/!?]`).MatchString(outside) {
					t.Fatalf("HTML outside a code span in %q (outside: %q)", l, outside)
				}
				for _, sp := range spans {
					if strings.Contains(sp, "<") && !strings.Contains(sp, "<img") && !strings.Contains(sp, "<script") && !strings.Contains(sp, "<b>") && !strings.Contains(sp, "<i>") && !strings.Contains(sp, "<u>") {
						t.Fatalf("unexpected span %q", sp)
					}
				}
			}
			// Each payload shows whole in one span: the new line holds exactly one.
			_, spans := codeSpans(lines[2])
			want := strings.NewReplacer("\n", `\n`, "\r", `\r`, "\u2028", `\u2028`, "\x00", `\x00`, "\xff", `\xff`, "\xfe", `\xfe`).Replace(s)
			if len(spans) != 1 || spans[0] != want {
				t.Fatalf("new line %q has spans %q, want [%q]", lines[2], spans, want)
			}
		})
	}
}

// codeSpans splits a Markdown line into its text outside code spans and the contents
// of its code spans, by CommonMark's rule: a run of n backticks opens a span that the
// next run of exactly n backticks closes (an unmatched run is literal text); one space
// is stripped from each side of content that begins and ends with a space.
func codeSpans(line string) (outside string, spans []string) {
	var out strings.Builder
	i := 0
	run := func(j int) int {
		k := j
		for k < len(line) && line[k] == '`' {
			k++
		}
		return k - j
	}
	for i < len(line) {
		if line[i] != '`' {
			out.WriteByte(line[i])
			i++
			continue
		}
		n := run(i)
		closeAt := -1
		for j := i + n; j < len(line); {
			if line[j] == '`' {
				m := run(j)
				if m == n {
					closeAt = j
					break
				}
				j += m
				continue
			}
			j++
		}
		if closeAt < 0 {
			out.WriteString(line[i : i+n])
			i += n
			continue
		}
		c := line[i+n : closeAt]
		if len(c) >= 2 && c[0] == ' ' && c[len(c)-1] == ' ' && strings.Trim(c, " ") != "" {
			c = c[1 : len(c)-1]
		}
		spans = append(spans, c)
		i = closeAt + n
	}
	return out.String(), spans
}
