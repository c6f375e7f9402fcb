//! The real runner: each task kind calls the crate that does the work (sources, extract,
//! models, storage), and reports rows in and out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use darkroom_config::Project;
use darkroom_models::{Builder, Fingerprints, Models};
use darkroom_storage::{Location, StorageSettings, Warehouse};
use futures::future::BoxFuture;

use crate::exec::{Runner, TaskError, TaskOutput};
use crate::plan::{Plan, Planned, TaskKind, location_key};
use crate::store::Store;
use crate::{PipelineError, Result};

/// S3 options for the project: `[warehouse.s3]` values, else the `AWS_*` environment.
pub fn s3_options(project: &Project) -> HashMap<String, String> {
    let s3 = project.warehouse.s3.clone().unwrap_or_default();
    StorageSettings::s3_options(
        s3.endpoint,
        s3.region,
        s3.access_key_id,
        s3.secret_access_key,
        s3.allow_http,
        &|name| std::env::var(name).ok(),
    )
}

/// Open the project's warehouse; with a store, every commit that records a task complete is
/// also written to the store's index of completions.
pub fn open_warehouse(project: &Project, store: Option<&Store>) -> Result<Warehouse> {
    let location = Location::parse(project.warehouse.location.get_ref(), &project.root)
        .map_err(|e| PipelineError::Storage(e.to_string()))?;
    let options = match location {
        Location::Remote(_) => s3_options(project),
        Location::Local(_) => HashMap::new(),
    };
    let warehouse = Warehouse::open(StorageSettings { location, options })
        .map_err(|e| PipelineError::Storage(e.to_string()))?;
    Ok(match store {
        Some(store) => with_index(warehouse, store.clone()),
        None => warehouse,
    })
}

/// Record every completion `warehouse` commits in `store`.
pub fn with_index(warehouse: Warehouse, store: Store) -> Warehouse {
    warehouse.with_commit_hook(Arc::new(move |c: &darkroom_storage::CommitRecord| {
        let completions: Vec<(String, i64, String)> = c
            .completions
            .iter()
            .map(|x| (x.task.clone(), x.txn_version, x.fingerprint.clone()))
            .collect();
        let now = chrono::Utc::now().timestamp_millis();
        if let Err(e) =
            store.record_completions(&c.location, &c.table, c.table_version, &completions, now)
        {
            // the next run finds the completion in the table itself
            tracing::warn!(table = %c.table, error = %e, "cannot index a completion");
        }
    }))
}

/// Runs a project's tasks.
pub struct ProjectRunner {
    project: Project,
    models: Models,
    warehouse: Warehouse,
    store: Store,
    location: String,
    vars: BTreeMap<String, String>,
    builder: tokio::sync::OnceCell<std::result::Result<Arc<Builder>, String>>,
    /// Earlier dates upstream models rebuilt, per downstream incremental model.
    extras: Mutex<BTreeMap<String, BTreeSet<NaiveDate>>>,
}

impl std::fmt::Debug for ProjectRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectRunner").finish_non_exhaustive()
    }
}

type Outcome = std::result::Result<TaskOutput, TaskError>;

impl ProjectRunner {
    pub fn new(
        project: &Project,
        models: &Models,
        warehouse: &Warehouse,
        store: &Store,
        vars: &BTreeMap<String, String>,
    ) -> Self {
        Self {
            project: project.clone(),
            models: models.clone(),
            warehouse: warehouse.clone(),
            store: store.clone(),
            location: location_key(warehouse),
            vars: vars.clone(),
            builder: tokio::sync::OnceCell::new(),
            extras: Mutex::new(BTreeMap::new()),
        }
    }

