//go:build duckdb_arrow

package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tailor-metrics/tailor/encoder"
	"github.com/tailor-metrics/tailor/rollup"
	"github.com/tailor-metrics/tailor/storage"
)

// Retention (docs/lifecycle.md, "Retention"). A policy gives how long each resolution
// (raw, and each rollup's, such as 5m and 1h) is kept, by default and per org. A run's
// data at a resolution expires once the run's window ended longer ago than the
// resolution's retention for its org plus the grace period. `retain` rewrites such runs
// without what expired (the rollups outlive the raw points they came from), or retires a
// run whose every resolution expired, publishing the new run before anything goes; gc
// deletes the old files after its own grace, so a reader never sees a half-deleted run.

// RetentionPolicy is the YAML policy of `tailor-batch retain --policy`.
type RetentionPolicy struct {
	// Grace is how long past its retention data stays (default 24h), so that a clock
	// jump or a policy mistake (caught with --dry-run) deletes nothing at once.
	Grace Duration `yaml:"grace"`
	// Default maps a resolution ("raw", "5m", "1h", …) to its retention; a resolution
	// not listed is kept for ever.
	Default map[string]Duration `yaml:"default"`
	// Orgs overrides Default per org id, resolution by resolution.
	Orgs map[uint32]map[string]Duration `yaml:"orgs"`
}

// Duration is a YAML duration that also takes days (d), weeks (w) and years (y, 365
// days): 90d, 2y, 36h.
type Duration time.Duration

// UnmarshalYAML parses a duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseLongDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// ParseLongDuration parses Go durations and whole numbers of d, w or y (365 days).
func ParseLongDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		d      time.Duration
	}{{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}, {"y", 365 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			k, err := strconv.ParseInt(n, 10, 64)
			if err != nil || k <= 0 || k > int64(1<<62)/int64(u.d) {
				return 0, fmt.Errorf("duration %q: want a positive whole number of %s", s, u.suffix)
			}
			return time.Duration(k) * u.d, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("duration %q: want a positive duration such as 36h, 90d, 2w or 1y", s)
	}
	return d, nil
}

// LoadRetentionPolicy reads and checks a policy file.
func LoadRetentionPolicy(path string) (*RetentionPolicy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load retention policy: %w", err)
	}
	return ParseRetentionPolicy(b, path)
}

// ParseRetentionPolicy parses a policy; name is where it came from, for errors.
func ParseRetentionPolicy(b []byte, name string) (*RetentionPolicy, error) {
	var p RetentionPolicy
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("retention policy %s: %w", name, err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("retention policy %s: %w", name, err)
	}
	return &p, nil
}

func (p *RetentionPolicy) validate() error {
	check := func(where string, m map[string]Duration) error {
		for res := range m {
			if res == RawResolution {
				continue
			}
			if _, err := rollup.ParseResolution(res); err != nil {
				return fmt.Errorf("%s: resolution %q: want raw or a rollup resolution such as 5m or 1h", where, res)
			}
		}
		return nil
	}
	if err := check("default", p.Default); err != nil {
		return err
	}
	for org, m := range p.Orgs {
		if err := check(fmt.Sprintf("orgs.%d", org), m); err != nil {
			return err
		}
	}
	if p.Grace == 0 {
		p.Grace = Duration(DefaultGrace)
	}
	return nil
}

// canonical turns a rollup resolution name into the name rollups carry (1h, not 60m).
func canonical(res string) string {
	if res == RawResolution {
		return res
	}
	d, err := rollup.ParseResolution(res)
	if err != nil {
		return res
	}
	return rollup.Name(d.Milliseconds())
}

// retention returns how long org's data at res is kept; false for ever.
func (p *RetentionPolicy) retention(org uint32, res string) (time.Duration, bool) {
	for r, d := range p.Orgs[org] {
		if canonical(r) == res {
			return time.Duration(d), true
		}
	}
	for r, d := range p.Default {
		if canonical(r) == res {
			return time.Duration(d), true
		}
	}
	return 0, false
}

// shortest is the shortest retention of res, over the default and every org the policy
// names; false when nothing at res ever expires.
func (p *RetentionPolicy) shortest(res string) (time.Duration, bool) {
	d, found := time.Duration(1<<63-1), false
	for r, x := range p.Default {
		if canonical(r) == res {
			d, found = time.Duration(x), true
		}
	}
	for org := range p.Orgs {
		if od, ok := p.retention(org, res); ok {
			d, found = min(d, od), true
		}
	}
	return d, found
}

// RetainOptions configures Retain.
type RetainOptions struct {
	Store  storage.Store
	Policy *RetentionPolicy
	// Now is the clock retention counts from (default the wall clock).
	Now time.Time
	// Shard, when set, retains only that shard's runs.
	Shard   string
	TempDir string
	DryRun  bool
	Logger  *slog.Logger
}

// RetainReport is what Retain did.
type RetainReport struct {
	DryRun bool            `json:"dry_run,omitempty"`
	Runs   []RetainedRun   `json:"runs"`
	Failed []string        `json:"failed,omitempty"`
	Totals RetentionTotals `json:"totals"`
}

// RetainedRun is one run retention rewrote or retired.
type RetainedRun struct {
	RewrittenRun
	Expired []Expiry `json:"expired"`
	Retired bool     `json:"retired,omitempty"`
	// Bytes are the bytes of the files no longer served (approximate for a rewrite
	// that keeps some series of a file).
	Bytes int64 `json:"bytes"`
}

