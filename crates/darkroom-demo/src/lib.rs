//! The demo company: a photo marketplace (think 500px) simulated day by day and written out
//! as a complete Darkroom project — a production database (SQLite), the servers' logs (nginx
//! on web and API hosts, JSON-lines app events, gzip, one file per host per day), a
//! `darkroom.toml` pointing at both, and the ground truth in `truth/`.
//!
//! The truth is counted from the simulation itself, before the logs are written and before
//! any fault is applied. The same seed gives the same bytes.

mod db;
pub mod faults;
mod logs;
mod sim;
mod truth;

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{Datelike, NaiveDate};

pub use faults::{Drift, Fault, FaultError};

/// The demo's web hosts (nginx, page views and web actions).
pub const WEB_HOSTS: [&str; 3] = ["web-1", "web-2", "web-3"];
/// The demo's API hosts (nginx for the apps' API calls, and the JSON-lines app events).
pub const API_HOSTS: [&str; 2] = ["api-1", "api-2"];
/// The demo project's time zone.
pub const TIMEZONE: &str = "America/Toronto";
/// Where the database goes, inside the project.
pub const DB_PATH: &str = "db/app.db";
/// The nginx `log_format` of the demo's hosts: `combined` plus visitor cookie, user id and
/// request time (DESIGN.md, data contract).
pub const LOG_FORMAT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" vid=$cookie_vid uid=$user_id rt=$request_time"#;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The project folder to write (created if needed).
    pub dir: PathBuf,
    pub days: u32,
    /// About this many people sign up over the period.
    pub users: u32,
    pub seed: u64,
    /// The first day (project time zone).
    pub start: NaiveDate,
    pub faults: Vec<Fault>,
    /// Where the production database is served from (the SQLite file is always written).
    pub database: DemoDatabase,
}

/// Where the demo's production database lives for `darkroom.toml`'s `app_db` source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DemoDatabase {
    /// `db/app.db`.
    #[default]
    Sqlite,
    /// A Postgres server the caller loads the same rows into.
    Postgres,
    /// A MySQL or MariaDB server the caller loads the same rows into.
    Mysql,
}

/// The value of `url` in the demo's `darkroom.toml` for a server: the URL itself when it
/// holds no password, else `${APP_DB_URL}` (secrets never live in files).
pub fn url_setting(url: &str) -> String {
    let has_password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    if has_password {
        "${APP_DB_URL}".to_string()
    } else {
        url.to_string()
    }
}