    /// A completion the warehouse holds but the index lost (the process was killed between
    /// a commit and its index entry): found in the table's log when the table has versions
    /// the index never heard of, and indexed again.
    async fn adopt(&self, table: &str, task: &str, fingerprint: &str) -> Option<TaskOutput> {
        let t = self.warehouse.table(table).await.ok()??;
        let version = t.version()?;
        let known = self
            .store
            .max_table_version(&self.location, table)
            .ok()
            .flatten();
        if known.is_some_and(|k| k >= version) {
            return None;
        }
        let c = self.warehouse.completion(table, task).await.ok()??;
        if c.fingerprint != fingerprint {
            return None;
        }
        let now = chrono::Utc::now().timestamp_millis();
        let entry = [(c.task.clone(), c.txn_version, c.fingerprint.clone())];
        if let Err(e) =
            self.store
                .record_completions(&self.location, table, c.table_version, &entry, now)
        {
            tracing::warn!(error = %e, "cannot index a completion");
        }
        Some(TaskOutput {
            note: Some(format!(
                "found complete in {table} (version {}): not run again",
                c.table_version
            )),
            ..Default::default()
        })
    }

    async fn builder(&self, night: NaiveDate) -> std::result::Result<Arc<Builder>, String> {
        self.builder
            .get_or_init(|| async {
                Builder::prepare(
                    &self.project,
                    &self.models,
                    &self.warehouse,
                    night,
                    &self.vars,
                )
                .await
                .map(Arc::new)
                .map_err(|e| e.to_string())
            })
            .await
            .clone()
    }

    async fn extract(&self, plan: &Plan, i: usize, source: &str) -> Outcome {
        let task = &plan.tasks[i];
        let db = self
            .project
            .database(source)
            .ok_or_else(|| TaskError::logic(format!("no database source `{source}`")))?;
        let options = darkroom_extract::ExtractOptions {
            tables: Vec::new(),
            date: Some(task.date),
            project_root: self.project.root.clone(),
            on_table: None,
            on_table_done: None,
        };
        let report = darkroom_extract::extract_source(
            &self.warehouse,
            self.project.timezone(),
            db,
            &options,
        )
        .await
        .map_err(|e| TaskError::classify(e.to_string()))?;
        let failed: Vec<String> = report
            .tables
            .iter()
            .filter_map(|t| t.error.as_ref().map(|e| format!("{}: {e}", t.table)))
            .collect();
        if !failed.is_empty() {
            return Err(TaskError::classify(failed.join("; ")));
        }
        // the night's marker; each table recorded its own completion in its commit
        let now = chrono::Utc::now().timestamp_millis();
        self.store
            .record_completions(
                &self.location,
                "",
                0,
                &[(task.id.clone(), 0, task.fingerprint.clone())],
                now,
            )
            .map_err(|e| TaskError::classify(e.to_string()))?;
        Ok(TaskOutput {
            rows_in: Some(report.tables.iter().map(|t| t.rows).sum()),
            rows_out: Some(report.tables.iter().map(|t| t.rows).sum()),
            note: Some(format!("{} tables", report.tables.len())),
            incomplete: false,
        })
    }

    async fn ingest(&self, plan: &Plan, i: usize, source: &str) -> Outcome {
        let task = &plan.tasks[i];
        if let Some(found) = self.adopt(&task.table, &task.id, &task.fingerprint).await {
            return Ok(found);
        }
        let config = self
            .project
            .source(source)
            .ok_or_else(|| TaskError::logic(format!("no log source `{source}`")))?;
        let ctx = darkroom_sources::IngestContext {
            project: &self.project,
            warehouse: &self.warehouse,
            remote_options: s3_options(&self.project),
            progress: Arc::new(darkroom_sources::NoProgress),
        };
        let report = darkroom_sources::ingest_date(&ctx, config, task.date)
            .await
            .map_err(|e| TaskError::classify(e.to_string()))?;
        let note = (!report.is_ok()).then(|| {
            let hosts: Vec<&str> = report
                .missing
                .iter()
                .filter_map(|m| m.host.as_deref())
                .collect();
            if report.files.is_empty() {
                "missing: no file at all".to_string()
            } else if hosts.is_empty() {
                format!(
                    "{}: a file could not be read (see the ledger)",
                    report.status
                )
            } else {
                format!("{}: no file from {}", report.status, hosts.join(", "))
            }
        });
        Ok(TaskOutput {
            rows_in: Some(report.totals.lines),
            rows_out: Some(report.totals.rows),
            incomplete: !report.is_ok(),
            note,
        })
    }

