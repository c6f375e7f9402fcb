//! Building models: each selected model, in dependency order, materialised as its settings
//! say. A model whose upstream failed is skipped with the reason; independent models still
//! build.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use darkroom_config::{Diagnostics, Project};
use darkroom_storage::{PartitionWrite, RangeWrite, Warehouse, WriteOutcome};
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::view::ViewTable;
use datafusion::common::ScalarValue;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use serde::Serialize;

use crate::check::check;
use crate::functions::{self, UNKNOWN_KEY};
use crate::model::{Materialized, Model};
use crate::template::{RenderContext, quote, render};
use crate::{Models, snapshot, template_error};

/// The most dates one query of an incremental model computes: a longer range is built in
/// chunks of this many days, one commit each.
pub const MAX_RANGE_DAYS: u64 = 31;

/// Whether an incremental model's template computes every date from `date_from` to
/// `date_to` in one query: it names them, or it selects its rows with the helpers that span
/// them (`in_dates`, `run_start_utc`, `run_end_utc`) and not with `run_date`, which is one
/// date (the last). Otherwise it is built date by date.
fn computes_a_range(template: &str) -> bool {
    let names = |w: &str| template.contains(w);
    names("date_from")
        || names("date_to")
        || (["in_dates", "run_start_utc", "run_end_utc"]
            .iter()
            .any(|w| names(w))
            && !names("run_date"))
}

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The run date: the partition incremental models build, the day snapshots record.
    pub date: Option<NaiveDate>,
    /// With `date`, a range of dates (a backfill): incremental models compute every date
    /// from `from` to `date` (in one query and one commit when their template uses
    /// `date_from`/`date_to`, else date by date); the other models build once, for `date`.
    pub from: Option<NaiveDate>,
    /// `--select` entries (`name`, `name+`, `+name`); empty: every model.
    pub select: Vec<String>,
    /// `--var name=value`.
    pub vars: BTreeMap<String, String>,
}

/// How one model's build went.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport {
    pub model: String,
    pub materialized: &'static str,
    /// `built`, `failed` or `skipped`.
    pub status: &'static str,
    /// The partition written (`event_date=2026-01-31`), for incremental models.
    pub partition: Option<String>,
    pub rows: Option<u64>,
    pub table_version: Option<u64>,
    /// Rows whose `*_key` column points at a dimension's unknown member (-1), per column:
    /// facts kept although their dimension row does not exist (yet).
    pub unknown_keys: BTreeMap<String, u64>,
    /// For snapshots: versions opened and closed by this run.
    pub snapshot: Option<snapshot::SnapshotChanges>,
    /// Earlier dates rebuilt as well: named by this model's `rebuild_dates` query, or by
    /// an upstream model's.
    pub rebuilt_dates: Vec<NaiveDate>,
    pub seconds: f64,
    pub error: Option<String>,
}

/// How a build went.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// The first date incremental models computed (the run date unless a range was built).
    pub from: NaiveDate,
    pub date: NaiveDate,
    pub models: Vec<ModelReport>,
}

impl BuildReport {
    pub fn failed(&self) -> usize {
        self.models.iter().filter(|m| m.status == "failed").count()
    }
    pub fn skipped(&self) -> usize {
        self.models.iter().filter(|m| m.status == "skipped").count()
    }
}

/// Errors that stop a build before any model runs.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}\n{n} problem(s) in the models; nothing was built", n = .0.len())]
    Invalid(Diagnostics),
    #[error("{0}")]
    Select(String),
    #[error(transparent)]
    Storage(#[from] darkroom_storage::StorageError),
}

/// The date a build runs for when none is given: yesterday in the project's time zone.
pub fn default_date(project: &Project) -> NaiveDate {
    let today = chrono::Utc::now()
        .with_timezone(&project.timezone())
        .date_naive();
    today.pred_opt().unwrap_or(today)
}

