//! Snapshots: type-2 slowly changing dimensions.
//!
//! The model selects the rows as they are now (one per `unique_key`). Against the table's
//! current versions, each run:
//!
//! - keeps a row that did not change;
//! - closes a changed row's version (`valid_to` = the new version's `valid_from`,
//!   `is_current` false) and opens a new one;
//! - closes the version of a row that is gone from the source (`valid_to` = the snapshot
//!   time) and opens a new version if the key comes back later;
//! - opens a first version for a new key.
//!
//! A change is noticed by `updated_at` moving forward (`strategy = 'timestamp'`; the new
//! version is valid from that `updated_at`) or by any of `check_cols` changing value
//! (`strategy = 'check'`; valid from the snapshot time). The snapshot time of a run for date D
//! is the end of D in the project time zone: the state the source was in when that night's
//! extract read it. The surrogate key is a hash of the natural key and `valid_from`, so it is
//! the same on every rebuild. History starts at the first snapshot: versions before it are not
//! invented.
//!
//! The table is rewritten in one commit per run (dimensions are small next to facts), so a
//! crash leaves the previous snapshot or the new one. A snapshot only moves forward: a run for
//! a date before the last one recorded is refused, since the source can only be read as it is
//! now.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Days, NaiveDate};
use darkroom_config::Project;
use darkroom_storage::{PartitionWrite, Warehouse, WriteOutcome};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::build::relaxed;
use crate::check::{IS_CURRENT, VALID_FROM, VALID_TO, stored_schema};
use crate::functions::{self, UNKNOWN_KEY};
use crate::model::{Model, Strategy};
use crate::template::quote;

/// What one snapshot run changed.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SnapshotChanges {
    /// Keys seen for the first time.
    pub new: u64,
    /// Keys whose row changed: one version closed, one opened.
    pub changed: u64,
    /// Keys gone from the source: their version closed.
    pub deleted: u64,
    /// Keys back after being deleted: a new version opened.
    pub reopened: u64,
    pub unchanged: u64,
}

/// The snapshot time of a run for `date`: the end of that day in the project time zone, as
/// `YYYY-MM-DDTHH:MM:SS` in UTC.
pub fn snapshot_time(project: &Project, date: NaiveDate) -> String {
    let next = date.checked_add_days(Days::new(1)).unwrap_or(date);
    crate::template::utc_midnight(project.timezone(), next)
}

fn ts(expr: &str) -> String {
    format!("arrow_cast({expr}, 'Timestamp(µs, \"UTC\")')")
}