    async fn build_dates(&self, plan: &Plan, batch: &[usize], model: &str) -> Vec<Outcome> {
        let fail = |e: TaskError| batch.iter().map(|_| Err(e.clone())).collect::<Vec<_>>();
        let Some(index) = self.models.models.iter().position(|m| m.name == model) else {
            return fail(TaskError::logic(format!("no model `{model}`")));
        };
        // dates the warehouse already holds with these fingerprints are not built again
        let mut found: BTreeMap<usize, TaskOutput> = BTreeMap::new();
        for &i in batch {
            let t = &plan.tasks[i];
            if let Some(out) = self.adopt(&t.table, &t.id, &t.fingerprint).await {
                found.insert(i, out);
            }
        }
        let dates: BTreeSet<NaiveDate> = batch
            .iter()
            .filter(|i| !found.contains_key(i))
            .map(|&i| plan.tasks[i].date)
            .collect();
        // kept until the build succeeds: a retry rebuilds them too
        let extra = self.extras_of(model);
        let mut first_note = None;
        let mut rows = None;
        if !dates.is_empty() || !extra.is_empty() {
            let builder = match self.builder(plan.request.night()).await {
                Ok(b) => b,
                Err(e) => return fail(TaskError::logic(e)),
            };
            let fingerprints = &plan.date_fingerprints;
            let name = model.to_string();
            let per_date = move |d: NaiveDate| fingerprints.get(&(name.clone(), d)).cloned();
            let last = dates
                .last()
                .copied()
                .unwrap_or_else(|| plan.request.night());
            let report = builder
                .build_model(
                    index,
                    &dates,
                    last,
                    &extra,
                    &Fingerprints {
                        per_date: Some(&per_date),
                        whole: None,
                    },
                )
                .await;
            if report.status == "failed" {
                return fail(TaskError::classify(report.error.unwrap_or_default()));
            }
            self.built(model, &extra);
            self.spread(&builder, index, &report);
            rows = report.rows;
            let mut notes = Vec::new();
            if dates.len() > 1 {
                notes.push(format!("{} dates in one batch", dates.len()));
            }
            if !report.rebuilt_dates.is_empty() {
                notes.push(format!(
                    "also rebuilt {} earlier date(s): {}",
                    report.rebuilt_dates.len(),
                    short_dates(&report.rebuilt_dates)
                ));
            }
            for (column, n) in &report.unknown_keys {
                notes.push(format!("{n} rows with unknown {column}"));
            }
            first_note = (!notes.is_empty()).then(|| notes.join("; "));
        }
        let mut first = true;
        batch
            .iter()
            .map(|i| {
                if let Some(out) = found.remove(i) {
                    return Ok(out);
                }
                let out = if first {
                    TaskOutput {
                        rows_in: None,
                        rows_out: rows,
                        note: first_note.clone(),
                        incomplete: false,
                    }
                } else {
                    TaskOutput::default()
                };
                first = false;
                Ok(out)
            })
            .collect()
    }

    /// The earlier dates upstream builds rebuilt that `model` must rebuild too.
    fn extras_of(&self, model: &str) -> BTreeSet<NaiveDate> {
        self.extras
            .lock()
            .ok()
            .and_then(|e| e.get(model).cloned())
            .unwrap_or_default()
    }

    /// `model` rebuilt `dates`: they are no longer owed.
    fn built(&self, model: &str, dates: &BTreeSet<NaiveDate>) {
        if let Ok(mut extras) = self.extras.lock()
            && let Some(owed) = extras.get_mut(model)
        {
            owed.retain(|d| !dates.contains(d));
        }
    }

    /// Hand the earlier dates a build rebuilt to the incremental models downstream.
    fn spread(&self, builder: &Builder, index: usize, report: &darkroom_models::ModelReport) {
        let downstream = builder.downstream_dates(index, report);
        if let Ok(mut extras) = self.extras.lock() {
            for (d, dates) in downstream {
                extras
                    .entry(self.models.models[d].name.clone())
                    .or_default()
                    .extend(dates);
            }
        }
    }

