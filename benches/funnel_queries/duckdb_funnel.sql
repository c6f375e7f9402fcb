-- DuckDB has no windowFunnel: this is ClickHouse's windowFunnel(30 days) in its default mode,
-- built with ASOF joins. For every 'visit' of a user (a start), the earliest 'signup' at or
-- after it (the same second counts as after), then the earliest 'activate' at or after that
-- signup, and so on; a step counts only if it is at most 30 days (2592000 s, inclusive) after
-- the start, and the chain stops at the first step that is missing or too late. Taking the
-- earliest next step is optimal for a given start, so a start's level is the deepest step it
-- reaches, and a user's level is the max over the user's starts: ClickHouse's result. Users
-- with events but no 'visit' are level 0. Times are epoch milliseconds (no time zone).
WITH steps AS MATERIALIZED (
  SELECT user_id, event, epoch_ms(ts) AS t
  FROM read_parquet('{file}')
  WHERE event IN ('visit', 'signup', 'activate', 'engage', 'subscribe')
),
s2 AS (SELECT user_id, t FROM steps WHERE event = 'signup'),
s3 AS (SELECT user_id, t FROM steps WHERE event = 'activate'),
s4 AS (SELECT user_id, t FROM steps WHERE event = 'engage'),
s5 AS (SELECT user_id, t FROM steps WHERE event = 'subscribe'),
l1 AS MATERIALIZED (SELECT user_id, t AS t0, t FROM steps WHERE event = 'visit'),
l2 AS MATERIALIZED (
  SELECT * FROM (SELECT a.user_id, a.t0, b.t FROM l1 a ASOF JOIN s2 b ON a.user_id = b.user_id AND b.t >= a.t)
  WHERE t <= t0 + 2592000000),
l3 AS MATERIALIZED (
  SELECT * FROM (SELECT a.user_id, a.t0, b.t FROM l2 a ASOF JOIN s3 b ON a.user_id = b.user_id AND b.t >= a.t)
  WHERE t <= t0 + 2592000000),
l4 AS MATERIALIZED (
  SELECT * FROM (SELECT a.user_id, a.t0, b.t FROM l3 a ASOF JOIN s4 b ON a.user_id = b.user_id AND b.t >= a.t)
  WHERE t <= t0 + 2592000000),
l5 AS MATERIALIZED (
  SELECT * FROM (SELECT a.user_id, a.t0, b.t FROM l4 a ASOF JOIN s5 b ON a.user_id = b.user_id AND b.t >= a.t)
  WHERE t <= t0 + 2592000000),
per_user AS (
  SELECT user_id, max(level) AS level FROM (
    SELECT user_id, 1 AS level FROM l1 UNION ALL
    SELECT user_id, 2 FROM l2 UNION ALL
    SELECT user_id, 3 FROM l3 UNION ALL
    SELECT user_id, 4 FROM l4 UNION ALL
    SELECT user_id, 5 FROM l5)
  GROUP BY user_id),
everyone AS (SELECT DISTINCT user_id FROM read_parquet('{file}'))
SELECT coalesce(p.level, 0) AS level, count(*) AS users
FROM everyone e LEFT JOIN per_user p USING (user_id)
GROUP BY 1
ORDER BY 1
