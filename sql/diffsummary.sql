-- diffsummary.sql: the diff's counts per (org, metric, time bucket, kind), with the
-- first and last ts of each, for the report's compared time range.
--
-- One hash aggregation; Go rolls the groups up by org, by metric and over time.
-- getvariable('bucket_ms') is the width of the time buckets, aligned to the epoch.
SELECT org_id, metric_id,
       ts - ((ts % getvariable('bucket_ms')) + getvariable('bucket_ms')) % getvariable('bucket_ms') AS bucket,
       kind, count(*) AS points, min(ts) AS first_ts, max(ts) AS last_ts
FROM diff
GROUP BY ALL
