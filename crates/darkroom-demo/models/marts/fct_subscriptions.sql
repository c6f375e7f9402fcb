{{ config(materialized='incremental', owner='finance', grain='one row per MRR movement: a subscription started (new), changed plan (upgrade or downgrade) or canceled (churn)', description='Monthly recurring revenue movements. mrr_delta is the change in monthly revenue; the sum over all movements to a date is the MRR at that date.') }}
WITH prices AS (
  SELECT plan, max(monthly_price) AS monthly_price FROM {{ source('app_db', 'subscriptions') }} GROUP BY plan
),
first_change AS (
  SELECT subscription_id, from_plan,
         row_number() OVER (PARTITION BY subscription_id ORDER BY changed_at, id) AS rn
  FROM {{ source('app_db', 'plan_changes') }}
),
m AS (
  SELECT s.id AS subscription_id, s.user_id, s.started_at AS event_ts, 'new' AS movement,
         coalesce(fc.from_plan, s.plan) AS plan, p.monthly_price AS mrr_delta
  FROM {{ source('app_db', 'subscriptions') }} s
  LEFT JOIN first_change fc ON fc.subscription_id = s.id AND fc.rn = 1
  LEFT JOIN prices p ON p.plan = coalesce(fc.from_plan, s.plan)
  WHERE {{ in_dates('s.started_at') }}
  UNION ALL
  SELECT id, user_id, canceled_at, 'churn', plan, -monthly_price
  FROM {{ source('app_db', 'subscriptions') }}
  WHERE canceled_at IS NOT NULL AND {{ in_dates('canceled_at') }}
  UNION ALL
  SELECT c.subscription_id, c.user_id, c.changed_at,
         CASE WHEN pt.monthly_price >= pf.monthly_price THEN 'upgrade' ELSE 'downgrade' END,
         c.to_plan, pt.monthly_price - pf.monthly_price
  FROM {{ source('app_db', 'plan_changes') }} c
  LEFT JOIN prices pf ON pf.plan = c.from_plan
  LEFT JOIN prices pt ON pt.plan = c.to_plan
  WHERE {{ in_dates('c.changed_at') }}
)
SELECT m.subscription_id, m.user_id, CAST(m.user_id AS VARCHAR) AS person_id, m.event_ts, {{ local_date('m.event_ts') }} AS event_date, m.movement, m.plan,
       m.mrr_delta, coalesce(v.user_key, -1) AS user_key
FROM m
LEFT JOIN {{ ref('int_user_versions') }} v
  ON v.user_id = m.user_id AND m.event_ts >= v.effective_from AND (v.valid_to IS NULL OR m.event_ts < v.valid_to)
