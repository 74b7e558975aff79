-- diffsummary.sql: the diff's counts per (org, metric, time bucket, kind).
--
-- One hash aggregation; Go rolls the groups up by org, by metric and over time.
-- getvariable('bucket_ms') is the width of the time buckets, aligned to the epoch.
SELECT org_id, metric_id,
       ts - ((ts % getvariable('bucket_ms')) + getvariable('bucket_ms')) % getvariable('bucket_ms') AS bucket,
       kind, count(*) AS points
FROM diff
GROUP BY ALL