/// Check every model, then build the selected ones in order. `progress` hears each model as
/// it starts.
pub async fn build(
    project: &Project,
    models: &Models,
    warehouse: &Warehouse,
    options: &BuildOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<BuildReport, BuildError> {
    let date = options.date.unwrap_or_else(|| default_date(project));
    let from = options.from.unwrap_or(date);
    if from > date {
        return Err(BuildError::Select(format!(
            "--from {from} is after the last date {date}"
        )));
    }
    let selected = models
        .graph
        .select(&models.models, &options.select)
        .map_err(BuildError::Select)?;
    let builder = Builder::prepare(project, models, warehouse, date, &options.vars).await?;
    let dates: BTreeSet<NaiveDate> = from.iter_days().take_while(|d| *d <= date).collect();
    let mut reports: Vec<ModelReport> = Vec::new();
    let mut failed: BTreeMap<usize, String> = BTreeMap::new();
    let mut extra_dates: BTreeMap<usize, BTreeSet<NaiveDate>> = BTreeMap::new();
    for &i in &selected {
        let model = &models.models[i];
        progress(&model.name);
        if let Some((up, _)) = models.graph.upstream[i]
            .iter()
            .find_map(|u| failed.get(u).map(|why| (*u, why)))
        {
            let mut report = ModelReport::new(model);
            report.status = "skipped";
            report.error = Some(format!(
                "upstream model `{}` failed",
                models.models[up].name
            ));
            failed.insert(i, "skipped".into());
            reports.push(report);
            continue;
        }
        let extra = extra_dates.remove(&i).unwrap_or_default();
        let report = builder
            .build_model(i, &dates, date, &extra, &Fingerprints::default())
            .await;
        if report.status == "failed" {
            failed.insert(i, report.error.clone().unwrap_or_default());
        }
        for (d, dates) in builder.downstream_dates(i, &report) {
            extra_dates.entry(d).or_default().extend(dates);
        }
        reports.push(report);
    }
    Ok(BuildReport {
        from,
        date,
        models: reports,
    })
}

/// Fingerprints to record instead of the default (the model's SQL and the versions of the
/// tables it reads): what the orchestrator computed from the inputs of each partition.
#[derive(Default)]
pub struct Fingerprints<'a> {
    /// For an incremental model: each date's fingerprint (any date, including earlier dates
    /// rebuilt because an upstream model named them).
    pub per_date: Option<&'a (dyn Fn(NaiveDate) -> Option<String> + Sync)>,
    /// For a table or snapshot model.
    pub whole: Option<String>,
}

impl std::fmt::Debug for Fingerprints<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprints")
            .field("whole", &self.whole)
            .finish_non_exhaustive()
    }
}

impl ModelReport {
    fn new(model: &Model) -> Self {
        Self {
            model: model.name.clone(),
            materialized: model.settings.materialized.name(),
            status: "built",
            partition: None,
            rows: None,
            table_version: None,
            unknown_keys: BTreeMap::new(),
            snapshot: None,
            rebuilt_dates: Vec::new(),
            seconds: 0.0,
            error: None,
        }
    }
}

/// Builds models one at a time once every model has been checked: what the CLI's `build`
/// and the orchestrator's build tasks share.
pub struct Builder {
    project: Project,
    models: Models,
    warehouse: Warehouse,
    ctx: SessionContext,
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").finish_non_exhaustive()
    }
}

impl Builder {
    /// Check every model (rendered for `date`) against the warehouse, then prepare the
    /// session the builds run in. Any problem stops here, before anything is built.
    pub async fn prepare(
        project: &Project,
        models: &Models,
        warehouse: &Warehouse,
        date: NaiveDate,
        vars: &BTreeMap<String, String>,
    ) -> Result<Self, BuildError> {
        let mut diags = Diagnostics::default();
        check(project, models, warehouse, date, vars, &mut diags).await;
        if !diags.is_empty() {
            diags.sort();
            return Err(BuildError::Invalid(diags));
        }
        let ctx = prepare_session(project, models, warehouse).await?;
        Ok(Self {
            project: project.clone(),
            models: models.clone(),
            warehouse: warehouse.clone(),
            ctx,
            vars: vars.clone(),
        })
    }

    /// Build model `index`: an incremental model computes each of `dates` (and `extra`,
    /// earlier dates an upstream model rebuilt); the others build once, for `last`.
    pub async fn build_model(
        &self,
        index: usize,
        dates: &BTreeSet<NaiveDate>,
        last: NaiveDate,
        extra: &BTreeSet<NaiveDate>,
        fingerprints: &Fingerprints<'_>,
    ) -> ModelReport {
        let model = &self.models.models[index];
        let start = Instant::now();
        let mut report = ModelReport::new(model);
        let run = Run {
            project: &self.project,
            warehouse: &self.warehouse,
            ctx: &self.ctx,
            dates,
            last,
            vars: &self.vars,
            fingerprints,
        };
        if let Err(e) = build_one(&run, model, extra, &mut report).await {
            report.status = "failed";
            report.error = Some(e);
        }
        report.seconds = start.elapsed().as_secs_f64();
        report
    }