// RetentionTotals add up a pass.
type RetentionTotals struct {
	Runs    int    `json:"runs"`
	Retired int    `json:"retired"`
	Points  uint64 `json:"points"`
	Bytes   int64  `json:"bytes"`
}

// Retain applies the policy to every serving run.
func Retain(ctx context.Context, opt RetainOptions) (*RetainReport, error) {
	if opt.Policy == nil {
		return nil, errors.New("retain: no policy")
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	grace := time.Duration(opt.Policy.Grace)
	vis, err := Published(ctx, opt.Store)
	if err != nil {
		return nil, err
	}
	rep := &RetainReport{DryRun: opt.DryRun, Runs: []RetainedRun{}}
	var errs []error
	for _, m := range vis {
		if opt.Shard != "" && m.Shard != opt.Shard || m.Retired {
			continue
		}
		ex, bytes, err := expiriesOf(ctx, opt.Store, opt.Policy, m, opt.Now, grace)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", m.Shard, m.Window, err))
			rep.Failed = append(rep.Failed, m.Shard+" "+m.Window)
			continue
		}
		if len(ex) == 0 {
			continue
		}
		rr := RetainedRun{RewrittenRun: RewrittenRun{Shard: m.Shard, Window: m.Window, From: m.RunID}, Expired: ex, Bytes: bytes}
		if !opt.DryRun {
			nm, err := rewriteRun(ctx, opt.Store, m, "retain", rewriteFilter{expire: ex}, opt.TempDir)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", m.Shard, m.Window, err))
				rep.Failed = append(rep.Failed, m.Shard+" "+m.Window)
				continue
			}
			if nm == nil {
				continue
			}
			rr.RunID, rr.Counts, rr.Retired = nm.RunID, nm.Counts, nm.Retired
			rep.Totals.Points += nm.Counts.Expired
			opt.Logger.Info("retention rewrote a run", "shard", m.Shard, "window", m.Window, "run", nm.RunID, "retired", nm.Retired)
		}
		rep.Runs = append(rep.Runs, rr)
		rep.Totals.Runs++
		rep.Totals.Bytes += bytes
		if rr.Retired {
			rep.Totals.Retired++
		}
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("retain: %d runs failed (the others are done): %w", len(errs), errors.Join(errs...))
	}
	return rep, nil
}

// expiriesOf is what of m has expired at now (beyond the grace), resolution by
// resolution, minus what retention dropped before; with the bytes it frees.
func expiriesOf(ctx context.Context, st storage.Store, p *RetentionPolicy, m *Manifest, now time.Time, grace time.Duration) ([]Expiry, int64, error) {
	age := now.Sub(time.UnixMilli(m.To))
	var out []Expiry
	var freed int64
	consider := func(res string, files []Part, orgsOf func() (map[uint32]bool, error)) error {
		if len(files) == 0 {
			return nil
		}
		if d, ok := p.shortest(res); !ok || age < d+grace {
			return nil // nothing at res can have expired: no index is read
		}
		orgs, err := orgsOf()
		if err != nil {
			return err
		}
		var gone []uint32
		for org := range orgs {
			if d, ok := p.retention(org, res); ok && age >= d+grace {
				gone = append(gone, org)
			}
		}
		if len(gone) == 0 {
			return nil
		}
		e := Expiry{Resolution: res}
		if len(gone) == len(orgs) {
			e.All = true
			for _, f := range files {
				freed += f.Size
			}
		} else {
			sort.Slice(gone, func(i, j int) bool { return gone[i] < gone[j] })
			e.Orgs = gone
		}
		if !alreadyExpired(m, e) {
			out = append(out, e)
		}
		return nil
	}
	raw := append(append([]Part(nil), m.Parts...), m.LateParts...)
	if err := consider(RawResolution, raw, func() (map[uint32]bool, error) { return partOrgs(ctx, st, raw, false) }); err != nil {
		return nil, 0, err
	}
	for _, set := range m.Rollups {
		if err := consider(set.Resolution, set.Parts, func() (map[uint32]bool, error) { return partOrgs(ctx, st, set.Parts, true) }); err != nil {
			return nil, 0, err
		}
	}
	return out, freed, nil
}

// alreadyExpired reports whether m's earlier retention covers e.
func alreadyExpired(m *Manifest, e Expiry) bool {
	if m.Derived == nil {
		return false
	}
	for _, x := range m.Derived.Retention {
		if x.Resolution != e.Resolution {
			continue
		}
		if x.All {
			return true
		}
		if e.All {
			return false
		}
		have := map[uint32]bool{}
		for _, o := range x.Orgs {
			have[o] = true
		}
		for _, o := range e.Orgs {
			if !have[o] {
				return false
			}
		}
		return true
	}
	return false
}

// partOrgs reads the orgs of files from their indexes (ranged reads of series files;
// rollup files whole).
func partOrgs(ctx context.Context, st storage.Store, files []Part, isRollup bool) (map[uint32]bool, error) {
	out := map[uint32]bool{}
	for _, f := range files {
		var idx []encoder.IndexEntry
		if isRollup {
			b, err := storage.ReadAll(ctx, st, f.Key)
			if err != nil {
				return nil, err
			}
			r, err := rollup.Open(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", f.Key, err)
			}
			idx = r.Index()
		} else {
			r, err := encoder.Open(storeReaderAt{ctx, st, f.Key}, f.Size)
			if err != nil {
				return nil, fmt.Errorf("open %s: %w", f.Key, err)
			}
			idx = r.Index()
		}
		for _, e := range idx {
			out[e.Key.Org] = true
		}
	}
	return out, nil
}
