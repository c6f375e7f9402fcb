{{ config(materialized='incremental', owner='product', grain='one row per business event recorded by the production database', description='The conformed activity table: signup, upload, submit (to the marketplace), sale, purchase, like, comment, follow, subscribe, cancel, plan_change — from the database, the source of truth (the same events in the logs are for reconciling, not counting). The platform comes from the log line of the same action (same user, second and kind) where there is one: signups carry the signup platform; submissions, sales, cancellations and plan changes have no log line and point at the unknown platform.') }}
WITH e AS (
  SELECT 'signup' AS event_type, id AS source_id, created_at AS event_ts, id AS user_id,
         CAST(NULL AS BIGINT) AS photo_id, CAST(NULL AS DECIMAL(10, 2)) AS amount, signup_platform AS platform
  FROM {{ source('app_db', 'users') }} WHERE {{ in_dates('created_at') }}
  UNION ALL SELECT 'upload', id, created_at, user_id, id AS photo_id, NULL, NULL
  FROM {{ source('app_db', 'photos') }} WHERE {{ in_dates('created_at') }}
  UNION ALL SELECT 'submit', id, submitted_at, user_id, photo_id, price, NULL
  FROM {{ source('app_db', 'marketplace_submissions') }} WHERE {{ in_dates('submitted_at') }}
  UNION ALL SELECT 'sale', id, sold_at, seller_id, photo_id, amount, NULL
  FROM {{ source('app_db', 'sales') }} WHERE {{ in_dates('sold_at') }}
  UNION ALL SELECT 'purchase', id, created_at, user_id, NULL, total, NULL
  FROM {{ source('app_db', 'purchases') }} WHERE {{ in_dates('created_at') }}
  UNION ALL SELECT 'like', id, created_at, user_id, photo_id, NULL, NULL
  FROM {{ source('app_db', 'likes') }} WHERE {{ in_dates('created_at') }}
  UNION ALL SELECT 'comment', id, created_at, user_id, photo_id, NULL, NULL
  FROM {{ source('app_db', 'comments') }} WHERE {{ in_dates('created_at') }}
  UNION ALL SELECT 'follow', id, created_at, follower_id, NULL, NULL, NULL
  FROM {{ source('app_db', 'follows') }} WHERE {{ in_dates('created_at') }}
  UNION ALL SELECT 'subscribe', id, started_at, user_id, NULL, monthly_price, NULL
  FROM {{ source('app_db', 'subscriptions') }} WHERE {{ in_dates('started_at') }}
  UNION ALL SELECT 'cancel', id, canceled_at, user_id, NULL, monthly_price, NULL
  FROM {{ source('app_db', 'subscriptions') }} WHERE canceled_at IS NOT NULL AND {{ in_dates('canceled_at') }}
  UNION ALL SELECT 'plan_change', id, changed_at, user_id, NULL, NULL, NULL
  FROM {{ source('app_db', 'plan_changes') }} WHERE {{ in_dates('changed_at') }}
),
logged AS (
  SELECT user_id, date_trunc('second', event_ts) AS second, kind, min(platform) AS platform
  FROM (
    SELECT user_id, event_ts, platform,
           CASE WHEN request_path LIKE '/api/v1/photos/%/like' THEN 'like'
                WHEN request_path LIKE '/api/v1/photos/%/comments' THEN 'comment'
                WHEN request_path LIKE '/api/v1/users/%/follow' THEN 'follow'
                WHEN request_path = '/api/v1/photos' THEN 'upload'
                WHEN request_path = '/api/v1/purchases' THEN 'purchase'
                WHEN request_path = '/api/v1/subscriptions' THEN 'subscribe' END AS kind
    FROM {{ ref('stg_touches') }}
    WHERE request_method = 'POST' AND user_id IS NOT NULL
      AND event_date BETWEEN DATE '{{ prev_date }}' AND DATE '{{ next_date }}'
  ) a
  WHERE kind IS NOT NULL
  GROUP BY 1, 2, 3
)
SELECT surrogate_key(e.event_type, e.source_id) AS event_key, e.event_type, e.source_id, e.event_ts,
       {{ local_date('e.event_ts') }} AS event_date, e.user_id, CAST(e.user_id AS VARCHAR) AS person_id,
       coalesce(v.user_key, -1) AS user_key, e.photo_id,
       CASE WHEN e.photo_id IS NULL THEN NULL ELSE coalesce(ph.photo_key, -1) END AS photo_key,
       coalesce(e.platform, l.platform, 'unknown') AS platform, coalesce(pl.platform_key, -1) AS platform_key,
       e.amount
FROM e
LEFT JOIN logged l ON l.user_id = e.user_id AND l.kind = e.event_type AND l.second = date_trunc('second', e.event_ts)
LEFT JOIN {{ ref('int_user_versions') }} v
  ON v.user_id = e.user_id AND e.event_ts >= v.effective_from AND (v.valid_to IS NULL OR e.event_ts < v.valid_to)
LEFT JOIN {{ ref('dim_photo') }} ph ON ph.photo_id = e.photo_id
LEFT JOIN {{ ref('dim_platform') }} pl ON pl.platform = coalesce(e.platform, l.platform)
