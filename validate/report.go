package validate

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tailor-metrics/tailor/query"

	"github.com/tailor-metrics/tailor/columnar"
	"github.com/tailor-metrics/tailor/pointdiff"
)

// DefaultMaxDiffPct is the default threshold of every kind of difference, in percent
// of an org's points compared: 0.0001%, one point in a million.
const DefaultMaxDiffPct = 0.0001

// field is the count of kind k, nil for an unknown kind.
func (c *Counts) field(k pointdiff.Kind) *uint64 {
	switch k {
	case pointdiff.Equal:
		return &c.Equal
	case pointdiff.MissingInNew:
		return &c.MissingInNew
	case pointdiff.MissingInLegacy:
		return &c.MissingInLegacy
	case pointdiff.ValueDiffers:
		return &c.ValueDiffers
	case pointdiff.DuplicateInLegacy:
		return &c.DuplicateInLegacy
	}
	return nil
}

// Add adds n points of kind k.
func (c *Counts) Add(k pointdiff.Kind, n uint64) {
	if f := c.field(k); f != nil {
		*f += n
	}
}

// Of is the count of kind k (0 for an unknown kind).
func (c Counts) Of(k pointdiff.Kind) uint64 {
	if f := c.field(k); f != nil {
		return *f
	}
	return 0
}

// Compared is every (series, ts) of either side: equal, differing, on one side only, or
// duplicated in legacy.
func (c Counts) Compared() uint64 {
	return c.Equal + c.Differences()
}

// Differences counts the (series, ts) that are not equal.
func (c Counts) Differences() uint64 {
	return c.MissingInNew + c.MissingInLegacy + c.ValueDiffers + c.DuplicateInLegacy
}

// KindPcts holds a percentage per kind of difference: the thresholds of a report, and
// each org's shares of its points compared.
type KindPcts struct {
	MissingInNew      float64 `json:"missing_in_new"`
	MissingInLegacy   float64 `json:"missing_in_legacy"`
	ValueDiffers      float64 `json:"value_differs"`
	DuplicateInLegacy float64 `json:"duplicate_in_legacy"`
}

// UniformThresholds allows pct percent of each kind of difference.
func UniformThresholds(pct float64) KindPcts {
	return KindPcts{MissingInNew: pct, MissingInLegacy: pct, ValueDiffers: pct, DuplicateInLegacy: pct}
}

// DefaultThresholds allows DefaultMaxDiffPct of each kind.
func DefaultThresholds() KindPcts { return UniformThresholds(DefaultMaxDiffPct) }

// field is the percentage of kind k, nil for Equal or an unknown kind.
func (p *KindPcts) field(k pointdiff.Kind) *float64 {
	switch k {
	case pointdiff.MissingInNew:
		return &p.MissingInNew
	case pointdiff.MissingInLegacy:
		return &p.MissingInLegacy
	case pointdiff.ValueDiffers:
		return &p.ValueDiffers
	case pointdiff.DuplicateInLegacy:
		return &p.DuplicateInLegacy
	}
	return nil
}

// Of is the percentage of kind k (0 for Equal or an unknown kind).
func (p KindPcts) Of(k pointdiff.Kind) float64 {
	if f := p.field(k); f != nil {
		return *f
	}
	return 0
}

// Set sets the percentage of kind k (nothing for Equal or an unknown kind).
func (p *KindPcts) Set(k pointdiff.Kind, v float64) {
	if f := p.field(k); f != nil {
		*f = v
	}
}

// ReportOptions describes what was compared, for the report's header.
type ReportOptions struct {
	New, Legacy string
	Shard       string // "" means all shards
	Window      string // the window's name; "" means all time
	// WindowRange is the window's ts range [From, To); the zero value means all time.
	WindowRange columnar.TimeRange
	Tolerance   float64
	// Thresholds are, per kind of difference, the largest share of an org's points
	// compared (in percent) that may be of that kind for the org to pass; 0 allows none.
	// Callers usually start from DefaultThresholds.
	Thresholds KindPcts
	// Bucket is the width of the timeline's buckets.
	Bucket time.Duration
	// TopMetrics is how many metrics per org the report lists (default 10).
	TopMetrics int
	// Generated is when the report was made (the zero time means now); Version is the
	// version of Tailor that made it.
	Generated time.Time
	Version   string
}

// TimeRange is the compared time range, Unix ms: the window [FromMs, ToMs) when one was
// given, else the first and the last point compared (both inclusive). A report that
// compared no point and had no window has the zero range.
type TimeRange struct {
	FromMs int64 `json:"from_ms"`
	ToMs   int64 `json:"to_ms"`
	Window bool  `json:"window"`
}

