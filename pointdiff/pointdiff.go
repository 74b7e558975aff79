// Package pointdiff is the vocabulary of a one-to-one diff of Tailor's series files
// against legacy data: how one (series, ts) compares (Kind), the diff's counts per org,
// metric, time bucket and kind (Group), and one differing point (Row). It is a leaf, so
// that query (which runs the diff in DuckDB) and validate (which reports it) share typed
// values without importing each other. See docs/validation.md.
package pointdiff

import (
	"fmt"
	"strconv"
)

// Kind is how one (series, ts) compares. The codes are the ones sql/diff.sql assigns,
// so they are part of the SQL's contract: never renumber them.
type Kind uint8

const (
	// Equal: on both sides with the same value.
	Equal Kind = iota
	// MissingInNew: only in legacy.
	MissingInNew
	// MissingInLegacy: only in Tailor's series files.
	MissingInLegacy
	// ValueDiffers: on both sides once, with other values.
	ValueDiffers
	// DuplicateInLegacy: legacy holds the (series, ts) more than once, so it does not say
	// which value is right; whatever the new side holds, the point is not compared.
	DuplicateInLegacy
)

// Differences lists the kinds that are differences, in code order.
var Differences = []Kind{MissingInNew, MissingInLegacy, ValueDiffers, DuplicateInLegacy}

var names = [...]string{"equal", "missing_in_new", "missing_in_legacy", "value_differs", "duplicate_in_legacy"}

// String is the kind's name as reports and diff rows print it; an unknown code prints
// as kind(N) rather than panicking, since codes come from SQL results.
func (k Kind) String() string {
	if !k.IsValid() {
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
	return names[k]
}

// MarshalText makes a Kind its name in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind's name, as MarshalText writes it.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range names {
		if string(b) == n {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown kind of difference %q", b)
}

// IsValid reports whether k is a known kind.
func (k Kind) IsValid() bool { return int(k) < len(names) }

// Group counts the points of one org, metric, time bucket and kind, as
// sql/diffsummary.sql returns them.
type Group struct {
	Org    uint32
	Metric uint64
	// Bucket is the start of the time bucket, Unix ms, aligned to the epoch.
	Bucket int64
	Kind   Kind
	// Points counts the (series, ts) of the group.
	Points uint64
	// FirstTs and LastTs are the smallest and largest ts of the group's points.
	FirstTs, LastTs int64
}

// Row is one differing point, in the layout `tailor-batch diff --out` writes. New or
// Legacy is nil on the side that lacks the point. A DuplicateInLegacy point comes as
// one Row per legacy copy, each with that copy's value and the new side's.
type Row struct {
	Kind    Kind
	Org     uint32
	Metric  uint64
	Context uint64
	Ts      int64
	New     *float64
	Legacy  *float64
}
