// Package sql embeds the SQL that Tailor runs in DuckDB, so the batch run and the
// validation commands execute the very same statements.
package sql

import _ "embed"

// GroupSort orders the view "points" by series, ts and latest arrival first.
//
//go:embed groupsort.sql
var GroupSort string

// Latest selects the de-duplicated points of the view "points".
//
//go:embed latest.sql
var Latest string
