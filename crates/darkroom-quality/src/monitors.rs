//! Monitors that need no configuration: learned from the ingest ledger's history, for every
//! log source of the project.
//!
//! | monitor | severity | what it compares |
//! |---|---|---|
//! | `missing_files` | error | an expected host (or every host) sent no file for the date |
//! | `volume_host` | warn | each host's lines per hour against its own share of its source's traffic (learned over the last 28 days), so a sender that died is seen in the first hour after it stopped, whatever the weekday, the hour or the growth |
//! | `volume_daily` | warn | the source's lines per day against a trend + weekday baseline of the last 6 weeks |
//! | `parse_failures` | warn | the share of lines quarantined against its median of the last 28 days |
//! | `duplicate_files` | info | a file delivered again (recognised by its checksum, not counted twice) |
//! | `event_dates` | warn | lines whose event time is after the file's date or long before it |
//! | `clock_skew` | warn | a host whose traffic follows its peers' shifted by two or more whole hours, beyond what shifting explains on its ordinary days |
//!
//! Days already flagged by a monitor never train its baseline, and neither does the day under
//! test; with too little history the finding says so (`no_verdict`) instead of guessing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate, TimeZone};
use chrono_tz::Tz;
use datafusion::prelude::SessionContext;
use serde_json::json;

use crate::baseline::{self, median};
use crate::checks::rows;
use crate::{Finding, Outcome, Severity};

/// Thresholds. A deviation must be both unusual for the baseline's noise (`Z`) and large
/// enough to matter (`MIN_CHANGE`), on enough volume (`MIN_*`).
pub const Z: f64 = 4.0;
/// Daily volume: at least a 5% change.
pub const DAILY_MIN_CHANGE: f64 = 0.05;
/// Daily volume: at least this many lines expected.
pub const DAILY_MIN_LINES: f64 = 200.0;
/// Host-hour: at least half the expected lines missing.
pub const HOUR_MIN_DROP: f64 = 0.5;
/// Host-hour: how sure the shortfall of a stretch of hours must be (the best of the day's
/// stretches is tested, so the bar is higher than for one number).
pub const HOUR_Z: f64 = 5.0;
/// Host-hour: at least this many lines expected in the hour.
pub const HOUR_MIN_LINES: f64 = 20.0;
/// The smallest clock skew reported, in hours.
pub const MIN_SKEW_HOURS: i64 = 2;
/// Days of history the host shares learn from, and the fewest clean ones for a verdict.
pub const SHARE_WINDOW_DAYS: u64 = 28;
pub const SHARE_MIN_DAYS: usize = 7;
/// Parse failures: at least this many quarantined lines, and this much above the baseline.
pub const PARSE_MIN_LINES: i64 = 20;
pub const PARSE_MIN_RATE_INCREASE: f64 = 0.005;

/// What the monitors read: the ledger of the last weeks.
#[derive(Debug, Default, Clone)]
pub struct LedgerData {
    /// (source, host) -> UTC hour start in seconds -> lines, summed over file dates.
    pub hour_lines: HashMap<(String, String), HashMap<i64, i64>>,
    /// (source, file_date) -> (lines, quarantined).
    pub file_date_lines: BTreeMap<(String, NaiveDate), (i64, i64)>,
    /// (source, file_date) -> lines per local event date of its files.
    pub file_event_dates: BTreeMap<(String, NaiveDate), BTreeMap<NaiveDate, i64>>,
    /// `file` and `missing` records: (source, file_date, record, host, file, status, detail).
    pub files: Vec<FileRecord>,
    /// Hosts seen per source.
    pub hosts: BTreeMap<String, BTreeSet<String>>,
}

#[derive(Debug, Clone)]
pub struct FileRecord {
    pub source: String,
    pub file_date: NaiveDate,
    pub record: String,
    pub host: Option<String>,
    pub file: Option<String>,
    pub status: String,
    pub detail: Option<String>,
}

