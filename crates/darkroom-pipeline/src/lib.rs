//! Darkroom's orchestrator: the nightly pipeline as date-partitioned tasks.
//!
//! Every source extract, log ingest, model build and the final publish is a task for one date
//! partition, wired by dependencies ([`plan`]); tasks run in order, in parallel up to a limit,
//! with retries for transient errors and skips downstream of a failure ([`exec`]). A task is
//! done when the warehouse recorded its completion with the fingerprint of its inputs, so a
//! run after a crash resumes where it stopped and a late file rebuilds exactly the dates it
//! touches. One run at a time per project ([`lock`]); every run, task and attempt is kept in
//! the project's SQLite store ([`store`]); `darkroom schedule` fires on cron ([`schedule`]);
//! `darkroom status` reads the store alone ([`status`]).
//!
//! It must not know how a task does its work: sources, extract, models and storage do.

pub mod clock;
pub mod exec;
pub mod lock;
pub mod plan;
pub mod runner;
pub mod schedule;
pub mod status;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use darkroom_config::Project;
use darkroom_storage::Warehouse;
use serde::Serialize;

pub use clock::{Clock, FakeClock, SystemClock};
pub use exec::{ExecOptions, Observer, Quiet, Runner, Summary, TaskError, TaskOutput, TaskResult};
pub use plan::{Plan, Planned, Reprocess, Request, Stage, Task, TaskKind};
pub use store::{LockHolder, Store};

/// Errors that stop a run (a task's failure does not: it is in the summary).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The project or its models have problems; nothing ran.
    #[error("{0}")]
    Invalid(String),
    /// Another run holds the project.
    #[error(
        "another {} is running on this project: pid {} on {}, started {}, last heartbeat {}; \
         it must end first (a killed run's lock is taken over once its process is gone)",
        .0.command,
        .0.pid,
        .0.host,
        format_ms(.0.started_ms),
        format_ms(.0.heartbeat_ms)
    )]
    Locked(Box<LockHolder>),
    #[error("metadata store: {0}")]
    Store(String),
    #[error("warehouse: {0}")]
    Storage(String),
    #[error("source: {0}")]
    Source(String),
}

/// Result alias for this crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// A time in ms since the epoch, as RFC 3339 UTC.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

/// A hash of the project files a run ran with: darkroom.toml and every model file.
pub fn project_hash(project: &Project) -> String {
    let mut h = blake3::Hasher::new();
    h.update(project.file.text.as_bytes());
    let mut files = Vec::new();
    collect_files(&project.root.join("models"), &mut files);
    files.sort();
    for f in files {
        h.update(f.to_string_lossy().as_bytes());
        if let Ok(bytes) = std::fs::read(&f) {
            h.update(&bytes);
        }
    }
    h.finalize().to_hex().to_string()
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `run`, `backfill` or `schedule`: the kind recorded in the history.
    pub kind: String,
    pub request: Request,
    pub reprocess: Reprocess,
    /// Run every task even if done.
    pub force: bool,
    /// Tasks at once (default `[pipeline] parallel`).
    pub parallel: Option<usize>,
    /// Plan only.
    pub dry_run: bool,
    pub vars: BTreeMap<String, String>,
    /// The command line, kept in the history.
    pub args: serde_json::Value,
}

/// How a run went.
#[derive(Debug, Serialize)]
pub struct RunOutcome {
    pub run_id: Option<i64>,
    pub plan: Plan,
    pub summary: Option<Summary>,
    /// A killed run's lock that this run took over.
    pub took_over: Option<LockHolder>,
    pub plan_seconds: f64,
}

impl RunOutcome {
    pub fn ok(&self) -> bool {
        self.summary.as_ref().is_none_or(Summary::ok)
    }
}

/// Open the project's store and its warehouse (indexing completions in the store).
pub fn open(project: &Project) -> Result<(Store, Warehouse)> {
    let store = Store::open_project(&project.root)?;
    let warehouse = runner::open_warehouse(project, Some(&store))?;
    Ok((store, warehouse))
}

/// Plan without running (no lock taken).
pub async fn plan_only(
    project: &Project,
    store: &Store,
    warehouse: &Warehouse,
    options: &RunOptions,
) -> Result<Plan> {
    let started = std::time::Instant::now();
    let models = plan::load_models(project)?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "models loaded");
    let inputs = plan::PlanInputs {
        project,
        models: &models,
        warehouse,
        store,
        vars: &options.vars,
    };
    plan::plan(&inputs, &options.request, options.reprocess, options.force).await
}

