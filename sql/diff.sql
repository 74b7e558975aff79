-- diff.sql: the one-to-one diff of the views "new" and "legacy" (defined as the view
-- "diff" by tailor-batch diff and validate; diffsummary.sql and diffrows.sql read it).
--
-- A full outer join on (series, ts). Each (series, ts) of either side lands in one kind:
--   0 equal, 1 missing_in_new, 2 missing_in_legacy, 3 value_differs
-- (the codes of validate.Kind). Values compare by bits, except that every NaN equals
-- every NaN; 0 and -0 differ. With getvariable('tolerance') > 0, values within the
-- tolerance are equal too. Each side must hold a (series, ts) at most once: series files
-- do by construction, and "latest" de-duplicates raw points.
SELECT
    coalesce(n.org_id, l.org_id)           AS org_id,
    coalesce(n.metric_id, l.metric_id)     AS metric_id,
    coalesce(n.context_key, l.context_key) AS context_key,
    coalesce(n.ts, l.ts)                   AS ts,
    CASE
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
FULL OUTER JOIN legacy AS l
  ON n.org_id = l.org_id AND n.metric_id = l.metric_id
 AND n.context_key = l.context_key AND n.ts = l.ts
