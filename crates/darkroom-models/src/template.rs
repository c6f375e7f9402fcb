//! Rendering a model's template for one run date (MiniJinja).
//!
//! What a template can use:
//!
//! - `{{ ref('stg_users') }}` — another model's table (and a dependency on it);
//! - `{{ source('app_db', 'users') }}` — a database source's raw table (`raw_app_db_users`);
//!   `{{ source('web') }}` — a log source's raw table; `{{ source('web', 'quarantine') }}`
//!   its quarantine;
//! - `{{ config(materialized='incremental', ...) }}` — the model's settings (renders nothing);
//! - `date_from` and `date_to`: the dates an incremental model computes (both the run date
//!   on a nightly run; a range on a backfill, built in one query and one commit). A model
//!   whose template never names them, nor selects with `in_dates`, `run_start_utc` or
//!   `run_end_utc` (which span them) without `run_date`, is built one date at a time;
//! - `run_date` (= `date_to`), `prev_date` (`date_from` - 1), `next_date` (`date_to` + 1),
//!   `late_date` (`date_to` + `late_days`) as `YYYY-MM-DD`, `late_days`, `timezone`, and
//!   `run_start_utc` / `run_end_utc` (the bounds of those dates in the project time zone, as
//!   UTC timestamps `YYYY-MM-DDTHH:MM:SSZ`);
//! - `local_date('expr')` — the date in the project time zone of a UTC timestamp expression;
//! - `in_dates('expr')` — `expr` (a UTC timestamp) falls on `date_from`..`date_to` in the
//!   project time zone, written as a range on the timestamp so Parquet statistics prune;
//! - `var('name', default)` — a variable given on the command line (`--var name=value`);
//! - `is_incremental()` — true when an incremental model's table already exists;
//! - `date_dimension(start, end, holidays={...})` — the SELECT of a date dimension.
//!
//! An undefined variable is an error (a typo never renders as an empty string).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{Days, NaiveDate, TimeZone};
use darkroom_config::Project;
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

/// Raw log partitions a date's events can sit in: `file_date` in [D - 1, D + late_days].
pub const DEFAULT_LATE_DAYS: u32 = 2;

/// What a render needs besides the template.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    pub project: &'a Project,
    /// The first date computed (the run date, except on a range build).
    pub date_from: NaiveDate,
    /// The last date computed: the run date.
    pub run_date: NaiveDate,
    pub is_incremental: bool,
    pub vars: BTreeMap<String, String>,
}

/// A rendered model.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub sql: String,
    /// Models named by `ref(...)`, in call order.
    pub refs: Vec<String>,
    /// `source(...)` calls: the call as written and the table it names, or why it names none.
    pub sources: Vec<(String, Result<String, String>)>,
    /// Settings given by `config(...)`, as JSON.
    pub config: serde_json::Map<String, serde_json::Value>,
}

#[derive(Default)]
struct Log {
    refs: Vec<String>,
    sources: Vec<(String, Result<String, String>)>,
    config: serde_json::Map<String, serde_json::Value>,
}

/// Double-quoted SQL identifier.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Render `template` (the text of model `name`) for a run.
pub fn render(name: &str, template: &str, ctx: &RenderContext<'_>) -> Result<Rendered, Error> {
    let log = Arc::new(Mutex::new(Log::default()));
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);

    let l = Arc::clone(&log);
    env.add_function("ref", move |model: String| -> Result<String, Error> {
        lock(&l).refs.push(model.clone());
        Ok(quote(&model))
    });
    let l = Arc::clone(&log);
    let project = ctx.project.clone();
    env.add_function(
        "source",
        move |source: String, table: Option<String>| -> Result<String, Error> {
            let call = match &table {
                Some(t) => format!("source('{source}', '{t}')"),
                None => format!("source('{source}')"),
            };
            let resolved = crate::model::resolve_source(&project, &source, table.as_deref());
            let text = match &resolved {
                Ok(t) => quote(t),
                // planned later, where the missing source is reported with its line
                Err(_) => quote(&format!("__missing_source__{source}")),
            };
            lock(&l).sources.push((call, resolved));
            Ok(text)
        },
    );
    let l = Arc::clone(&log);
    env.add_function("config", move |kwargs: Kwargs| -> Result<String, Error> {
        let mut log = lock(&l);
        for key in kwargs.args() {
            let value: Value = kwargs.get(key)?;
            let json = serde_json::to_value(&value)
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            log.config.insert(key.to_string(), json);
        }
        Ok(String::new())
    });
    let vars = ctx.vars.clone();
    env.add_function(
        "var",
        move |name: String, default: Option<Value>| -> Result<Value, Error> {
            match (vars.get(&name), default) {
                (Some(v), _) => Ok(Value::from(v.clone())),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("var('{name}') is not set: pass --var {name}=VALUE or give a default"),
                )),
            }
        },
    );
    let incremental = ctx.is_incremental;
    env.add_function("is_incremental", move || incremental);
    env.add_function("date_dimension", date_dimension);

    let tz = ctx.project.timezone();
    let shift = |from: NaiveDate, offset: i64| {
        let d = if offset >= 0 {
            from.checked_add_days(Days::new(offset.unsigned_abs()))
        } else {
            from.checked_sub_days(Days::new(offset.unsigned_abs()))
        };
        d.unwrap_or(from)
    };
    let tz_name = tz.name().to_string();
    env.add_function("local_date", move |expr: String| {
        format!("CAST(arrow_cast({expr}, 'Timestamp(µs, \"{tz_name}\")') AS DATE)")
    });
    let utc_start = |d: NaiveDate| format!("{}Z", utc_midnight(tz, d));
    let (lo, hi) = (
        utc_midnight(tz, ctx.date_from),
        utc_midnight(tz, shift(ctx.run_date, 1)),
    );
    env.add_function("in_dates", move |expr: String| {
        format!(
            "({expr} >= arrow_cast(TIMESTAMP '{lo}', 'Timestamp(µs, \"UTC\")') AND {expr} < \
             arrow_cast(TIMESTAMP '{hi}', 'Timestamp(µs, \"UTC\")'))"
        )
    });
    let late_days = DEFAULT_LATE_DAYS;
    let globals = minijinja::context! {
        run_date => ctx.run_date.to_string(),
        date_from => ctx.date_from.to_string(),
        date_to => ctx.run_date.to_string(),
        prev_date => shift(ctx.date_from, -1).to_string(),
        next_date => shift(ctx.run_date, 1).to_string(),
        late_date => shift(ctx.run_date, i64::from(late_days)).to_string(),
        late_days => late_days,
        timezone => tz.name(),
        run_start_utc => utc_start(ctx.date_from),
        run_end_utc => utc_start(shift(ctx.run_date, 1)),
        this => quote(name),
    };
    let sql = env.render_named_str(&format!("{name}.sql"), template, globals)?;
    let log = std::mem::take(&mut *lock(&log));
    Ok(Rendered {
        sql,
        refs: log.refs,
        sources: log.sources,
        config: log.config,
    })
}