/// Read the ledger from `since` (file dates) on.
pub async fn load(ctx: &SessionContext, since: NaiveDate, tz: Tz) -> Result<LedgerData, String> {
    let mut data = LedgerData::default();
    if !ctx.table_exist("_ingest_ledger").unwrap_or(false) {
        return Ok(data);
    }
    let hours = rows(
        ctx,
        &format!(
            "SELECT source, CAST(file_date AS VARCHAR), host, CAST(CAST(hour AS BIGINT) / 1000000 AS BIGINT), \
             CAST(SUM(lines) AS BIGINT), CAST(SUM(quarantined) AS BIGINT) FROM _ingest_ledger \
             WHERE record = 'hour' AND file_date >= DATE '{since}' GROUP BY 1, 2, 3, 4"
        ),
    )
    .await?;
    for r in hours {
        let (Some(source), Some(fd)) = (r[0].clone(), r[1].as_deref()) else {
            continue;
        };
        let Ok(file_date) = NaiveDate::parse_from_str(fd, "%Y-%m-%d") else {
            continue;
        };
        let host = r[2].clone().unwrap_or_default();
        let lines: i64 = r[4].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
        let quarantined: i64 = r[5].as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
        let e = data
            .file_date_lines
            .entry((source.clone(), file_date))
            .or_default();
        e.0 += lines;
        e.1 += quarantined;
        data.hosts
            .entry(source.clone())
            .or_default()
            .insert(host.clone());
        if let Some(hour) = r[3].as_deref().and_then(|v| v.parse::<i64>().ok()) {
            *data
                .hour_lines
                .entry((source.clone(), host))
                .or_default()
                .entry(hour)
                .or_default() += lines;
            if let Some(local) = local_date(hour, tz) {
                *data
                    .file_event_dates
                    .entry((source, file_date))
                    .or_default()
                    .entry(local)
                    .or_default() += lines;
            }
        }
    }
    let files = rows(
        ctx,
        &format!(
            "SELECT source, CAST(file_date AS VARCHAR), record, host, file, status, detail \
             FROM _ingest_ledger WHERE record IN ('file', 'missing') AND file_date >= DATE '{since}'"
        ),
    )
    .await?;
    for r in files {
        let Some(file_date) = r[1]
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        else {
            continue;
        };
        data.files.push(FileRecord {
            source: r[0].clone().unwrap_or_default(),
            file_date,
            record: r[2].clone().unwrap_or_default(),
            host: r[3].clone(),
            file: r[4].clone(),
            status: r[5].clone().unwrap_or_default(),
            detail: r[6].clone(),
        });
    }
    Ok(data)
}

fn local_date(utc_seconds: i64, tz: Tz) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp(utc_seconds, 0).map(|t| t.with_timezone(&tz).date_naive())
}

/// The UTC hour starts (seconds) of a local date (23, 24 or 25 of them).
fn hours_of(date: NaiveDate, tz: Tz) -> Vec<i64> {
    let start = tz
        .from_local_datetime(&date.and_time(chrono::NaiveTime::MIN))
        .earliest();
    let end = date.succ_opt().and_then(|n| {
        tz.from_local_datetime(&n.and_time(chrono::NaiveTime::MIN))
            .earliest()
    });
    let (Some(start), Some(end)) = (start, end) else {
        return Vec::new();
    };
    let (s, e) = (start.timestamp(), end.timestamp());
    // hour buckets are whole UTC hours
    let first = s - s.rem_euclid(3600);
    (0..)
        .map(|i| first + i * 3600)
        .take_while(|h| *h < e)
        .collect()
}

/// Days each finding id failed before (kept out of its baseline).
pub type Flagged = HashMap<String, BTreeSet<NaiveDate>>;

/// A source as the monitors know it.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub name: String,
    /// The raw table its rows go to.
    pub table: String,
    pub late_days: u32,
}

/// Every monitor for `date`.
pub fn evaluate(
    data: &LedgerData,
    sources: &[SourceInfo],
    date: NaiveDate,
    tz: Tz,
    flagged: &Flagged,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for s in sources {
        out.extend(missing_files(data, s, date));
        out.extend(volume_hosts(data, s, date, tz, flagged));
        out.push(volume_daily(data, s, date, tz, flagged));
        out.push(parse_failures(data, s, date, flagged));
        out.extend(duplicate_files(data, s, date));
        out.push(event_dates(data, s, date));
        out.extend(clock_skew(data, s, date, tz, flagged));
    }
    out
}

fn finding(kind: &str, id: String, subject: String, s: &SourceInfo, date: NaiveDate) -> Finding {
    Finding {
        id,
        kind: kind.into(),
        subject,
        date,
        outcome: Outcome::Pass,
        severity: Severity::Warn,
        message: String::new(),
        evidence: json!({}),
        at_stake: None,
        tables: vec![s.table.clone()],
    }
}

fn missing_files(data: &LedgerData, s: &SourceInfo, date: NaiveDate) -> Option<Finding> {
    let missing: Vec<&FileRecord> = data
        .files
        .iter()
        .filter(|f| f.source == s.name && f.file_date == date && f.record == "missing")
        .collect();
    let ingested = data
        .files
        .iter()
        .any(|f| f.source == s.name && f.file_date == date);
    if !ingested {
        return None; // not ingested yet: the run's own failure or the deadline says so
    }
    let mut f = finding(
        "missing_files",
        format!("missing_files:{}", s.name),
        s.name.clone(),
        s,
        date,
    );
    f.severity = Severity::Error;
    if missing.is_empty() {
        f.message = format!("{}: every expected file of {date} arrived", s.name);
        return Some(f);
    }
    f.outcome = Outcome::Fail;
    let whole_day = missing.iter().any(|m| m.host.is_none());
    let hosts: Vec<String> = missing.iter().filter_map(|m| m.host.clone()).collect();
    let paths: Vec<String> = missing.iter().filter_map(|m| m.detail.clone()).collect();
    f.message = if whole_day
        || (!hosts.is_empty() && hosts.len() >= data.hosts.get(&s.name).map_or(0, BTreeSet::len))
    {
        format!(
            "{}: no log file at all for {date} (expected {})",
            s.name,
            paths.first().cloned().unwrap_or_default()
        )
    } else {
        format!(
            "{}: no file from {} for {date} (expected {})",
            s.name,
            hosts.join(", "),
            paths.join(", ")
        )
    };
    // what a day of those hosts usually holds
    let typical = typical_day(data, s, date);
    f.at_stake = typical.map(|t| t.round() as i64);
    f.evidence = json!({"hosts": hosts, "expected_paths": paths, "typical_day_lines": typical});
    Some(f)
}