    /// The earlier dates each incremental model downstream of `index` must recompute because
    /// this build rebuilt them.
    pub fn downstream_dates(
        &self,
        index: usize,
        report: &ModelReport,
    ) -> BTreeMap<usize, Vec<NaiveDate>> {
        let mut out = BTreeMap::new();
        if report.rebuilt_dates.is_empty() {
            return out;
        }
        let graph = &self.models.graph;
        let mut below = BTreeSet::new();
        let mut stack = vec![index];
        while let Some(k) = stack.pop() {
            for &d in &graph.downstream[k] {
                if below.insert(d) {
                    stack.push(d);
                }
            }
        }
        for d in below {
            if self.models.models[d].settings.materialized == Materialized::Incremental {
                out.insert(d, report.rebuilt_dates.clone());
            }
        }
        out
    }
}

/// The warehouse's shared session with Darkroom's functions and the project's views
/// registered (views rendered for the default date), as readers of the models need it.
pub async fn prepare_session(
    project: &Project,
    models: &Models,
    warehouse: &Warehouse,
) -> Result<SessionContext, darkroom_storage::StorageError> {
    let ctx = warehouse.session().await?;
    functions::register(&ctx);
    let date = default_date(project);
    for &i in &models.graph.order {
        let model = &models.models[i];
        if model.settings.materialized != Materialized::View {
            continue;
        }
        let render_ctx = RenderContext {
            project,
            date_from: date,
            run_date: date,
            is_incremental: false,
            vars: BTreeMap::new(),
        };
        // a view that cannot be registered now is reported when it is checked or built
        if let Ok(rendered) = render(&model.name, &model.source.text, &render_ctx) {
            let _ = register_view(&ctx, &model.name, &rendered.sql).await;
        }
    }
    Ok(ctx)
}

async fn register_view(ctx: &SessionContext, name: &str, sql: &str) -> Result<(), String> {
    let plan = ctx
        .state()
        .create_logical_plan(sql)
        .await
        .map_err(|e| e.to_string())?;
    let view = ViewTable::new(plan, Some(sql.to_string()));
    let _ = ctx.deregister_table(name);
    ctx.register_table(name, Arc::new(view))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// What one model's build needs.
struct Run<'a> {
    project: &'a Project,
    warehouse: &'a Warehouse,
    ctx: &'a SessionContext,
    /// The dates an incremental model computes.
    dates: &'a BTreeSet<NaiveDate>,
    /// The run date the other models build for.
    last: NaiveDate,
    vars: &'a BTreeMap<String, String>,
    fingerprints: &'a Fingerprints<'a>,
}

