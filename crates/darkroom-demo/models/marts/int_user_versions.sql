{{ config(materialized='table', owner='data', grain='one row per dim_user version', description='dim_user versions with effective_from: the first version of each user also covers the time before the first snapshot (history starts there), so every event of a known user finds a version.') }}
SELECT user_id, user_key, valid_from, valid_to,
       CASE WHEN row_number() OVER (PARTITION BY user_id ORDER BY valid_from) = 1
            THEN arrow_cast(TIMESTAMP '1970-01-01T00:00:00', 'Timestamp(µs, "UTC")')
            ELSE valid_from END AS effective_from
FROM {{ ref('dim_user') }}
WHERE user_key <> -1
