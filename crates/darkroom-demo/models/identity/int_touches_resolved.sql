{{ config(materialized='incremental', owner='data', grain='one row per stg_touches event', description='Every touch with its resolved person (person_id: the user id as text, or v:<visitor_id>) and how it was resolved: login, link, lookback or none. A device linked to a user for the first time re-attributes its anonymous events of the look-back window: rebuild_dates (at the end) names those earlier dates, which are rebuilt with everything downstream.') }}
{% set lookback = var('identity_lookback_days', 30) %}
WITH t AS (
  SELECT * FROM {{ ref('stg_touches') }}
  WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
),
-- only the links of the devices seen anonymously on these dates: the cost follows the day, not the map
links AS (
  SELECT visitor_id, user_id, first_linked_at FROM {{ ref('map_identity') }}
  WHERE visitor_id IN (SELECT visitor_id FROM t WHERE user_id IS NULL)
),
firsts AS (
  SELECT visitor_id, first_linked_at AS first_at, user_id AS first_user,
         row_number() OVER (PARTITION BY visitor_id ORDER BY first_linked_at, user_id) AS rn
  FROM links
),
anon AS (SELECT DISTINCT visitor_id, event_ts FROM t WHERE user_id IS NULL AND visitor_id IS NOT NULL),
latest AS (
  SELECT a.visitor_id, a.event_ts, l.user_id,
         row_number() OVER (PARTITION BY a.visitor_id, a.event_ts ORDER BY l.first_linked_at DESC, l.user_id) AS rn
  FROM anon a JOIN links l ON l.visitor_id = a.visitor_id AND l.first_linked_at <= a.event_ts
),
resolved AS (
  SELECT a.visitor_id, a.event_ts,
         CASE WHEN la.user_id IS NOT NULL THEN la.user_id
              WHEN a.event_ts >= f.first_at - INTERVAL '{{ lookback }} days' THEN f.first_user END AS user_id,
         CASE WHEN la.user_id IS NOT NULL THEN 'link'
              WHEN a.event_ts >= f.first_at - INTERVAL '{{ lookback }} days' THEN 'lookback'
              ELSE 'none' END AS how
  FROM anon a
  LEFT JOIN latest la ON la.visitor_id = a.visitor_id AND la.event_ts = a.event_ts AND la.rn = 1
  LEFT JOIN firsts f ON f.visitor_id = a.visitor_id AND f.rn = 1
)
SELECT t.event_ts, t.event_date, t.visitor_id, t.user_id AS login_user_id, t.platform, t.source,
       t.is_visit, t.request_method, t.request_path, t.http_referer,
       coalesce(t.user_id, r.user_id) AS user_id,
       coalesce(CAST(coalesce(t.user_id, r.user_id) AS VARCHAR), 'v:' || t.visitor_id) AS person_id,
       CASE WHEN t.user_id IS NOT NULL THEN 'login' ELSE coalesce(r.how, 'none') END AS identified_by
FROM t
LEFT JOIN resolved r ON t.user_id IS NULL AND r.visitor_id = t.visitor_id AND r.event_ts = t.event_ts
{% set reattributed %}
SELECT DISTINCT t.event_date
FROM {{ ref('stg_touches') }} t
JOIN (
  SELECT visitor_id FROM {{ ref('map_identity') }} GROUP BY visitor_id
  HAVING {{ local_date('min(first_linked_at)') }} BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
) linked ON linked.visitor_id = t.visitor_id
WHERE t.user_id IS NULL AND t.event_date < DATE '{{ date_from }}'
  AND t.event_date >= DATE '{{ date_from }}' - INTERVAL '{{ lookback }} days'
{% endset %}
{{ config(rebuild_dates=reattributed) }}
