-- groupsort.sql: the run's group-sort over one shard's points.
--
-- Orders every point by series, then time, and within one (series, ts) puts the latest
-- arrival first: the highest Kafka record timestamp, ties broken by topic, partition and
-- offset (docs/dedup.md). The streaming encoder keeps the first row of each (series, ts)
-- and drops the rest, which measured 1.5-2x cheaper than de-duplicating in SQL with
-- QUALIFY row_number() or arg_max (see latest.sql, which gives the same rows).
SELECT org_id, metric_id, context_key, ts, value
FROM points
ORDER BY org_id, metric_id, context_key, ts,
         record_ts DESC, topic_id DESC, "partition" DESC, "offset" DESC