/// The median lines of the source's last 7 ingested days (for what a lost day holds).
fn typical_day(data: &LedgerData, s: &SourceInfo, date: NaiveDate) -> Option<f64> {
    let v: Vec<f64> = data
        .file_date_lines
        .range((s.name.clone(), date - chrono::Days::new(7))..(s.name.clone(), date))
        .map(|(_, (l, _))| *l as f64)
        .filter(|l| *l > 0.0)
        .collect();
    median(&v)
}

/// Lines of every source on a local date (by event time).
pub fn lines_on(data: &LedgerData, date: NaiveDate, tz: Tz) -> f64 {
    data.hour_lines
        .values()
        .flat_map(|hours| hours.iter())
        .filter(|(hour, _)| local_date(**hour, tz) == Some(date))
        .map(|(_, n)| *n as f64)
        .sum()
}

/// The share of the day's log lines that arrived, estimated from reconciliations of logged
/// business events against the database (`completeness = true`): pooled logged / recorded.
/// Volume alone cannot tell a 10% loss from a slow day when days vary by more than that;
/// the database, which lost nothing, can.
pub fn log_completeness(reconciled: &[&Finding], lines: f64, date: NaiveDate) -> Option<Finding> {
    if reconciled.is_empty() {
        return None;
    }
    let num = |f: &Finding, k: &str| f.evidence.get(k).and_then(serde_json::Value::as_f64);
    let logged: f64 = reconciled.iter().filter_map(|f| num(f, "left")).sum();
    let recorded: f64 = reconciled.iter().filter_map(|f| num(f, "right")).sum();
    let names: Vec<&str> = reconciled.iter().map(|f| f.subject.as_str()).collect();
    let mut f = Finding {
        id: "log_completeness".into(),
        kind: "log_completeness".into(),
        subject: "logs".into(),
        date,
        outcome: Outcome::Pass,
        severity: Severity::Warn,
        message: String::new(),
        evidence: json!({"logged": logged, "recorded": recorded, "reconciliations": names, "lines": lines}),
        at_stake: None,
        tables: Vec::new(),
    };
    if recorded < 20.0 {
        f.outcome = Outcome::NoVerdict;
        f.message = format!(
            "logs: too few reconciled events on {date} ({recorded}) to judge how complete the logs are"
        );
        return Some(f);
    }
    let ratio = (logged / recorded).min(1.5);
    let missing = 1.0 - ratio;
    let se = (ratio.clamp(0.01, 0.99) * (1.0 - ratio.clamp(0.01, 0.99)) / recorded).sqrt();
    if let Some(obj) = f.evidence.as_object_mut() {
        obj.insert("ratio".into(), json!(ratio));
    }
    if missing >= DAILY_MIN_CHANGE && missing >= Z * se.max(1.0 / recorded) {
        let stake = lines * missing / ratio.max(0.01);
        f.outcome = Outcome::Fail;
        f.at_stake = Some(stake.round() as i64);
        f.message = format!(
            "logs: only {logged:.0} of the {recorded:.0} events the database recorded on {date} were logged ({:.1}% missing: {}); about {stake:.0} of the day's log lines never arrived",
            missing * 100.0,
            names.join(", ")
        );
    } else {
        f.message = format!(
            "logs: {logged:.0} of {recorded:.0} reconciled events logged on {date} ({:+.1}%)",
            -missing * 100.0
        );
    }
    Some(f)
}

/// Each host's hourly lines of a source.
fn host_series<'a>(data: &'a LedgerData, source: &str) -> HashMap<&'a str, &'a HashMap<i64, i64>> {
    data.hour_lines
        .iter()
        .filter(|((src, _), _)| src == source)
        .map(|((_, h), m)| (h.as_str(), m))
        .collect()
}

/// Lines per local date of a source (by event time, every file date), and of one host.
fn daily_series(
    data: &LedgerData,
    source: &str,
    host: Option<&str>,
    tz: Tz,
) -> BTreeMap<NaiveDate, f64> {
    let mut out = BTreeMap::new();
    for ((src, h), hours) in &data.hour_lines {
        if src != source || host.is_some_and(|x| x != h) {
            continue;
        }
        for (hour, lines) in hours {
            if let Some(d) = local_date(*hour, tz) {
                *out.entry(d).or_default() += *lines as f64;
            }
        }
    }
    out
}