// Report is the migration report: per org, how the new output compares with legacy.
type Report struct {
	New        string    `json:"new"`
	Legacy     string    `json:"legacy"`
	Shard      string    `json:"shard,omitempty"`
	Window     string    `json:"window,omitempty"`
	Range      TimeRange `json:"range"`
	Tolerance  float64   `json:"tolerance"`
	Thresholds KindPcts  `json:"thresholds_pct"`
	BucketMs   int64     `json:"bucket_ms"`
	// ChartBucketMs is the width of the HTML timeline's bars: a multiple of BucketMs wide
	// enough that a chart over Range has at most maxChartBars of them.
	ChartBucketMs int64       `json:"chart_bucket_ms"`
	GeneratedAt   string      `json:"generated_at"`
	Version       string      `json:"tailor_version"`
	Pass          bool        `json:"pass"`
	Total         OrgReport   `json:"total"`
	Orgs          []OrgReport `json:"orgs"`
	// Reads holds what each side's views read and skipped (files, bytes, series), set by
	// the command that ran the diff; the report's verdict does not depend on it.
	Reads map[string]query.ReadStats `json:"reads,omitempty"`
}

// OrgReport is one org's line of the report (Total uses Org 0 and no timeline).
type OrgReport struct {
	Org uint32 `json:"org_id"`
	Counts
	PointsCompared uint64  `json:"points_compared"`
	Differences    uint64  `json:"differences"`
	DiffPct        float64 `json:"diff_pct"`
	// KindPct is each kind's share of the points compared, in percent.
	KindPct KindPcts `json:"kind_pct"`
	// FailedKinds are the kinds whose share is above its threshold: which direction
	// failed. Empty when the org passes.
	FailedKinds []pointdiff.Kind `json:"failed_kinds,omitempty"`
	Pass        bool             `json:"pass"`
	TopMetrics  []MetricReport   `json:"top_metrics,omitempty"`
	Timeline    []BucketReport   `json:"timeline,omitempty"`
	metrics     map[uint64]*MetricReport
	buckets     map[int64]*BucketReport
}

// MetricReport counts one metric of an org. Its id is a string in JSON: a browser's
// JSON.parse rounds integers above 2^53, and metric ids use all 64 bits.
type MetricReport struct {
	Metric uint64 `json:"metric_id,string"`
	Counts
	Differences uint64 `json:"differences"`
}

// BucketReport counts one time bucket of an org.
type BucketReport struct {
	Start int64 `json:"start_ms"`
	Counts
	Differences uint64 `json:"differences"`
}

// pct is 100*d/n, 0 for n = 0.
func pct(d, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return 100 * float64(d) / float64(n)
}

func checkPct(name string, p float64) error {
	if p < 0 || p > 100 || math.IsNaN(p) {
		return fmt.Errorf("threshold for %s %v%%: want a percentage in [0, 100]", name, p)
	}
	return nil
}

// BuildReport rolls the diff's groups up per org, metric and time bucket and applies the
// thresholds. An org passes when no kind of difference is above its threshold.
func BuildReport(groups []pointdiff.Group, opt ReportOptions) (*Report, error) {
	for _, k := range pointdiff.Differences {
		if err := checkPct(k.String(), opt.Thresholds.Of(k)); err != nil {
			return nil, err
		}
	}
	if opt.TopMetrics <= 0 {
		opt.TopMetrics = 10
	}
	if opt.Generated.IsZero() {
		opt.Generated = time.Now()
	}
	r := &Report{New: opt.New, Legacy: opt.Legacy, Shard: opt.Shard, Window: opt.Window, Tolerance: opt.Tolerance,
		Thresholds: opt.Thresholds, BucketMs: opt.Bucket.Milliseconds(),
		GeneratedAt: opt.Generated.UTC().Format(time.RFC3339), Version: opt.Version}
	orgs := map[uint32]*OrgReport{}
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	for _, g := range groups {
		if !g.Kind.IsValid() {
			return nil, fmt.Errorf("BUG: diff group with kind %s", g.Kind)
		}
		first, last = min(first, g.FirstTs), max(last, g.LastTs)
		o := orgs[g.Org]
		if o == nil {
			o = &OrgReport{Org: g.Org, metrics: map[uint64]*MetricReport{}, buckets: map[int64]*BucketReport{}}
			orgs[g.Org] = o
		}
		o.Counts.Add(g.Kind, g.Points)
		r.Total.Counts.Add(g.Kind, g.Points)
		m := o.metrics[g.Metric]
		if m == nil {
			m = &MetricReport{Metric: g.Metric}
			o.metrics[g.Metric] = m
		}
		m.Counts.Add(g.Kind, g.Points)
		b := o.buckets[g.Bucket]
		if b == nil {
			b = &BucketReport{Start: g.Bucket}
			o.buckets[g.Bucket] = b
		}
		b.Counts.Add(g.Kind, g.Points)
	}
	switch {
	case opt.WindowRange != (columnar.TimeRange{}) && opt.WindowRange != columnar.AllTime:
		r.Range = TimeRange{FromMs: opt.WindowRange.From, ToMs: opt.WindowRange.To, Window: true}
	case len(groups) > 0:
		r.Range = TimeRange{FromMs: first, ToMs: last}
	}
	r.ChartBucketMs = chartBucket(r.Range, r.BucketMs)
	r.Pass = true
	for _, o := range orgs {
		o.finish(opt)
		r.Pass = r.Pass && o.Pass
		r.Orgs = append(r.Orgs, *o)
	}
	sort.Slice(r.Orgs, func(i, j int) bool { return r.Orgs[i].Org < r.Orgs[j].Org })
	r.Total.finish(opt)
	return r, nil
}

