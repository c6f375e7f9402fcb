{{ config(materialized='view', owner='data', grain='one row per user account (soft-deleted ones included, flagged)', description='Users as the production database holds them.') }}
SELECT id AS user_id, username, country, signup_platform, acquisition_channel, created_at, updated_at,
       deleted_at, deleted_at IS NOT NULL AS is_deleted
FROM {{ source('app_db', 'users') }}