/// Build one model; `extra` holds earlier dates an upstream model's `rebuild_dates` named.
async fn build_one(
    run: &Run<'_>,
    model: &Model,
    extra: &BTreeSet<NaiveDate>,
    report: &mut ModelReport,
) -> Result<(), String> {
    let Run {
        project,
        warehouse,
        ctx,
        dates,
        last: date,
        vars,
        fingerprints,
    } = *run;
    let from = dates.first().copied().unwrap_or(date).min(date);
    let exists = warehouse
        .table(&model.name)
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    let render_for = |date_from: NaiveDate, run_date: NaiveDate| {
        let render_ctx = RenderContext {
            project,
            date_from,
            run_date,
            is_incremental: model.settings.materialized == Materialized::Incremental && exists,
            vars: vars.clone(),
        };
        render(&model.name, &model.source.text, &render_ctx).map_err(|e| template_error(&e))
    };
    let name = model.name.as_str();
    match model.settings.materialized {
        Materialized::View => {
            let rendered = render_for(date, date)?;
            register_view(ctx, name, &rendered.sql).await?;
        }
        Materialized::Table => {
            let rendered = render_for(date, date)?;
            let fingerprint = match &fingerprints.whole {
                Some(f) => f.clone(),
                None => fingerprint(warehouse, model, &rendered.sql).await?,
            };
            let df = ctx.sql(&rendered.sql).await.map_err(|e| e.to_string())?;
            let stream = conform(df.execute_stream().await.map_err(|e| e.to_string())?);
            let mut schema = stream.schema();
            if model.settings.unknown_member {
                schema = relaxed(&schema);
            }
            let stream = match (&model.settings.surrogate_key, model.settings.unknown_member) {
                (Some(key), true) => {
                    let unknown = unknown_member(&schema, key).map_err(|e| e.to_string())?;
                    let chained = stream.chain(futures::stream::once(async { Ok(unknown) }));
                    Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&schema), chained))
                        as datafusion::execution::SendableRecordBatchStream
                }
                _ => stream,
            };
            let outcome = warehouse
                .replace_table(PartitionWrite {
                    table: model.name.clone(),
                    partition_columns: vec![],
                    partition: vec![],
                    schema,
                    input: stream,
                    task: format!("build/{name}"),
                    fingerprint: fingerprint.into(),
                    plain_columns: vec![],
                })
                .await
                .map_err(|e| e.to_string())?;
            record(report, &outcome);
        }
        Materialized::Incremental => {
            let column = model
                .settings
                .partition_by
                .clone()
                .unwrap_or_else(|| "event_date".into());
            let hint = |text: String| {
                if text.contains("outside the") {
                    format!(
                        "{text}\nhint: an incremental model computes the rows of its dates: \
                         filter with {column} BETWEEN DATE '{{{{ date_from }}}}' AND DATE \
                         '{{{{ date_to }}}}' (or {column} = DATE '{{{{ run_date }}}}')"
                    )
                } else {
                    text
                }
            };
            let text = &model.source.text;
            let by_range = computes_a_range(text);
            // earlier dates to rebuild as well: named upstream, or by this model's own
            // rebuild_dates query (which reads upstream tables, already built)
            let outside = |d: &NaiveDate| !dates.contains(d);
            let mut queued: BTreeSet<NaiveDate> = extra.iter().copied().filter(outside).collect();
            if let Some(query) = render_for(from, date)?
                .config
                .get("rebuild_dates")
                .and_then(|v| v.as_str())
            {
                queued.extend(dates_of(ctx, query).await?.into_iter().filter(outside));
            }
            let all: BTreeSet<NaiveDate> = dates.union(&queued).copied().collect();
            let spans: Vec<(NaiveDate, NaiveDate)> = if by_range {
                // each run of consecutive dates in one query and one commit (a long one in
                // chunks, so memory stays bounded by a month of data): exactly those
                // partitions, at a fraction of the cost of one write per date
                let mut runs: Vec<(NaiveDate, NaiveDate)> = Vec::new();
                for &d in &all {
                    match runs.last_mut() {
                        Some((start, end))
                            if end.succ_opt() == Some(d)
                                && (d - *start).num_days() < MAX_RANGE_DAYS as i64 =>
                        {
                            *end = d;
                        }
                        _ => runs.push((d, d)),
                    }
                }
                runs
            } else {
                all.iter().map(|d| (*d, *d)).collect()
            };
            let mut rows = 0;
            for (a, b) in spans {
                let rendered = render_for(a, b)?;
                let fingerprint = fingerprint(warehouse, model, &rendered.sql).await?;
                let own = |d: NaiveDate| fingerprints.per_date.and_then(|f| f(d));
                let df = ctx.sql(&rendered.sql).await.map_err(|e| e.to_string())?;
                let stream = conform(df.execute_stream().await.map_err(|e| e.to_string())?);
                let schema = stream.schema();
                if warehouse
                    .table(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .is_some()
                {
                    evolve(warehouse, name, &schema).await?;
                }
                let outcome = if by_range {
                    warehouse
                        .replace_date_range(RangeWrite {
                            table: model.name.clone(),
                            partition_column: column.clone(),
                            fixed: Vec::new(),
                            dates: RangeWrite::days(a, b),
                            schema,
                            input: stream,
                            task_prefix: format!("build/{name}"),
                            fingerprint,
                            fingerprints: a
                                .iter_days()
                                .take_while(|d| *d <= b)
                                .filter_map(|d| own(d).map(|f| (d, f)))
                                .collect(),
                            plain_columns: Vec::new(),
                            free_text_columns: Vec::new(),
                        })
                        .await
                } else {
                    warehouse
                        .replace_partition(PartitionWrite {
                            table: model.name.clone(),
                            partition_columns: vec![column.clone()],
                            partition: vec![(
                                column.clone(),
                                ScalarValue::Date32(Some(darkroom_storage::days_since_epoch(a))),
                            )],
                            schema,
                            input: stream,
                            task: format!("build/{name}/{a}"),
                            fingerprint: own(a).unwrap_or(fingerprint).into(),
                            plain_columns: vec![],
                        })
                        .await
                }
                .map_err(|e| hint(e.to_string()))?;
                rows += outcome.rows;
                report.table_version = Some(outcome.table_version);
            }
            report.rows = Some(rows);
            report.rebuilt_dates = queued.into_iter().collect();
            let (first, end) = (
                dates.first().copied().unwrap_or(date),
                dates.last().copied().unwrap_or(date),
            );
            report.partition = Some(if first == end {
                format!("{column}={end}")
            } else if (end - first).num_days() + 1 == dates.len() as i64 {
                format!("{column}={first}..{end}")
            } else {
                format!("{column}={first}..{end} ({} dates)", dates.len())
            });
        }
        Materialized::Snapshot => {
            let rendered = render_for(date, date)?;
            let fingerprint = match &fingerprints.whole {
                Some(f) => f.clone(),
                None => fingerprint(warehouse, model, &rendered.sql).await?,
            };
            let (outcome, changes) = snapshot::run(
                project,
                model,
                warehouse,
                ctx,
                &rendered.sql,
                date,
                fingerprint,
            )
            .await?;
            record(report, &outcome);
            report.snapshot = Some(changes);
        }
    }
    if model.settings.materialized != Materialized::View {
        report.unknown_keys = count_unknown_keys(ctx, model, (from, date)).await?;
    }
    Ok(())
}

