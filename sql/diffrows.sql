-- diffrows.sql: every point of the diff that is not equal, in (series, ts) order, for
-- drill-down (tailor-batch diff --out FILE.parquet).
--
-- A duplicate_in_legacy point comes once per legacy copy, each with that copy's value,
-- from the view "legacy_copies": the legacy data a second time (a registered Arrow view
-- can be read once, so it is a view of its own). The diff's rows are filtered before the
-- join because the views over Arrow streams run with filter pushdown off. Copies sort
-- by value through an expression: DuckDB rebuilds a DOUBLE sort key column from its
-- normalized key, which turns -0 into 0 (measured with DuckDB 1.5.6).
SELECT * FROM (
    SELECT d.org_id, d.metric_id, d.context_key, d.ts, d.kind, d.new_value,
           CASE WHEN d.kind = 4 THEN c.value ELSE d.legacy_value END AS legacy_value
    FROM (SELECT * FROM diff WHERE kind <> 0) AS d
    LEFT JOIN legacy_copies AS c
      ON d.kind = 4 AND d.org_id = c.org_id AND d.metric_id = c.metric_id
     AND d.context_key = c.context_key AND d.ts = c.ts
)
ORDER BY org_id, metric_id, context_key, ts, legacy_value + 0.0, signbit(legacy_value)