impl DemoOptions {
    /// The defaults: 90 days from 2026-01-01, about 20,000 users, seed 42, no faults.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            days: 90,
            users: 20_000,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            faults: Vec::new(),
            database: DemoDatabase::Sqlite,
        }
    }

    /// The last day generated.
    pub fn end(&self) -> NaiveDate {
        sim::date_of(self.start, self.days.saturating_sub(1))
    }

    fn check(&self) -> Result<(), DemoError> {
        if !(1..=3650).contains(&self.days) {
            return Err(DemoError::Invalid(format!(
                "--days {} is out of range: give 1 to 3650",
                self.days
            )));
        }
        if self.users == 0 {
            return Err(DemoError::Invalid("--users must be at least 1".into()));
        }
        let (start, end) = (self.start, self.end());
        for fault in &self.faults {
            for date in fault.dates() {
                if date < start || date > end {
                    return Err(DemoError::Invalid(format!(
                        "fault {}: {date} is outside the generated days {start} to {end}",
                        serde_json::to_string(fault).unwrap_or_default()
                    )));
                }
            }
            if let Some(host) = fault.host()
                && !WEB_HOSTS.contains(&host)
                && !API_HOSTS.contains(&host)
            {
                return Err(DemoError::Invalid(format!(
                    "fault names host `{host}`; the demo's hosts are {} and {}",
                    WEB_HOSTS.join(", "),
                    API_HOSTS.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// Why the demo could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl DemoError {
    pub(crate) fn io(what: &str, source: std::io::Error) -> Self {
        Self::Io {
            what: what.to_owned(),
            source,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoSummary {
    pub dir: PathBuf,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub seed: u64,
    pub persons: usize,
    pub users: usize,
    pub log_files: usize,
    pub log_lines: u64,
    pub database: PathBuf,
    /// Every date with log files: the generated days, and a day before or after them when a
    /// skewed clock wrote lines there.
    pub file_dates: Vec<NaiveDate>,
    pub seconds: f64,
    /// `truth/summary.json`.
    pub truth: serde_json::Value,
}

/// Generates the demo project into `opts.dir`: database, logs, `darkroom.toml`, truth.
/// Existing demo output there (`logs/`, `db/`, `truth/`, `warehouse/`, `models/`, and the run
/// history in `.darkroom/`) is replaced.
pub fn generate(opts: &DemoOptions) -> Result<DemoSummary, DemoError> {
    opts.check()?;
    let started = Instant::now();
    let tz: chrono_tz::Tz = TIMEZONE
        .parse()
        .map_err(|_| DemoError::Invalid(format!("unknown time zone {TIMEZONE}")))?;
    let dir = &opts.dir;
    refuse_foreign_folder(dir)?;
    // .darkroom: the run history and index of completions of the warehouse being replaced
    for old in ["logs", "db", "truth", "warehouse", "models", ".darkroom"] {
        let path = dir.join(old);
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| DemoError::io(&format!("replacing {}", path.display()), e))?;
        }
    }
    let mut writer = logs::LogWriter::new(dir, tz, opts.seed, &opts.faults);
    let world = sim::simulate(opts, tz, &mut writer)?;
    let db_changes = db::write(&dir.join(DB_PATH), &world, &opts.faults)?;
    let lost = writer.lost();
    let truth = truth::write(dir, opts, &world, &writer.files, &lost, &db_changes)?;
    logs::write_file(
        &dir.join("darkroom.toml"),
        project_file(opts, None).as_bytes(),
    )?;
    write_models(dir, opts)?;
    Ok(DemoSummary {
        dir: dir.clone(),
        start: opts.start,
        end: opts.end(),
        seed: opts.seed,
        persons: world.persons.len(),
        users: world.users.len(),
        log_files: writer.files.len(),
        log_lines: writer
            .files
            .iter()
            .filter(|f| f.duplicate_of.is_none())
            .map(|f| f.lines)
            .sum(),
        database: dir.join(DB_PATH),
        file_dates: {
            let mut d: Vec<NaiveDate> = dates(opts);
            d.extend(writer.files.iter().map(|f| f.file_date));
            d.sort();
            d.dedup();
            d
        },
        seconds: started.elapsed().as_secs_f64(),
        truth,
    })
}

/// Write `darkroom.toml` again, its `app_db` source pointing at a server whose `url` setting
/// is `url` (see [`url_setting`]); for `darkroom demo --db`, once the rows are loaded.
pub fn write_project_file(opts: &DemoOptions, url: &str) -> Result<(), DemoError> {
    logs::write_file(
        &opts.dir.join("darkroom.toml"),
        project_file(opts, Some(url)).as_bytes(),
    )
}

fn project_file(opts: &DemoOptions, server_url: Option<&str>) -> String {
    let database = match (&opts.database, server_url) {
        (DemoDatabase::Postgres, Some(url)) | (DemoDatabase::Mysql, Some(url)) => format!(
            "kind = \"{}\"\n# loaded by `darkroom demo --db` with the same rows as {DB_PATH}\n\
             url = \"{url}\"",
            if opts.database == DemoDatabase::Postgres {
                "postgres"
            } else {
                "mysql"
            }
        ),
        _ => format!(
            "kind = \"sqlite\"\n# A real server would be `url = \"${{APP_DB_URL}}\"` (postgres://... or \
             mysql://...),\n# from the environment. Timestamps are stored as UTC text.\n\
             url = \"{DB_PATH}\""
        ),
    };
    let quote = |hosts: &[&str]| {
        hosts
            .iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let faults = if opts.faults.is_empty() {
        "none".to_owned()
    } else {
        format!("{} (see truth/summary.json)", opts.faults.len())
    };
    format!(
        r#"# The demo company: a photo marketplace, written by `darkroom demo`
# (seed {seed}, {start} to {end}, faults: {faults}). Regenerate with the same seed for the
# same bytes. What the warehouse must contain is in truth/ (see truth/README.md).

[project]
name = "darkroom-demo"
timezone = "{TIMEZONE}"

[warehouse]
location = "warehouse"

[[sources]]
name = "web"
kind = "nginx"
description = "nginx access logs of the web hosts: page views and web actions"
# `*` also finds a file delivered a second time (access-DATE-redelivered.log.gz)
path = "logs/web/{{host}}/access-{{date}}*.log.gz"
hosts = [{web}]
# combined, then the visitor cookie, the user id and the request time
format = '{LOG_FORMAT}'
client_ip = "truncate"

[[sources]]
name = "api"
kind = "nginx"
description = "nginx access logs of the API hosts: the iOS and Android apps' calls"
path = "logs/api/{{host}}/access-{{date}}*.log.gz"
hosts = [{api}]
format = '{LOG_FORMAT}'
client_ip = "truncate"

[[sources]]
name = "app"
kind = "jsonl"
description = "app events from the iOS and Android apps, collected on the API hosts"
path = "logs/app/{{host}}/events-{{date}}*.jsonl.gz"
hosts = [{api}]
timestamp_field = "ts"
timestamp_format = "rfc3339"
nested = "flatten"
fields = {{ event = "string", user_id = "string", "device.id" = "string", "device.platform" = "string", "device.app_version" = "string", screen = "string" }}

[[sources]]
name = "app_db"
description = "the production database: users, photos, the marketplace, subscriptions"
{database}
timestamp_timezone = "UTC"

# Rows that change carry updated_at: read what changed since the last run (with a day of
# look-back for late commits) and merge it on the primary key.
[[sources.tables]]
name = "users"
mode = "incremental"
cursor = "updated_at"
lookback = "1d"

[[sources.tables]]
name = "photos"
mode = "incremental"
cursor = "updated_at"
lookback = "1d"

[[sources.tables]]
name = "marketplace_submissions"
mode = "incremental"
cursor = "updated_at"
lookback = "1d"

[[sources.tables]]
name = "subscriptions"
mode = "incremental"
cursor = "updated_at"
lookback = "1d"

[[sources.tables]]
name = "comments"
mode = "incremental"
cursor = "updated_at"
lookback = "1d"

# Append-only tables: new ids only.
[[sources.tables]]
name = "purchases"
mode = "incremental"
cursor = "id"

[[sources.tables]]
name = "sales"
mode = "incremental"
cursor = "id"

[[sources.tables]]
name = "plan_changes"
mode = "incremental"
cursor = "id"

[[sources.tables]]
name = "likes"
mode = "incremental"
cursor = "id"

# Soft-deleted without an updated_at: copied whole every night.
[[sources.tables]]
name = "follows"
mode = "full"
"#,
        seed = opts.seed,
        start = opts.start,
        end = opts.end(),
        web = quote(&WEB_HOSTS),
        api = quote(&API_HOSTS),
    )
}

/// The dates of the demo, for running the pipeline over them.
pub fn dates(opts: &DemoOptions) -> Vec<NaiveDate> {
    truth::dates(opts)
}

/// A folder that holds something other than an earlier demo is never overwritten.
fn refuse_foreign_folder(dir: &Path) -> Result<(), DemoError> {
    let Ok(mut entries) = std::fs::read_dir(dir) else {
        return Ok(()); // does not exist yet
    };
    let earlier_demo = std::fs::read(dir.join("truth").join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["generator"] == "darkroom demo");
    if earlier_demo || entries.next().is_none() {
        return Ok(());
    }
    Err(DemoError::Invalid(format!(
        "{} is not empty and holds no earlier demo (no truth/summary.json): choose a new or \
         empty folder, so nothing of yours is replaced",
        dir.display()
    )))
}

/// The demo's SQL models: staging, identity resolution and the star schema (see each file's
/// `config(...)` for its grain and description); and its events, metrics, funnels and teams.
const MODELS: &[(&str, &str)] = &[
    (
        "models/analytics/events_and_funnels.toml",
        include_str!("../models/analytics/events_and_funnels.toml"),
    ),
    (
        "models/analytics/metrics.toml",
        include_str!("../models/analytics/metrics.toml"),
    ),
    (
        "models/quality/checks.toml",
        include_str!("../models/quality/checks.toml"),
    ),
    (
        "models/identity/dim_person.sql",
        include_str!("../models/identity/dim_person.sql"),
    ),
    (
        "models/identity/int_person_days.sql",
        include_str!("../models/identity/int_person_days.sql"),
    ),
    (
        "models/identity/int_touches_resolved.sql",
        include_str!("../models/identity/int_touches_resolved.sql"),
    ),
    (
        "models/identity/map_identity.sql",
        include_str!("../models/identity/map_identity.sql"),
    ),
    (
        "models/identity/stg_identity_links.sql",
        include_str!("../models/identity/stg_identity_links.sql"),
    ),
    (
        "models/marts/dim_photo.sql",
        include_str!("../models/marts/dim_photo.sql"),
    ),
    (
        "models/marts/dim_platform.sql",
        include_str!("../models/marts/dim_platform.sql"),
    ),
    (
        "models/marts/dim_user.sql",
        include_str!("../models/marts/dim_user.sql"),
    ),
    (
        "models/marts/fct_events.sql",
        include_str!("../models/marts/fct_events.sql"),
    ),
    (
        "models/marts/fct_marketplace_sales.sql",
        include_str!("../models/marts/fct_marketplace_sales.sql"),
    ),
    (
        "models/marts/fct_pageviews.sql",
        include_str!("../models/marts/fct_pageviews.sql"),
    ),
    (
        "models/marts/fct_subscriptions.sql",
        include_str!("../models/marts/fct_subscriptions.sql"),
    ),
    (
        "models/marts/fct_user_daily.sql",
        include_str!("../models/marts/fct_user_daily.sql"),
    ),
    (
        "models/marts/fct_web_traffic.sql",
        include_str!("../models/marts/fct_web_traffic.sql"),
    ),
    (
        "models/marts/int_user_versions.sql",
        include_str!("../models/marts/int_user_versions.sql"),
    ),
    (
        "models/marts/mart_daily_kpis.sql",
        include_str!("../models/marts/mart_daily_kpis.sql"),
    ),
    (
        "models/staging/stg_touches.sql",
        include_str!("../models/staging/stg_touches.sql"),
    ),
    (
        "models/staging/stg_users.sql",
        include_str!("../models/staging/stg_users.sql"),
    ),
    (
        "models/staging/stg_web_requests.sql",
        include_str!("../models/staging/stg_web_requests.sql"),
    ),
];

/// Write the models, and `dim_date` for the demo's years with their fixed-date holidays.
fn write_models(dir: &Path, opts: &DemoOptions) -> Result<(), DemoError> {
    for (path, text) in MODELS {
        logs::write_file(&dir.join(path), text.as_bytes())?;
    }
    let first = opts
        .start
        .with_day0(0)
        .and_then(|d| d.with_month0(0))
        .unwrap_or(opts.start);
    let last_year = opts.end().year() + 1;
    let last = NaiveDate::from_ymd_opt(last_year, 12, 31).unwrap_or(opts.end());
    let mut holidays = Vec::new();
    for year in first.year()..=last_year {
        for (month, day, name) in [
            (1, 1, "New Year's Day"),
            (7, 1, "Canada Day"),
            (12, 25, "Christmas Day"),
        ] {
            holidays.push(format!("'{year:04}-{month:02}-{day:02}': \"{name}\""));
        }
    }
    let text = include_str!("../models/marts/dim_date.sql.in")
        .replace("@START@", &first.to_string())
        .replace("@END@", &last.to_string())
        .replace("@HOLIDAYS@", &format!("{{{}}}", holidays.join(", ")));
    logs::write_file(&dir.join("models/marts/dim_date.sql"), text.as_bytes())
}