/// The dates a `rebuild_dates` query returns (its first column, a DATE).
async fn dates_of(ctx: &SessionContext, query: &str) -> Result<Vec<NaiveDate>, String> {
    let result = darkroom_storage::run_sql(ctx, query)
        .await
        .map_err(|e| format!("rebuild_dates: {e}"))?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let mut out = Vec::new();
    for batch in &result.batches {
        let column = batch.column(0);
        for row in 0..batch.num_rows() {
            match ScalarValue::try_from_array(column, row).map_err(|e| e.to_string())? {
                ScalarValue::Date32(Some(days)) => {
                    out.extend(epoch.checked_add_signed(chrono::Duration::days(i64::from(days))));
                }
                ScalarValue::Date32(None) => {}
                other => {
                    return Err(format!(
                        "rebuild_dates must return DATE values, not {}",
                        other.data_type()
                    ));
                }
            }
        }
    }
    Ok(out)
}

fn record(report: &mut ModelReport, outcome: &WriteOutcome) {
    report.rows = Some(outcome.rows);
    report.table_version = Some(outcome.table_version);
}

/// The inputs a build read: its SQL and the versions of the tables it reads.
async fn fingerprint(warehouse: &Warehouse, model: &Model, sql: &str) -> Result<String, String> {
    let mut inputs = BTreeMap::new();
    let names = model
        .refs
        .iter()
        .map(|(r, _)| r.as_str())
        .chain(model.sources.iter().map(|(s, _)| s.as_str()));
    for name in names {
        let version = warehouse
            .table(name)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|t| t.version());
        inputs.insert(name.to_string(), version);
    }
    Ok(serde_json::json!({
        "sql": blake3::hash(sql.as_bytes()).to_hex().to_string(),
        "inputs": inputs,
    })
    .to_string())
}

