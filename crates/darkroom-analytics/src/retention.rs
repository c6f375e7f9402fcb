//! Retention: of the persons who did a start event in a period (a cohort), how many did a
//! return event N periods later.
//!
//! - cohorts by the *first-time* start event (each person in one cohort: the period of their
//!   first start event ever) or *recurring* (a person joins the cohort of every period they do
//!   the start event in);
//! - returns *on* period N (a return event in exactly that period) or *on or after* (in that
//!   period or any later one: unbounded retention);
//! - day, week (from Monday) or month periods, in the project time zone;
//! - a breakdown by a property of the start event (the one that put the person in the cohort);
//! - only periods that have fully elapsed by the date the data runs to count: a cohort's later
//!   periods are left empty, not counted as zero.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, Days, NaiveDate};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use serde::Serialize;

use crate::AnalyticsError;
use crate::defs::Definitions;
use crate::funnels::{event_sql, local_date, local_midnight_micros};
use crate::metrics::Grain;
use crate::reader::{AsOf, Reader};

#[derive(Debug, Clone)]
pub struct RetentionQuery {
    pub start_event: String,
    pub return_event: String,
    /// Cohort dates, inclusive.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub period: Grain,
    /// Cohorts by each person's first start event ever (else: every period they start in).
    pub first_time: bool,
    /// "On or after" period N (else "on" period N).
    pub unbounded: bool,
    /// Periods after the cohort's to report (0..=periods).
    pub periods: u32,
    pub by: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cohort {
    /// The first day of the cohort's period.
    pub cohort: NaiveDate,
    pub value: Option<String>,
    pub persons: u64,
    /// Persons retained in period N (N = 0, 1, ...); `None` where the period has not fully
    /// elapsed.
    pub retained: Vec<Option<u64>>,
    pub rate: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RetentionReport {
    pub start_event: String,
    pub return_event: String,
    pub period: Grain,
    pub cohorts_by: &'static str,
    pub returns: &'static str,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The last day counted as elapsed.
    pub data_through: NaiveDate,
    pub by: Option<String>,
    pub cohorts: Vec<Cohort>,
    /// Per N: retained / persons over the cohorts whose period N has elapsed.
    pub overall: Vec<Option<f64>>,
    pub as_of: AsOf,
    pub degraded_dates: Vec<NaiveDate>,
}

/// A period's ordinal, so that N periods later is `+ N`.
fn ordinal(grain: Grain, d: NaiveDate) -> i64 {
    match grain {
        Grain::Day => i64::from(d.num_days_from_ce()),
        Grain::Week => (i64::from(grain.start(d).num_days_from_ce()) - 1) / 7,
        Grain::Month => i64::from(d.year()) * 12 + i64::from(d.month0()),
    }
}

fn period_start(grain: Grain, ordinal_: i64) -> NaiveDate {
    match grain {
        Grain::Day => NaiveDate::from_num_days_from_ce_opt(ordinal_ as i32).unwrap_or_default(),
        // day 1 of the era is a Monday
        Grain::Week => {
            NaiveDate::from_num_days_from_ce_opt((ordinal_ * 7 + 1) as i32).unwrap_or_default()
        }
        Grain::Month => NaiveDate::from_ymd_opt(
            ordinal_.div_euclid(12) as i32,
            ordinal_.rem_euclid(12) as u32 + 1,
            1,
        )
        .unwrap_or_default(),
    }
}

/// `(person, time in µs, property)` of an event's rows between two instants.
async fn read_events(
    reader: &Reader,
    defs: &Definitions,
    event: &str,
    by: Option<&str>,
    lo: Option<i64>,
    hi: Option<i64>,
) -> Result<Vec<(String, i64, Option<String>)>, AnalyticsError> {
    // a breakdown needs the property on the start event
    if let (Some(p), Some(def)) = (by, defs.events.get(event))
        && !def.properties.iter().any(|x| x == p)
    {
        return Err(AnalyticsError::Usage(format!(
            "cannot break down by `{p}`: event `{event}` has no such property (its \
             properties: {})",
            def.properties.join(", ")
        )));
    }
    let sql = event_sql(defs, event, None, by, lo, hi)?;
    let batches = reader
        .sql(&format!("retention event `{event}`"), &sql)
        .await?;
    let mut out = Vec::new();
    for b in &batches {
        let person = cast(b.column(0), &DataType::Utf8)?;
        let person = person.as_string::<i32>();
        let t = cast(
            b.column(1),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let t = t.as_primitive::<TimestampMicrosecondType>();
        let p = if by.is_some() {
            Some(cast(b.column(2), &DataType::Utf8)?)
        } else {
            None
        };
        let p = p.as_ref().map(|a| a.as_string::<i32>());
        for row in 0..b.num_rows() {
            if person.is_null(row) || t.is_null(row) {
                continue;
            }
            out.push((
                person.value(row).to_string(),
                t.value(row),
                p.and_then(|a| a.is_valid(row).then(|| a.value(row).to_string())),
            ));
        }
    }
    Ok(out)
}

pub async fn compute(
    reader: &Reader,
    defs: &Definitions,
    tz: Tz,
    q: &RetentionQuery,
) -> Result<RetentionReport, AnalyticsError> {
    if q.periods > 1_000 {
        return Err(AnalyticsError::Usage(format!(
            "--periods {}: at most 1000",
            q.periods
        )));
    }
    if q.to < q.from {
        return Err(AnalyticsError::Usage(format!(
            "--to {} is before --from {}",
            q.to, q.from
        )));
    }
    let cohort_lo = local_midnight_micros(tz, q.period.start(q.from));
    // first-time cohorts need every earlier start event, to know which one was the first
    let start_lo = (!q.first_time).then_some(cohort_lo);
    let cohort_hi = local_midnight_micros(tz, q.period.end(q.to) + Days::new(1));
    let starts = read_events(
        reader,
        defs,
        &q.start_event,
        q.by.as_deref(),
        start_lo,
        Some(cohort_hi),
    )
    .await?;
    let returns = read_events(reader, defs, &q.return_event, None, Some(cohort_lo), None).await?;
    // The data runs to the snapshot's night; with nothing published, to yesterday (today
    // has not elapsed).
    let data_through = reader
        .as_of
        .night
        .unwrap_or_else(|| chrono::Utc::now().with_timezone(&tz).date_naive() - Days::new(1));
    let last_elapsed = {
        // the last period whose last day is on or before data_through
        let o = ordinal(q.period, data_through);
        if q.period.end(data_through) <= data_through {
            o
        } else {
            o - 1
        }
    };
    let first_cohort = ordinal(q.period, q.from);
    let last_cohort = ordinal(q.period, q.to);

    // person -> cohort ordinal -> property of the start event that put them there
    let mut cohort_of: HashMap<String, BTreeMap<i64, Option<String>>> = HashMap::new();
    let mut sorted = starts;
    // by time (then value, for a deterministic cohort value at the same instant)
    sorted.sort_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)));
    for (person, ts, prop) in sorted {
        let date = local_date(tz, ts);
        let o = ordinal(q.period, date);
        let entry = cohort_of.entry(person).or_default();
        if q.first_time && !entry.is_empty() {
            continue;
        }
        entry.entry(o).or_insert(prop);
    }
    let mut returned: HashMap<String, BTreeSet<i64>> = HashMap::new();
    for (person, ts, _) in returns {
        let date = local_date(tz, ts);
        returned
            .entry(person)
            .or_default()
            .insert(ordinal(q.period, date));
    }
    let periods = q.periods as usize;
    // (cohort, value) -> persons, retained per N
    let mut table: BTreeMap<(i64, Option<String>), (u64, Vec<u64>)> = BTreeMap::new();
    for (person, cohorts) in &cohort_of {
        let back = returned.get(person);
        for (&c, value) in cohorts {
            if c < first_cohort || c > last_cohort {
                continue;
            }
            let row = table
                .entry((c, value.clone()))
                .or_insert_with(|| (0, vec![0; periods + 1]));
            row.0 += 1;
            let Some(back) = back else { continue };
            for (n, slot) in row.1.iter_mut().enumerate() {
                let p = c + n as i64;
                let hit = if q.unbounded {
                    back.range(p..).next().is_some()
                } else {
                    back.contains(&p)
                };
                if hit {
                    *slot += 1;
                }
            }
        }
    }
    let mut sums = vec![(0u64, 0u64); periods + 1];
    let cohorts: Vec<Cohort> = table
        .into_iter()
        .map(|((c, value), (persons, hits))| {
            let retained: Vec<Option<u64>> = hits
                .iter()
                .enumerate()
                .map(|(n, h)| (c + n as i64 <= last_elapsed).then_some(*h))
                .collect();
            for (n, r) in retained.iter().enumerate() {
                if let Some(r) = r {
                    sums[n].0 += r;
                    sums[n].1 += persons;
                }
            }
            Cohort {
                cohort: period_start(q.period, c),
                value: q
                    .by
                    .as_ref()
                    .map(|_| value.unwrap_or_else(|| "(none)".into())),
                persons,
                rate: retained
                    .iter()
                    .map(|r| {
                        r.map(|r| {
                            if persons == 0 {
                                0.0
                            } else {
                                r as f64 / persons as f64
                            }
                        })
                    })
                    .collect(),
                retained,
            }
        })
        .collect();
    let overall = sums
        .iter()
        .map(|&(r, p)| (p > 0).then(|| r as f64 / p as f64))
        .collect();
    Ok(RetentionReport {
        start_event: q.start_event.clone(),
        return_event: q.return_event.clone(),
        period: q.period,
        cohorts_by: if q.first_time {
            "first-time start event"
        } else {
            "recurring start event"
        },
        returns: if q.unbounded {
            "on or after period N"
        } else {
            "on period N"
        },
        from: q.from,
        to: q.to,
        data_through,
        by: q.by.clone(),
        cohorts,
        overall,
        degraded_dates: reader.as_of.degraded_between(q.from, data_through),
        as_of: reader.as_of.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn ordinals_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 12).unwrap();
        for g in [Grain::Day, Grain::Week, Grain::Month] {
            let o = ordinal(g, d);
            assert_eq!(period_start(g, o), g.start(d), "{g:?}");
            assert_eq!(
                ordinal(g, g.end(d)) + 1,
                ordinal(g, g.end(d) + Days::new(1)),
                "{g:?}"
            );
        }
    }
}
