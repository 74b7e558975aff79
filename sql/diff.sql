-- diff.sql: the one-to-one diff of the views "new" and "legacy" (defined as the view
-- "diff" by tailor-batch diff and validate; diffsummary.sql and diffrows.sql read it).
--
-- A full outer join on (series, ts). Each (series, ts) of either side lands in one kind
-- (the codes of pointdiff.Kind):
--   0 equal, 1 missing_in_new, 2 missing_in_legacy, 3 value_differs,
--   4 duplicate_in_legacy
-- Values compare by bits, except that every NaN equals every NaN; 0 and -0 differ. With
-- getvariable('tolerance') > 0, values within the tolerance are equal too.
--
-- New holds a (series, ts) at most once: series files do by construction, and "latest"
-- de-duplicates raw points. Legacy data may lie, so it is grouped first: a (series, ts)
-- it holds more than once is duplicate_in_legacy whatever the new side holds, rather
-- than one joined row per copy, which counted agreeing copies as extra equal points
-- (and so could turn a FAIL into a PASS).
SELECT
    coalesce(n.org_id, l.org_id)           AS org_id,
    coalesce(n.metric_id, l.metric_id)     AS metric_id,
    coalesce(n.context_key, l.context_key) AS context_key,
    coalesce(n.ts, l.ts)                   AS ts,
    CASE
        WHEN l.copies > 1 THEN 4
        WHEN n.ts IS NULL THEN 1
        WHEN l.ts IS NULL THEN 2
        WHEN (n.value = l.value AND signbit(n.value) = signbit(l.value))
          OR (isnan(n.value) AND isnan(l.value))
          OR (getvariable('tolerance') > 0 AND abs(n.value - l.value) <= getvariable('tolerance'))
        THEN 0
        ELSE 3
    END::UTINYINT                          AS kind,
    n.value                                AS new_value,
    l.value                                AS legacy_value
FROM new AS n
FULL OUTER JOIN (
    SELECT org_id, metric_id, context_key, ts, count(*) AS copies, any_value(value) AS value
    FROM legacy
    GROUP BY org_id, metric_id, context_key, ts
) AS l
  ON n.org_id = l.org_id AND n.metric_id = l.metric_id
 AND n.context_key = l.context_key AND n.ts = l.ts
