-- ClickHouse (chdb): daily distinct users (UTC days) by platform.
SELECT toDate(ts, 'UTC') AS d, platform, count(DISTINCT user_id) AS users
FROM file('{file}', Parquet)
GROUP BY d, platform
ORDER BY d, platform
SETTINGS max_threads = {threads}