/// The start of `date` in time zone `tz`, as `YYYY-MM-DDTHH:MM:SS` in UTC.
pub(crate) fn utc_midnight(tz: chrono_tz::Tz, date: NaiveDate) -> String {
    date.and_hms_opt(0, 0, 0)
        .and_then(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The SELECT of a date dimension: one row per day from `start` to `end` (inclusive).
///
/// Columns: `date_key` (INT yyyymmdd), `date_day`, `year`, `quarter`, `month`, `month_name`,
/// `day_of_month`, `day_of_week` (ISO: 1 Monday .. 7 Sunday), `day_name`, `iso_week`,
/// `week_start` (the Monday), `month_start`, `quarter_start`, `is_weekend`, `is_holiday`,
/// `holiday_name` (from `holidays={'2026-01-01': "New Year's Day", ...}`).
fn date_dimension(start: String, end: String, kwargs: Kwargs) -> Result<String, Error> {
    let parse = |what: &str, text: &str| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("date_dimension: {what} `{text}` is not a date (YYYY-MM-DD)"),
            )
        })
    };
    let first = parse("start", &start)?;
    let last = parse("end", &end)?;
    if last < first {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("date_dimension: end {last} is before start {first}"),
        ));
    }
    let given: Option<Value> = kwargs.get("holidays")?;
    kwargs.assert_all_used()?;
    let mut holidays = None;
    if let Some(h) = given {
        let mut map = BTreeMap::new();
        for date in h.try_iter()? {
            let name = h.get_item(&date)?;
            map.insert(date.to_string(), name.to_string());
        }
        holidays = Some(map);
    }
    let mut holiday_case = String::from("CAST(NULL AS VARCHAR)");
    if let Some(h) = holidays.filter(|h| !h.is_empty()) {
        let mut case = String::from("CASE");
        for (date, name) in &h {
            let d = parse("holiday", date)?;
            case.push_str(&format!(
                " WHEN d = DATE '{d}' THEN '{}'",
                name.replace('\'', "''")
            ));
        }
        case.push_str(" END");
        holiday_case = case;
    }
    let from = darkroom_storage::days_since_epoch(first);
    let to = darkroom_storage::days_since_epoch(last);
    Ok(format!(
        "SELECT CAST(to_char(d, '%Y%m%d') AS INT) AS date_key, d AS date_day, \
         CAST(date_part('year', d) AS INT) AS year, CAST(date_part('quarter', d) AS INT) AS quarter, \
         CAST(date_part('month', d) AS INT) AS month, to_char(d, '%B') AS month_name, \
         CAST(date_part('day', d) AS INT) AS day_of_month, \
         CAST((date_part('dow', d) + 6) % 7 + 1 AS INT) AS day_of_week, to_char(d, '%A') AS day_name, \
         CAST(date_part('week', d) AS INT) AS iso_week, \
         CAST(date_trunc('week', d) AS DATE) AS week_start, CAST(date_trunc('month', d) AS DATE) AS month_start, \
         CAST(date_trunc('quarter', d) AS DATE) AS quarter_start, \
         date_part('dow', d) IN (0, 6) AS is_weekend, ({holiday_case}) IS NOT NULL AS is_holiday, \
         {holiday_case} AS holiday_name \
         FROM (SELECT arrow_cast(CAST(value AS INT), 'Date32') AS d FROM generate_series({from}, {to}))"
    ))
}

/// A template error as one line of text.
pub fn describe_error(e: &Error) -> String {
    let mut text = match e.detail() {
        Some(detail) => format!("template error: {detail}"),
        None => format!("template error: {}", e.kind()),
    };
    if let Some(source) = std::error::Error::source(e) {
        text.push_str(&format!(" ({source})"));
    }
    text
}
