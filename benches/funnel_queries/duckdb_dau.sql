-- DuckDB: daily distinct users (UTC days: the runner sets TimeZone = 'UTC') by platform.
SELECT CAST(ts AS DATE) AS d, platform, count(DISTINCT user_id) AS users
FROM read_parquet('{file}')
GROUP BY 1, 2
ORDER BY 1, 2
