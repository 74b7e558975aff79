-- groupsort.sql: the run's group-sort over one shard's keyed rows (narrow layout).
--
-- A row is one group (one payload of one series): its points, in strictly increasing ts
-- order, wait in the run's point store, and the row carries their count (n) and
-- reference (ref). k is sid<<32 | (first ts - window start), sid being a dense id the run
-- gave each series as its readers met it, so ordering by k orders by series, then first
-- ts, on one 8-byte key. Sorting 24-byte group rows instead of points sorts about 100
-- times fewer rows; the streaming encoder merges the groups of each series and, where
-- several arrivals carry one (series, ts), keeps the latest by group id (gid). latest.sql
-- gives the same points in plain SQL. Every column is named: DuckDB pushes projections
-- into the Arrow scan.
SELECT k, gid, n, ref
FROM points
ORDER BY k