func (o *OrgReport) finish(opt ReportOptions) {
	o.PointsCompared, o.Differences = o.Compared(), o.Counts.Differences()
	o.DiffPct = pct(o.Differences, o.PointsCompared)
	for _, k := range pointdiff.Differences {
		p := pct(o.Counts.Of(k), o.PointsCompared)
		o.KindPct.Set(k, p)
		if p > opt.Thresholds.Of(k) {
			o.FailedKinds = append(o.FailedKinds, k)
		}
	}
	o.Pass = len(o.FailedKinds) == 0
	for _, m := range o.metrics {
		m.Differences = m.Counts.Differences()
		if m.Differences > 0 {
			o.TopMetrics = append(o.TopMetrics, *m)
		}
	}
	sort.Slice(o.TopMetrics, func(i, j int) bool {
		a, b := o.TopMetrics[i], o.TopMetrics[j]
		if a.Differences != b.Differences {
			return a.Differences > b.Differences
		}
		return a.Metric < b.Metric
	})
	if len(o.TopMetrics) > opt.TopMetrics {
		o.TopMetrics = o.TopMetrics[:opt.TopMetrics]
	}
	for _, b := range o.buckets {
		b.Differences = b.Counts.Differences()
		o.Timeline = append(o.Timeline, *b)
	}
	sort.Slice(o.Timeline, func(i, j int) bool { return o.Timeline[i].Start < o.Timeline[j].Start })
	o.metrics, o.buckets = nil, nil
}

// maxChartBars is how many bars a timeline chart has at most: about 100 stay apart at
// the chart's 500 px, where a 30-day report at 1h buckets would draw 720.
const maxChartBars = 100

// chartWidths are the bar widths a timeline chooses from, the narrowest first.
var chartWidths = []time.Duration{
	time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 28 * 24 * time.Hour,
}

// floorDiv is a/b rounded down, as the diff SQL aligns buckets to the epoch.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// chartSlots is how many epoch-aligned bars of width w cover r.
func chartSlots(r TimeRange, w int64) int64 {
	last := r.ToMs
	if r.Window {
		last-- // the window's end is exclusive
	}
	return floorDiv(last, w) - floorDiv(r.FromMs, w) + 1
}

// chartBucket is the width of a timeline's bars over r: the narrowest multiple of
// bucketMs whose epoch-aligned bars number at most maxChartBars, or a round width from
// chartWidths that is a multiple of bucketMs and at most twice as wide. Each of the
// diff's buckets then falls in exactly one bar.
func chartBucket(r TimeRange, bucketMs int64) int64 {
	if bucketMs <= 0 {
		return bucketMs
	}
	k := max(1, (r.ToMs-r.FromMs)/bucketMs/maxChartBars)
	for chartSlots(r, k*bucketMs) > maxChartBars {
		k++ // alignment can add a bar at each end
	}
	fit := k * bucketMs
	for _, w := range chartWidths {
		if ms := w.Milliseconds(); ms >= fit && ms <= 2*fit && ms%bucketMs == 0 && chartSlots(r, ms) <= maxChartBars {
			return ms
		}
	}
	return fit
}

// Metrics rolls the groups up per (org, metric), every metric with its counts, most
// differences first, then by org and metric.
func Metrics(groups []pointdiff.Group) []OrgMetric {
	type key struct {
		org uint32
		m   uint64
	}
	byKey := map[key]*Counts{}
	for _, g := range groups {
		c := byKey[key{g.Org, g.Metric}]
		if c == nil {
			c = &Counts{}
			byKey[key{g.Org, g.Metric}] = c
		}
		c.Add(g.Kind, g.Points)
	}
	out := make([]OrgMetric, 0, len(byKey))
	for k, c := range byKey {
		out = append(out, OrgMetric{Org: k.org, Metric: k.m, Counts: *c})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Differences() != b.Differences() {
			return a.Differences() > b.Differences()
		}
		if a.Org != b.Org {
			return a.Org < b.Org
		}
		return a.Metric < b.Metric
	})
	return out
}