/// An incremental model's table gains new columns; a column dropped or retyped stops the
/// build with both named.
async fn evolve(warehouse: &Warehouse, name: &str, schema: &SchemaRef) -> Result<(), String> {
    let Some(current) = warehouse
        .arrow_schema(name)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(());
    };
    let mut problems = Vec::new();
    for f in current.fields() {
        match schema.field_with_name(f.name()) {
            Err(_) => problems.push(format!("column `{}` is no longer in the model", f.name())),
            Ok(g) if !same_type(g.data_type(), f.data_type()) => problems.push(format!(
                "column `{}` was {} and is now {}",
                f.name(),
                f.data_type(),
                g.data_type()
            )),
            Ok(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "{}; the table's other partitions hold the old shape. Cast to the old type, or drop \
             the table and backfill every date",
            problems.join("; ")
        ));
    }
    let added: Vec<Field> = schema
        .fields()
        .iter()
        .filter(|f| current.field_with_name(f.name()).is_err())
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    if !added.is_empty() {
        warehouse
            .add_columns(name, &added)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The rows of a query with every batch in the stream's own schema: an operator may hand
/// out a batch whose column types differ from what the plan declares (a string view for a
/// string, a wider decimal from a UNION branch), which the Parquet writer refuses.
fn conform(
    stream: datafusion::execution::SendableRecordBatchStream,
) -> datafusion::execution::SendableRecordBatchStream {
    let schema = stream.schema();
    let target = Arc::clone(&schema);
    let converted = stream.map(move |batch| {
        let batch = batch?;
        if batch.schema().fields() == target.fields() {
            return Ok(batch);
        }
        let columns = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(c, f)| {
                if c.data_type() == f.data_type() {
                    Ok(Arc::clone(c))
                } else {
                    cast(c, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecordBatch::try_new(Arc::clone(&target), columns)?)
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, converted))
}

/// Types a Delta table stores alike: text read back as Utf8View is the Utf8 written.
pub(crate) fn same_type(a: &DataType, b: &DataType) -> bool {
    fn normal(t: &DataType) -> &DataType {
        match t {
            DataType::Utf8View | DataType::LargeUtf8 => &DataType::Utf8,
            DataType::BinaryView | DataType::LargeBinary => &DataType::Binary,
            other => other,
        }
    }
    normal(a) == normal(b)
}

/// Every column nullable (the unknown member has no natural key), as the table stores it.
pub(crate) fn relaxed(schema: &SchemaRef) -> SchemaRef {
    Arc::new(datafusion::arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// The unknown member of a dimension: the key -1, text columns 'unknown', the rest NULL.
pub(crate) fn unknown_member(
    schema: &SchemaRef,
    key: &str,
) -> Result<RecordBatch, datafusion::error::DataFusionError> {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            if f.name() == key {
                Arc::new(Int64Array::from(vec![UNKNOWN_KEY]))
            } else if same_type(f.data_type(), &DataType::Utf8) {
                let text: ArrayRef = Arc::new(StringArray::from(vec!["unknown"]));
                cast(&text, f.data_type()).unwrap_or_else(|_| new_null_array(f.data_type(), 1))
            } else {
                new_null_array(f.data_type(), 1)
            }
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// Rows of what was just built whose `*_key` columns hold -1 (the unknown member).
async fn count_unknown_keys(
    ctx: &SessionContext,
    model: &Model,
    (from, date): (NaiveDate, NaiveDate),
) -> Result<BTreeMap<String, u64>, String> {
    let Ok(provider) = ctx.table_provider(model.name.as_str()).await else {
        return Ok(BTreeMap::new());
    };
    let own_key = model.settings.surrogate_key.as_deref();
    let keys: Vec<String> = provider
        .schema()
        .fields()
        .iter()
        .filter(|f| {
            f.name().ends_with("_key")
                && f.data_type() == &DataType::Int64
                && Some(f.name().as_str()) != own_key
        })
        .map(|f| f.name().clone())
        .collect();
    if keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    let counts: Vec<String> = keys
        .iter()
        .map(|k| format!("count(*) FILTER (WHERE {} = {UNKNOWN_KEY})", quote(k)))
        .collect();
    let filter = match &model.settings.partition_by {
        Some(p) if model.settings.materialized == Materialized::Incremental => {
            format!(
                " WHERE {} BETWEEN DATE '{from}' AND DATE '{date}'",
                quote(p)
            )
        }
        _ => String::new(),
    };
    let sql = format!(
        "SELECT {} FROM {}{filter}",
        counts.join(", "),
        quote(&model.name)
    );
    let result = darkroom_storage::run_sql(ctx, &sql)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    if let Some(batch) = result.batches.first() {
        for (k, name) in keys.iter().enumerate() {
            let v = ScalarValue::try_from_array(batch.column(k), 0).map_err(|e| e.to_string())?;
            if let ScalarValue::Int64(Some(n)) = v
                && n > 0
            {
                out.insert(name.clone(), n.unsigned_abs());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::computes_a_range;

    #[test]
    fn a_template_computes_a_range_when_it_selects_by_the_range_and_not_by_run_date() {
        // names the range
        assert!(computes_a_range(
            "WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'"
        ));
        // selects with the helpers that span it (the demo's fct_events)
        assert!(computes_a_range(
            "WHERE {{ in_dates('created_at') }} AND d BETWEEN '{{ prev_date }}' AND '{{ next_date }}'"
        ));
        assert!(computes_a_range(
            "WHERE ts >= TIMESTAMP '{{ run_start_utc }}' AND ts < TIMESTAMP '{{ run_end_utc }}'"
        ));
        // one date: run_date, even beside a helper
        assert!(!computes_a_range(
            "WHERE event_date = DATE '{{ run_date }}'"
        ));
        assert!(!computes_a_range(
            "WHERE {{ in_dates('a') }} AND event_date = DATE '{{ run_date }}'"
        ));
        // no date at all
        assert!(!computes_a_range("SELECT * FROM {{ ref('x') }}"));
    }
}
