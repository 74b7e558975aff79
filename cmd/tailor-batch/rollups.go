package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tailor-metrics/tailor/rollup"
	"github.com/tailor-metrics/tailor/run"
	"github.com/tailor-metrics/tailor/validate"
)

// rollupFlags are the rollup flags run and compact share.
type rollupFlags struct {
	resolutions string
	counterTags []string
}

func (f *rollupFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&f.resolutions, "rollups", "", "also write rollups (count, sum, min, max, first, last; the increase of counters) at these resolutions, comma-separated, e.g. 5m,1h; each must divide "+what+" (docs/format/rollup.md)")
	cmd.Flags().StringSliceVar(&f.counterTags, "counter-tag", rollup.DefaultCounterTags, "a series carrying one of these tags (k:v) is a counter, and so is one whose __name__ ends in _total")
}

// config returns the rollup config the flags give, nil when --rollups is empty.
func (f *rollupFlags) config() (*run.RollupConfig, error) {
	if strings.TrimSpace(f.resolutions) == "" {
		return nil, nil
	}
	c := &run.RollupConfig{CounterTags: append([]string(nil), f.counterTags...)}
	seen := map[int64]bool{}
	for _, s := range strings.Split(f.resolutions, ",") {
		d, err := rollup.ParseResolution(strings.TrimSpace(s))
		if err != nil {
			return nil, usageErrorf("--rollups: %w", err)
		}
		if ms := d.Milliseconds(); !seen[ms] {
			seen[ms] = true
			c.ResolutionsMs = append(c.ResolutionsMs, ms)
		}
	}
	sort.Slice(c.ResolutionsMs, func(i, j int) bool { return c.ResolutionsMs[i] < c.ResolutionsMs[j] })
	sort.Strings(c.CounterTags)
	return c, nil
}

// checkDivides checks that every resolution divides size (a run's window, or the
// smallest compaction level).
func checkDivides(c *run.RollupConfig, size time.Duration, what string) error {
	if c == nil {
		return nil
	}
	for _, r := range c.ResolutionsMs {
		if size.Milliseconds()%r != 0 {
			return usageErrorf("--rollups %s does not divide %s %s: a bucket would cross windows", rollup.Name(r), what, size)
		}
	}
	return nil
}

// clockFlag is --now, the clock of the lifecycle commands (for replays and tests).
func clockFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "now", "", "the clock to count ages from, RFC 3339 or Unix ms (default: now)")
}

func parseNow(s string) (time.Time, error) {
	if s == "" {
		return time.Now(), nil
	}
	ms, err := validate.ParseTimestamp(s)
	if err != nil {
		return time.Time{}, usageErrorf("--now: %w", err)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// parseLevels parses --levels: durations such as 1d,7d, ascending.
func parseLevels(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, x := range strings.Split(s, ",") {
		d, err := run.ParseLongDuration(strings.TrimSpace(x))
		if err != nil {
			return nil, usageErrorf("--levels: %w", err)
		}
		out = append(out, d)
	}
	return out, nil
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
