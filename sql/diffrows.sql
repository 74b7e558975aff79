-- diffrows.sql: every point of the diff that is not equal, in (series, ts) order, for
-- drill-down (tailor-batch diff --out FILE.parquet).
SELECT org_id, metric_id, context_key, ts, kind, new_value, legacy_value
FROM diff
WHERE kind <> 0
ORDER BY org_id, metric_id, context_key, ts
