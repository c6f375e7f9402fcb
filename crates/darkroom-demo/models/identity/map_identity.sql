{{ config(materialized='table', owner='data', unique_key=['visitor_id', 'user_id'], grain='one row per visitor id (cookie or device) and user id ever seen together', description='Links a device to the users that logged in on it. Resolution rules (int_touches_resolved): a logged-in event belongs to its user; an anonymous event belongs to the user most recently linked to its device at that moment; before the first link, to the first linked user if at most identity_lookback_days (default 30) earlier; otherwise the device is its own person, v:<visitor_id>.') }}
SELECT visitor_id, user_id, min(first_seen_at) AS first_linked_at, max(last_seen_at) AS last_linked_at,
       count(*) AS days_seen_together
FROM {{ ref('stg_identity_links') }}
GROUP BY visitor_id, user_id
