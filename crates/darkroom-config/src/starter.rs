//! The commented starter project written by `darkroom init`.

use std::io;
use std::path::{Path, PathBuf};

/// The starter `darkroom.toml`. Every setting is shown with its default and what it is for.
pub const STARTER_TOML: &str = r#"# darkroom.toml — one Darkroom project: where the warehouse lives and what feeds it.
# Reference: https://example.invalid/darkroom/docs/config (also `darkroom validate --help`).
#
# Secrets never live in this file: write "${ENV_VAR}" and export the variable before running.
# `darkroom validate` checks this file and reports every problem at once, with line numbers.

[project]
name = "my_company"
# Every date (event_date, "yesterday", deadlines) is in this IANA time zone.
# Timestamps are always stored in UTC.
timezone = "UTC"

[warehouse]
# A folder relative to this file, or "s3://bucket/prefix". For S3 the endpoint, region and
# credentials come from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, or from a [warehouse.s3] table:
#   [warehouse.s3]
#   endpoint = "${S3_ENDPOINT}"
#   region = "us-east-1"
#   access_key_id = "${S3_KEY}"
#   secret_access_key = "${S3_SECRET}"
#   allow_http = false
location = "warehouse"

# The nightly pipeline (`darkroom run`, `darkroom schedule`). Every key has a default.
[pipeline]
# When `darkroom schedule` fires the nightly run: 5-field cron, in the project time zone.
schedule = "30 2 * * *"
# By when last night's data must be published (project time zone); `darkroom status`
# reports a miss even if nothing ran.
# deadline = "07:00"
# parallel = 2              # tasks at once
# retries = 3               # retries of transient errors (connection refused, timeouts)
# lookback_days = 7         # how far back each run looks for late log files

# Where incidents go: after every night the checks (models/**/*.toml [[check]] and
# [[reconcile]], plus monitors that need no configuration) decide whether the night is
# published; what fails becomes one incident per date, alerted once, followed up when it
# resolves. See `darkroom health`.
# [alerts]
# repeat_hours = 24         # an open incident is sent again no sooner than this
# [[alerts.channels]]
# kind = "slack"            # slack | webhook | email
# url = "${SLACK_WEBHOOK_URL}"

# ---------------------------------------------------------------------------------------------
# Log sources. Each becomes the table raw_<name>, partitioned by the file's date (file_date);
# lines that do not parse are kept byte for byte in _quarantine_<name>, and _ingest_ledger
# counts lines, bytes and rows per host and hour. Ingest with:
#   darkroom ingest web --date 2026-01-31
# ---------------------------------------------------------------------------------------------

[[sources]]
name = "web"
kind = "nginx"
# Where the files are. {date} (required) and {host} are taken from the path; glob wildcards
# (* ? [..]) are allowed; plain or .gz; a folder, an absolute path or s3://bucket/...
path = "logs/web/{host}/access-{date}.log*"
# How {date} is written in file names (strftime).
date_format = "%Y-%m-%d"
# Hosts expected every day: a missing file is reported by host and path, never read as zero.
hosts = []
# Days after its file_date that a file may still hold events for (rotation, backlogs).
late_days = 1
# "combined", "common", or your nginx log_format string, e.g.
#   format = '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" rt=$request_time'
format = "combined"
# Client IPs: "keep", "truncate" (/24 for IPv4, /48 for IPv6) or "hash" with a secret salt:
#   client_ip = "hash"
#   client_ip_salt = "${IP_SALT}"
client_ip = "keep"

# [[sources]]
# name = "app"
# kind = "jsonl"
# path = "logs/app/{host}/events-{date}.jsonl.gz"
# timestamp_field = "ts"
# # "rfc3339", "unix_s", "unix_ms", "unix_us", or a strftime format
# timestamp_format = "rfc3339"
# # Nested objects: "json" keeps them as JSON text, "flatten" makes a_b columns.
# nested = "json"
# # Typed columns (dotted paths reach into objects); every other key is kept in `attributes`.
# fields = { event = "string", user_id = "string", "context.platform" = "string" }

# ---------------------------------------------------------------------------------------------
# Database sources. Each table becomes raw_<source>_<table>; every table of a source is read in
# one consistent snapshot, with exact types. Extract with:
#   darkroom extract app_db
# ---------------------------------------------------------------------------------------------

# [[sources]]
# name = "app_db"
# kind = "postgres"                  # or "mysql" (MariaDB too), "sqlite"
# url = "${APP_DB_URL}"              # postgres://user:password@host:5432/dbname
# hash_salt = "${PII_SALT}"          # for `hash` columns
# timestamp_timezone = "UTC"         # the zone of timestamps stored without one
#
# [[sources.tables]]
# name = "users"
# mode = "incremental"               # rows past the watermark, merged on the primary key
# cursor = "updated_at"              # a timestamp or an id that only grows
# lookback = "6h"                    # also re-read this far behind the watermark
# exclude = ["password_hash"]        # never read
# hash = ["email"]                   # salted SHA-256 before anything is written
#
# [[sources.tables]]
# name = "plans"                     # mode = "full": the whole table every run
# history = "snapshot"               # keep one copy per snapshot_date ("replace": latest only)
"#;

/// A first model: `darkroom build` turns it into the table `daily_requests`.
pub const STARTER_MODEL: &str = "\
-- A model is one SELECT; its file name is its table's name. `darkroom build` builds every
-- model (`darkroom build --help`), `darkroom compile daily_requests` prints the final SQL.
-- incremental: each build computes the dates it is given and replaces exactly those
-- partitions (event_date), so re-running a date never duplicates anything.
{{ config(materialized='incremental', grain='one row per day, host and status',
          description='Requests to the web hosts by day, host and status.') }}
SELECT event_date, host, status, count(*) AS requests
FROM {{ source('web') }}
-- a log file holds events of neighbouring days: read the files of the day before to
-- late_days after, keep the events of the dates being built
WHERE file_date BETWEEN DATE '{{ prev_date }}' AND DATE '{{ late_date }}'
  AND event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'
GROUP BY event_date, host, status
";

/// Write the starter project into `dir` (created if needed). Refuses to overwrite an existing
/// `darkroom.toml`. Returns the files written.
pub fn write_starter(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let toml_path = dir.join(crate::PROJECT_FILE);
    if toml_path.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} already exists; not overwriting it", toml_path.display()),
        ));
    }
    std::fs::create_dir_all(dir.join("logs/web"))?;
    std::fs::create_dir_all(dir.join("models"))?;
    std::fs::write(&toml_path, STARTER_TOML)?;
    let model = dir.join("models").join("daily_requests.sql");
    if !model.exists() {
        std::fs::write(&model, STARTER_MODEL)?;
    }
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        std::fs::write(
            &gitignore,
            "/warehouse\n/warehouse-dev\n/target\n/.darkroom\n",
        )?;
    }
    Ok(vec![toml_path, gitignore, dir.join("logs/web"), model])
}
