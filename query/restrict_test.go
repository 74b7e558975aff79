//go:build duckdb_arrow

package query

import (
	"context"
	"testing"
)

// TestRestrictions: what each statement lets the readers of "series" and "legacy"
// skip, as Restriction.String prints it. "everything" reads all.
func TestRestrictions(t *testing.T) {
	ctx := context.Background()
	e, err := Open(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	f := func(stmt, wantSeries, wantLegacy string) {
		t.Helper()
		got, err := e.restrictions(ctx, []string{stmt}, []string{"series", "legacy"})
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{"series": wantSeries, "legacy": wantLegacy} {
			r, ok := got[name]
			s := "unread"
			if ok {
				s = r.String()
			}
			if got == nil {
				s = "everything (not pruned)"
			}
			if s != want {
				t.Errorf("%s\n  %s: %s\n  want %s", stmt, name, s, want)
			}
		}
	}
	f("SELECT count(*) FROM series WHERE org_id = 7", "org_id in {7}; columns org_id", "unread")
	f("SELECT count(*) FROM series", "columns ", "unread")
	f("SELECT * FROM series WHERE ts >= 1000 AND ts < 2000 AND metric_id IN (5, 3, 4)", "metric_id in {3-5}; ts in [1000, 1999]", "unread")
	f("SELECT sum(value) FROM series WHERE 7 = org_id AND ts BETWEEN -5 AND 5", "org_id in {7}; ts in [-5, 5]; columns org_id,ts,value", "unread")
	f("SELECT value FROM series WHERE org_id = 1 OR org_id = 3", "org_id in {1,3}; columns org_id,value", "unread")
	// An OR with another column, or with something unreadable, admits everything there.
	f("SELECT value FROM series WHERE org_id = 1 OR metric_id = 3", "columns metric_id,org_id,value", "unread")
	f("SELECT value FROM series WHERE org_id = 1 AND (value > 3 OR ts IS NULL)", "org_id in {1}; columns org_id,ts,value", "unread")
	// Out of the column's range: nothing can match.
	f("SELECT count(*) FROM series WHERE org_id = -1", "org_id in {}; columns org_id", "unread")
	f("SELECT count(*) FROM series WHERE org_id > 4294967295", "org_id in {}; columns org_id", "unread")
	f("SELECT count(*) FROM series WHERE metric_id = 18446744073709551615", "metric_id in {18446744073709551615}; columns metric_id", "unread")
	f("SELECT count(*) FROM series WHERE ts < 5::BIGINT", "ts in [-9223372036854775808, 4]; columns ts", "unread")
	// Joins: each side by its own qualified columns; unqualified names are ambiguous.
	f("SELECT s.value, l.value FROM series s JOIN legacy l ON s.ts = l.ts WHERE s.org_id = 2 AND l.metric_id = 9 AND ts > 0",
		"org_id in {2}; columns metric_id,org_id,ts,value", "metric_id in {9}; columns metric_id,org_id,ts,value")
	f("SELECT * FROM legacy l LEFT JOIN series s USING (org_id, ts) WHERE s.org_id = 2", "org_id in {2}", "everything")
	// ASOF picks rows by what else is there: no pruning of either side.
	f("SELECT count(*) FROM legacy l ASOF JOIN series s ON l.org_id = s.org_id AND l.ts >= s.ts WHERE s.org_id = 2", "columns org_id,ts", "columns org_id,ts")
	// A sample draws from the whole table.
	f("SELECT count(*) FROM series TABLESAMPLE 10 ROWS WHERE org_id = 2", "columns org_id", "unread")
	// Subqueries and CTEs: each SELECT filters its own FROM; two references union.
	f("SELECT * FROM (SELECT org_id, ts FROM series WHERE org_id = 4) WHERE ts > 9", "org_id in {4}; columns org_id,ts", "unread")
	f("WITH a AS (SELECT * FROM series WHERE org_id = 1) SELECT * FROM a UNION ALL SELECT * FROM series WHERE org_id = 5", "org_id in {1,5}", "unread")
	f("SELECT * FROM legacy WHERE ts IN (SELECT ts FROM series WHERE org_id = 3) AND org_id = 8", "org_id in {3}", "org_id in {8}")
	// A reference without a filter reads everything, whatever the others say.
	f("SELECT (SELECT count(*) FROM series) + (SELECT count(*) FROM series WHERE org_id = 1)", "columns org_id", "unread")
	// A whole row as a struct reads every column.
	f("SELECT s FROM series s WHERE s.org_id = 1", "org_id in {1}", "unread")
	// Not a plain SELECT: nothing is pruned, now or in the statements after it.
	f("CREATE TEMP VIEW v AS SELECT * FROM series", "everything (not pruned)", "everything (not pruned)")
	f("SELECT count(*) FROM series WHERE org_id = 7", "everything (not pruned)", "everything (not pruned)")
}
