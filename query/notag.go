//go:build !duckdb_arrow

package query

// DuckDB's Arrow interface is behind the duckdb_arrow build tag. Building without it
// fails here, by name, instead of deep inside duckdb-go:
//
//	go build -tags duckdb_arrow ./...   (the Makefile sets it)
var _ = build_with_tags_duckdb_arrow