// OrgMetric counts one metric of one org.
type OrgMetric struct {
	Org    uint32
	Metric uint64
	Counts
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func passWord(p bool) string {
	if p {
		return "PASS"
	}
	return "FAIL"
}

// FormatPct prints a percentage with enough digits for one-in-a-million thresholds.
func FormatPct(p float64) string {
	if p == 0 {
		return "0%"
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.6f", p), "0"), ".") + "%"
}

// FormatCount prints n with thousands separators: 1,234,567.
func FormatCount(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// kindLabel is a kind's name for people: "missing in new".
func kindLabel(k pointdiff.Kind) string { return strings.ReplaceAll(k.String(), "_", " ") }

// failedOn names the kinds that failed an org, with their shares: "missing in new
// 0.0002%".
func failedOn(o OrgReport) string {
	var parts []string
	for _, k := range o.FailedKinds {
		parts = append(parts, kindLabel(k)+" "+FormatPct(o.KindPct.Of(k)))
	}
	return strings.Join(parts, ", ")
}

// timeRangeText describes the compared time range.
func (r *Report) timeRangeText(code func(string) string) string {
	switch {
	case r.Range.Window:
		return code(FormatTimestamp(r.Range.FromMs)) + " to " + code(FormatTimestamp(r.Range.ToMs)) + " (the window, end excluded)"
	case r.Total.PointsCompared == 0:
		return "no point compared"
	}
	return code(FormatTimestamp(r.Range.FromMs)) + " to " + code(FormatTimestamp(r.Range.ToMs)) + " (the first and the last point compared; no window given)"
}

// WriteMarkdown writes the report as a Markdown page. Every string that comes from the
// user (store URLs, paths, shard and window names, the version) is put in a code span
// that it cannot close (mdCode).
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Migration report: %s\n\n", passWord(r.Pass))
	fmt.Fprintf(&b, "- new: %s\n- legacy: %s\n", mdCode(r.New), mdCode(r.Legacy))
	scope := "all shards"
	if r.Shard != "" {
		scope = "shard " + mdCode(r.Shard)
	}
	if r.Window != "" {
		scope += ", window " + mdCode(r.Window)
	}
	fmt.Fprintf(&b, "- scope: %s\n- time range: %s\n", scope, r.timeRangeText(mdCode))
	b.WriteString("- thresholds: an org fails when more of its points compared than these are")
	for i, k := range pointdiff.Differences {
		sep := ", "
		if i == 0 {
			sep = " "
		}
		fmt.Fprintf(&b, "%s%s %s", sep, kindLabel(k), FormatPct(r.Thresholds.Of(k)))
	}
	if r.Tolerance > 0 {
		fmt.Fprintf(&b, " (values within %g count as equal)", r.Tolerance)
	}
	version := r.Version
	if version == "" {
		version = "unknown"
	}
	fmt.Fprintf(&b, "\n- generated: %s by Tailor %s\n", r.GeneratedAt, mdCode(version))
	b.WriteString("\n| org | points compared | equal | missing in new | missing in legacy | value differs | duplicate in legacy | diff % | result |\n|---:|---:|---:|---:|---:|---:|---:|---:|:---|\n")
	row := func(name string, o OrgReport) {
		result := passWord(o.Pass)
		if !o.Pass {
			result += ": " + failedOn(o)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, FormatCount(o.PointsCompared), FormatCount(o.Equal),
			FormatCount(o.MissingInNew), FormatCount(o.MissingInLegacy), FormatCount(o.ValueDiffers), FormatCount(o.DuplicateInLegacy),
			FormatPct(o.DiffPct), result)
	}
	for _, o := range r.Orgs {
		row(fmt.Sprint(o.Org), o)
	}
	row("**total**", r.Total)
	for _, o := range r.Orgs {
		if len(o.TopMetrics) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## Org %d: top metrics by differences\n\n| metric | missing in new | missing in legacy | value differs | duplicate in legacy |\n|---:|---:|---:|---:|---:|\n", o.Org)
		for _, m := range o.TopMetrics {
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", m.Metric, FormatCount(m.MissingInNew), FormatCount(m.MissingInLegacy), FormatCount(m.ValueDiffers), FormatCount(m.DuplicateInLegacy))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
