// Package gameday runs fault-injection scenarios ("game days") against the whole
// pipeline on loopback: an embedded Kafka broker (kfake), in-process sink workers, a
// local or S3 (versitygw) store, and DuckDB shard runs. Each scenario injects one fault
// on purpose, lists what it expected next to what happened, and ends with the only
// figures that matter: points produced, points in the series files, lost and duplicated.
//
// The scenarios and their expected behaviour are described in docs/gameday.md.
package gameday

import (
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tailor-metrics/tailor/ingest/workload"
)

// Config configures a game day.
type Config struct {
	// Short runs the short versions: a small workload and few fault events, so that all
	// scenarios run in about a minute or two on 2 cores (make test).
	Short bool
	// Dir is where stores and DuckDB temp files go (default: a new temporary directory,
	// removed afterwards).
	Dir string
	// Seed is the workload seed (default 42).
	Seed uint64
	// Say, when not nil, gets progress lines.
	Say func(format string, args ...any)
}

// Row is one expectation of a scenario.
type Row struct {
	Check, Expected, Actual string
	OK                      bool
}

// Result is one scenario's outcome.
type Result struct {
	Name    string
	Title   string
	Rows    []Row
	Seconds float64
	// Produced is the distinct points produced (a redelivery is the same point again);
	// Stored the points in the series files; Lost the produced points missing from them;
	// Duplicated the series-file points whose (series, ts) appears more than once.
	Produced, Stored, Lost, Duplicated int64
	// Err is a failure that stopped the scenario before its check.
	Err error
	// Notes are details printed under the table (full error messages).
	Notes []string
}

// Passed reports whether nothing was lost or duplicated and every expectation held.
func (r *Result) Passed() bool {
	if r.Err != nil || r.Lost != 0 || r.Duplicated != 0 {
		return false
	}
	for _, row := range r.Rows {
		if !row.OK {
			return false
		}
	}
	return true
}

func (r *Result) row(check, expected, actual string, ok bool) {
	r.Rows = append(r.Rows, Row{check, expected, actual, ok})
}

// Scenario is one game day.
type Scenario struct {
	Name, Title string
	run         func(ctx context.Context, e *env) error
	// limit bounds the scenario's time (short, full).
	limit [2]time.Duration
}

// Scenarios returns every scenario, in the order `all` runs them.
func Scenarios() []Scenario {
	return []Scenario{
		{"workers-down", "all sink workers down, then back", workersDown, [2]time.Duration{2 * time.Minute, 10 * time.Minute}},
		{"slow-worker", "a slow (CPU-starved) sink worker", slowWorker, [2]time.Duration{2 * time.Minute, 10 * time.Minute}},
		{"throttling", "a storage throttling storm (503 SlowDown)", throttling, [2]time.Duration{3 * time.Minute, 25 * time.Minute}},
		{"shard-kill", "a shard job killed halfway, then re-run", shardKill, [2]time.Duration{2 * time.Minute, 10 * time.Minute}},
		{"corrupt-segment", "a corrupt segment", corruptSegment, [2]time.Duration{2 * time.Minute, 10 * time.Minute}},
		{"rebalance-storm", "workers joining and leaving while records flow", rebalanceStorm, [2]time.Duration{2 * time.Minute, 10 * time.Minute}},
		{"broker-unreachable", "the broker briefly unreachable", brokerUnreachable, [2]time.Duration{2 * time.Minute, 10 * time.Minute}},
		{"history-life", "sink, run, compact, retain and gc together while points flow", historyLife, [2]time.Duration{3 * time.Minute, 15 * time.Minute}},
	}
}

// Names lists the scenario names.
func Names() []string {
	var n []string
	for _, s := range Scenarios() {
		n = append(n, s.Name)
	}
	return n
}

// Find returns the scenarios that name selects: one name, or "all".
func Find(name string) ([]Scenario, error) {
	if name == "all" {
		return Scenarios(), nil
	}
	for _, s := range Scenarios() {
		if s.Name == name {
			return []Scenario{s}, nil
		}
	}
	return nil, fmt.Errorf("gameday: no scenario %q; pick one of %s, or all", name, strings.Join(Names(), ", "))
}

// Spec is the workload of a game day: small for the short versions.
func Spec(short bool, seed uint64) workload.Spec {
	s := workload.Default()
	if seed != 0 {
		s.Seed = seed
	}
	if short {
		s.Series, s.PointsPerSeries = 120, 400
	} else {
		s.Series, s.PointsPerSeries = 2000, 1000
	}
	s.Redeliver = 0.02
	return s
}

// Run runs the scenarios one after the other; a scenario's failure does not stop the
// next. Each is bounded by its time limit.
func Run(ctx context.Context, cfg Config, scenarios []Scenario) []*Result {
	var out []*Result
	for _, sc := range scenarios {
		out = append(out, runOne(ctx, cfg, sc))
	}
	return out
}

func runOne(ctx context.Context, cfg Config, sc Scenario) (res *Result) {
	res = &Result{Name: sc.Name, Title: sc.Title}
	start := time.Now()
	limit := sc.limit[1]
	if cfg.Short {
		limit = sc.limit[0]
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	say := cfg.Say
	if say == nil {
		say = func(string, ...any) {}
	}
	e, err := newEnv(ctx, cfg, sc.Name, res, func(format string, args ...any) { say(sc.Name+": "+format, args...) })
	if err != nil {
		res.Err = err
		return res
	}
	defer func() {
		e.close()
		res.Seconds = time.Since(start).Seconds()
	}()
	if err := sc.run(ctx, e); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (the scenario's time limit is %s)", err, limit)
		}
		res.Err = err
	}
	return res
}

// Print writes each result's table of expected versus actual behaviour, and last the
// line produced=N stored=N lost=N duplicated=N summed over the results.
func Print(w io.Writer, results []*Result) {
	var tot Result
	for _, r := range results {
		verdict := "PASSED"
		if !r.Passed() {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "\ngame day %s — %s: %s in %.1fs\n", r.Name, r.Title, verdict, r.Seconds)
		tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  check\texpected\tactual\t")
		for _, row := range r.Rows {
			mark := "ok"
			if !row.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", row.Check, row.Expected, row.Actual, mark)
		}
		tw.Flush()
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
		if r.Err != nil {
			fmt.Fprintf(w, "  error: %v\n", r.Err)
		}
		fmt.Fprintf(w, "  produced=%d stored=%d lost=%d duplicated=%d\n", r.Produced, r.Stored, r.Lost, r.Duplicated)
		tot.Produced += r.Produced
		tot.Stored += r.Stored
		tot.Lost += r.Lost
		tot.Duplicated += r.Duplicated
	}
	var failed []string
	for _, r := range results {
		if !r.Passed() {
			failed = append(failed, r.Name)
		}
	}
	sort.Strings(failed)
	fmt.Fprintf(w, "\n%d scenarios, %d passed", len(results), len(results)-len(failed))
	if len(failed) > 0 {
		fmt.Fprintf(w, ", failed: %s", strings.Join(failed, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "produced=%d stored=%d lost=%d duplicated=%d\n", tot.Produced, tot.Stored, tot.Lost, tot.Duplicated)
}

func tempDir(cfg Config) (string, func(), error) {
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return "", nil, err
		}
		d, err := os.MkdirTemp(cfg.Dir, "gameday-")
		return d, func() {}, err
	}
	d, err := os.MkdirTemp("", "tailor-gameday-")
	return d, func() { os.RemoveAll(d) }, err
}
