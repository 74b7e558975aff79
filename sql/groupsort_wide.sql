-- groupsort_wide.sql: groupsort.sql for points whose ts span does not fit the narrow
-- key's 32 bits (a late output, whose window is open towards the past, or a window
-- longer than 49 days): k is the series' dense id alone and ts, the group's first ts,
-- its own column.
SELECT k, ts, gid, n, ref
FROM points
ORDER BY k, ts
