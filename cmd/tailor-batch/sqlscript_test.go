package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	f := func(script string, want ...string) {
		t.Helper()
		got, err := splitStatements(script)
		if err != nil {
			t.Fatalf("splitStatements(%q): %v", script, err)
		}
		if len(want) == 0 {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("splitStatements(%q) = %q, want %q", script, got, want)
		}
	}
	f("SELECT 1", "SELECT 1")
	f("SELECT 1;", "SELECT 1")
	f("  SELECT 1 ;\n SELECT 2;;  ", "SELECT 1", "SELECT 2")
	f("SELECT 'a;b'; SELECT 'it''s;'", "SELECT 'a;b'", "SELECT 'it''s;'")
	f(`SELECT "a;""b" FROM t; SELECT 2`, `SELECT "a;""b" FROM t`, "SELECT 2")
	f(`SELECT E'\';'; SELECT 2`, `SELECT E'\';'`, "SELECT 2")
	f(`SELECT '\'; SELECT 2`, `SELECT '\'`, "SELECT 2") // no E: a backslash is a character
	f("SELECT $$a;b$$; SELECT $fn$ ; $$ ; $fn$", "SELECT $$a;b$$", "SELECT $fn$ ; $$ ; $fn$")
	f("SELECT $1; SELECT 2", "SELECT $1", "SELECT 2")
	f("SELECT 1 -- a; comment\n; SELECT 2", "SELECT 1 -- a; comment", "SELECT 2")
	f("SELECT /* a; /* nested; */ still; */ 1; SELECT 2", "SELECT /* a; /* nested; */ still; */ 1", "SELECT 2")
	f("-- only a comment;\n ; /* and; another */ ;")
	f("")
	f("SELECT 1 -- no newline at the end", "SELECT 1 -- no newline at the end")

	for script, want := range map[string]string{
		"SELECT 'abc":           "string opened by ' at line 1, column 8 is never closed",
		"SELECT 1;\nSELECT \"x": "quoted identifier opened by \" at line 2, column 8",
		"SELECT /* x":           "comment opened by /* at line 1, column 8",
		"SELECT /* /* */ 1":     "comment opened by /* at line 1, column 8",
		"SELECT $q$ x":          "string opened by $q$ at line 1, column 8",
	} {
		if _, err := splitStatements(script); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("splitStatements(%q) = %v, want an error with %q", script, err, want)
		}
	}
}

