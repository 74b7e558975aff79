package validate

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/pointdiff"
)

// browserReport is a 30-day report at 1h buckets (720 of them, so the timeline must
// widen its bars) with large counts and a metric id above 2^53: org 1 passes, org 2
// fails on missing_in_new and value_differs but not on the kinds with looser
// thresholds, and org 7 fails on missing_in_legacy alone.
func browserReport(t *testing.T) *Report {
	t.Helper()
	h := int64(3_600_000)
	start := int64(1761955200000) // 2025-11-01T00:00:00Z
	var gs []pointdiff.Group
	add := func(org uint32, m uint64, hour int64, k pointdiff.Kind, n uint64) {
		b := start + hour*h
		gs = append(gs, pointdiff.Group{Org: org, Metric: m, Bucket: b, Kind: k, Points: n, FirstTs: b, LastTs: b + h - 60_000})
	}
	for hour := int64(0); hour < 720; hour++ {
		add(1, 10, hour, pointdiff.Equal, 1000)
		add(2, 20, hour, pointdiff.Equal, 5000)
	}
	for hour := int64(0); hour < 6; hour++ {
		add(7, 70, hour, pointdiff.Equal, 900)
	}
	add(2, 20, 1, pointdiff.MissingInNew, 12)
	add(2, 21, 1, pointdiff.ValueDiffers, 3)
	add(2, bigMetric, 13, pointdiff.DuplicateInLegacy, 5)
	add(2, 21, 100, pointdiff.MissingInLegacy, 40)
	add(2, 22, 719, pointdiff.ValueDiffers, 7)
	add(7, 70, 2, pointdiff.MissingInLegacy, 1)
	rep, err := BuildReport(gs, ReportOptions{
		Thresholds: KindPcts{MissingInNew: 0.0001, MissingInLegacy: 0.01, ValueDiffers: 0.0001, DuplicateInLegacy: 0.001},
		New:        "file:///new", Legacy: "legacy.parquet", Window: "20251101T0000Z-30d", Bucket: time.Hour,
		WindowRange: columnar.TimeRange{From: start, To: start + 720*h},
		Generated:   time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Version: "v1.2.3-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// bigMetric is 2^63 + 12345: as a JSON number, a browser reads it as 9223372036854788000.
const bigMetric = uint64(9223372036854788153)

// chromium finds Debian's chromium (installed by .ci/run) or another Chrome.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium in PATH: install Debian's chromium package (apt-get install -y chromium; .ci/run does) to test the HTML report in a browser")
	return ""
}

// artefactDir is where the test keeps the page and its screenshot for people to look
// at: $TAILOR_TEST_ARTIFACTS, or a fixed directory under the system temp dir.
func artefactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TAILOR_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "tailor-test-artifacts")
	}
	dir = filepath.Join(dir, "validate")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runChromium(t *testing.T, args ...string) []byte {
	t.Helper()
	// Generous: a loaded 2-core machine takes seconds to start a browser.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--disable-extensions", "--user-data-dir=" + t.TempDir(), "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, chromium(t), append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

var (
	rowRe   = regexp.MustCompile(`(?s)<tr data-org="(\w+)"[^>]*>(.*?)</tr>`)
	cellRe  = regexp.MustCompile(`<td data-field="(\w+)"( class="([\w -]+)")?[^>]*>([^<]*)</td>`)
	svgRe   = regexp.MustCompile(`(?s)<svg [^>]*class="chart (timeline|top-metrics)"[^>]*>.*?</svg>`)
	attrRe  = regexp.MustCompile(`(data-org|data-bars|data-columns|data-slots|data-bucket-ms|width)="(\d+)"`)
	rectRe  = regexp.MustCompile(`<rect [^>]*>`)
	numRe   = regexp.MustCompile(`(x|height|width|data-value|data-bucket)="([0-9.]+)"`)
	tickRe  = regexp.MustCompile(`<text [^>]*class="tick"[^>]*>([^<]*)</text>`)
	gridRe  = regexp.MustCompile(`<line [^>]*class="grid"[^>]*>`)
	metaRe  = regexp.MustCompile(`<div id="(meta-\w+)">([^<]*)</div>`)
	labelRe = regexp.MustCompile(`>(metric \d+)<`)
)

// TestHTMLReportInChromium renders the page in headless Chromium and checks what it
// shows against literal expectations, not against the report's own formatting: every
// table cell, the header, and per chart its bars (one per (bucket or metric, kind) with
// a difference, with the count and a visible size), its labelled gridlines and, for the
// 30-day timeline, bars 12h wide (60 of them fit, at most 100). It keeps a screenshot.
func TestHTMLReportInChromium(t *testing.T) {
	rep := browserReport(t)
	dir := artefactDir(t)
	page := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("http://")) && !bytes.Contains(buf.Bytes(), []byte(`"http://www.w3.org/2000/svg"`)) || bytes.Contains(buf.Bytes(), []byte("https://")) || bytes.Contains(buf.Bytes(), []byte(" src=")) {
		t.Fatal("the page must not load anything from the network")
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), js.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	dom := runChromium(t, "--virtual-time-budget=5000", "--dump-dom", "file://"+page)
	if !bytes.Contains(dom, []byte(`data-rendered="ok"`)) {
		t.Fatalf("the script did not finish drawing; DOM:\n%s", dom)
	}
	meta := map[string]string{}
	for _, m := range metaRe.FindAllSubmatch(dom, -1) {
		meta[string(m[1])] = html.UnescapeString(string(m[2]))
	}
	for id, want := range map[string]string{
		"meta-sources":    "new: file:///new · legacy: legacy.parquet · all shards, window 20251101T0000Z-30d",
		"meta-range":      "time range: 2025-11-01T00:00:00.000Z to 2025-12-01T00:00:00.000Z (the window, end excluded)",
		"meta-thresholds": "an org fails when more of its points compared than these are missing in new 0.0001%, missing in legacy 0.01%, value differs 0.0001%, duplicate in legacy 0.001%",
		"meta-generated":  "generated 2026-12-03T10:00:00Z by Tailor v1.2.3-test",
	} {
		if meta[id] != want {
			t.Errorf("%s: page shows %q, want %q", id, meta[id], want)
		}
	}

	// Cells as "field=text" (and "+over" where the kind is above its threshold).
	wantRows := map[string][]string{
		"1": {"points_compared=720,000", "equal=720,000", "missing_in_new=0", "missing_in_legacy=0", "value_differs=0", "duplicate_in_legacy=0",
			"diff_pct=0%", "pass=PASS", "failed_on="},
		"2": {"points_compared=3,600,067", "equal=3,600,000", "missing_in_new=12+over", "missing_in_legacy=40", "value_differs=10+over", "duplicate_in_legacy=5",
			"diff_pct=0.001861%", "pass=FAIL", "failed_on=missing in new 0.000333%, value differs 0.000278%"},
		"7": {"points_compared=5,401", "equal=5,400", "missing_in_new=0", "missing_in_legacy=1+over", "value_differs=0", "duplicate_in_legacy=0",
			"diff_pct=0.018515%", "pass=FAIL", "failed_on=missing in legacy 0.018515%"},
		"total": {"points_compared=4,325,468", "equal=4,325,400", "missing_in_new=12+over", "missing_in_legacy=41", "value_differs=10+over", "duplicate_in_legacy=5",
			"diff_pct=0.001572%", "pass=FAIL", "failed_on=missing in new 0.000277%, value differs 0.000231%"},
	}
	rows := rowRe.FindAllSubmatch(dom, -1)
	if len(rows) != len(wantRows) {
		t.Fatalf("%d table rows, want %d", len(rows), len(wantRows))
	}
	for _, r := range rows {
		var got []string
		for _, c := range cellRe.FindAllSubmatch(r[2], -1) {
			cell := string(c[1]) + "=" + html.UnescapeString(string(c[4]))
			if string(c[3]) == "over" {
				cell += "+over"
			}
			got = append(got, cell)
		}
		if want := wantRows[string(r[1])]; strings.Join(got, " | ") != strings.Join(want, " | ") {
			t.Errorf("org %s row:\n got %s\nwant %s", r[1], strings.Join(got, " | "), strings.Join(want, " | "))
		}
	}

	// Per chart: its bars as value@bucket (timeline) or value (top metrics), in drawing
	// order, and the labels of its gridlines.
	type chart struct{ bars, ticks string }
	day := int64(1761955200000)
	at := func(v int, slot int64) string { return fmt.Sprintf("%d@%d", v, day+slot*43_200_000) }
	want := map[string]chart{
		"timeline 1":    {"", "0 1"},
		"timeline 2":    {strings.Join([]string{at(12, 0), at(3, 0), at(5, 1), at(40, 8), at(7, 59)}, " "), "0 10 20 30 40"},
		"timeline 7":    {at(1, 0), "0 1"},
		"top-metrics 1": {"", "0 1"},
		"top-metrics 2": {"40 3 12 7 5", "0 20 40 60"},
		"top-metrics 7": {"1", "0 1"},
	}
	charts := svgRe.FindAll(dom, -1)
	if len(charts) != len(want) {
		t.Fatalf("%d charts, want %d", len(charts), len(want))
	}
	for _, c := range charts {
		kind := string(svgRe.FindSubmatch(c)[1])
		attrs := map[string]string{}
		for _, a := range attrRe.FindAllSubmatch(c[:bytes.IndexByte(c, '>')], -1) {
			attrs[string(a[1])] = string(a[2])
		}
		name := kind + " " + attrs["data-org"]
		w, ok := want[name]
		if !ok {
			t.Fatalf("unexpected chart %s", name)
		}
		width, _ := strconv.ParseFloat(attrs["width"], 64)
		var bars []string
		for _, r := range rectRe.FindAll(c, -1) {
			nums := map[string]float64{}
			for _, n := range numRe.FindAllSubmatch(r, -1) {
				nums[string(n[1])], _ = strconv.ParseFloat(string(n[2]), 64)
			}
			if nums["height"] < 2 || nums["width"] < 2 || nums["x"]+nums["width"] > width {
				t.Errorf("%s: bar %s is not visible inside the chart", name, r)
			}
			b := strconv.FormatFloat(nums["data-value"], 'f', -1, 64)
			if kind == "timeline" {
				b += "@" + strconv.FormatFloat(nums["data-bucket"], 'f', -1, 64)
			}
			bars = append(bars, b)
		}
		var ticks []string
		for _, m := range tickRe.FindAllSubmatch(c, -1) {
			ticks = append(ticks, string(m[1]))
		}
		if got := strings.Join(bars, " "); got != w.bars {
			t.Errorf("%s: bars %q, want %q", name, got, w.bars)
		}
		if got := strings.Join(ticks, " "); got != w.ticks || len(gridRe.FindAll(c, -1)) != len(ticks) {
			t.Errorf("%s: gridline labels %q (%d lines), want %q", name, got, len(gridRe.FindAll(c, -1)), w.ticks)
		}
		if kind == "timeline" && (attrs["data-bucket-ms"] != "43200000" || attrs["data-slots"] != "60") {
			t.Errorf("%s: bars %s ms wide, %s of them over 30 days; want 43200000 (12h) and 60 (at most 100)", name, attrs["data-bucket-ms"], attrs["data-slots"])
		}
	}
	// Metric ids arrive as strings: 2^63 + 12345 is not rounded to 9223372036854788000.
	var labels []string
	for _, m := range labelRe.FindAllSubmatch(dom, -1) {
		labels = append(labels, string(m[1]))
	}
	if got := strings.Join(labels, ", "); got != "metric 21, metric 20, metric 22, metric 9223372036854788153, metric 70" {
		t.Errorf("metric labels %s", got)
	}

	shot := filepath.Join(dir, "report.png")
	os.Remove(shot)
	runChromium(t, "--virtual-time-budget=5000", "--window-size=1300,1400", "--screenshot="+shot, "file://"+page)
	t.Logf("HTML report and its screenshot kept in %s (report.html, report.json, report.png)", dir)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	// The bars' colours are on screen: the charts were painted, not only built.
	for _, c := range []color.RGBA{{0xd6, 0x27, 0x28, 0xff}, {0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x94, 0x67, 0xbd, 0xff}} {
		if n := countColor(img, c); n < 50 {
			t.Errorf("screenshot has %d pixels of bar colour %v, want a painted bar", n, c)
		}
	}
}

func countColor(img image.Image, want color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, want.R) && near(g, want.G) && near(bl, want.B) {
				n++
			}
		}
	}
	return n
}

func near(v uint32, want uint8) bool {
	d := int(v>>8) - int(want)
	return d >= -3 && d <= 3
}
