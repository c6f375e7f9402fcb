//! Metrics: each declared once ([`crate::defs::MetricDef`]) and computed here the same way for
//! everyone, by day, ISO week (from Monday) or month, sliced by its declared dimensions.
//!
//! - count, count_distinct, sum, average: one aggregate over the metric's table (its filter
//!   applied first), dated by its `time` column (a date in the project time zone);
//! - `rolling_days = N`: each day counts the N days ending that day (WAU: 7, MAU: 28); at week
//!   or month grain a rolling metric is its value on the last day of the period;
//! - at week or month grain the range is widened to whole periods (a period cut by the range
//!   would read as a full one);
//! - ratio and derived: computed from their input metrics at the same grain and slices
//!   (a missing count is 0; a ratio over 0 is empty, not infinite).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Datelike, Days, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::AnalyticsError;
use crate::defs::{Definitions, MetricDef, MetricKind};
use crate::reader::{AsOf, Reader};

/// The length of a metric's periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    Day,
    Week,
    Month,
}

impl Grain {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "day" | "daily" => Ok(Self::Day),
            "week" | "weekly" => Ok(Self::Week),
            "month" | "monthly" => Ok(Self::Month),
            other => Err(format!("unknown grain `{other}`: use day, week or month")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The first day of the period holding `d`.
    pub fn start(self, d: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => d,
            Self::Week => d - Days::new(u64::from(d.weekday().num_days_from_monday())),
            Self::Month => d.with_day(1).unwrap_or(d),
        }
    }

    /// The last day of the period holding `d`.
    pub fn end(self, d: NaiveDate) -> NaiveDate {
        match self {
            Self::Day => d,
            Self::Week => self.start(d) + Days::new(6),
            Self::Month => {
                let first = self.start(d);
                let next = first
                    .checked_add_months(chrono::Months::new(1))
                    .unwrap_or(first);
                next.pred_opt().unwrap_or(first)
            }
        }
    }

    /// The SQL of the period start of a date expression.
    fn sql(self, date: &str) -> String {
        match self {
            Self::Day => date.to_string(),
            Self::Week => format!("CAST(date_trunc('week', {date}) AS DATE)"),
            Self::Month => format!("CAST(date_trunc('month', {date}) AS DATE)"),
        }
    }
}

