{{ config(materialized='incremental', owner='data', grain='one row per day, web host and traffic class', description='Every web request counted by class, so what the page-view rules filter out (bots, health checks, static assets) is kept as a number, never silently lost.') }}
SELECT event_date, host, traffic_class, count(*) AS requests
FROM {{ ref('stg_web_requests') }}
WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
GROUP BY 1, 2, 3
