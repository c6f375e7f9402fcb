//! Funnels as a product feature: per step the persons reaching it, conversion from the previous
//! step and from the first, drop-off and time to convert; a breakdown by an event property
//! (attributed to the first step, or a named one); exclusions; the trend by week of entry.
//!
//! Each step's events are read from the published snapshot (one query per step, so one event
//! may serve several steps), grouped by person (the resolved identity: `person_id`), and
//! searched with [`crate::funnel::scan`], which also returns the chain each person reached
//! the deepest step by: its times give time to convert, its events the breakdown value.
//!
//! Entry: a person enters with a first-step event dated (project time zone) between `from` and
//! `to`; later steps may happen up to the window after that.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike, Days, NaiveDate, TimeZone};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use serde::Serialize;

use crate::AnalyticsError;
use crate::defs::{Definitions, EventSource, ExclusionDef, FunnelDef, StepDef};
use crate::funnel::{self, EXCLUSION, Event, Mode, Path};
use crate::reader::{AsOf, Reader};

/// The longest funnel window: ten years.
pub const MAX_WINDOW_SECONDS: i64 = 3_650 * 86_400;

/// The breakdown group of persons who did not reach the attributed step.
const NOT_REACHED: u32 = u32::MAX;

/// A funnel to compute: declared, or given on the command line.
#[derive(Debug, Clone)]
pub struct FunnelQuery {
    pub name: String,
    pub steps: Vec<StepDef>,
    pub window_seconds: i64,
    pub mode: Mode,
    pub exclusions: Vec<ExclusionDef>,
    /// Entry dates (of the first step), inclusive, in the project time zone.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// An event property to break down by.
    pub by: Option<String>,
    /// The 0-based step whose property value a person is counted under.
    pub attribution: usize,
}

impl FunnelQuery {
    pub fn from_def(def: &FunnelDef, from: NaiveDate, to: NaiveDate) -> Self {
        Self {
            name: def.name.clone(),
            steps: def.steps.clone(),
            window_seconds: def.window_seconds,
            mode: def.mode,
            exclusions: def.exclusions.clone(),
            from,
            to,
            by: None,
            attribution: def.attribution,
        }
    }
}