/// A metric to compute.
#[derive(Debug, Clone)]
pub struct MetricQuery {
    pub metric: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub grain: Grain,
    pub by: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricRow {
    /// The first day of the period.
    pub period: NaiveDate,
    /// One value per `by` dimension.
    pub slice: Vec<Option<String>>,
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MetricReport {
    pub metric: String,
    pub description: String,
    pub owner: Option<String>,
    pub kind: String,
    pub unit: Option<String>,
    pub grain: Grain,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub by: Vec<String>,
    pub rows: Vec<MetricRow>,
    pub as_of: AsOf,
    /// Degraded dates in the range: their numbers may be wrong.
    pub degraded_dates: Vec<NaiveDate>,
    /// Set when the range runs past the published data.
    pub warning: Option<String>,
}

type Key = (NaiveDate, Vec<Option<String>>);

/// Compute a metric over the reader's snapshot.
pub async fn compute(
    reader: &Reader,
    defs: &Definitions,
    q: &MetricQuery,
) -> Result<MetricReport, AnalyticsError> {
    let def = defs.metrics.get(&q.metric).ok_or_else(|| {
        AnalyticsError::Usage(format!(
            "unknown metric `{}` (declared: {})",
            q.metric,
            crate::defs::names(defs.metrics.keys())
        ))
    })?;
    if q.to < q.from {
        return Err(AnalyticsError::Usage(format!(
            "--to {} is before --from {}",
            q.to, q.from
        )));
    }
    let allowed = allowed_dimensions(defs, def);
    for d in &q.by {
        if !allowed.contains(d) {
            return Err(AnalyticsError::Usage(format!(
                "metric `{}` cannot be sliced by `{d}`: its dimensions are {}",
                def.name,
                crate::defs::names(allowed.iter())
            )));
        }
    }
    // whole periods only: a week or month cut by the range would read as a full one
    let q = &MetricQuery {
        from: q.grain.start(q.from),
        to: q.grain.end(q.to),
        ..q.clone()
    };
    let values = values(reader, defs, def, q).await?;
    let rows = values
        .into_iter()
        .map(|((period, slice), value)| MetricRow {
            period,
            slice,
            value,
        })
        .collect();
    let warning = match reader.as_of.night {
        Some(n) if q.to > n => Some(format!(
            "the range runs past {n}, the last night published: later dates have no data yet"
        )),
        _ => None,
    };
    Ok(MetricReport {
        metric: def.name.clone(),
        description: def.description.clone(),
        owner: def.owner.clone(),
        kind: def.kind.name().to_string(),
        unit: def.unit.clone(),
        grain: q.grain,
        from: q.from,
        to: q.to,
        by: q.by.clone(),
        rows,
        // a rolling metric's first day reads the days before it too
        degraded_dates: reader.as_of.degraded_between(
            q.from - Days::new(u64::from(def.rolling_days.unwrap_or(1).max(1) - 1)),
            q.to,
        ),
        as_of: reader.as_of.clone(),
        warning,
    })
}

/// The dimensions a metric may be sliced by: its own, or for a computed metric those every
/// input allows.
pub fn allowed_dimensions(defs: &Definitions, def: &MetricDef) -> BTreeSet<String> {
    match def.kind {
        MetricKind::Ratio | MetricKind::Derived => {
            let mut sets = def
                .inputs()
                .into_iter()
                .filter_map(|i| defs.metrics.get(&i))
                .map(|m| allowed_dimensions(defs, m));
            let first = sets.next().unwrap_or_default();
            sets.fold(first, |a, b| a.intersection(&b).cloned().collect())
        }
        _ => def.dimensions.iter().cloned().collect(),
    }
}

fn values<'a>(
    reader: &'a Reader,
    defs: &'a Definitions,
    def: &'a MetricDef,
    q: &'a MetricQuery,
) -> futures_like::BoxFuture<'a, Result<BTreeMap<Key, Option<f64>>, AnalyticsError>> {
    Box::pin(async move {
        match def.kind {
            MetricKind::Ratio | MetricKind::Derived => computed(reader, defs, def, q).await,
            _ => base(reader, defs, def, q).await,
        }
    })
}

