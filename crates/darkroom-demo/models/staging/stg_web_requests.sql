{{ config(materialized='incremental', owner='data', grain='one row per request logged by a web host', description='Every request the web hosts logged, classified as page_view, action, bot, health_check or static_asset by the patterns below (override one with --var NAME=REGEX). Only page views and actions go further; fct_web_traffic keeps the count of each class.') }}
{% set bot_agents = var('bot_agent_pattern', '(?i)(bot|crawler|spider|slurp|bingpreview|facebookexternalhit|curl/|wget/|python-requests|go-http-client|headlesschrome|pingdom|uptimerobot|statuscake)') %}
{% set health_paths = var('health_path_pattern', '^/(healthz?|status|ping|ready|live|metrics)(\?|/|$)') %}
{% set static_paths = var('static_path_pattern', '(^/(static|assets|favicon)|\.(css|js|map|png|jpe?g|gif|svg|ico|webp|woff2?|ttf)(\?|$))') %}
SELECT event_ts, event_date, file_date, host, request_method, request_path, status, http_referer,
       http_user_agent, cookie_vid AS visitor_id, TRY_CAST(user_id AS BIGINT) AS user_id,
       CASE
         WHEN regexp_like(coalesce(http_user_agent, ''), '{{ bot_agents }}') THEN 'bot'
         WHEN regexp_like(request_path, '{{ health_paths }}') THEN 'health_check'
         WHEN regexp_like(request_path, '{{ static_paths }}') THEN 'static_asset'
         WHEN request_method IN ('GET', 'HEAD') THEN 'page_view'
         ELSE 'action'
       END AS traffic_class
FROM {{ source('web') }}
WHERE file_date BETWEEN DATE '{{ prev_date }}' AND DATE '{{ late_date }}'
  AND event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
