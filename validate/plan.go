package validate

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// PlanVersion is the plan file format this code reads.
const PlanVersion = 1

// Mode is how far a migration has gone.
type Mode string

const (
	// Shadow: Tailor writes to its own root and nobody reads it; legacy serves all.
	Shadow Mode = "shadow"
	// Partial: each listed org is served by Tailor from its cutover timestamps on.
	Partial Mode = "partial"
	// Full: Tailor serves every org over all time.
	Full Mode = "full"
)

// IsValid reports whether m is a known mode.
func (m Mode) IsValid() bool { return m == Shadow || m == Partial || m == Full }

// Side is the system that serves a range.
type Side string

const (
	Legacy Side = "legacy"
	Tailor Side = "tailor"
)

// Plan is a migration plan (docs/validation.md). It is versioned twice: Version is the
// file format, Revision counts the plan's changes, so that every answer of resolve
// names the plan it came from. Rolling an org back is a plan change (a cutover back to
// legacy, or removing a cutover); no data is rewritten.
type Plan struct {
	Version  int    `yaml:"version"`
	Revision int    `yaml:"revision"`
	Mode     Mode   `yaml:"mode"`
	Legacy   string `yaml:"legacy"` // store URL of the legacy files
	Tailor   string `yaml:"tailor"` // store URL of Tailor's served series files
	// Shadow is where Tailor writes in shadow mode (optional; informative).
	Shadow string    `yaml:"shadow,omitempty"`
	Orgs   []OrgPlan `yaml:"orgs"`
}

// OrgPlan lists one org's cutovers in time order.
type OrgPlan struct {
	Org      uint32    `yaml:"org"`
	Cutovers []Cutover `yaml:"cutovers"`
}

// Cutover switches an org to Serve at At (inclusive): a point with ts == At is served
// by the new side.
type Cutover struct {
	At    Timestamp `yaml:"at"`
	Serve Side      `yaml:"serve"`
}

// Timestamp is Unix ms, written in YAML as RFC 3339 or as Unix ms.
type Timestamp int64

// UnmarshalYAML reads RFC 3339 or an integer of Unix ms.
func (t *Timestamp) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseTimestamp(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*t = Timestamp(v)
	return nil
}

// MarshalYAML writes RFC 3339 with milliseconds.
func (t Timestamp) MarshalYAML() (any, error) { return FormatTimestamp(int64(t)), nil }

// ParseTimestamp parses RFC 3339 or Unix ms.
func ParseTimestamp(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("timestamp %q: want RFC 3339 (2025-11-24T04:00:00Z) or Unix ms", s)
	}
	return t.UnixMilli(), nil
}

// FormatTimestamp prints Unix ms as RFC 3339 in UTC.
func FormatTimestamp(ms int64) string {
	switch ms {
	case math.MinInt64:
		return "-inf"
	case math.MaxInt64:
		return "+inf"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// LoadPlan reads and validates a plan file.
func LoadPlan(path string) (*Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load plan: %w", err)
	}
	p, err := ParsePlan(b)
	if err != nil {
		return nil, fmt.Errorf("plan %s: %w", path, err)
	}
	return p, nil
}

// ParsePlan parses and validates a plan.
func ParsePlan(b []byte) (*Plan, error) {
	var p Plan
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the plan, naming the org and cutover at fault.
func (p *Plan) Validate() error {
	if p.Version != PlanVersion {
		return fmt.Errorf("version %d: this tailor-batch reads plan version %d", p.Version, PlanVersion)
	}
	if p.Revision < 1 {
		return fmt.Errorf("revision %d: want 1 or more, increased on every change", p.Revision)
	}
	if !p.Mode.IsValid() {
		return fmt.Errorf("mode %q: want shadow, partial or full", p.Mode)
	}
	if p.Legacy == "" || p.Tailor == "" {
		return fmt.Errorf("legacy and tailor: both roots are required")
	}
	seen := map[uint32]int{}
	for i, o := range p.Orgs {
		if j, ok := seen[o.Org]; ok {
			return fmt.Errorf("org %d: listed twice (orgs %d and %d), its cutovers would overlap; list them once, in time order", o.Org, j+1, i+1)
		}
		seen[o.Org] = i
		prev := Legacy // before its first cutover an org is served by legacy
		for k, c := range o.Cutovers {
			if c.Serve != Legacy && c.Serve != Tailor {
				return fmt.Errorf("org %d: cutover %d serve %q: want legacy or tailor", o.Org, k+1, c.Serve)
			}
			if k > 0 && c.At <= o.Cutovers[k-1].At {
				return fmt.Errorf("org %d: cutover %d at %s is not after cutover %d at %s: cutovers must be sorted and distinct", o.Org, k+1, FormatTimestamp(int64(c.At)), k, FormatTimestamp(int64(o.Cutovers[k-1].At)))
			}
			if c.Serve == prev {
				return fmt.Errorf("org %d: cutover %d at %s switches to %s, which already serves from the cutover before: overlapping ranges", o.Org, k+1, FormatTimestamp(int64(c.At)), c.Serve)
			}
			prev = c.Serve
		}
	}
	return nil
}

// Piece is a part of a resolved range and the side that serves it: ts in [From, To).
type Piece struct {
	From  int64  `json:"from"`
	To    int64  `json:"to"`
	Serve Side   `json:"serve"`
	Root  string `json:"root"`
}

// Pieces splits [from, to) of org into the ranges each side serves under the plan.
func (p *Plan) Pieces(org uint32, from, to int64) ([]Piece, error) {
	if from >= to {
		return nil, fmt.Errorf("range [%s, %s): from must be before to", FormatTimestamp(from), FormatTimestamp(to))
	}
	root := map[Side]string{Legacy: p.Legacy, Tailor: p.Tailor}
	switch p.Mode {
	case Shadow:
		return []Piece{{from, to, Legacy, p.Legacy}}, nil
	case Full:
		return []Piece{{from, to, Tailor, p.Tailor}}, nil
	}
	var cuts []Cutover
	for _, o := range p.Orgs {
		if o.Org == org {
			cuts = o.Cutovers
		}
	}
	var out []Piece
	cur, side := from, Legacy
	for _, c := range cuts {
		at := int64(c.At)
		if at <= from {
			side = c.Serve
			continue
		}
		if at >= to {
			break
		}
		out = append(out, Piece{cur, at, side, root[side]})
		cur, side = at, c.Serve
	}
	out = append(out, Piece{cur, to, side, root[side]})
	return out, nil
}
