package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// browserReport has a passing org, a failing org with all three kinds over several
// hours, and an org that only has points missing on one side.
func browserReport(t *testing.T) *Report {
	t.Helper()
	h := int64(3_600_000)
	start := int64(1763942400000)
	var gs []Group
	add := func(org uint32, m uint64, b int64, k Kind, n uint64) {
		gs = append(gs, Group{Org: org, Metric: m, Bucket: start + b*h, Kind: k, Points: n})
	}
	for b := int64(0); b < 6; b++ {
		add(1, 10, b, Equal, 100000)
		add(2, 20, b, Equal, 5000)
		add(7, 70, b, Equal, 900)
	}
	add(2, 20, 1, MissingInNew, 12)
	add(2, 21, 1, ValueDiffers, 3)
	add(2, 21, 4, MissingInLegacy, 40)
	add(2, 22, 5, ValueDiffers, 7)
	add(7, 70, 2, MissingInLegacy, 1)
	rep, err := BuildReport(gs, ReportOptions{MaxDiffPct: DefaultMaxDiffPct, New: "file:///new", Legacy: "legacy.parquet", Window: "20251124T0000Z-6h", Bucket: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

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
	rowRe  = regexp.MustCompile(`(?s)<tr data-org="(\w+)"[^>]*>(.*?)</tr>`)
	cellRe = regexp.MustCompile(`<td data-field="(\w+)"[^>]*>([^<]*)</td>`)
	svgRe  = regexp.MustCompile(`(?s)<svg [^>]*class="chart (timeline|top-metrics)"[^>]*>.*?</svg>`)
	attrRe = regexp.MustCompile(`(data-org|data-bars)="(\d+)"`)
	rectRe = regexp.MustCompile(`<rect [^>]*>`)
	numRe  = regexp.MustCompile(`(height|width|data-value)="([0-9.]+)"`)
)

// TestHTMLReportInChromium renders the page in headless Chromium, checks that every
// number of the tables matches the JSON report and that each chart drew one bar per
// (bucket or metric, kind) with a difference, and keeps a screenshot.
func TestHTMLReportInChromium(t *testing.T) {
	rep := browserReport(t)
	if rep.Pass || !rep.Orgs[0].Pass || rep.Orgs[1].Pass || rep.Orgs[2].Pass {
		t.Fatalf("fixture: want org 1 to pass and orgs 2 and 7 to fail: %+v", rep)
	}
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
	// The numbers are checked against the JSON as a reader would parse it.
	var want struct {
		Orgs  []map[string]any `json:"orgs"`
		Total map[string]any   `json:"total"`
	}
	if err := json.Unmarshal(js.Bytes(), &want); err != nil {
		t.Fatal(err)
	}
	wantRows := map[string]map[string]any{"total": want.Total}
	for _, o := range want.Orgs {
		wantRows[fmt.Sprint(o["org_id"])] = o
	}

	dom := runChromium(t, "--virtual-time-budget=5000", "--dump-dom", "file://"+page)
	if !bytes.Contains(dom, []byte(`data-rendered="ok"`)) {
		t.Fatalf("the script did not finish drawing; DOM:\n%s", dom)
	}
	rows := rowRe.FindAllSubmatch(dom, -1)
	if len(rows) != len(wantRows) {
		t.Fatalf("%d table rows, want %d", len(rows), len(wantRows))
	}
	for _, r := range rows {
		w := wantRows[string(r[1])]
		if w == nil {
			t.Fatalf("row for org %s not in the JSON", r[1])
		}
		cells := cellRe.FindAllSubmatch(r[2], -1)
		if len(cells) != 7 {
			t.Fatalf("org %s: %d cells", r[1], len(cells))
		}
		for _, c := range cells {
			field, got := string(c[1]), string(c[2])
			var exp string
			switch field {
			case "diff_pct":
				exp = FormatPct(w[field].(float64))
			case "pass":
				exp = map[bool]string{true: "PASS", false: "FAIL"}[w[field].(bool)]
			default:
				exp = strconv.FormatFloat(w[field].(float64), 'f', -1, 64)
			}
			if got != exp {
				t.Errorf("org %s %s: page shows %q, JSON has %q", r[1], field, got, exp)
			}
		}
	}
	charts := svgRe.FindAll(dom, -1)
	if len(charts) != 2*len(rep.Orgs) {
		t.Fatalf("%d charts, want %d", len(charts), 2*len(rep.Orgs))
	}
	for _, c := range charts {
		kind := string(svgRe.FindSubmatch(c)[1])
		attrs := map[string]string{}
		for _, a := range attrRe.FindAllSubmatch(c[:bytes.IndexByte(c, '>')], -1) {
			attrs[string(a[1])] = string(a[2])
		}
		org, _ := strconv.ParseUint(attrs["data-org"], 10, 32)
		var o *OrgReport
		for i := range rep.Orgs {
			if rep.Orgs[i].Org == uint32(org) {
				o = &rep.Orgs[i]
			}
		}
		if o == nil {
			t.Fatalf("chart for unknown org %q", attrs["data-org"])
		}
		// One bar per non-zero (bucket or metric, kind), carrying its count.
		var wantVals []uint64
		if kind == "timeline" {
			for _, b := range o.Timeline {
				wantVals = append(wantVals, nonZero(b.Counts)...)
			}
		} else {
			for _, m := range o.TopMetrics {
				wantVals = append(wantVals, nonZero(m.Counts)...)
			}
		}
		rects := rectRe.FindAll(c, -1)
		if attrs["data-bars"] != strconv.Itoa(len(wantVals)) || len(rects) != len(wantVals) {
			t.Fatalf("org %d %s: %s bars, %d rects, want %d", org, kind, attrs["data-bars"], len(rects), len(wantVals))
		}
		for i, r := range rects {
			nums := map[string]float64{}
			for _, n := range numRe.FindAllSubmatch(r, -1) {
				nums[string(n[1])], _ = strconv.ParseFloat(string(n[2]), 64)
			}
			if nums["data-value"] != float64(wantVals[i]) || nums["height"] < 2 || nums["width"] < 2 {
				t.Fatalf("org %d %s bar %d: %s, want value %d and a visible size", org, kind, i, r, wantVals[i])
			}
		}
	}

	shot := filepath.Join(dir, "report.png")
	os.Remove(shot)
	runChromium(t, "--virtual-time-budget=5000", "--window-size=1200,1400", "--screenshot="+shot, "file://"+page)
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
	for _, c := range []color.RGBA{{0xd6, 0x27, 0x28, 0xff}, {0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}} {
		if n := countColor(img, c); n < 50 {
			t.Errorf("screenshot has %d pixels of bar colour %v, want a painted bar", n, c)
		}
	}
}

func nonZero(c Counts) []uint64 {
	var out []uint64
	for _, v := range []uint64{c.MissingInNew, c.MissingInLegacy, c.ValueDiffers} {
		if v > 0 {
			out = append(out, v)
		}
	}
	return out
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