func TestStatementTitle(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT\n  count(*)\nFROM   points":      "SELECT count(*) FROM points",
		"-- how many\n/* all */ SELECT 1":        "SELECT 1",
		strings.Repeat("x", 100):                 strings.Repeat("x", 71) + "…",
		"/* never closed SELECT 1":               "/* never closed SELECT 1",
		"-- a comment only":                      "",
		"SELECT 'über' -- trailing comment kept": "SELECT 'über' -- trailing comment kept",
	} {
		if got := statementTitle(in); got != want {
			t.Fatalf("statementTitle(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSQLSeveralStatements: several statements all run, in one session, each printed
// under a header naming it; each reads its views afresh (an Arrow view reads once).
func TestSQLSeveralStatements(t *testing.T) {
	store := validationStore(t, validationPoints())
	out, err := runCLI(t, "sql", "--store", store, `SELECT count(*) AS n FROM series;
		-- a table for the next statement
		CREATE TEMP TABLE t AS SELECT org_id, count(*) AS n FROM series GROUP BY org_id;
		SELECT sum(n) AS total FROM t; SELECT count(*) AS again FROM series`)
	if err != nil {
		t.Fatalf("sql: %v\n%s", err, out)
	}
	for _, want := range []string{
		"-- statement 1 of 4: SELECT count(*) AS n FROM series\nn  \n---\n288\n(1 rows)\n",
		"\n-- statement 2 of 4: CREATE TEMP TABLE t AS SELECT org_id, count(*) AS n FROM series GROUP B…\nCount\n",
		"\n-- statement 3 of 4: SELECT sum(n) AS total FROM t\ntotal\n-----\n288  \n(1 rows)\n",
		"\n-- statement 4 of 4: SELECT count(*) AS again FROM series\nagain\n-----\n288  \n",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	// One statement prints no header, as before.
	if out, err := runCLI(t, "sql", "--store", store, "--format", "csv", "SELECT 1 AS one;"); err != nil || out != "one\n1\n" {
		t.Fatalf("one statement: %q %v", out, err)
	}
}

// TestSQLStatementsRefusedOrStopped: a script csv, json or parquet cannot hold, or one
// with an open quote, is refused before any statement runs; a failing statement stops
// the ones after it and is named.
func TestSQLStatementsRefusedOrStopped(t *testing.T) {
	store := validationStore(t, validationPoints())
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran.csv")
	copyStmt := "COPY (SELECT 1) TO '" + marker + "' (FORMAT csv)"
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "csv", copyStmt + "; SELECT 1"}, "--format csv takes one statement and the SQL has 2"},
		{[]string{"--format", "json", copyStmt + "; SELECT 1"}, "--format json takes one statement"},
		{[]string{"--format", "parquet", "--out", filepath.Join(dir, "x.parquet"), copyStmt + "; SELECT 1"}, "--format parquet takes one statement"},
		{[]string{copyStmt + "; SELECT 'open"}, "never closed"},
		{[]string{" ; -- nothing"}, "no statement given"},
	} {
		_, err := runCLI(t, append([]string{"sql", "--store", store}, tc.args...)...)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("sql %q: %v, want a usage error with %q", tc.args, err, tc.want)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("sql %q ran a statement before refusing", tc.args)
		}
	}
	out, err := runCLI(t, "sql", "--store", store, "SELECT 1 AS first; SELECT * FROM nosuch; "+copyStmt)
	if err == nil || !strings.Contains(err.Error(), "statement 2 of 3 (SELECT * FROM nosuch)") || !strings.Contains(err.Error(), "did not run") {
		t.Fatalf("failing statement: %v", err)
	}
	if !strings.Contains(out, "-- statement 1 of 3: SELECT 1 AS first\nfirst\n-----\n1    \n") {
		t.Fatalf("the first statement's result is missing:\n%s", out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a statement after the failing one ran")
	}
}

// TestSQLStdin: "sql -" reads the SQL from standard input.
func TestSQLStdin(t *testing.T) {
	store := validationStore(t, validationPoints())
	var out, errOut bytes.Buffer
	in := strings.NewReader("SELECT count(*) AS n\nFROM series\nWHERE org_id = 2;\nSELECT 41 + 1 AS x;\n")
	if err := runCLIio(t, in, &out, &errOut, "sql", "--store", store, "-"); err != nil {
		t.Fatalf("sql -: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "n \n--\n96\n") || !strings.Contains(out.String(), "x \n--\n42\n") {
		t.Fatalf("sql - printed:\n%s", out.String())
	}
}

// TestSQLUnknownViewHint: a view that does not exist gets Tailor's views and the flag
// each needs, not DuckDB's suggestions from its own catalog (pg_am, duckdb_columns).
func TestSQLUnknownViewHint(t *testing.T) {
	store := validationStore(t, validationPoints())
	for stmt, want := range map[string]string{
		"SELECT * FROM legacy":                        "the view legacy needs --legacy SRC",
		"SELECT * FROM seriez":                        "did you mean the view series?",
		"SELECT count(*) FROM Pointz":                 "did you mean the view points?",
		"SELECT * FROM series JOIN legacy USING (ts)": "the view legacy needs --legacy SRC",
		"SELECT * FROM my_own_table":                  "Tailor's views:",
	} {
		_, err := runCLI(t, "sql", "--store", store, stmt)
		if err == nil {
			t.Fatalf("%s: no error", stmt)
		}
		msg := err.Error()
		for _, w := range []string{want, "Tailor's views:\n  points ", "\n  legacy  the legacy data (needs --legacy SRC)", "does not exist"} {
			if !strings.Contains(msg, w) {
				t.Fatalf("%s: error lacks %q:\n%s", stmt, w, msg)
			}
		}
		if strings.Contains(msg, "Did you mean") || strings.Contains(msg, "pg_") || strings.Contains(msg, "duckdb_") {
			t.Fatalf("%s: DuckDB's catalog suggestion is still there:\n%s", stmt, msg)
		}
	}
	// Other errors are left as DuckDB wrote them.
	_, err := runCLI(t, "sql", "--store", store, "SELECT nosuchcol FROM series")
	if err == nil || strings.Contains(err.Error(), "Tailor's views") || !strings.Contains(err.Error(), "Binder Error") {
		t.Fatalf("binder error: %v", err)
	}
}