    async fn build_model(&self, plan: &Plan, i: usize, model: &str) -> Outcome {
        let task = &plan.tasks[i];
        if let Some(found) = self.adopt(&task.table, &task.id, &task.fingerprint).await {
            return Ok(found);
        }
        let index = self
            .models
            .models
            .iter()
            .position(|m| m.name == model)
            .ok_or_else(|| TaskError::logic(format!("no model `{model}`")))?;
        let builder = self
            .builder(plan.request.night())
            .await
            .map_err(TaskError::logic)?;
        // kept until the build succeeds: a retry rebuilds them too
        let extra = self.extras_of(model);
        let report = builder
            .build_model(
                index,
                &BTreeSet::new(),
                task.date,
                &extra,
                &Fingerprints {
                    per_date: None,
                    whole: Some(task.fingerprint.clone()),
                },
            )
            .await;
        if report.status == "failed" {
            return Err(TaskError::classify(report.error.unwrap_or_default()));
        }
        self.built(model, &extra);
        self.spread(&builder, index, &report);
        let note = report
            .snapshot
            .as_ref()
            .map(|s| serde_json::to_string(s).unwrap_or_default());
        Ok(TaskOutput {
            rows_in: None,
            rows_out: report.rows,
            note,
            incomplete: false,
        })
    }

    async fn publish(&self, plan: &Plan, i: usize) -> Outcome {
        let task = &plan.tasks[i];
        if let Some(found) = self.adopt(&task.table, &task.id, &task.fingerprint).await {
            return Ok(found);
        }
        let err = |e: darkroom_storage::StorageError| TaskError::classify(e.to_string());
        let mut tables = BTreeMap::new();
        for name in self.warehouse.list_tables().await.map_err(err)? {
            if name == darkroom_storage::SNAPSHOTS_TABLE || name.starts_with("_staging_") {
                continue;
            }
            if let Some(t) = self.warehouse.table(&name).await.map_err(err)?
                && let Some(v) = t.version()
            {
                tables.insert(name, v);
            }
        }
        // the gate: the night's checks and monitors (and those of every date this run
        // rebuilt) decide whether it may publish
        let quality = |e: darkroom_quality::QualityError| TaskError::logic(e.to_string());
        let gate = darkroom_quality::Gate::open(&self.project).map_err(quality)?;
        let mut dates: Vec<NaiveDate> = plan
            .tasks
            .iter()
            .filter(|t| {
                t.stage == crate::plan::Stage::Ingest && matches!(t.planned, Planned::Run { .. })
            })
            .map(|t| t.date)
            .collect();
        dates.push(task.date);
        let findings = gate
            .evaluate(&self.warehouse, task.date, &dates)
            .await
            .map_err(quality)?;
        let decision = gate.decide(task.date, &findings).map_err(quality)?;
        if !decision.publish {
            gate.blocked(&decision).map_err(quality)?;
            return Err(TaskError::logic(decision.reason()));
        }
        let snapshot = self
            .warehouse
            .publish(
                task.date,
                &tables,
                &decision.degraded,
                &task.id,
                &task.fingerprint,
            )
            .await
            .map_err(err)?;
        gate.published(task.date, snapshot.tables.len())
            .map_err(quality)?;
        let degraded = if decision.degraded.is_empty() {
            String::new()
        } else {
            format!(
                "; degraded dates: {}",
                decision
                    .degraded
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Ok(TaskOutput {
            rows_in: None,
            rows_out: Some(snapshot.tables.len() as u64),
            note: Some(format!(
                "{} tables published; {} of {} checks failing, none blocking{degraded}",
                snapshot.tables.len(),
                decision.failing,
                decision.evaluated
            )),
            incomplete: false,
        })
    }
}

fn short_dates(dates: &[NaiveDate]) -> String {
    match dates {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first}..{last}"),
    }
}

impl Runner for ProjectRunner {
    fn run<'a>(&'a self, plan: &'a Plan, batch: &'a [usize]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            let Some(&first) = batch.first() else {
                return Vec::new();
            };
            match &plan.tasks[first].kind {
                TaskKind::BuildDate { model } => self.build_dates(plan, batch, model).await,
                TaskKind::Extract { source } => vec![self.extract(plan, first, source).await],
                TaskKind::Ingest { source } => vec![self.ingest(plan, first, source).await],
                TaskKind::BuildModel { model } => vec![self.build_model(plan, first, model).await],
                TaskKind::Publish => vec![self.publish(plan, first).await],
            }
        })
    }
}