/// The named hosts of a source, when there are at least two to compare with each other.
fn peer_hosts<'a>(data: &'a LedgerData, source: &str) -> Option<Vec<&'a String>> {
    let hosts: Vec<&String> = data
        .hosts
        .get(source)?
        .iter()
        .filter(|h| !h.is_empty())
        .collect();
    (hosts.len() >= 2).then_some(hosts)
}

fn volume_hosts(
    data: &LedgerData,
    s: &SourceInfo,
    date: NaiveDate,
    tz: Tz,
    flagged: &Flagged,
) -> Vec<Finding> {
    let Some(hosts) = peer_hosts(data, &s.name) else {
        return Vec::new(); // one host has no peers; the daily volume covers it
    };
    let source_daily = daily_series(data, &s.name, None, tz);
    let hours = hours_of(date, tz);
    let series = host_series(data, &s.name);
    let lines = |host: &str, hour: i64| -> f64 {
        series
            .get(host)
            .and_then(|m| m.get(&hour))
            .copied()
            .unwrap_or(0) as f64
    };
    let mut out = Vec::new();
    for host in hosts.iter().copied() {
        let id = format!("volume_host:{}:{host}", s.name);
        let mut f = finding(
            "volume_host",
            id.clone(),
            format!("{}/{host}", s.name),
            s,
            date,
        );
        let host_daily = daily_series(data, &s.name, Some(host), tz);
        let skip = flagged.get(&id);
        let shares: Vec<f64> = source_daily
            .range(date - chrono::Days::new(SHARE_WINDOW_DAYS)..date)
            .filter(|(d, total)| **total > 0.0 && !skip.is_some_and(|k| k.contains(d)))
            .map(|(d, total)| host_daily.get(d).copied().unwrap_or(0.0) / total)
            .collect();
        let share = median(&shares).unwrap_or(0.0);
        if shares.len() < SHARE_MIN_DAYS || share <= 0.0 || share >= 1.0 {
            f.outcome = Outcome::NoVerdict;
            f.message = format!(
                "{}/{host}: not enough history for a baseline ({} clean days, {SHARE_MIN_DAYS} needed)",
                s.name,
                shares.len()
            );
            out.push(f);
            continue;
        }
        let ratio = share / (1.0 - share);
        let expect = |h: i64| -> (f64, f64) {
            let others: f64 = hosts
                .iter()
                .filter(|o| **o != host)
                .map(|o| lines(o, h))
                .sum();
            (others * ratio, lines(host, h))
        };
        // how bursty this host is: its hours' spread around their expectation, learned over
        // the same clean days (sticky sessions make a web host far burstier than Poisson)
        let mut r2 = Vec::new();
        for d in source_daily
            .range(date - chrono::Days::new(SHARE_WINDOW_DAYS)..date)
            .map(|(d, _)| *d)
            .filter(|d| !skip.is_some_and(|k| k.contains(d)))
        {
            for h in hours_of(d, tz) {
                let (e, a) = expect(h);
                if e >= 5.0 {
                    r2.push((a - e).powi(2) / e);
                }
            }
        }
        let dispersion = if r2.is_empty() {
            1.0
        } else {
            (r2.iter().sum::<f64>() / r2.len() as f64).max(1.0)
        };
        let per_hour: Vec<(i64, f64, f64)> = hours
            .iter()
            .map(|&h| {
                let (e, a) = expect(h);
                (h, e, a)
            })
            .collect();
        // the stretch of hours most surely short of the host's share: it starts at the first
        // hour after a sender stopped, however many hours a bursty host needs to be sure
        let mut best: Option<(usize, usize, f64, f64, f64)> = None;
        for i in 0..per_hour.len() {
            let (mut e_sum, mut a_sum) = (0.0, 0.0);
            for (j, &(_, e, a)) in per_hour.iter().enumerate().skip(i) {
                e_sum += e;
                a_sum += a;
                if e_sum < HOUR_MIN_LINES || (e_sum - a_sum) / e_sum < HOUR_MIN_DROP {
                    continue;
                }
                let z = (e_sum - a_sum) / (dispersion * e_sum + (0.05 * e_sum).powi(2)).sqrt();
                if best.is_none_or(|b| z > b.2) {
                    best = Some((i, j, z, e_sum, a_sum));
                }
            }
        }
        let (e_day, a_day) = per_hour
            .iter()
            .fold((0.0, 0.0), |acc, &(_, e, a)| (acc.0 + e, acc.1 + a));
        let Some((first, last, z, expected_sum, actual_sum)) = best.filter(|b| b.2 >= HOUR_Z)
        else {
            f.message = format!(
                "{}/{host}: {a_day:.0} lines on {date}, as its share of the traffic expects ({e_day:.0})",
                s.name
            );
            f.evidence = json!({"share": share, "dispersion": dispersion, "expected": e_day.round(), "actual": a_day});
            out.push(f);
            continue;
        };
        let stake = (expected_sum - actual_sum).max(0.0);
        f.outcome = Outcome::Fail;
        f.at_stake = Some(stake.round() as i64);
        let (from, to) = (per_hour[first].0, per_hour[last].0 + 3600);
        let hours_json: Vec<serde_json::Value> = per_hour[first..=last]
            .iter()
            .map(
                |&(h, e, a)| json!({"hour": hour_label(h, tz), "expected": e.round(), "actual": a}),
            )
            .collect();
        f.message = format!(
            "{}/{host}: from {} to {} it sent {actual_sum:.0} lines where its share of the \
             traffic expects {expected_sum:.0}: about {stake:.0} lines missing (did its log sender stop?)",
            s.name,
            hour_label(from, tz),
            hour_label(to, tz),
        );
        f.evidence = json!({
            "host": host,
            "share": share,
            "dispersion": dispersion,
            "z": z,
            "from": hour_label(from, tz),
            "to": hour_label(to, tz),
            "expected": expected_sum.round(),
            "actual": actual_sum,
            "hours": hours_json,
        });
        out.push(f);
    }
    out
}