/// Plan and run, holding the project's lock; every task and attempt goes to the history.
pub async fn run(
    project: &Project,
    store: &Store,
    warehouse: &Warehouse,
    options: &RunOptions,
    clock: Arc<dyn Clock>,
    observer: &dyn Observer,
) -> Result<RunOutcome> {
    let started = std::time::Instant::now();
    if options.dry_run {
        let plan = plan_only(project, store, warehouse, options).await?;
        return Ok(RunOutcome {
            run_id: None,
            plan,
            summary: None,
            took_over: None,
            plan_seconds: started.elapsed().as_secs_f64(),
        });
    }
    let run_started_ms = chrono::Utc::now().timestamp_millis();
    let (guard, took_over) = lock::acquire(store, &options.kind, Arc::clone(&clock))?;
    if let Some(old) = &took_over {
        tracing::info!(pid = old.pid, host = %old.host, "took over a stale lock");
    }
    store.mark_interrupted(None, clock.now_ms())?;
    let models = plan::load_models(project)?;
    let inputs = plan::PlanInputs {
        project,
        models: &models,
        warehouse,
        store,
        vars: &options.vars,
    };
    let plan = plan::plan(&inputs, &options.request, options.reprocess, options.force).await?;
    let plan_seconds = started.elapsed().as_secs_f64();
    let dates = match &options.request {
        Request::Run { night } => night.to_string(),
        Request::Backfill { from, to } => format!("{from}..{to}"),
    };
    let run_id = store.begin_run(
        &options.kind,
        &dates,
        &options.args,
        &project_hash(project),
        std::process::id(),
        &lock::host_name(),
        clock.now_ms(),
    )?;
    guard.set_run(run_id)?;
    let planned: Vec<store::TaskRecord> = plan
        .tasks
        .iter()
        .map(|t| store::TaskRecord {
            run_id,
            task: t.id.clone(),
            stage: t.stage.name().to_string(),
            date: Some(t.date.to_string()),
            status: match t.planned {
                Planned::Run { .. } => "planned",
                Planned::Done => "done",
                Planned::Excluded { .. } => "excluded",
            }
            .to_string(),
            fingerprint: t.fingerprint.clone(),
            started_ms: None,
            ended_ms: None,
            rows_in: None,
            rows_out: None,
            attempts: 0,
            error: match &t.planned {
                Planned::Excluded { why } => Some(why.clone()),
                _ => None,
            },
        })
        .collect();
    store.plan_tasks(run_id, &planned)?;
    let runner = runner::ProjectRunner::new(project, &models, warehouse, store, &options.vars);
    let pipeline = &project.pipeline;
    let exec_options = ExecOptions {
        parallel: options.parallel.unwrap_or(pipeline.parallel).max(1),
        retries: pipeline.retries,
        retry_base: Duration::from_secs_f64(pipeline.retry_seconds.max(0.0)),
        seed: u64::try_from(run_id).unwrap_or_default(),
    };
    let summary = exec::execute(
        &plan,
        &runner,
        store,
        run_id,
        clock.as_ref(),
        &exec_options,
        observer,
    )
    .await?;
    let status = if summary.ok() { "succeeded" } else { "failed" };
    let by_stage: BTreeMap<&str, serde_json::Value> = summary
        .by_stage()
        .into_iter()
        .map(|(stage, (counts, rows))| (stage, serde_json::json!({"tasks": counts, "rows": rows})))
        .collect();
    store.end_run(
        run_id,
        status,
        &serde_json::json!({"stages": by_stage, "seconds": summary.seconds}),
        clock.now_ms(),
    )?;
    // incidents and alerts: a failed run, and what the publish gate found
    let failed: Vec<(String, String)> = store
        .tasks(run_id, Some("failed"))?
        .into_iter()
        .map(|t| (t.task, t.error.unwrap_or_default()))
        .collect();
    let night = options.request.night();
    match darkroom_quality::Gate::open(project) {
        Ok(gate) => match gate
            .after_run(warehouse, night, &failed, run_started_ms)
            .await
        {
            Ok(report) if report.failed > 0 => {
                tracing::warn!(
                    failed = report.failed,
                    "alerts not delivered: {}",
                    report.errors.join("; ")
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!("cannot record the run's incidents: {e}"),
        },
        Err(e) => tracing::error!("cannot open the data-trust layer: {e}"),
    }
    drop(guard);
    Ok(RunOutcome {
        run_id: Some(run_id),
        plan,
        summary: Some(summary),
        took_over,
        plan_seconds,
    })
}

/// Compact and vacuum every table, keeping the files of the newest `[pipeline]
/// keep_snapshots` published snapshots. Takes the project's lock.
pub async fn maintain(
    project: &Project,
    store: &Store,
    warehouse: &Warehouse,
    clock: Arc<dyn Clock>,
) -> Result<Vec<darkroom_storage::MaintainReport>> {
    let (guard, _) = lock::acquire(store, "maintain", Arc::clone(&clock))?;
    let storage = |e: darkroom_storage::StorageError| PipelineError::Storage(e.to_string());
    let snapshots = warehouse
        .snapshots(project.pipeline.keep_snapshots)
        .await
        .map_err(storage)?;
    let run_id = store.begin_run(
        "maintain",
        "",
        &serde_json::json!({}),
        &project_hash(project),
        std::process::id(),
        &lock::host_name(),
        clock.now_ms(),
    )?;
    guard.set_run(run_id)?;
    let retention =
        Duration::from_secs_f64(project.pipeline.vacuum_retention_hours.max(0.0) * 3600.0);
    let mut reports = Vec::new();
    let mut failed = false;
    for name in warehouse.list_tables().await.map_err(storage)? {
        let keep: Vec<u64> = snapshots
            .iter()
            .filter_map(|s| s.tables.get(&name).copied())
            .collect();
        let task = format!("maintain/{name}");
        let start = clock.now_ms();
        let result = warehouse.maintain(&name, &keep, retention).await;
        let (status, error) = match &result {
            Ok(_) => ("succeeded", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        failed |= result.is_err();
        store.plan_tasks(
            run_id,
            &[store::TaskRecord {
                run_id,
                task: task.clone(),
                stage: "maintain".into(),
                date: None,
                status: status.into(),
                fingerprint: String::new(),
                started_ms: Some(start),
                ended_ms: Some(clock.now_ms()),
                rows_in: None,
                rows_out: None,
                attempts: 1,
                error: error.clone(),
            }],
        )?;
        store.update_task(
            run_id,
            &task,
            status,
            Some(start),
            Some(clock.now_ms()),
            (None, None),
            1,
            error.as_deref(),
        )?;
        match result {
            Ok(r) => reports.push(r),
            Err(e) => tracing::warn!(table = %name, error = %e, "maintenance failed"),
        }
    }
    store.end_run(
        run_id,
        if failed { "failed" } else { "succeeded" },
        &serde_json::json!({"tables": reports.len()}),
        clock.now_ms(),
    )?;
    Ok(reports)
}
