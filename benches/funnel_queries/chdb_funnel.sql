-- ClickHouse (chdb): users by the deepest step of visit -> signup -> activate -> engage ->
-- subscribe reached within 30 days (2592000 s) of a visit. chdb reads the Parquet
-- timestamp[ms, UTC] column as DateTime64(3, 'UTC'), which windowFunnel does not accept:
-- toDateTime (whole seconds, so nothing is lost) makes the window unit seconds.
SELECT level, count() AS users
FROM (
  SELECT user_id,
         windowFunnel(2592000)(toDateTime(ts), event = 'visit', event = 'signup',
                               event = 'activate', event = 'engage', event = 'subscribe') AS level
  FROM file('{file}', Parquet)
  GROUP BY user_id
)
GROUP BY level
ORDER BY level
SETTINGS max_threads = {threads}
