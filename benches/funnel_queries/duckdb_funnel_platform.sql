-- DuckDB: the funnel of duckdb_funnel.sql (ClickHouse's windowFunnel(30 days), default mode,
-- with ASOF joins; see there) per (platform, user_id), as ClickHouse computes it for
-- GROUP BY platform, user_id: a chain only uses the events of one platform, and every
-- (platform, user_id) pair in the file is counted, at level 0 without a 'visit' there.
WITH steps AS MATERIALIZED (
  SELECT platform, user_id, event, epoch_ms(ts) AS t
  FROM read_parquet('{file}')
  WHERE event IN ('visit', 'signup', 'activate', 'engage', 'subscribe')
),
s2 AS (SELECT platform, user_id, t FROM steps WHERE event = 'signup'),
s3 AS (SELECT platform, user_id, t FROM steps WHERE event = 'activate'),
s4 AS (SELECT platform, user_id, t FROM steps WHERE event = 'engage'),
s5 AS (SELECT platform, user_id, t FROM steps WHERE event = 'subscribe'),
l1 AS MATERIALIZED (SELECT platform, user_id, t AS t0, t FROM steps WHERE event = 'visit'),
l2 AS MATERIALIZED (
  SELECT * FROM (SELECT a.platform, a.user_id, a.t0, b.t FROM l1 a ASOF JOIN s2 b ON a.platform = b.platform AND a.user_id = b.user_id AND b.t >= a.t)
  WHERE t <= t0 + 2592000000),
l3 AS MATERIALIZED (
  SELECT * FROM (SELECT a.platform, a.user_id, a.t0, b.t FROM l2 a ASOF JOIN s3 b ON a.platform = b.platform AND a.user_id = b.user_id AND b.t >= a.t)
  WHERE t <= t0 + 2592000000),
l4 AS MATERIALIZED (
  SELECT * FROM (SELECT a.platform, a.user_id, a.t0, b.t FROM l3 a ASOF JOIN s4 b ON a.platform = b.platform AND a.user_id = b.user_id AND b.t >= a.t)
  WHERE t <= t0 + 2592000000),
l5 AS MATERIALIZED (
  SELECT * FROM (SELECT a.platform, a.user_id, a.t0, b.t FROM l4 a ASOF JOIN s5 b ON a.platform = b.platform AND a.user_id = b.user_id AND b.t >= a.t)
  WHERE t <= t0 + 2592000000),
per_user AS (
  SELECT platform, user_id, max(level) AS level FROM (
    SELECT platform, user_id, 1 AS level FROM l1 UNION ALL
    SELECT platform, user_id, 2 FROM l2 UNION ALL
    SELECT platform, user_id, 3 FROM l3 UNION ALL
    SELECT platform, user_id, 4 FROM l4 UNION ALL
    SELECT platform, user_id, 5 FROM l5)
  GROUP BY platform, user_id),
everyone AS (SELECT DISTINCT platform, user_id FROM read_parquet('{file}'))
SELECT e.platform, coalesce(p.level, 0) AS level, count(*) AS users
FROM everyone e LEFT JOIN per_user p USING (platform, user_id)
GROUP BY 1, 2
ORDER BY 1, 2
