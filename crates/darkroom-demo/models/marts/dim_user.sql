{{ config(materialized='snapshot', owner='data', unique_key='user_id', strategy='check', check_cols=['country', 'plan', 'subscription_status', 'is_deleted'], unknown_member=true, grain='one row per user per version (type 2: a new version when country, plan, subscription status or deletion changes)', description='Users with their plan and subscription status, with history from the first snapshot on.') }}
SELECT u.user_id, u.username, u.country, u.signup_platform, u.acquisition_channel, u.created_at,
       u.is_deleted, coalesce(s.plan, 'free') AS plan, coalesce(s.status, 'none') AS subscription_status
FROM {{ ref('stg_users') }} u
LEFT JOIN (
  SELECT user_id, plan, status,
         row_number() OVER (PARTITION BY user_id ORDER BY started_at DESC, id DESC) AS rn
  FROM {{ source('app_db', 'subscriptions') }}
) s ON s.user_id = u.user_id AND s.rn = 1
