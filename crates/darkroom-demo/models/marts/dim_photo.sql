{{ config(materialized='table', owner='marketplace', unique_key='photo_id', surrogate_key='photo_key', unknown_member=true, grain='one row per photo', description='Photos with their latest marketplace submission.') }}
SELECT surrogate_key(p.id) AS photo_key, p.id AS photo_id, p.user_id AS owner_user_id, p.title, p.width,
       p.height, p.camera, p.created_at, p.deleted_at IS NOT NULL AS is_deleted,
       s.status AS marketplace_status, s.price AS marketplace_price
FROM {{ source('app_db', 'photos') }} p
LEFT JOIN (
  SELECT photo_id, status, price,
         row_number() OVER (PARTITION BY photo_id ORDER BY submitted_at DESC, id DESC) AS rn
  FROM {{ source('app_db', 'marketplace_submissions') }}
) s ON s.photo_id = p.id AND s.rn = 1
