{{ config(materialized='table', owner='data', unique_key='platform', surrogate_key='platform_key', unknown_member=true, grain='one row per platform', description='web, ios, android; events whose platform cannot be known point at the unknown member.') }}
SELECT surrogate_key(platform) AS platform_key, platform, platform_family, is_mobile
FROM (VALUES ('web', 'browser', false), ('ios', 'apple', true), ('android', 'google', true))
  AS t(platform, platform_family, is_mobile)
