{{ config(materialized='incremental', owner='data', grain='one row per event that carries a visitor id: a web page view or action, an API call, an app open', description='What identity is resolved from: the device (visitor_id: the vid cookie on the web, the device id in the apps) and, when logged in, the user id. Bots, health checks and static assets are left out (see stg_web_requests).') }}
SELECT event_ts, event_date, visitor_id, user_id, 'web' AS platform, 'web' AS source,
       traffic_class = 'page_view' AS is_visit, request_method, request_path, http_referer
FROM {{ ref('stg_web_requests') }}
WHERE traffic_class IN ('page_view', 'action')
  AND event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
UNION ALL
SELECT event_ts, event_date, cookie_vid, TRY_CAST(user_id AS BIGINT),
       CASE WHEN http_user_agent LIKE '%Android%' THEN 'android'
            WHEN http_user_agent LIKE '%iOS%' OR http_user_agent LIKE '%iPhone%' THEN 'ios'
            ELSE 'unknown' END,
       'api', false, request_method, request_path, CAST(NULL AS VARCHAR)
FROM {{ source('api') }}
WHERE file_date BETWEEN DATE '{{ prev_date }}' AND DATE '{{ late_date }}'
  AND event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
UNION ALL
SELECT event_ts, event_date, device_id, TRY_CAST(user_id AS BIGINT), device_platform, 'app', true,
       CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR)
FROM {{ source('app') }}
WHERE event = 'app_open'
  AND file_date BETWEEN DATE '{{ prev_date }}' AND DATE '{{ late_date }}'
  AND event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
