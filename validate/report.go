package validate

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// DefaultMaxDiffPct is the share of differing points (in percent) an org may have and
// still pass: 0.0001%, one point in a million.
const DefaultMaxDiffPct = 0.0001

// Group counts the points of one org, metric, time bucket and kind, as the diff SQL
// (sql/diffsummary.sql) returns them.
type Group struct {
	Org    uint32
	Metric uint64
	Bucket int64 // start of the time bucket, Unix ms
	Kind   Kind
	Points uint64
}

// Add adds n points of kind k.
func (c *Counts) Add(k Kind, n uint64) {
	switch k {
	case Equal:
		c.Equal += n
	case MissingInNew:
		c.MissingInNew += n
	case MissingInLegacy:
		c.MissingInLegacy += n
	case ValueDiffers:
		c.ValueDiffers += n
	}
}

// Compared is every point of either side: equal, differing, or on one side only.
func (c Counts) Compared() uint64 {
	return c.Equal + c.Differences()
}

// Differences counts the points that are not equal.
func (c Counts) Differences() uint64 {
	return c.MissingInNew + c.MissingInLegacy + c.ValueDiffers
}

// IsValid reports whether k is a known kind.
func (k Kind) IsValid() bool { return k <= ValueDiffers }

// ReportOptions describes what was compared, for the report's header.
type ReportOptions struct {
	New, Legacy string
	Shard       string // "" means all shards
	Window      string // "" means all time
	Tolerance   float64
	// MaxDiffPct is the pass threshold in percent: 0 allows no difference; callers
	// usually pass DefaultMaxDiffPct.
	MaxDiffPct float64
	// Bucket is the width of the timeline's buckets.
	Bucket time.Duration
	// TopMetrics is how many metrics per org the report lists (default 10).
	TopMetrics int
}

// Report is the migration report: per org, how the new output compares with legacy.
type Report struct {
	New        string      `json:"new"`
	Legacy     string      `json:"legacy"`
	Shard      string      `json:"shard,omitempty"`
	Window     string      `json:"window,omitempty"`
	Tolerance  float64     `json:"tolerance"`
	MaxDiffPct float64     `json:"max_diff_pct"`
	BucketMs   int64       `json:"bucket_ms"`
	Pass       bool        `json:"pass"`
	Total      OrgReport   `json:"total"`
	Orgs       []OrgReport `json:"orgs"`
}

// OrgReport is one org's line of the report (Total uses Org 0 and no timeline).
type OrgReport struct {
	Org uint32 `json:"org_id"`
	Counts
	PointsCompared uint64         `json:"points_compared"`
	Differences    uint64         `json:"differences"`
	DiffPct        float64        `json:"diff_pct"`
	Pass           bool           `json:"pass"`
	TopMetrics     []MetricReport `json:"top_metrics,omitempty"`
	Timeline       []BucketReport `json:"timeline,omitempty"`
	metrics        map[uint64]*MetricReport
	buckets        map[int64]*BucketReport
}

// MetricReport counts one metric of an org.
type MetricReport struct {
	Metric uint64 `json:"metric_id"`
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

// BuildReport rolls the diff's groups up per org, metric and time bucket and applies the
// threshold. An org passes when its share of differing points is at most MaxDiffPct.
func BuildReport(groups []Group, opt ReportOptions) (*Report, error) {
	if opt.MaxDiffPct < 0 || opt.MaxDiffPct > 100 || math.IsNaN(opt.MaxDiffPct) {
		return nil, fmt.Errorf("max diff %v%%: want a percentage in [0, 100]", opt.MaxDiffPct)
	}
	if opt.TopMetrics <= 0 {
		opt.TopMetrics = 10
	}
	r := &Report{New: opt.New, Legacy: opt.Legacy, Shard: opt.Shard, Window: opt.Window, Tolerance: opt.Tolerance,
		MaxDiffPct: opt.MaxDiffPct, BucketMs: opt.Bucket.Milliseconds()}
	orgs := map[uint32]*OrgReport{}
	for _, g := range groups {
		if !g.Kind.IsValid() {
			return nil, fmt.Errorf("BUG: diff group with kind %d", g.Kind)
		}
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
	o.Pass = o.DiffPct <= opt.MaxDiffPct
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

// Metrics rolls the groups up per (org, metric), every metric with its counts, most
// differences first, then by org and metric.
func Metrics(groups []Group) []OrgMetric {
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

// WriteMarkdown writes the report as a Markdown page.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Migration report: %s\n\n", passWord(r.Pass))
	fmt.Fprintf(&b, "- new: `%s`\n- legacy: `%s`\n", r.New, r.Legacy)
	scope := "all shards"
	if r.Shard != "" {
		scope = "shard " + r.Shard
	}
	if r.Window != "" {
		scope += ", window " + r.Window
	}
	fmt.Fprintf(&b, "- scope: %s\n- threshold: at most %s of an org's points differ", scope, FormatPct(r.MaxDiffPct))
	if r.Tolerance > 0 {
		fmt.Fprintf(&b, " (values within %g count as equal)", r.Tolerance)
	}
	b.WriteString("\n\n| org | points compared | equal | missing in new | missing in legacy | value differs | diff % | result |\n|---:|---:|---:|---:|---:|---:|---:|:---|\n")
	row := func(name string, o OrgReport) {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %s | %s |\n", name, o.PointsCompared, o.Equal, o.MissingInNew, o.MissingInLegacy, o.ValueDiffers, FormatPct(o.DiffPct), passWord(o.Pass))
	}
	for _, o := range r.Orgs {
		row(fmt.Sprint(o.Org), o)
	}
	row("**total**", r.Total)
	for _, o := range r.Orgs {
		if len(o.TopMetrics) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## Org %d: top metrics by differences\n\n| metric | missing in new | missing in legacy | value differs |\n|---:|---:|---:|---:|\n", o.Org)
		for _, m := range o.TopMetrics {
			fmt.Fprintf(&b, "| %d | %d | %d | %d |\n", m.Metric, m.MissingInNew, m.MissingInLegacy, m.ValueDiffers)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