/// Run a snapshot for `date` over the model's rendered SQL.
pub async fn run(
    project: &Project,
    model: &Model,
    warehouse: &Warehouse,
    ctx: &SessionContext,
    sql: &str,
    date: NaiveDate,
    fingerprint: String,
) -> Result<(WriteOutcome, SnapshotChanges), String> {
    let name = model.name.as_str();
    let task = format!("build/{name}");
    if let Some(done) = warehouse
        .completion(name, &task)
        .await
        .map_err(|e| e.to_string())?
        && let Some(last) = serde_json::from_str::<serde_json::Value>(&done.fingerprint)
            .ok()
            .and_then(|v| v.get("snapshot_date")?.as_str().map(str::to_string))
            .and_then(|d| d.parse::<NaiveDate>().ok())
        && date < last
    {
        return Err(format!(
            "`{name}` already holds the snapshot of {last}; a snapshot only moves forward (the \
             source can only be read as it is now), so {date} cannot be taken after it"
        ));
    }
    let settings = &model.settings;
    let key_name = settings.surrogate_key.clone().unwrap_or_default();
    let df = ctx.sql(sql).await.map_err(|e| e.to_string())?;
    let new_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let new_rows = df.collect().await.map_err(|e| e.to_string())?;

    let local = SessionContext::new();
    functions::register(&local);
    let mem =
        MemTable::try_new(Arc::clone(&new_schema), vec![new_rows]).map_err(|e| e.to_string())?;
    local
        .register_table("__new", Arc::new(mem))
        .map_err(|e| e.to_string())?;
    let stored = stored_schema(model, &new_schema);
    let old_provider = ctx.table_provider(name).await.ok();
    let old_schema = old_provider.as_ref().map(|p| p.schema());
    match old_provider {
        Some(p)
            if old_schema
                .as_ref()
                .is_some_and(|s| s.field_with_name(IS_CURRENT).is_ok()) =>
        {
            local
                .register_table("__old", p)
                .map_err(|e| e.to_string())?;
        }
        _ => {
            let empty =
                MemTable::try_new(Arc::clone(&stored), vec![vec![]]).map_err(|e| e.to_string())?;
            local
                .register_table("__old", Arc::new(empty))
                .map_err(|e| e.to_string())?;
        }
    }
    let old_schema = local
        .table_provider("__old")
        .await
        .map_err(|e| e.to_string())?
        .schema();

    let keys: Vec<String> = settings.unique_key.iter().map(|k| quote(k)).collect();
    let key_list = keys.join(", ");
    // one row per key, no NULL key: a snapshot cannot tell versions of an unnamed row apart
    let dupes = darkroom_storage::run_sql(
        &local,
        &format!(
            "SELECT {key_list}, count(*) AS n FROM __new GROUP BY {key_list} \
             HAVING count(*) > 1 OR {} LIMIT 5",
            keys.iter()
                .map(|k| format!("{k} IS NULL"))
                .collect::<Vec<_>>()
                .join(" OR ")
        ),
    )
    .await
    .map_err(|e| e.to_string())?;
    if dupes.num_rows() > 0 {
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&dupes.batches)
            .map(|t| t.to_string())
            .unwrap_or_default();
        return Err(format!(
            "the model must give one row per unique_key ({}) and no NULL key; these do not:\n{text}",
            settings.unique_key.join(", ")
        ));
    }

    let t = snapshot_time(project, date);
    let t_lit = ts(&format!("TIMESTAMP '{t}'"));
    let on = |a: &str, b: &str| {
        keys.iter()
            .map(|k| format!("{a}.{k} = {b}.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let data_cols: Vec<(String, DataType)> = new_schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    // the model's columns read from an old version (NULL where the table had no such column)
    let old_cols = |alias: &str| -> String {
        data_cols
            .iter()
            .map(|(c, ty)| match old_schema.field_with_name(c) {
                Ok(f) if crate::build::same_type(f.data_type(), ty) => {
                    format!("{alias}.{}", quote(c))
                }
                Ok(_) => format!("CAST({alias}.{} AS {ty}) AS {}", quote(c), quote(c)),
                Err(_) => format!("arrow_cast(NULL, '{ty}') AS {}", quote(c)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let new_cols = |alias: &str| -> String {
        data_cols
            .iter()
            .map(|(c, _)| format!("{alias}.{}", quote(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (changed, vf_changed, vf_new) = match settings.strategy {
        Some(Strategy::Timestamp) => {
            let u = quote(settings.updated_at.as_deref().unwrap_or_default());
            let nu = ts(&format!("n.{u}"));
            (
                format!("{nu} > {}", ts(&format!("c.{u}"))),
                format!("greatest({nu}, c.{VALID_FROM})"),
                format!(
                    "CASE WHEN l.__last_to IS NULL THEN coalesce({nu}, {t_lit}) \
                     ELSE greatest(coalesce({nu}, {t_lit}), l.__last_to) END"
                ),
            )
        }
        _ => {
            let tracked: Vec<&str> = if settings.check_cols.iter().any(|c| c == "all") {
                data_cols
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .filter(|c| !settings.unique_key.iter().any(|k| k == c))
                    .collect()
            } else {
                settings.check_cols.iter().map(String::as_str).collect()
            };
            let same: Vec<String> = tracked
                .iter()
                .map(|c| {
                    let c = quote(c);
                    format!("(c.{c} IS NOT DISTINCT FROM n.{c})")
                })
                .collect();
            (
                format!("NOT ({})", same.join(" AND ")),
                t_lit.clone(),
                t_lit.clone(),
            )
        }
    };
    let sk_of = |vf: &str| {
        let parts: Vec<String> = keys
            .iter()
            .map(|k| format!("n.{k}"))
            .chain(std::iter::once(vf.to_string()))
            .collect();
        format!("surrogate_key({})", parts.join(", "))
    };
    let sk = quote(&key_name);
    let vf = quote(VALID_FROM);
    let vt = quote(VALID_TO);
    let ic = quote(IS_CURRENT);
    let not_unknown = format!("{sk} <> {UNKNOWN_KEY}");
    let query = format!(
        "WITH cur AS (SELECT * FROM __old WHERE {ic} AND {not_unknown}), \
         hist AS (SELECT * FROM __old WHERE NOT {ic} AND {not_unknown}), \
         last AS (SELECT {key_list}, max({vt}) AS __last_to FROM hist GROUP BY {key_list}) \
         SELECT h.{sk}, {hist_cols}, h.{vf}, h.{vt}, h.{ic}, 'history' AS __kind FROM hist h \
         UNION ALL \
         SELECT c.{sk}, {cur_cols}, c.{vf}, c.{vt}, c.{ic}, 'unchanged' FROM cur c JOIN __new n ON {on_cn} WHERE NOT ({changed}) \
         UNION ALL \
         SELECT c.{sk}, {cur_cols}, c.{vf}, {vf_changed}, false, 'closed' FROM cur c JOIN __new n ON {on_cn} WHERE {changed} \
         UNION ALL \
         SELECT c.{sk}, {cur_cols}, c.{vf}, {t_lit}, false, 'deleted' FROM cur c WHERE NOT EXISTS (SELECT 1 FROM __new n WHERE {on_cn}) \
         UNION ALL \
         SELECT {sk_changed}, {n_cols}, {vf_changed}, {null_ts}, true, 'changed' FROM cur c JOIN __new n ON {on_cn} WHERE {changed} \
         UNION ALL \
         SELECT {sk_new}, {n_cols}, {vf_new}, {null_ts}, true, CASE WHEN l.__last_to IS NULL THEN 'new' ELSE 'reopened' END \
           FROM __new n LEFT JOIN last l ON {on_ln} WHERE NOT EXISTS (SELECT 1 FROM cur c WHERE {on_cn})",
        hist_cols = old_cols("h"),
        cur_cols = old_cols("c"),
        n_cols = new_cols("n"),
        on_cn = on("c", "n"),
        on_ln = on("l", "n"),
        sk_changed = sk_of(&vf_changed),
        sk_new = sk_of(&vf_new),
        null_ts = ts("NULL"),
    );
    tracing::debug!(model = name, %query, "snapshot query");
    let result = darkroom_storage::run_sql(&local, &query)
        .await
        .map_err(|e| format!("snapshot query: {e}"))?;
    let mut changes = SnapshotChanges::default();
    let mut batches: Vec<RecordBatch> = Vec::new();
    for batch in &result.batches {
        let kinds = batch.column(batch.num_columns() - 1);
        let kinds = kinds
            .as_string_opt::<i32>()
            .ok_or("snapshot kinds are not text")?;
        for k in kinds.iter().flatten() {
            match k {
                "new" => changes.new += 1,
                "changed" => changes.changed += 1,
                "deleted" => changes.deleted += 1,
                "reopened" => changes.reopened += 1,
                "unchanged" => changes.unchanged += 1,
                _ => {}
            }
        }
        let columns = batch.columns()[..batch.num_columns() - 1].to_vec();
        let columns = columns
            .into_iter()
            .zip(stored.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(c)
                } else {
                    datafusion::arrow::compute::cast(&c, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        batches.push(
            RecordBatch::try_new(Arc::clone(&relaxed(&stored)), columns)
                .map_err(|e| e.to_string())?,
        );
    }
    if settings.unknown_member {
        batches.push(unknown_version(&relaxed(&stored), &key_name).map_err(|e| e.to_string())?);
    }
    let schema = relaxed(&stored);
    let stream = futures::stream::iter(batches.into_iter().map(Ok));
    let input = Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), stream));
    // the fingerprint of the inputs, and the day the snapshot records
    let mut fp: BTreeMap<String, serde_json::Value> = serde_json::from_str(&fingerprint)
        .unwrap_or_else(|_| BTreeMap::from([("inputs".to_string(), fingerprint.clone().into())]));
    fp.insert("snapshot_date".into(), serde_json::json!(date.to_string()));
    let outcome = warehouse
        .replace_table(PartitionWrite {
            table: name.to_string(),
            partition_columns: vec![],
            partition: vec![],
            schema,
            input,
            task,
            fingerprint: serde_json::to_string(&fp).unwrap_or_default().into(),
            plain_columns: vec![],
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok((outcome, changes))
}

/// The unknown member as a snapshot row: current, valid from the start of time.
fn unknown_version(
    schema: &SchemaRef,
    key: &str,
) -> Result<RecordBatch, datafusion::error::DataFusionError> {
    let base = crate::build::unknown_member(schema, key)?;
    let mut columns = base.columns().to_vec();
    for (i, f) in schema.fields().iter().enumerate() {
        if f.name() == IS_CURRENT {
            columns[i] = Arc::new(datafusion::arrow::array::BooleanArray::from(vec![true]));
        } else if f.name() == VALID_FROM {
            columns[i] = Arc::new(
                datafusion::arrow::array::TimestampMicrosecondArray::from(vec![0i64])
                    .with_timezone("UTC"),
            );
        }
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