/// `Pin<Box<dyn Future>>` without another dependency.
mod futures_like {
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

/// Replace the `d.` prefix of a dimension expression by the join's alias.
fn qualify(expr: &str, alias: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            in_string = !in_string;
        }
        let boundary = i == 0
            || !(chars[i - 1].is_ascii_alphanumeric()
                || chars[i - 1] == '_'
                || chars[i - 1] == '.');
        if !in_string && c == 'd' && boundary && chars.get(i + 1) == Some(&'.') {
            out.push_str(alias);
            out.push('.');
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

async fn base(
    reader: &Reader,
    defs: &Definitions,
    def: &MetricDef,
    q: &MetricQuery,
) -> Result<BTreeMap<Key, Option<f64>>, AnalyticsError> {
    let table = def.table.as_deref().unwrap_or_default();
    let column = def.column.as_deref().unwrap_or("*");
    let agg = match def.kind {
        MetricKind::Count => "count(*)".to_string(),
        MetricKind::CountDistinct => format!("count(DISTINCT f.{column})"),
        MetricKind::Sum => format!("sum(f.{column})"),
        _ => format!("avg(f.{column})"),
    };
    let time = &def.time;
    // dates are the project's: a timestamp would be cut at UTC midnight
    if let Ok(df) = reader.ctx.table(table).await
        && let Ok(field) = df.schema().field_with_unqualified_name(time)
        && !matches!(field.data_type(), DataType::Date32 | DataType::Date64)
    {
        return Err(AnalyticsError::Usage(format!(
            "metric `{}`: its time column `{time}` of `{table}` is {}, not a date; metrics are \
             dated by a DATE column in the project time zone (time = \"event_date\")",
            def.name,
            field.data_type()
        )));
    }
    let rolling = def.rolling_days.unwrap_or(1).max(1);
    let first = q.from - Days::new(u64::from(rolling - 1));
    let filter = def
        .filter
        .as_deref()
        .map(|f| format!(" AND ({f})"))
        .unwrap_or_default();
    let fact = format!(
        "(SELECT * FROM {table} WHERE {time} BETWEEN DATE '{first}' AND DATE '{}'{filter}) f",
        q.to
    );
    let mut joins = String::new();
    let mut slices = Vec::new();
    for (i, name) in q.by.iter().enumerate() {
        let Some(dim) = defs.dimensions.get(name) else {
            return Err(AnalyticsError::Usage(format!("unknown dimension `{name}`")));
        };
        let alias = format!("d_{i}");
        if let Some((t, key)) = &dim.join {
            joins.push_str(&format!(
                " LEFT JOIN {t} AS {alias} ON f.{key} = {alias}.{key}"
            ));
        }
        slices.push(format!(
            "CAST({} AS VARCHAR) AS s{i}",
            qualify(&dim.expr, &alias)
        ));
    }
    let slice_cols: String = slices.iter().map(|s| format!(", {s}")).collect();
    let group: String = (0..q.by.len()).map(|i| format!(", s{i}")).collect();
    let sql = if def.rolling_days.is_some() {
        format!(
            "SELECT s.day AS period{slice_cols}, CAST({agg} AS DOUBLE) AS value \
             FROM (SELECT CAST(unnest(range(DATE '{}', DATE '{}', INTERVAL '1 day')) AS DATE) AS day) s \
             JOIN {fact} ON f.{time} <= s.day AND f.{time} > s.day - INTERVAL '{rolling} days'{joins} \
             GROUP BY s.day{group}",
            q.from,
            q.to + Days::new(1)
        )
    } else {
        let period = q.grain.sql(&format!("f.{time}"));
        format!(
            "SELECT {period} AS period{slice_cols}, CAST({agg} AS DOUBLE) AS value \
             FROM {fact}{joins} WHERE f.{time} >= DATE '{}' GROUP BY 1{group}",
            q.from
        )
    };
    let batches = reader.sql(&format!("metric `{}`", def.name), &sql).await?;
    let mut out: BTreeMap<Key, Option<f64>> = BTreeMap::new();
    for b in &batches {
        let period = cast(b.column(0), &DataType::Date32)?;
        let period = period.as_primitive::<Date32Type>();
        let slices: Vec<ArrayRef> = (0..q.by.len())
            .map(|i| cast(b.column(1 + i), &DataType::Utf8))
            .collect::<Result<_, _>>()?;
        let value = cast(b.column(1 + q.by.len()), &DataType::Float64)?;
        let value = value.as_primitive::<Float64Type>();
        for row in 0..b.num_rows() {
            let Some(day) = period.value_as_date(row) else {
                continue;
            };
            let slice: Vec<Option<String>> = slices
                .iter()
                .map(|s| {
                    let s = s.as_string::<i32>();
                    s.is_valid(row).then(|| s.value(row).to_string())
                })
                .collect();
            let v = value.is_valid(row).then(|| value.value(row));
            if def.rolling_days.is_some() && q.grain != Grain::Day {
                // the period's value is the window ending on its last day
                if day == q.grain.end(day).min(q.to) {
                    out.insert((q.grain.start(day), slice), v);
                }
            } else {
                out.insert((day, slice), v);
            }
        }
    }
    Ok(out)
}

async fn computed(
    reader: &Reader,
    defs: &Definitions,
    def: &MetricDef,
    q: &MetricQuery,
) -> Result<BTreeMap<Key, Option<f64>>, AnalyticsError> {
    let inputs = def.inputs();
    let mut per_input = Vec::new();
    for name in &inputs {
        let Some(m) = defs.metrics.get(name) else {
            return Err(AnalyticsError::Usage(format!("unknown metric `{name}`")));
        };
        let sub = MetricQuery {
            metric: name.clone(),
            ..q.clone()
        };
        let missing_is_zero = matches!(
            m.kind,
            MetricKind::Count | MetricKind::CountDistinct | MetricKind::Sum
        );
        per_input.push((values(reader, defs, m, &sub).await?, missing_is_zero));
    }
    let keys: BTreeSet<Key> = per_input
        .iter()
        .flat_map(|(v, _)| v.keys().cloned())
        .collect();
    let keys: Vec<Key> = keys.into_iter().collect();
    // One row per (period, slice), one column per input; the expression evaluated by SQL.
    let mut fields = vec![Field::new("period", DataType::Date32, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Date32Array::from(
        keys.iter()
            .map(|(p, _)| {
                (*p - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
            })
            .collect::<Vec<_>>(),
    ))];
    for i in 0..q.by.len() {
        fields.push(Field::new(format!("s{i}"), DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(
            keys.iter().map(|(_, s)| s[i].clone()).collect::<Vec<_>>(),
        )));
    }
    for (name, (vals, zero)) in inputs.iter().zip(&per_input) {
        fields.push(Field::new(
            name.to_ascii_lowercase(),
            DataType::Float64,
            true,
        ));
        columns.push(Arc::new(Float64Array::from(
            keys.iter()
                .map(|k| match vals.get(k) {
                    Some(v) => *v,
                    None if *zero => Some(0.0),
                    None => None,
                })
                .collect::<Vec<_>>(),
        )));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let ctx = SessionContext::new();
    ctx.register_table(
        "inputs",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;
    let expr = match def.kind {
        MetricKind::Ratio => format!(
            "CAST({} AS DOUBLE) / NULLIF(CAST({} AS DOUBLE), 0)",
            def.numerator.as_deref().unwrap_or_default(),
            def.denominator.as_deref().unwrap_or_default()
        ),
        _ => format!(
            "CAST(({}) AS DOUBLE)",
            def.expression.as_deref().unwrap_or_default()
        ),
    };
    let sql = format!("SELECT {expr} AS value FROM inputs");
    let batches = darkroom_storage::run_sql(&ctx, &sql)
        .await
        .map_err(|e| AnalyticsError::Query {
            what: format!("metric `{}`", def.name),
            message: e.to_string(),
            sql: sql.clone(),
        })?
        .batches;
    let mut out = BTreeMap::new();
    let mut i = 0;
    for b in &batches {
        let v = cast(b.column(0), &DataType::Float64)?;
        let v = v.as_primitive::<Float64Type>();
        for row in 0..b.num_rows() {
            let value = (v.is_valid(row) && v.value(row).is_finite()).then(|| v.value(row));
            if let Some(k) = keys.get(i) {
                out.insert(k.clone(), value);
            }
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn periods_start_on_monday_and_the_first() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 12).unwrap(); // a Thursday
        assert_eq!(
            Grain::Week.start(d),
            NaiveDate::from_ymd_opt(2026, 3, 9).unwrap()
        );
        assert_eq!(
            Grain::Week.end(d),
            NaiveDate::from_ymd_opt(2026, 3, 15).unwrap()
        );
        assert_eq!(
            Grain::Month.start(d),
            NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
        );
        assert_eq!(
            Grain::Month.end(d),
            NaiveDate::from_ymd_opt(2026, 3, 31).unwrap()
        );
    }

    #[test]
    fn dimension_expressions_get_their_alias() {
        assert_eq!(
            qualify(
                "CASE WHEN f.event_date = d.first_seen_date THEN 'd.x' END",
                "d_0"
            ),
            "CASE WHEN f.event_date = d_0.first_seen_date THEN 'd.x' END"
        );
        assert_eq!(qualify("d.plan", "d_1"), "d_1.plan");
        assert_eq!(qualify("dd.plan", "d_1"), "dd.plan");
    }
}