fn hour_label(utc_seconds: i64, tz: Tz) -> String {
    chrono::DateTime::from_timestamp(utc_seconds, 0)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn volume_daily(
    data: &LedgerData,
    s: &SourceInfo,
    date: NaiveDate,
    tz: Tz,
    flagged: &Flagged,
) -> Finding {
    let id = format!("volume_daily:{}", s.name);
    let mut f = finding("volume_daily", id.clone(), s.name.clone(), s, date);
    let series = daily_series(data, &s.name, None, tz);
    let exclude = flagged.get(&id).cloned().unwrap_or_default();
    let actual = series.get(&date).copied().unwrap_or(0.0);
    match baseline::daily_expected_calibrated(&series, date, &exclude) {
        Err(why) => {
            f.outcome = Outcome::NoVerdict;
            f.message = format!("{}: {why}", s.name);
        }
        Ok(e) => {
            let (z, change) = baseline::deviation(actual, &e);
            f.evidence = json!({
                "expected": e.value.round(),
                "actual": actual,
                "change": change,
                "z": z,
                "training_days": e.training_days,
                "weekday": date.weekday().to_string(),
            });
            let unusual =
                z.abs() >= Z && change.abs() >= DAILY_MIN_CHANGE && e.value >= DAILY_MIN_LINES;
            if unusual {
                f.outcome = Outcome::Fail;
                f.at_stake = Some((e.value - actual).abs().round() as i64);
                f.message = format!(
                    "{}: {actual:.0} lines on {date} ({}), {:.1}% {} the {:.0} expected from its trend and weekday",
                    s.name,
                    date.weekday(),
                    change.abs() * 100.0,
                    if change < 0.0 { "below" } else { "above" },
                    e.value
                );
            } else {
                f.message = format!(
                    "{}: {actual:.0} lines on {date}, {:+.1}% against the {:.0} expected",
                    s.name,
                    change * 100.0,
                    e.value
                );
            }
        }
    }
    f
}

fn parse_failures(
    data: &LedgerData,
    s: &SourceInfo,
    date: NaiveDate,
    flagged: &Flagged,
) -> Finding {
    let id = format!("parse_failures:{}", s.name);
    let mut f = finding("parse_failures", id.clone(), s.name.clone(), s, date);
    f.tables.push(format!("_quarantine_{}", s.name));
    let Some(&(lines, quarantined)) = data.file_date_lines.get(&(s.name.clone(), date)) else {
        f.outcome = Outcome::NoVerdict;
        f.message = format!("{}: nothing ingested for {date}", s.name);
        return f;
    };
    let skip = flagged.get(&id);
    let rates: Vec<f64> = data
        .file_date_lines
        .range((s.name.clone(), date - chrono::Days::new(28))..(s.name.clone(), date))
        .filter(|((_, d), (l, _))| *l > 0 && !skip.is_some_and(|k| k.contains(d)))
        .map(|(_, (l, q))| *q as f64 / *l as f64)
        .collect();
    let rate = if lines > 0 {
        quarantined as f64 / lines as f64
    } else {
        0.0
    };
    f.evidence = json!({"lines": lines, "quarantined": quarantined, "rate": rate});
    if rates.len() < SHARE_MIN_DAYS {
        f.outcome = Outcome::NoVerdict;
        f.message = format!(
            "{}: {quarantined} of {lines} lines quarantined on {date}; not enough history for a baseline ({} days, {SHARE_MIN_DAYS} needed)",
            s.name,
            rates.len()
        );
        // without history, a large share of bad lines is still news
        if quarantined >= PARSE_MIN_LINES && rate >= 0.01 {
            f.outcome = Outcome::Fail;
            f.at_stake = Some(quarantined);
        }
        return f;
    }
    let base = median(&rates).unwrap_or(0.0);
    if let Some(obj) = f.evidence.as_object_mut() {
        obj.insert("baseline_rate".into(), json!(base));
    }
    if quarantined >= PARSE_MIN_LINES && rate >= (3.0 * base).max(base + PARSE_MIN_RATE_INCREASE) {
        f.outcome = Outcome::Fail;
        f.at_stake = Some(quarantined);
        f.message = format!(
            "{}: {quarantined} of {lines} lines of {date} did not parse ({:.2}%, usually {:.2}%): see the samples, and `darkroom query \"SELECT reason, count(*) FROM _quarantine_{} WHERE file_date = DATE '{date}' GROUP BY 1\"`",
            s.name,
            rate * 100.0,
            base * 100.0,
            s.name
        );
    } else {
        f.message = format!(
            "{}: {quarantined} of {lines} lines quarantined on {date} ({:.2}%, usually {:.2}%)",
            s.name,
            rate * 100.0,
            base * 100.0
        );
    }
    f
}

fn duplicate_files(data: &LedgerData, s: &SourceInfo, date: NaiveDate) -> Option<Finding> {
    let dups: Vec<&FileRecord> = data
        .files
        .iter()
        .filter(|f| {
            f.source == s.name
                && f.file_date == date
                && f.record == "file"
                && f.status == "duplicate"
        })
        .collect();
    if dups.is_empty() {
        return None;
    }
    let mut f = finding(
        "duplicate_files",
        format!("duplicate_files:{}", s.name),
        s.name.clone(),
        s,
        date,
    );
    f.severity = Severity::Info;
    f.outcome = Outcome::Fail;
    let files: Vec<String> = dups.iter().filter_map(|d| d.file.clone()).collect();
    let details: Vec<String> = dups.iter().filter_map(|d| d.detail.clone()).collect();
    f.message = format!(
        "{}: {} file(s) of {date} delivered twice and not counted again: {}",
        s.name,
        files.len(),
        files.join(", ")
    );
    f.evidence = json!({"files": files, "details": details});
    Some(f)
}

fn event_dates(data: &LedgerData, s: &SourceInfo, date: NaiveDate) -> Finding {
    let mut f = finding(
        "event_dates",
        format!("event_dates:{}", s.name),
        s.name.clone(),
        s,
        date,
    );
    let Some(by_date) = data.file_event_dates.get(&(s.name.clone(), date)) else {
        f.outcome = Outcome::NoVerdict;
        f.message = format!("{}: nothing ingested for {date}", s.name);
        return f;
    };
    let earliest = date - chrono::Days::new(u64::from(s.late_days) + 1);
    let future: i64 = by_date
        .range(date.succ_opt().unwrap_or(date).succ_opt().unwrap_or(date)..)
        .map(|(_, n)| n)
        .sum();
    let past: i64 = by_date.range(..earliest).map(|(_, n)| n).sum();
    let total: i64 = by_date.values().sum();
    f.evidence = json!({
        "lines_by_event_date": by_date.iter().map(|(d, n)| (d.to_string(), *n)).collect::<BTreeMap<_, _>>(),
    });
    // a handful of odd clocks is noise; a share of the day is a problem
    let odd = future + past;
    if odd >= 20 && odd as f64 >= 0.001 * total as f64 {
        f.outcome = Outcome::Fail;
        f.at_stake = Some(odd);
        f.message = format!(
            "{}: files of {date} hold {future} lines dated after {} and {past} dated before {earliest}",
            s.name,
            date.succ_opt().unwrap_or(date)
        );
    } else {
        f.message = format!("{}: the lines of {date} are dated as expected", s.name);
    }
    f
}

/// (best shift in hours, correlation at it, correlation unshifted, the host's lines) of a
/// host's hourly lines on `date` against the sum of its peers'.
fn skew_of(
    data: &LedgerData,
    source: &str,
    hosts: &[&String],
    host: &str,
    date: NaiveDate,
    tz: Tz,
) -> Option<(i64, f64, f64, f64)> {
    let day = hours_of(date, tz);
    let (&first, &last) = (day.first()?, day.last()?);
    let lo = first - 24 * 3600;
    let hi = last + 3600;
    let series = host_series(data, source);
    let raw = |h: &str, hour: i64| -> f64 {
        series
            .get(h)
            .and_then(|m| m.get(&hour))
            .copied()
            .unwrap_or(0) as f64
    };
    let lines = raw;
    let total: f64 = day.iter().map(|&h| raw(host, h)).sum();
    let peers = |hour: i64| -> f64 {
        hosts
            .iter()
            .filter(|o| o.as_str() != host)
            .map(|o| lines(o, hour))
            .sum()
    };
    let corr_at = |shift: i64| -> Option<f64> {
        let pairs: Vec<(f64, f64)> = day
            .iter()
            .filter(|&&t| (lo..hi).contains(&(t + shift * 3600)))
            .map(|&t| (lines(host, t + shift * 3600), peers(t)))
            .collect();
        pearson(&pairs)
    };
    let c0 = corr_at(0)?;
    let (shift, best) = (-12..=12)
        .filter_map(|s| corr_at(s).map(|c| (s, c)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some((shift, best, c0, total))
}

fn pearson(pairs: &[(f64, f64)]) -> Option<f64> {
    let n = pairs.len() as f64;
    if pairs.len() < 12 {
        return None;
    }
    let (mx, my) = pairs
        .iter()
        .fold((0.0, 0.0), |a, (x, y)| (a.0 + x / n, a.1 + y / n));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

fn clock_skew(
    data: &LedgerData,
    s: &SourceInfo,
    date: NaiveDate,
    tz: Tz,
    flagged: &Flagged,
) -> Vec<Finding> {
    let Some(hosts) = peer_hosts(data, &s.name) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for host in hosts.iter().copied() {
        let id = format!("clock_skew:{}:{host}", s.name);
        let mut f = finding(
            "clock_skew",
            id.clone(),
            format!("{}/{host}", s.name),
            s,
            date,
        );
        let Some((shift, cbest, c0, total)) = skew_of(data, &s.name, &hosts, host, date, tz) else {
            f.outcome = Outcome::NoVerdict;
            f.message = format!(
                "{}/{host}: too few lines on {date} to judge its clock",
                s.name
            );
            out.push(f);
            continue;
        };
        // how much a shift seems to help on ordinary days: the bar a real skew must clear
        let skip = flagged.get(&id);
        let gains: Vec<f64> = (1..=SHARE_WINDOW_DAYS)
            .map(|k| date - chrono::Days::new(k))
            .filter(|d| !skip.is_some_and(|x| x.contains(d)))
            .filter_map(|d| skew_of(data, &s.name, &hosts, host, d, tz))
            .map(|(_, b, c, _)| b - c)
            .collect();
        f.evidence = json!({"best_shift_hours": shift, "correlation_at_best": cbest, "correlation_unshifted": c0});
        if gains.len() < SHARE_MIN_DAYS {
            f.outcome = Outcome::NoVerdict;
            f.message = format!(
                "{}/{host}: not enough history to judge its clock ({} days, {SHARE_MIN_DAYS} needed)",
                s.name,
                gains.len()
            );
            out.push(f);
            continue;
        }
        let bar = (1.5 * gains.iter().copied().fold(0.0, f64::max)).max(0.2);
        if let Some(obj) = f.evidence.as_object_mut() {
            obj.insert("gain_needed".into(), json!(bar));
        }
        // a one-hour shift is within what a bursty host's ordinary days show: two or more
        if shift.abs() >= MIN_SKEW_HOURS && cbest >= 0.8 && cbest - c0 >= bar {
            f.outcome = Outcome::Fail;
            f.at_stake = Some(total.round() as i64);
            f.message = format!(
                "{}/{host}: its clock looks {} hour(s) {} — its traffic on {date} follows the other hosts' shifted by {shift:+} h (correlation {cbest:.2}, unshifted {c0:.2}); its {total:.0} lines carry wrong times",
                s.name,
                shift.abs(),
                if shift > 0 { "ahead" } else { "behind" },
            );
        } else {
            f.message = format!("{}/{host}: its clock agrees with the other hosts", s.name);
        }
        out.push(f);
    }
    out
}

/// Sample quarantined lines of a source's date, with their reasons (for the evidence).
pub async fn quarantine_samples(
    ctx: &SessionContext,
    source: &str,
    date: NaiveDate,
) -> Vec<serde_json::Value> {
    let table = format!("_quarantine_{source}");
    if !ctx.table_exist(table.as_str()).unwrap_or(false) {
        return Vec::new();
    }
    let sql = format!(
        "SELECT host, file, line, reason, CAST(raw AS VARCHAR) FROM \"{table}\" \
         WHERE file_date = DATE '{date}' ORDER BY file, line LIMIT 5"
    );
    match rows(ctx, &sql).await {
        Ok(r) => r
            .into_iter()
            .map(|row| {
                json!({"host": row[0], "file": row[1], "line": row[2], "reason": row[3], "text": row[4]})
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const TZ: Tz = chrono_tz::UTC;

    fn day(n: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 5).unwrap() + chrono::Days::new(n)
    }

    fn source() -> SourceInfo {
        SourceInfo {
            name: "api".into(),
            table: "raw_api".into(),
            late_days: 1,
        }
    }

    /// Two hosts sharing a diurnal load 50/50, with a repeatable wobble, for `days` days;
    /// `dead` silences api-2 from that hour of the last day.
    fn ledger(days: u64, dead: Option<u32>) -> LedgerData {
        let mut data = LedgerData::default();
        for d in 0..days {
            let date = day(d);
            for (hi, host) in ["api-1", "api-2"].iter().enumerate() {
                data.hosts
                    .entry("api".into())
                    .or_default()
                    .insert((*host).to_string());
                let mut total = 0;
                for (h, start) in hours_of(date, TZ).into_iter().enumerate() {
                    let shape = 40.0 + 80.0 * (std::f64::consts::PI * h as f64 / 24.0).sin();
                    let u = ((d * 24 + h as u64) * 2_654_435_761 + hi as u64 * 97) % 1000;
                    let mut n = (shape * (0.9 + 0.2 * u as f64 / 1000.0)).round() as i64;
                    if hi == 1 && d + 1 == days && dead.is_some_and(|from| h as u32 >= from) {
                        n = 0;
                    }
                    total += n;
                    data.hour_lines
                        .entry(("api".into(), (*host).to_string()))
                        .or_default()
                        .insert(start, n);
                }
                let e = data
                    .file_date_lines
                    .entry(("api".into(), date))
                    .or_default();
                e.0 += total;
            }
            data.files.push(FileRecord {
                source: "api".into(),
                file_date: date,
                record: "file".into(),
                host: Some("api-1".into()),
                file: Some("f".into()),
                status: "ok".into(),
                detail: None,
            });
        }
        data
    }

    #[test]
    fn a_dead_sender_is_reported_from_the_hour_it_stopped() {
        let data = ledger(35, Some(14));
        let found = volume_hosts(&data, &source(), day(34), TZ, &Flagged::new());
        let dead = found.iter().find(|f| f.subject == "api/api-2").unwrap();
        assert_eq!(dead.outcome, Outcome::Fail, "{}", dead.message);
        assert_eq!(dead.evidence["from"], format!("{} 14:00", day(34)));
        // what it would have sent from 14:00 to midnight
        let truth: i64 = ledger(35, None).hour_lines[&("api".to_string(), "api-2".to_string())]
            .iter()
            .filter(|(h, _)| hours_of(day(34), TZ)[14..].contains(h))
            .map(|(_, n)| n)
            .sum();
        let stake = dead.at_stake.unwrap();
        assert!(
            (stake - truth).abs() as f64 <= 0.1 * truth as f64,
            "{stake} vs {truth}"
        );
        let alive = found.iter().find(|f| f.subject == "api/api-1").unwrap();
        assert_eq!(alive.outcome, Outcome::Pass, "{}", alive.message);
    }

    #[test]
    fn ordinary_days_pass_and_short_history_gives_no_verdict() {
        let data = ledger(35, None);
        for d in 28..35 {
            for f in evaluate(&data, &[source()], day(d), TZ, &Flagged::new()) {
                assert_ne!(f.outcome, Outcome::Fail, "{}: {}", f.id, f.message);
            }
        }
        let young = ledger(5, None);
        let found = volume_hosts(&young, &source(), day(4), TZ, &Flagged::new());
        assert!(found.iter().all(|f| f.outcome == Outcome::NoVerdict));
        assert!(found[0].message.contains("not enough history"));
    }

    #[test]
    fn a_flagged_day_stays_out_of_the_share() {
        // api-2 dead for most of the last four weeks, those days flagged: its share is
        // learned from the days it was well
        let mut data = ledger(35, None);
        let dead: BTreeSet<NaiveDate> = (10..30).map(day).collect();
        for d in &dead {
            for h in hours_of(*d, TZ) {
                data.hour_lines
                    .get_mut(&("api".to_string(), "api-2".to_string()))
                    .unwrap()
                    .insert(h, 0);
            }
        }
        let unflagged = volume_hosts(&data, &source(), day(34), TZ, &Flagged::new());
        let f = unflagged.iter().find(|f| f.subject == "api/api-2").unwrap();
        assert_eq!(f.outcome, Outcome::NoVerdict, "a share of 0 is no baseline");
        let mut flagged = Flagged::new();
        flagged.insert("volume_host:api:api-2".into(), dead);
        let found = volume_hosts(&data, &source(), day(34), TZ, &flagged);
        let f = found.iter().find(|f| f.subject == "api/api-2").unwrap();
        let share = f.evidence["share"].as_f64().unwrap();
        assert!((share - 0.5).abs() < 0.02, "{share}");
        assert_eq!(f.outcome, Outcome::Pass, "{}", f.message);
    }

    #[test]
    fn parse_failures_against_their_baseline() {
        let mut data = ledger(35, None);
        for d in 0..34 {
            data.file_date_lines
                .get_mut(&("api".into(), day(d)))
                .unwrap()
                .1 = 2;
        }
        let lines = data.file_date_lines[&("api".to_string(), day(34))].0;
        data.file_date_lines
            .get_mut(&("api".into(), day(34)))
            .unwrap()
            .1 = lines / 20;
        let f = parse_failures(&data, &source(), day(34), &Flagged::new());
        assert_eq!(f.outcome, Outcome::Fail, "{}", f.message);
        assert_eq!(f.at_stake, Some(lines / 20));
        let f = parse_failures(&data, &source(), day(33), &Flagged::new());
        assert_eq!(f.outcome, Outcome::Pass, "{}", f.message);
    }
}
