{{ config(materialized='incremental', owner='marketing', grain='one row per person per day seen', description='What dim_person is built from, day by day (so it never rescans every page view): when the person was first seen that day, on which platform, and the channel of their first page view from outside the site.') }}
WITH touches AS (
  SELECT event_date, person_id, max(user_id) AS user_id, min(event_ts) AS first_seen_at,
         first_value(platform ORDER BY event_ts) AS first_platform,
         count(*) FILTER (WHERE source = 'web' AND is_visit) AS pageviews
  FROM {{ ref('int_touches_resolved') }}
  WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
  GROUP BY 1, 2
),
channels AS (
  SELECT event_date, person_id, first_value(channel ORDER BY event_ts) AS first_channel
  FROM {{ ref('fct_pageviews') }}
  WHERE channel <> 'internal' AND event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
  GROUP BY 1, 2
)
SELECT t.event_date, t.person_id, t.user_id, t.first_seen_at, t.first_platform, c.first_channel, t.pageviews
FROM touches t LEFT JOIN channels c ON c.event_date = t.event_date AND c.person_id = t.person_id
