{{ config(materialized='table', owner='marketing', unique_key='person_id', surrogate_key='person_key', unknown_member=true, grain='one row per person (a user, or a device never seen logged in)', description='Persons as identity resolution sees them, with their acquisition channel: the channel of their first page view from outside the site (first touch), direct when they never came from a link.') }}
SELECT surrogate_key(person_id) AS person_key, person_id, max(user_id) AS user_id,
       min(first_seen_at) AS first_seen_at,
       first_value(first_platform ORDER BY first_seen_at) AS first_platform,
       coalesce(first_value(first_channel ORDER BY first_channel IS NULL, first_seen_at), 'direct') AS acquisition_channel,
       count(*) AS days_seen, sum(pageviews) AS pageviews
FROM {{ ref('int_person_days') }}
GROUP BY person_id
