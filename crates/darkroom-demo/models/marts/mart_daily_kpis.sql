{{ config(materialized='incremental', owner='data', grain='one row per day', description='The company day by day: visitors (persons with a page view or app open), daily active and engaged users, and the count of each business event — the numbers the demo ground truth states.') }}
WITH days AS (
  SELECT date_day AS event_date FROM {{ ref('dim_date') }}
  WHERE date_day BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
),
visitors AS (
  SELECT event_date, count(DISTINCT person_id) AS visitors
  FROM {{ ref('int_touches_resolved') }}
  WHERE is_visit AND event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
  GROUP BY 1
),
users AS (
  SELECT event_date, count(*) AS active_users, count(*) FILTER (WHERE is_engaged) AS engaged_users
  FROM {{ ref('fct_user_daily') }}
  WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
  GROUP BY 1
),
events AS (
  SELECT event_date,
         count(*) FILTER (WHERE event_type = 'signup') AS signups,
         count(*) FILTER (WHERE event_type = 'upload') AS uploads,
         count(*) FILTER (WHERE event_type = 'like') AS likes,
         count(*) FILTER (WHERE event_type = 'comment') AS comments,
         count(*) FILTER (WHERE event_type = 'follow') AS follows,
         count(*) FILTER (WHERE event_type = 'submit') AS submissions,
         count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
         count(*) FILTER (WHERE event_type = 'sale') AS sales,
         CAST(coalesce(sum(amount) FILTER (WHERE event_type = 'sale'), 0) * 100 AS BIGINT) AS sales_cents,
         count(*) FILTER (WHERE event_type = 'subscribe') AS subscriptions_started,
         count(*) FILTER (WHERE event_type = 'cancel') AS subscriptions_canceled,
         count(*) FILTER (WHERE event_type = 'plan_change') AS plan_changes
  FROM {{ ref('fct_events') }}
  WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
  GROUP BY 1
),
pageviews AS (
  SELECT event_date, count(*) AS pageviews, count(DISTINCT session_key) AS web_sessions
  FROM {{ ref('fct_pageviews') }}
  WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
  GROUP BY 1
)
SELECT d.event_date,
       coalesce(v.visitors, 0) AS visitors, coalesce(u.active_users, 0) AS active_users,
       coalesce(u.engaged_users, 0) AS engaged_users,
       coalesce(e.signups, 0) AS signups, coalesce(e.uploads, 0) AS uploads, coalesce(e.likes, 0) AS likes,
       coalesce(e.comments, 0) AS comments, coalesce(e.follows, 0) AS follows,
       coalesce(e.submissions, 0) AS submissions, coalesce(e.purchases, 0) AS purchases,
       coalesce(e.sales, 0) AS sales, coalesce(e.sales_cents, 0) AS sales_cents,
       coalesce(e.subscriptions_started, 0) AS subscriptions_started,
       coalesce(e.subscriptions_canceled, 0) AS subscriptions_canceled,
       coalesce(e.plan_changes, 0) AS plan_changes,
       coalesce(p.pageviews, 0) AS pageviews, coalesce(p.web_sessions, 0) AS web_sessions
FROM days d
LEFT JOIN visitors v ON v.event_date = d.event_date
LEFT JOIN users u ON u.event_date = d.event_date
LEFT JOIN events e ON e.event_date = d.event_date
LEFT JOIN pageviews p ON p.event_date = d.event_date
