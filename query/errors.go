//go:build duckdb_arrow

package query

import "fmt"

// MissingColumnError is a legacy Parquet file without a column the points need. The
// command tells how to map another column to it.
type MissingColumnError struct {
	// Source is the legacy source as given; Column the column looked for, For the point
	// column it stands for and Type the type For needs.
	Source, Column, For, Type string
}

func (e *MissingColumnError) Error() string {
	return fmt.Sprintf("legacy Parquet %s: no column %q (for %s, type %s); map another column to %s", e.Source, e.Column, e.For, e.Type, e.For)
}
