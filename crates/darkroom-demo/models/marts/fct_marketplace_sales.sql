{{ config(materialized='incremental', owner='marketplace', grain='one row per sale (a licence of one photo)', description='Marketplace revenue: who sold which photo to whom, for how much.') }}
SELECT s.id AS sale_id, s.sold_at AS event_ts, {{ local_date('s.sold_at') }} AS event_date, s.amount, s.licence,
       s.purchase_id, s.submission_id, s.photo_id, coalesce(ph.photo_key, -1) AS photo_key,
       s.seller_id, coalesce(sv.user_key, -1) AS seller_key, s.buyer_id, coalesce(bv.user_key, -1) AS buyer_key
FROM {{ source('app_db', 'sales') }} s
LEFT JOIN {{ ref('dim_photo') }} ph ON ph.photo_id = s.photo_id
LEFT JOIN {{ ref('int_user_versions') }} sv
  ON sv.user_id = s.seller_id AND s.sold_at >= sv.effective_from AND (sv.valid_to IS NULL OR s.sold_at < sv.valid_to)
LEFT JOIN {{ ref('int_user_versions') }} bv
  ON bv.user_id = s.buyer_id AND s.sold_at >= bv.effective_from AND (bv.valid_to IS NULL OR s.sold_at < bv.valid_to)
WHERE {{ in_dates('s.sold_at') }}
