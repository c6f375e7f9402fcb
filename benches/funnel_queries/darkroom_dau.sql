SELECT CAST(ts AS DATE) AS d, platform, count(DISTINCT user_id) AS users FROM '{file}' GROUP BY 1, 2 ORDER BY 1, 2
