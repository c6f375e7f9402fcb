-- ClickHouse (chdb): the funnel of chdb_funnel.sql per (platform, user_id).
SELECT platform, level, count() AS users
FROM (
  SELECT platform, user_id,
         windowFunnel(2592000)(toDateTime(ts), event = 'visit', event = 'signup',
                               event = 'activate', event = 'engage', event = 'subscribe') AS level
  FROM file('{file}', Parquet)
  GROUP BY platform, user_id
)
GROUP BY platform, level
ORDER BY platform, level
SETTINGS max_threads = {threads}
