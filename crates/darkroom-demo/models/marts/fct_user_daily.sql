{{ config(materialized='incremental', owner='product', grain='one row per user per active day', description='A user is active on a day with any page view, app open, API call or action after signing up (logs, resolved to the person) or an action they took themselves in the database (signup, upload, like, comment, follow, purchase, subscribe — not a sale of their photo, a review of their submission or a cancellation at the end of a period); engaged with at least engaged_min_actions (default 3) engagement actions: like, comment, follow, upload.') }}
{% set engaged_min = var('engaged_min_actions', 3) %}
{% set user_actions = "'signup', 'upload', 'like', 'comment', 'follow', 'purchase', 'subscribe'" %}
WITH touches AS (
  SELECT r.event_date, r.user_id,
         count(*) FILTER (WHERE r.source = 'web' AND r.is_visit) AS pageviews,
         count(*) FILTER (WHERE r.source = 'app') AS app_opens
  FROM {{ ref('int_touches_resolved') }} r
  JOIN {{ ref('stg_users') }} u ON u.user_id = r.user_id AND r.event_ts >= u.created_at
  WHERE r.event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
  GROUP BY 1, 2
),
actions AS (
  SELECT event_date, user_id,
         count(*) FILTER (WHERE event_type IN ('like', 'comment', 'follow', 'upload')) AS engagement_actions,
         count(*) AS events
  FROM {{ ref('fct_events') }}
  WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
    AND event_type IN ({{ user_actions }})
  GROUP BY 1, 2
),
days AS (
  SELECT coalesce(t.event_date, a.event_date) AS event_date, coalesce(t.user_id, a.user_id) AS user_id,
         coalesce(t.pageviews, 0) AS pageviews, coalesce(t.app_opens, 0) AS app_opens,
         coalesce(a.engagement_actions, 0) AS engagement_actions, coalesce(a.events, 0) AS events
  FROM touches t FULL JOIN actions a ON a.event_date = t.event_date AND a.user_id = t.user_id
)
SELECT d.event_date, d.user_id, CAST(d.user_id AS VARCHAR) AS person_id, coalesce(v.user_key, -1) AS user_key,
       d.pageviews, d.app_opens, d.engagement_actions, d.events,
       true AS is_active, d.engagement_actions >= {{ engaged_min }} AS is_engaged
FROM days d
LEFT JOIN {{ ref('int_user_versions') }} v
  ON v.user_id = d.user_id
 AND arrow_cast(d.event_date, 'Timestamp(µs, "UTC")') >= v.effective_from
 AND (v.valid_to IS NULL OR arrow_cast(d.event_date, 'Timestamp(µs, "UTC")') < v.valid_to)
