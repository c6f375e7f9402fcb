{{ config(materialized='incremental', owner='marketing', grain='one row per web page view (bots, health checks and static assets left out)', description='Page views from the web logs with their resolved person, the user version at the time, the web session (a new one after session_minutes, default 30, without a page view; sessions end at midnight) and the traffic channel of the view (paid, social, search, organic, referral, direct, or internal for a click within the site).') }}
{% set session_minutes = var('session_minutes', 30) %}
{% set own_site = var('own_site_pattern', '^https?://([a-z0-9-]+\.)*darkroom\.example(/|$)') %}
WITH pv AS (
  SELECT * FROM {{ ref('int_touches_resolved') }}
  WHERE source = 'web' AND is_visit AND event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
),
gaps AS (
  SELECT *, CASE WHEN lag(event_ts) OVER w IS NULL
                   OR arrow_cast(event_ts, 'Int64') - arrow_cast(lag(event_ts) OVER w, 'Int64')
                      > {{ session_minutes }} * 60 * 1000000 THEN 1 ELSE 0 END AS new_session
  FROM pv
  WINDOW w AS (PARTITION BY person_id, event_date ORDER BY event_ts)
),
numbered AS (
  SELECT *, sum(new_session) OVER (PARTITION BY person_id, event_date ORDER BY event_ts
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_number
  FROM gaps
)
SELECT n.event_ts, n.event_date, n.person_id, n.visitor_id, n.user_id, n.login_user_id,
       CASE WHEN n.user_id IS NULL THEN NULL ELSE coalesce(v.user_key, -1) END AS user_key,
       coalesce(p.platform_key, -1) AS platform_key,
       n.request_path, split_part(n.request_path, '?', 1) AS page, n.http_referer,
       CASE
         WHEN regexp_like(n.request_path, '[?&](gclid|fbclid|msclkid)=')
           OR regexp_like(n.request_path, '[?&]utm_medium=(cpc|ppc|paid|paidsocial|display|banner)(&|$)') THEN 'paid'
         WHEN regexp_like(n.request_path, '[?&]utm_medium=(social|social-network|sm)(&|$)')
           OR regexp_like(coalesce(n.http_referer, ''), '^https?://([a-z0-9-]+\.)*(facebook|instagram|twitter|x|t|linkedin|pinterest|reddit|tiktok|youtube)\.(com|co)(/|$)') THEN 'social'
         WHEN regexp_like(coalesce(n.http_referer, ''), '^https?://([a-z0-9-]+\.)*(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia)\.') THEN 'search'
         WHEN regexp_like(n.request_path, '[?&]utm_(source|medium)=') THEN 'organic'
         WHEN n.http_referer IS NULL OR n.http_referer IN ('', '-') THEN 'direct'
         WHEN regexp_like(n.http_referer, '{{ own_site }}') THEN 'internal'
         ELSE 'referral'
       END AS channel,
       n.session_number,
       surrogate_key(n.person_id, n.event_date, n.session_number) AS session_key
FROM numbered n
LEFT JOIN {{ ref('int_user_versions') }} v
  ON v.user_id = n.user_id AND n.event_ts >= v.effective_from AND (v.valid_to IS NULL OR n.event_ts < v.valid_to)
LEFT JOIN {{ ref('dim_platform') }} p ON p.platform = 'web'
