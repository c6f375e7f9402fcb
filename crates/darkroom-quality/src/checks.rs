//! Running declared checks and reconciliations for one night: one SQL query each, over the
//! latest table versions (what the night's publish would pin).

use chrono::{NaiveDate, TimeZone};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use serde_json::json;

use crate::defs::{Check, CheckKind, Reconcile};
use crate::{Finding, Outcome, sql_date};

/// Rows shown as evidence.
const SAMPLES: usize = 5;

/// The rows of a query as text (NULL as `None`).
pub(crate) async fn rows(
    ctx: &SessionContext,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let result = darkroom_storage::run_sql(ctx, sql)
        .await
        .map_err(|e| e.to_string())?;
    Ok(batches_to_rows(&result.batches))
}

pub(crate) fn batches_to_rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    let options = FormatOptions::default();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(col, f)| {
                        if col.is_null(row) {
                            None
                        } else {
                            f.as_ref().map(|f| f.value(row).to_string())
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

fn number(cell: Option<&Option<String>>) -> Option<f64> {
    cell.and_then(|c| c.as_deref()).and_then(|s| s.parse().ok())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The rows a check looks at.
fn scope(check: &Check, date: NaiveDate) -> String {
    let mut parts = Vec::new();
    if let Some(col) = &check.date_column {
        parts.push(format!("{} = {}", quote_ident(col), sql_date(date)));
    }
    if let Some(f) = &check.filter {
        parts.push(format!("({f})"));
    }
    if parts.is_empty() {
        "TRUE".into()
    } else {
        parts.join(" AND ")
    }
}

/// Run one check for `date`. A check whose query cannot run fails, with the error.
pub async fn run_check(
    ctx: &SessionContext,
    check: &Check,
    date: NaiveDate,
    tz: chrono_tz::Tz,
) -> Finding {
    let mut finding = Finding {
        id: format!("check:{}", check.name),
        kind: check.kind.name().to_string(),
        subject: check.table.clone(),
        date,
        outcome: Outcome::Pass,
        severity: check.severity,
        message: String::new(),
        evidence: json!({"definition": format!("{}:{}", check.origin.path.display(), check.origin.line)}),
        at_stake: None,
        tables: vec![check.table.clone()],
    };
    match evaluate(ctx, check, date, tz).await {
        Ok((failing, message, evidence)) => {
            finding.outcome = if failing > 0 {
                Outcome::Fail
            } else {
                Outcome::Pass
            };
            finding.at_stake = (failing > 0).then_some(failing);
            finding.message = message;
            if let (Some(obj), serde_json::Value::Object(more)) =
                (finding.evidence.as_object_mut(), evidence)
            {
                obj.extend(more);
            }
        }
        Err(e) => {
            finding.outcome = Outcome::Fail;
            finding.message = format!(
                "{} check `{}` on {} could not run: {e}",
                check.kind.name(),
                check.name,
                check.table
            );
        }
    }
    finding
}

/// (rows failing, message, evidence).
async fn evaluate(
    ctx: &SessionContext,
    check: &Check,
    date: NaiveDate,
    tz: chrono_tz::Tz,
) -> Result<(i64, String, serde_json::Value), String> {
    let table = quote_ident(&check.table);
    let where_ = scope(check, date);
    let t = &check.table;
    match &check.kind {
        CheckKind::NotNull { columns } => {
            let sums: Vec<String> = columns
                .iter()
                .map(|c| {
                    format!(
                        "CAST(COALESCE(SUM(CASE WHEN {} IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT)",
                        quote_ident(c)
                    )
                })
                .collect();
            let sql = format!(
                "SELECT count(*), {} FROM {table} WHERE {where_}",
                sums.join(", ")
            );
            let r = rows(ctx, &sql).await?;
            let row = r.first().cloned().unwrap_or_default();
            let checked = number(row.first()).unwrap_or(0.0) as i64;
            let mut nulls = serde_json::Map::new();
            let mut total = 0i64;
            let mut named = Vec::new();
            for (i, c) in columns.iter().enumerate() {
                let n = number(row.get(i + 1)).unwrap_or(0.0) as i64;
                nulls.insert(c.clone(), json!(n));
                if n > 0 {
                    named.push(format!("{c}: {n}"));
                }
                total += n;
            }
            let message = if total > 0 {
                format!(
                    "{t}: NULL where it must not be ({}) of {checked} rows",
                    named.join(", ")
                )
            } else {
                format!("{t}: no NULL in {} ({checked} rows)", columns.join(", "))
            };
            Ok((
                total,
                message,
                json!({"rows_checked": checked, "nulls": nulls}),
            ))
        }
        CheckKind::Unique { columns } => {
            let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
            let cols = cols.join(", ");
            let sql = format!(
                "SELECT {cols}, count(*) AS n FROM {table} WHERE {where_} GROUP BY {cols} \
                 HAVING count(*) > 1 ORDER BY n DESC"
            );
            let r = rows(ctx, &sql).await?;
            let extra: i64 = r
                .iter()
                .map(|row| number(row.last()).unwrap_or(0.0) as i64 - 1)
                .sum();
            let samples: Vec<serde_json::Value> =
                r.iter().take(SAMPLES).map(|row| json!(row)).collect();
            let message = if r.is_empty() {
                format!("{t}: ({}) is unique", columns.join(", "))
            } else {
                format!(
                    "{t}: {} values of ({}) appear more than once ({extra} extra rows), e.g. {}",
                    r.len(),
                    columns.join(", "),
                    show(&r[0][..r[0].len() - 1])
                )
            };
            Ok((
                extra,
                message,
                json!({"duplicate_keys": r.len(), "samples": samples}),
            ))
        }
        CheckKind::Relationships {
            column,
            to,
            to_column,
        } => {
            let sql = format!(
                "SELECT CAST(a.{c} AS VARCHAR) AS key, count(*) AS n FROM {table} a \
                 LEFT JOIN (SELECT DISTINCT {tc} AS k FROM {to_t}) b ON a.{c} = b.k \
                 WHERE ({where_}) AND a.{c} IS NOT NULL AND b.k IS NULL GROUP BY 1 ORDER BY n DESC",
                c = quote_ident(column),
                tc = quote_ident(to_column),
                to_t = quote_ident(to),
            );
            let r = rows(ctx, &sql).await?;
            let orphans: i64 = r
                .iter()
                .map(|row| number(row.get(1)).unwrap_or(0.0) as i64)
                .sum();
            let keys: Vec<String> = r
                .iter()
                .take(SAMPLES)
                .filter_map(|row| row[0].clone())
                .collect();
            let message = if r.is_empty() {
                format!("{t}.{column}: every key exists in {to}.{to_column}")
            } else {
                format!(
                    "{t}.{column}: {orphans} rows point at {} keys missing from {to}.{to_column}, e.g. {}",
                    r.len(),
                    keys.join(", ")
                )
            };
            Ok((
                orphans,
                message,
                json!({"missing_keys": r.len(), "samples": keys}),
            ))
        }
        CheckKind::AcceptedValues { column, values } => {
            let list: Vec<String> = values.iter().map(|v| quote_literal(v)).collect();
            let sql = format!(
                "SELECT CAST({c} AS VARCHAR) AS value, count(*) AS n FROM {table} \
                 WHERE ({where_}) AND {c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({}) \
                 GROUP BY 1 ORDER BY n DESC",
                list.join(", "),
                c = quote_ident(column),
            );
            let r = rows(ctx, &sql).await?;
            let bad: i64 = r
                .iter()
                .map(|row| number(row.get(1)).unwrap_or(0.0) as i64)
                .sum();
            let found: Vec<serde_json::Value> = r
                .iter()
                .map(|row| json!({"value": row[0], "rows": number(row.get(1))}))
                .collect();
            let message = if r.is_empty() {
                format!("{t}.{column}: every value is accepted")
            } else {
                let names: Vec<String> = r
                    .iter()
                    .take(SAMPLES)
                    .map(|row| {
                        format!(
                            "`{}` ({} rows)",
                            row[0].clone().unwrap_or_default(),
                            number(row.get(1)).unwrap_or(0.0)
                        )
                    })
                    .collect();
                format!(
                    "{t}.{column}: unexpected value {} (accepted: {})",
                    names.join(", "),
                    values.join(", ")
                )
            };
            Ok((
                bad,
                message,
                json!({"unexpected": found, "accepted": values}),
            ))
        }
        CheckKind::RowCount { min, max } => {
            let sql = format!("SELECT count(*) FROM {table} WHERE {where_}");
            let r = rows(ctx, &sql).await?;
            let n = number(r.first().and_then(|row| row.first())).unwrap_or(0.0) as u64;
            let low = min.is_some_and(|m| n < m);
            let high = max.is_some_and(|m| n > m);
            let range = format!(
                "{}..{}",
                min.map(|m| m.to_string()).unwrap_or_default(),
                max.map(|m| m.to_string()).unwrap_or_default()
            );
            let at_stake = if low {
                min.unwrap_or(0) - n
            } else if high {
                n - max.unwrap_or(0)
            } else {
                0
            };
            let message = if low || high {
                format!("{t}: {n} rows, outside {range}")
            } else {
                format!("{t}: {n} rows, within {range}")
            };
            Ok((
                i64::try_from(at_stake).unwrap_or(i64::MAX),
                message,
                json!({"rows": n, "min": min, "max": max}),
            ))
        }
        CheckKind::Freshness {
            column,
            max_age_hours,
        } => {
            let sql = format!(
                "SELECT max({c}) AS newest FROM {table} WHERE {where_}",
                c = quote_ident(column)
            );
            let result = darkroom_storage::run_sql(ctx, &sql)
                .await
                .map_err(|e| e.to_string())?;
            let newest = newest_instant(&result.batches, tz);
            // the last instant of the night in the project's time zone
            let end = date
                .succ_opt()
                .and_then(|d| {
                    tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
                        .earliest()
                })
                .map(|t| t.with_timezone(&chrono::Utc));
            let (Some(end), Some(newest)) = (end, newest) else {
                return Ok((
                    1,
                    format!("{t}.{column}: no rows at all, so nothing is fresh"),
                    json!({"newest": null, "max_age_hours": max_age_hours}),
                ));
            };
            let age_h = (end - newest).num_seconds() as f64 / 3600.0;
            let stale = age_h > *max_age_hours;
            let message = if stale {
                format!(
                    "{t}.{column}: newest is {} ({age_h:.1} h before the end of {date}), older than \
                     the {max_age_hours} h allowed",
                    newest.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
                )
            } else {
                format!("{t}.{column}: newest {age_h:.1} h before the end of {date}")
            };
            Ok((
                i64::from(stale),
                message,
                json!({"newest": newest.to_rfc3339(), "age_hours": age_h, "max_age_hours": max_age_hours}),
            ))
        }
        CheckKind::Schema { columns, exact } => {
            let df = ctx
                .table(check.table.as_str())
                .await
                .map_err(|e| format!("no table {t}: {e}"))?;
            let schema = df.schema().as_arrow().clone();
            let mut problems = Vec::new();
            for (name, ty) in columns {
                match schema.field_with_name(name) {
                    Err(_) => {
                        // a column of a close name that appeared is the likely rename
                        let new: Vec<&str> = schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .filter(|n| !columns.contains_key(*n))
                            .collect();
                        problems.push(if new.is_empty() {
                            format!("column `{name}` is missing")
                        } else {
                            format!(
                                "column `{name}` is missing (new columns: {})",
                                new.join(", ")
                            )
                        });
                    }
                    Ok(f) if !type_matches(ty, f.data_type()) => problems.push(format!(
                        "column `{name}` is {} , expected {ty}",
                        f.data_type()
                    )),
                    Ok(_) => {}
                }
            }
            if *exact {
                for f in schema.fields() {
                    if !columns.contains_key(f.name()) {
                        problems.push(format!(
                            "unexpected column `{}` ({})",
                            f.name(),
                            f.data_type()
                        ));
                    }
                }
            }
            let message = if problems.is_empty() {
                format!("{t}: schema as expected")
            } else {
                format!("{t}: schema changed: {}", problems.join("; "))
            };
            Ok((
                problems.len() as i64,
                message,
                json!({"problems": problems}),
            ))
        }
        CheckKind::Sql { sql } => {
            let sql = sql.replace("{date}", &sql_date(date));
            let r = rows(ctx, &format!("SELECT * FROM ({sql}) q LIMIT 1000")).await?;
            let samples: Vec<serde_json::Value> =
                r.iter().take(SAMPLES).map(|row| json!(row)).collect();
            let n = r.len() as i64;
            let message = if n > 0 {
                format!(
                    "{}: {n}{} failing rows, e.g. {}",
                    check.name,
                    if n == 1000 { "+" } else { "" },
                    show(&r[0])
                )
            } else {
                format!("{}: no failing rows", check.name)
            };
            Ok((n, message, json!({"samples": samples})))
        }
        CheckKind::Expression { expression } => {
            let sql = format!(
                "SELECT count(*) FROM {table} WHERE ({where_}) AND NOT COALESCE(({expression}), FALSE)"
            );
            let r = rows(ctx, &sql).await?;
            let n = number(r.first().and_then(|row| row.first())).unwrap_or(0.0) as i64;
            let message = if n > 0 {
                format!("{t}: {n} rows break `{expression}`")
            } else {
                format!("{t}: every row satisfies `{expression}`")
            };
            Ok((n, message, json!({"expression": expression})))
        }
    }
}

fn show(row: &[Option<String>]) -> String {
    let cells: Vec<String> = row
        .iter()
        .map(|c| c.clone().unwrap_or_else(|| "NULL".into()))
        .collect();
    format!("({})", cells.join(", "))
}

/// The single value of a `max(...)` as an instant: a timestamp as is, a date as its end.
fn newest_instant(
    batches: &[RecordBatch],
    tz: chrono_tz::Tz,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    let col = batch.column(0);
    if col.is_null(0) {
        return None;
    }
    match col.data_type() {
        DataType::Timestamp(unit, _) => {
            let micros = datafusion::arrow::compute::cast(
                col,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )
            .ok()?;
            let v = micros
                .as_any()
                .downcast_ref::<datafusion::arrow::array::TimestampMicrosecondArray>()?
                .value(0);
            let _ = unit;
            chrono::DateTime::from_timestamp_micros(v)
        }
        DataType::Date32 | DataType::Date64 => {
            let days = datafusion::arrow::compute::cast(col, &DataType::Date32).ok()?;
            let d = days
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Date32Array>()?
                .value_as_date(0)?;
            let next = d.succ_opt()?;
            tz.from_local_datetime(&next.and_time(chrono::NaiveTime::MIN))
                .earliest()
                .map(|t| t.with_timezone(&chrono::Utc) - chrono::Duration::microseconds(1))
        }
        _ => None,
    }
}

fn type_matches(expected: &str, actual: &DataType) -> bool {
    match expected {
        "bigint" => matches!(actual, DataType::Int64 | DataType::UInt64),
        "int" => matches!(actual, DataType::Int32 | DataType::UInt32 | DataType::Int64),
        "smallint" => matches!(actual, DataType::Int16 | DataType::Int8),
        "double" | "float" => matches!(actual, DataType::Float64 | DataType::Float32),
        "text" => matches!(
            actual,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ),
        "date" => matches!(actual, DataType::Date32 | DataType::Date64),
        "timestamp" => matches!(actual, DataType::Timestamp(..)),
        "boolean" => matches!(actual, DataType::Boolean),
        "decimal" => matches!(actual, DataType::Decimal128(..) | DataType::Decimal256(..)),
        "binary" => matches!(
            actual,
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView
        ),
        _ => false,
    }
}

/// Run one reconciliation for `date`.
pub async fn run_reconcile(ctx: &SessionContext, rec: &Reconcile, date: NaiveDate) -> Finding {
    let mut finding = Finding {
        id: format!("reconcile:{}", rec.name),
        kind: "reconcile".into(),
        subject: rec.name.clone(),
        date,
        outcome: Outcome::Pass,
        severity: rec.severity,
        message: String::new(),
        evidence: json!({"definition": format!("{}:{}", rec.origin.path.display(), rec.origin.line)}),
        at_stake: None,
        tables: Vec::new(),
    };
    let one = |sql: &str| {
        let sql = sql.replace("{date}", &sql_date(date));
        async move {
            let r = rows(ctx, &sql).await?;
            number(r.first().and_then(|row| row.first()))
                .ok_or_else(|| "returned no number".to_string())
        }
    };
    let (left, right) = match (one(&rec.left).await, one(&rec.right).await) {
        (Ok(l), Ok(r)) => (l, r),
        (Err(e), _) | (_, Err(e)) => {
            finding.outcome = Outcome::Fail;
            finding.message = format!("reconciliation `{}` could not run: {e}", rec.name);
            return finding;
        }
    };
    let diff = (left - right).abs();
    let allowed = (rec.tolerance * left.abs().max(right.abs())).max(rec.min_difference as f64);
    let relative = if left.abs().max(right.abs()) > 0.0 {
        diff / left.abs().max(right.abs())
    } else {
        0.0
    };
    finding.at_stake = Some(diff.round() as i64);
    if let Some(obj) = finding.evidence.as_object_mut() {
        obj.insert(rec.left_label.clone(), json!(left));
        obj.insert(rec.right_label.clone(), json!(right));
        obj.insert("left".into(), json!(left));
        obj.insert("right".into(), json!(right));
        obj.insert("difference".into(), json!(diff));
        obj.insert("relative".into(), json!(relative));
        obj.insert("tolerance".into(), json!(rec.tolerance));
    }
    let fmt = |v: f64| {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    if diff > allowed {
        finding.outcome = Outcome::Fail;
        finding.message = format!(
            "{}: {} {} vs {} {}: {:.1}% apart, more than the {:.1}% allowed",
            rec.name,
            rec.left_label,
            fmt(left),
            rec.right_label,
            fmt(right),
            relative * 100.0,
            rec.tolerance * 100.0
        );
    } else {
        finding.at_stake = None;
        finding.message = format!(
            "{}: {} {} vs {} {} agree (within {:.1}%)",
            rec.name,
            rec.left_label,
            fmt(left),
            rec.right_label,
            fmt(right),
            rec.tolerance * 100.0
        );
    }
    finding
}
