{{ config(materialized='incremental', owner='data', grain='one row per visitor id, user id and day they were seen together', description='The day-by-day evidence map_identity is built from: a device seen logged in as a user.') }}
SELECT event_date, visitor_id, user_id, min(event_ts) AS first_seen_at, max(event_ts) AS last_seen_at,
       count(*) AS events
FROM {{ ref('stg_touches') }}
WHERE user_id IS NOT NULL AND visitor_id IS NOT NULL
  AND event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
GROUP BY event_date, visitor_id, user_id
