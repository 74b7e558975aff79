-- latest.sql: the de-duplicated points, one row per (series, ts), latest arrival wins.
--
-- The same rule as groupsort.sql, spelled out in SQL. `tailor-batch sql` exposes it as
-- the view "latest", and tests use it as the oracle for the run's streaming de-duplication.
SELECT org_id, metric_id, context_key, ts, value
FROM points
QUALIFY row_number() OVER (
    PARTITION BY org_id, metric_id, context_key, ts
    ORDER BY record_ts DESC, topic_id DESC, "partition" DESC, "offset" DESC) = 1
ORDER BY org_id, metric_id, context_key, ts