/// How long persons took to reach a step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimeToConvert {
    /// From the previous step.
    pub mean_seconds: f64,
    pub median_seconds: f64,
    pub p90_seconds: f64,
    /// From the first step.
    pub median_from_first_seconds: f64,
    /// Persons per bucket of time from the previous step.
    pub distribution: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Bucket {
    pub up_to: &'static str,
    pub persons: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepReport {
    pub step: String,
    pub persons: u64,
    /// Of the previous step's persons (the first step: 1).
    pub conversion_from_previous: f64,
    pub conversion_from_first: f64,
    /// Persons who reached the previous step and not this one.
    pub dropped_off: u64,
    pub time_to_convert: Option<TimeToConvert>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupReport {
    pub value: String,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrendRow {
    /// The Monday of the week of entry.
    pub week: NaiveDate,
    pub persons_per_step: Vec<u64>,
    /// From the first step to the last.
    pub conversion: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FunnelReport {
    pub funnel: String,
    pub steps: Vec<StepReport>,
    pub window_seconds: i64,
    pub mode: String,
    pub entry_from: NaiveDate,
    pub entry_to: NaiveDate,
    pub by: Option<String>,
    pub attributed_to: Option<String>,
    pub breakdown: Vec<GroupReport>,
    pub trend_by_entry_week: Vec<TrendRow>,
    pub as_of: AsOf,
    /// Degraded dates the funnel's dates touch.
    pub degraded_dates: Vec<NaiveDate>,
}

/// The UTC instant (µs) of local midnight starting `date`.
pub fn local_midnight_micros(tz: Tz, date: NaiveDate) -> i64 {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    let local = tz.from_local_datetime(&naive).earliest().or_else(|| {
        tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
    });
    local.map_or(naive.and_utc().timestamp_micros(), |t| t.timestamp_micros())
}

/// The local date of a UTC instant (µs).
pub fn local_date(tz: Tz, micros: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.with_timezone(&tz).date_naive())
        .unwrap_or_default()
}

fn sql_ts(micros: i64) -> String {
    let t = chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default();
    format!("'{}'", t.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

/// The SQL that reads an event's rows: `person`, `ts` and (with `by`) the property as `prop`
/// (NULL for an event without it), with an extra filter, from `lo` and before `hi` (µs, UTC;
/// either may be open).
pub(crate) fn event_sql(
    defs: &Definitions,
    event: &str,
    filter: Option<&str>,
    by: Option<&str>,
    lo: Option<i64>,
    hi: Option<i64>,
) -> Result<String, AnalyticsError> {
    let def = defs.events.get(event).ok_or_else(|| {
        AnalyticsError::Usage(format!(
            "unknown event `{event}` (declared: {})",
            crate::defs::names(defs.events.keys())
        ))
    })?;
    let prop = match by {
        Some(p) if def.properties.iter().any(|x| x == p) => {
            format!(", CAST({p} AS VARCHAR) AS prop")
        }
        Some(_) => ", CAST(NULL AS VARCHAR) AS prop".to_string(),
        None => String::new(),
    };
    let bounds = |time: &str| {
        let mut b = vec!["TRUE".to_string()];
        if let Some(lo) = lo {
            b.push(format!("{time} >= {}", sql_ts(lo)));
        }
        if let Some(hi) = hi {
            b.push(format!("{time} < {}", sql_ts(hi)));
        }
        b.join(" AND ")
    };
    let extra = filter.map(|f| format!(" AND ({f})")).unwrap_or_default();
    Ok(match &def.source {
        EventSource::Table {
            table,
            time,
            person,
            filter: base,
        } => {
            let base = base
                .as_deref()
                .map(|b| format!(" AND ({b})"))
                .unwrap_or_default();
            format!(
                "SELECT CAST({person} AS VARCHAR) AS person, {time} AS ts{prop} FROM {table} \
                 WHERE {}{base}{extra}",
                bounds(time)
            )
        }
        EventSource::Sql(sql) => format!(
            "SELECT CAST(person_id AS VARCHAR) AS person, event_ts AS ts{prop} FROM ({sql}) AS e \
             WHERE {}{extra}",
            bounds("event_ts")
        ),
    })
}

/// Every person's events, and each event's breakdown value.
#[derive(Default)]
struct Collected {
    persons: HashMap<String, u32>,
    events: Vec<Vec<Event>>,
    props: Vec<u32>,
    values: Vec<String>,
    value_codes: HashMap<String, u32>,
}

impl Collected {
    fn add(
        &mut self,
        batches: &[RecordBatch],
        kind: u8,
        with_prop: bool,
    ) -> Result<(), AnalyticsError> {
        for b in batches {
            let person = cast(b.column(0), &DataType::Utf8)?;
            let person = person.as_string::<i32>();
            let ts = cast(
                b.column(1),
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?;
            let ts = ts.as_primitive::<TimestampMicrosecondType>();
            let prop = if with_prop {
                Some(cast(b.column(2), &DataType::Utf8)?)
            } else {
                None
            };
            let prop = prop.as_ref().map(|p| p.as_string::<i32>());
            for row in 0..b.num_rows() {
                if person.is_null(row) || ts.is_null(row) {
                    continue;
                }
                let next = self.persons.len() as u32;
                let p = *self
                    .persons
                    .entry(person.value(row).to_string())
                    .or_insert(next);
                if p as usize == self.events.len() {
                    self.events.push(Vec::new());
                }
                let value = prop
                    .map(|a| {
                        if a.is_null(row) {
                            "(none)"
                        } else {
                            a.value(row)
                        }
                    })
                    .unwrap_or("");
                let code = match self.value_codes.get(value) {
                    Some(&c) => c,
                    None => {
                        let c = self.values.len() as u32;
                        self.values.push(value.to_string());
                        self.value_codes.insert(value.to_string(), c);
                        c
                    }
                };
                let index = self.props.len() as u32;
                self.props.push(code);
                self.events[p as usize].push(Event {
                    ts: ts.value(row),
                    kind,
                    index,
                });
            }
        }
        Ok(())
    }
}

/// Per step: persons, and conversion times from the previous and the first step.
#[derive(Default, Clone)]
struct Tally {
    persons: Vec<u64>,
    from_previous: Vec<Vec<i64>>,
    from_first: Vec<Vec<i64>>,
}

impl Tally {
    fn new(steps: usize) -> Self {
        Self {
            persons: vec![0; steps],
            from_previous: vec![Vec::new(); steps],
            from_first: vec![Vec::new(); steps],
        }
    }

    fn add(&mut self, level: usize, path: Option<&Path>, timed: bool) {
        for k in 0..level {
            self.persons[k] += 1;
            if let (Some(p), true, true) = (path, timed, k > 0) {
                self.from_previous[k].push(p.times[k] - p.times[k - 1]);
                self.from_first[k].push(p.times[k] - p.times[0]);
            }
        }
    }

    fn report(&mut self, names: &[String]) -> Vec<StepReport> {
        let first = self.persons.first().copied().unwrap_or(0);
        (0..names.len())
            .map(|k| {
                let persons = self.persons[k];
                let previous = if k == 0 { persons } else { self.persons[k - 1] };
                let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
                StepReport {
                    step: names[k].clone(),
                    persons,
                    conversion_from_previous: ratio(persons, previous),
                    conversion_from_first: ratio(persons, first),
                    dropped_off: previous - persons,
                    time_to_convert: time_stats(
                        &mut self.from_previous[k],
                        &mut self.from_first[k],
                    ),
                }
            })
            .collect()
    }
}

const BUCKETS: [(&str, i64); 10] = [
    ("1m", 60),
    ("10m", 600),
    ("1h", 3_600),
    ("6h", 6 * 3_600),
    ("1d", 86_400),
    ("3d", 3 * 86_400),
    ("7d", 7 * 86_400),
    ("14d", 14 * 86_400),
    ("30d", 30 * 86_400),
    ("more", i64::MAX),
];

fn quantile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    let frac = at - lo as f64;
    (sorted[lo] as f64 * (1.0 - frac) + sorted[hi] as f64 * frac) / 1e6
}

fn time_stats(from_previous: &mut [i64], from_first: &mut [i64]) -> Option<TimeToConvert> {
    if from_previous.is_empty() {
        return None;
    }
    from_previous.sort_unstable();
    from_first.sort_unstable();
    let mean =
        from_previous.iter().map(|&v| v as f64).sum::<f64>() / from_previous.len() as f64 / 1e6;
    let mut distribution: Vec<Bucket> = BUCKETS
        .iter()
        .map(|(label, _)| Bucket {
            up_to: label,
            persons: 0,
        })
        .collect();
    for &v in from_previous.iter() {
        let i = BUCKETS
            .iter()
            .position(|(_, up)| v <= up.saturating_mul(1_000_000))
            .unwrap_or(BUCKETS.len() - 1);
        distribution[i].persons += 1;
    }
    Some(TimeToConvert {
        mean_seconds: mean,
        median_seconds: quantile(from_previous, 0.5),
        p90_seconds: quantile(from_previous, 0.9),
        median_from_first_seconds: quantile(from_first, 0.5),
        distribution,
    })
}

fn monday(d: NaiveDate) -> NaiveDate {
    d - Days::new(u64::from(d.weekday().num_days_from_monday()))
}

/// Compute a funnel over the reader's snapshot.
pub async fn compute(
    reader: &Reader,
    defs: &Definitions,
    tz: Tz,
    q: &FunnelQuery,
) -> Result<FunnelReport, AnalyticsError> {
    if q.to < q.from {
        return Err(AnalyticsError::Usage(format!(
            "--to {} is before --from {}",
            q.to, q.from
        )));
    }
    if q.steps.len() < 2 || q.steps.len() > funnel::MAX_PATH_STEPS {
        return Err(AnalyticsError::Usage(format!(
            "a funnel has 2 to {} steps, not {}",
            funnel::MAX_PATH_STEPS,
            q.steps.len()
        )));
    }
    if let Some(by) = &q.by {
        let step = &q.steps[q.attribution.min(q.steps.len() - 1)];
        let has = defs
            .events
            .get(&step.event)
            .is_some_and(|e| e.properties.contains(by));
        if !has {
            let props = defs
                .events
                .get(&step.event)
                .map(|e| e.properties.join(", "))
                .unwrap_or_default();
            return Err(AnalyticsError::Usage(format!(
                "cannot break down by `{by}`: event `{}` (step `{}`, which the breakdown is \
                 attributed to) has no such property (its properties: {})",
                step.event,
                step.name,
                if props.is_empty() {
                    "none".into()
                } else {
                    props
                }
            )));
        }
    }
    if q.mode.any_order && !q.exclusions.is_empty() {
        return Err(AnalyticsError::Usage(
            "exclusions sit between two consecutive steps: an any_order funnel has none".into(),
        ));
    }
    if q.mode.strict_order {
        return Err(AnalyticsError::Usage(
            "strict_order stops at any other event between the steps, and a product funnel \
             reads only its steps' events: use window_funnel('strict_order', ...) in SQL over \
             a table of every event (darkroom query)"
                .into(),
        ));
    }
    if !(0..=MAX_WINDOW_SECONDS).contains(&q.window_seconds) {
        return Err(AnalyticsError::Usage(format!(
            "a funnel window is 0 to {} days",
            MAX_WINDOW_SECONDS / 86_400
        )));
    }
    let window_micros = q.window_seconds.saturating_mul(1_000_000);
    let entry_lo = local_midnight_micros(tz, q.from);
    let entry_hi = local_midnight_micros(tz, q.to + Days::new(1));
    let later_hi = entry_hi.saturating_add(window_micros).saturating_add(1);
    let mut c = Collected::default();
    let by = q.by.as_deref();
    // in any order, a later step may come before the entering event (within the window)
    let later_lo = if q.mode.any_order {
        entry_lo.saturating_sub(window_micros)
    } else {
        entry_lo
    };
    for (i, step) in q.steps.iter().enumerate() {
        let (lo, hi) = if i == 0 {
            (entry_lo, entry_hi)
        } else {
            (later_lo, later_hi)
        };
        let what = format!("funnel step `{}`", step.name);
        let sql = event_sql(
            defs,
            &step.event,
            step.filter.as_deref(),
            by,
            Some(lo),
            Some(hi),
        )?;
        let batches = reader.sql(&what, &sql).await?;
        c.add(&batches, (i + 1) as u8, by.is_some())
            .map_err(|e| AnalyticsError::Usage(format!("{what}: its rows cannot be read: {e}")))?;
    }
    for x in &q.exclusions {
        let what = format!("funnel exclusion `{}`", x.event);
        let sql = event_sql(
            defs,
            &x.event,
            x.filter.as_deref(),
            by,
            Some(later_lo),
            Some(later_hi),
        )?;
        let batches = reader.sql(&what, &sql).await?;
        c.add(&batches, EXCLUSION + x.after as u8, by.is_some())
            .map_err(|e| AnalyticsError::Usage(format!("{what}: its rows cannot be read: {e}")))?;
    }

    let names: Vec<String> = q.steps.iter().map(|s| s.name.clone()).collect();
    let n = names.len();
    let timed = !q.mode.any_order;
    let mut overall = Tally::new(n);
    let mut groups: BTreeMap<u32, Tally> = BTreeMap::new();
    let mut weeks: BTreeMap<NaiveDate, Vec<u64>> = BTreeMap::new();
    let Collected {
        events: mut per_person,
        props,
        values,
        ..
    } = c;
    for events in &mut per_person {
        // same instant and step: by the breakdown value, so the result never depends on the
        // order rows came back in
        events.sort_unstable_by(|a, b| {
            (a.ts, a.kind).cmp(&(b.ts, b.kind)).then_with(|| {
                values[props[a.index as usize] as usize]
                    .cmp(&values[props[b.index as usize] as usize])
            })
        });
        let (level, path) = if q.mode.any_order {
            funnel::any_order::<Path>(events.iter().copied(), n, window_micros)
        } else {
            funnel::scan::<Path>(events.iter().copied(), n, window_micros, q.mode)
        };
        let level = usize::from(level);
        if level == 0 {
            continue;
        }
        overall.add(level, path.as_ref(), timed);
        if let Some(p) = &path {
            let week = monday(local_date(tz, p.times[0]));
            let w = weeks.entry(week).or_insert_with(|| vec![0; n]);
            for slot in w.iter_mut().take(level) {
                *slot += 1;
            }
            if by.is_some() {
                // persons who never reached the attributed step have no value there
                let code = if level > q.attribution {
                    props[p.events[q.attribution] as usize]
                } else {
                    NOT_REACHED
                };
                groups
                    .entry(code)
                    .or_insert_with(|| Tally::new(n))
                    .add(level, Some(p), timed);
            }
        }
    }
    let mut breakdown: Vec<GroupReport> = groups
        .into_iter()
        .map(|(code, mut t)| GroupReport {
            value: if code == NOT_REACHED {
                format!("(did not reach {})", names[q.attribution.min(n - 1)])
            } else {
                values[code as usize].clone()
            },
            steps: t.report(&names),
        })
        .collect();
    breakdown.sort_by(|a, b| {
        b.steps[0]
            .persons
            .cmp(&a.steps[0].persons)
            .then(a.value.cmp(&b.value))
    });
    let trend_by_entry_week = weeks
        .into_iter()
        .map(|(week, persons_per_step)| {
            let first = persons_per_step[0];
            let last = persons_per_step[n - 1];
            TrendRow {
                week,
                conversion: if first == 0 {
                    0.0
                } else {
                    last as f64 / first as f64
                },
                persons_per_step,
            }
        })
        .collect();
    let last_date = local_date(tz, later_hi - 1);
    Ok(FunnelReport {
        funnel: q.name.clone(),
        steps: overall.report(&names),
        window_seconds: q.window_seconds,
        mode: q.mode.to_string(),
        entry_from: q.from,
        entry_to: q.to,
        by: q.by.clone(),
        attributed_to: q
            .by
            .as_ref()
            .map(|_| names[q.attribution.min(n - 1)].clone()),
        breakdown,
        trend_by_entry_week,
        degraded_dates: reader.as_of.degraded_between(q.from, last_date),
        as_of: reader.as_of.clone(),
    })
}
