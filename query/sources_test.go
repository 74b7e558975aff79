//go:build duckdb_arrow

package query_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailor-metrics/tailor/query"
)

// TestLegacyParquetPathIsLiteral: a legacy Parquet path names exactly that file, even
// with DuckDB's glob characters in it, and glob: reads a pattern only when asked.
// Each file holds one point of its own org, so the orgs read tell which files were read.
func TestLegacyParquetPathIsLiteral(t *testing.T) {
	e := openEngine(t)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, org int) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeParquet(t, e, p, fmt.Sprintf("SELECT %d::UINTEGER AS org_id, 1::UBIGINT AS metric_id, 1::UBIGINT AS context_key, 0::BIGINT AS ts, 1.0::DOUBLE AS value", org))
		return p
	}
	write("legacy.parquet", 1)
	bracket := write("le[g]acy.parquet", 2)
	write("allx.parquet", 3)
	star := write("all*.parquet", 4)
	write("axb.parquet", 5)
	question := write("a?b.parquet", 6)
	write("d1/l.parquet", 7)
	inDir := write("d[1]/l.parquet", 8)
	backslash := write(`b\[x].parquet`, 9)
	orgs := func(src string) string {
		t.Helper()
		v, err := query.LegacyView(ctx, e, "legacy", query.LegacyOptions{Source: src}, query.Scope{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got := queryInts(t, e, "SELECT org_id::BIGINT FROM legacy ORDER BY org_id", []query.View{v}, query.Scope{})
		return fmt.Sprint(got)
	}
	for _, tc := range []struct{ src, want string }{
		{filepath.Join(dir, "legacy.parquet"), "[1]"},
		{bracket, "[2]"},   // read legacy.parquet before
		{star, "[4]"},      // read allx.parquet too
		{question, "[6]"},  // read axb.parquet too
		{inDir, "[8]"},     // a glob character in a directory
		{backslash, "[9]"}, // a backslash means something to DuckDB's glob
		{query.GlobPrefix + filepath.Join(dir, "all*.parquet"), "[3 4]"},
		{query.GlobPrefix + filepath.Join(dir, "*", "l.parquet"), "[7 8]"},
		{query.GlobPrefix + filepath.Join(dir, "le[g]acy.parquet"), "[1]"},
	} {
		if got := orgs(tc.src); got != tc.want {
			t.Errorf("%s read orgs %s, want %s", tc.src, got, tc.want)
		}
	}
	// A relative path is read from the working directory, literally too.
	t.Chdir(dir)
	if got := orgs("le[g]acy.parquet"); got != "[2]" {
		t.Errorf("relative le[g]acy.parquet read orgs %s", got)
	}

	// A backslash becomes ?, which also matches another file: refused, not misread.
	write(`bx[x].parquet`, 10)
	if _, err := query.LegacyView(ctx, e, "legacy", query.LegacyOptions{Source: backslash}, query.Scope{}); err == nil || !strings.Contains(err.Error(), "cannot read this path literally") {
		t.Fatalf("ambiguous path: %v", err)
	}
	for _, tc := range []struct{ src, want string }{
		{filepath.Join(dir, "nothing*.parquet"), "no such file"},
		{query.GlobPrefix + filepath.Join(dir, "nothing*.parquet"), "the pattern matches no file"},
	} {
		if _, err := query.LegacyView(ctx, e, "legacy", query.LegacyOptions{Source: tc.src}, query.Scope{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.src, err, tc.want)
		}
	}
}
