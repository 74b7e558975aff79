// Package sql embeds the SQL that Tailor runs in DuckDB, so the batch run and the
// validation commands execute the very same statements.
package sql

import _ "embed"

// GroupSort orders the view "points" of keyed rows (columnar.KeyedSchema, one per group)
// by series and first ts; GroupSortWide does the same for columnar.KeyedWideSchema.
//
//go:embed groupsort.sql
var GroupSort string

//go:embed groupsort_wide.sql
var GroupSortWide string

// Latest selects the de-duplicated points of the view "points".
//
//go:embed latest.sql
var Latest string

// Diff is the one-to-one full outer join of the views "new" and "legacy" (legacy
// grouped by (series, ts) first), one row per (series, ts) with its kind (pointdiff.Kind
// codes).
//
//go:embed diff.sql
var Diff string

// DiffSummary counts the view "diff" per org, metric, time bucket and kind.
//
//go:embed diffsummary.sql
var DiffSummary string

// DiffRows selects the differing rows of the view "diff", every copy of a legacy
// duplicate from the view "legacy_copies".
//
//go:embed diffrows.sql
var DiffRows string
