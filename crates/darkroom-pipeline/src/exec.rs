//! Running a plan: tasks in dependency order, up to `parallel` at once; a failed task skips
//! everything downstream of it (with the reason) while independent branches finish;
//! transient errors are retried with exponential backoff and jitter, logic errors are not.
//! Every task and attempt is written to the run history as it happens.
//!
//! The dates of one incremental model run as one batch (one query and one commit per run of
//! consecutive dates, as Luigi batches a task's parameters) once every date the model has in
//! the plan is ready or blocked, each date still its own task with its own attempt record.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::Result;
use crate::clock::Clock;
use crate::plan::{Plan, Planned, Stage, TaskKind};
use crate::store::Store;

/// What a task produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TaskOutput {
    pub rows_in: Option<u64>,
    pub rows_out: Option<u64>,
    /// Anything worth a line in the report (files missing, dates rebuilt, found complete).
    pub note: Option<String>,
    /// Done, but something expected was missing (a host's log file): the run exits 3.
    pub incomplete: bool,
}

/// Why a task failed, and whether trying again may help.
#[derive(Debug, Clone, Serialize)]
pub struct TaskError {
    pub message: String,
    /// Connection refused, timeouts, throttling: retried. Bad SQL, a failed check: not.
    pub transient: bool,
}

impl TaskError {
    /// An error, transient when its message says so (see [`is_transient`]).
    pub fn classify(message: impl Into<String>) -> Self {
        let message = message.into();
        let transient = is_transient(&message);
        Self { message, transient }
    }
    pub fn logic(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            transient: false,
        }
    }
}

/// Whether an error message describes a condition that may pass: a connection refused or
/// reset, a timeout, throttling, a service unavailable.
pub fn is_transient(message: &str) -> bool {
    const SIGNS: &[&str] = &[
        "connection refused",
        "connection reset",
        "connection closed",
        "connection aborted",
        "broken pipe",
        "timed out",
        "timeout",
        "throttl",
        "slow down",
        "slowdown",
        "too many requests",
        "status 429",
        "429 too many",
        "503",
        "service unavailable",
        "temporarily unavailable",
        "too many connections",
        "cannot connect",
        "could not connect",
        "unable to connect",
        "network is unreachable",
        "dns error",
        "database is locked",
    ];
    let lower = message.to_lowercase();
    SIGNS.iter().any(|s| lower.contains(s))
}

/// Runs tasks. The real one ingests, extracts, builds and publishes; tests script one.
pub trait Runner: Send + Sync {
    /// Run a batch of the plan's tasks (one task, or dates of one incremental model), each
    /// with its own result, in the batch's order.
    fn run<'a>(
        &'a self,
        plan: &'a Plan,
        batch: &'a [usize],
    ) -> BoxFuture<'a, Vec<std::result::Result<TaskOutput, TaskError>>>;
}

/// Hears what happens, for a progress view.
pub trait Observer: Send + Sync {
    fn started(&self, _plan: &Plan, _batch: &[usize], _attempt: u32) {}
    fn finished(&self, _plan: &Plan, _result: &TaskResult) {}
    fn retrying(&self, _plan: &Plan, _batch: &[usize], _wait: Duration, _error: &str) {}
}

/// An observer that shows nothing.
#[derive(Debug, Default)]
pub struct Quiet;
impl Observer for Quiet {}

/// How to run.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub parallel: usize,
    pub retries: u32,
    pub retry_base: Duration,
    /// Seeds the backoff jitter.
    pub seed: u64,
}

/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The wait before retry `attempt` (1 = the first retry): `base * 2^(attempt-1)`, at most
/// [`MAX_BACKOFF`], plus up to 25% jitter.
pub fn backoff(base: Duration, attempt: u32, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    let wait = base.saturating_mul(factor).min(MAX_BACKOFF);
    wait.mul_f64(1.0 + 0.25 * jitter.clamp(0.0, 1.0))
}

/// How one task ended.
#[derive(Debug, Clone, Serialize)]
pub struct TaskResult {
    pub task: String,
    pub stage: &'static str,
    pub date: chrono::NaiveDate,
    /// `succeeded`, `failed`, `skipped`, `done` (complete before this run), `excluded`.
    pub status: &'static str,
    pub attempts: u32,
    pub rows_in: Option<u64>,
    pub rows_out: Option<u64>,
    pub seconds: f64,
    pub note: Option<String>,
    /// Succeeded, but something expected was missing.
    pub incomplete: bool,
    pub error: Option<String>,
}

/// How a run went.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub tasks: Vec<TaskResult>,
    pub seconds: f64,
}

impl Summary {
    pub fn count(&self, status: &str) -> usize {
        self.tasks.iter().filter(|t| t.status == status).count()
    }
    pub fn ok(&self) -> bool {
        self.count("failed") == 0 && self.count("skipped") == 0
    }
    /// Per stage: status -> count, and rows written.
    pub fn by_stage(&self) -> BTreeMap<&'static str, (BTreeMap<&'static str, usize>, u64)> {
        let mut out: BTreeMap<&'static str, (BTreeMap<&'static str, usize>, u64)> = BTreeMap::new();
        for t in &self.tasks {
            let entry = out.entry(t.stage).or_default();
            *entry.0.entry(t.status).or_default() += 1;
            entry.1 += t.rows_out.unwrap_or(0);
        }
        out
    }
}

impl TaskResult {
    /// A result for `task` with `status` and nothing else yet.
    fn new(task: &crate::plan::Task, status: &'static str) -> Self {
        Self {
            task: task.id.clone(),
            stage: task.stage.name(),
            date: task.date,
            status,
            attempts: 0,
            rows_in: None,
            rows_out: None,
            seconds: 0.0,
            note: None,
            incomplete: false,
            error: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Succeeded,
    Done,
    Failed,
    Skipped,
    Excluded,
}

impl State {
    fn finished(&self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }
    fn ok(&self) -> bool {
        matches!(self, Self::Succeeded | Self::Done)
    }
}

type BatchResult = (
    Vec<usize>,
    Vec<(std::result::Result<TaskOutput, TaskError>, u32, f64)>,
);

/// Run `plan` with `runner`, recording everything under `run_id` in `store`.
pub async fn execute(
    plan: &Plan,
    runner: &dyn Runner,
    store: &Store,
    run_id: i64,
    clock: &dyn Clock,
    options: &ExecOptions,
    observer: &dyn Observer,
) -> Result<Summary> {
    let started = Instant::now();
    let n = plan.tasks.len();
    let mut state: Vec<State> = plan
        .tasks
        .iter()
        .map(|t| match t.planned {
            Planned::Run { .. } => State::Pending,
            Planned::Done => State::Done,
            Planned::Excluded { .. } => State::Excluded,
        })
        .collect();
    let mut results: Vec<Option<TaskResult>> = vec![None; n];
    for (i, t) in plan.tasks.iter().enumerate() {
        let status = match t.planned {
            Planned::Done => "done",
            Planned::Excluded { .. } => "excluded",
            Planned::Run { .. } => continue,
        };
        let mut result = TaskResult::new(t, status);
        if let Planned::Excluded { why } = &t.planned {
            result.note = Some(why.clone());
        }
        results[i] = Some(result);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    let mut running: FuturesUnordered<BoxFuture<'_, BatchResult>> = FuturesUnordered::new();
    let parallel = options.parallel.max(1);
    loop {
        // skip what can no longer run
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..n {
                if state[i] != State::Pending {
                    continue;
                }
                let blocker = plan.tasks[i].deps.iter().find(|&&d| {
                    matches!(state[d], State::Failed | State::Skipped | State::Excluded)
                });
                if let Some(&d) = blocker {
                    let why = match state[d] {
                        State::Failed => format!("upstream task {} failed", plan.tasks[d].id),
                        State::Excluded => format!(
                            "upstream task {} is not done and was not selected",
                            plan.tasks[d].id
                        ),
                        _ => format!("upstream task {} was skipped", plan.tasks[d].id),
                    };
                    state[i] = State::Skipped;
                    let t = &plan.tasks[i];
                    store.update_task(
                        run_id,
                        &t.id,
                        "skipped",
                        None,
                        Some(clock.now_ms()),
                        (None, None),
                        0,
                        Some(&why),
                    )?;
                    let mut result = TaskResult::new(t, "skipped");
                    result.error = Some(why);
                    observer.finished(plan, &result);
                    results[i] = Some(result);
                    changed = true;
                }
            }
        }
        // launch what is ready
        for batch in ready_batches(plan, &state) {
            if running.len() >= parallel {
                break;
            }
            for &i in &batch {
                state[i] = State::Running;
                store.update_task(
                    run_id,
                    &plan.tasks[i].id,
                    "running",
                    Some(clock.now_ms()),
                    None,
                    (None, None),
                    0,
                    None,
                )?;
            }
            let jitter: Vec<f64> = (0..=options.retries).map(|_| rng.random::<f64>()).collect();
            running.push(Box::pin(run_batch(
                plan, runner, store, run_id, clock, options, observer, batch, jitter,
            )));
        }
        let Some((batch, outcomes)) = running.next().await else {
            break;
        };
        for (&i, (outcome, attempts, seconds)) in batch.iter().zip(outcomes) {
            let t = &plan.tasks[i];
            let now = clock.now_ms();
            let result = match outcome {
                Ok(out) => {
                    state[i] = State::Succeeded;
                    store.update_task(
                        run_id,
                        &t.id,
                        "succeeded",
                        None,
                        Some(now),
                        (out.rows_in, out.rows_out),
                        attempts,
                        None,
                    )?;
                    TaskResult {
                        attempts,
                        rows_in: out.rows_in,
                        rows_out: out.rows_out,
                        seconds,
                        note: out.note,
                        incomplete: out.incomplete,
                        ..TaskResult::new(t, "succeeded")
                    }
                }
                Err(e) => {
                    state[i] = State::Failed;
                    store.update_task(
                        run_id,
                        &t.id,
                        "failed",
                        None,
                        Some(now),
                        (None, None),
                        attempts,
                        Some(&e.message),
                    )?;
                    TaskResult {
                        attempts,
                        seconds,
                        error: Some(e.message),
                        ..TaskResult::new(t, "failed")
                    }
                }
            };
            observer.finished(plan, &result);
            results[i] = Some(result);
        }
    }
    let tasks = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| TaskResult {
                error: Some("never became ready".into()),
                ..TaskResult::new(&plan.tasks[i], "skipped")
            })
        })
        .collect();
    Ok(Summary {
        tasks,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The batches that can start now, in plan order: single tasks whose dependencies are all
/// complete, and for each incremental model whose every pending date has all its
/// dependencies finished, the dates ready to run.
fn ready_batches(plan: &Plan, state: &[State]) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    // models are checked once against the warehouse before the first is built, so they
    // start when every extract and ingest has ended (a failed one skips only what reads it)
    let sources_ended = plan
        .tasks
        .iter()
        .zip(state)
        .all(|(t, s)| !matches!(t.stage, Stage::Extract | Stage::Ingest) || s.finished());
    let mut by_model: BTreeMap<&str, (usize, Vec<usize>, bool)> = BTreeMap::new();
    for (i, t) in plan.tasks.iter().enumerate() {
        let deps_finished = t.deps.iter().all(|&d| state[d].finished());
        let deps_ok = t.deps.iter().all(|&d| state[d].ok());
        match &t.kind {
            TaskKind::BuildDate { .. } | TaskKind::BuildModel { .. } if !sources_ended => {}
            TaskKind::BuildDate { model } => {
                // a model's dates wait until each is ready or blocked, then run as one batch
                let entry = by_model
                    .entry(model.as_str())
                    .or_insert((i, Vec::new(), true));
                if state[i] == State::Pending {
                    if !deps_finished {
                        entry.2 = false;
                    } else if deps_ok {
                        entry.1.push(i);
                    }
                }
            }
            _ => {
                if state[i] == State::Pending && deps_ok {
                    out.push((i, vec![i]));
                }
            }
        }
    }
    for (_, (first, dates, all_ready)) in by_model {
        if all_ready && !dates.is_empty() {
            out.push((first, dates));
        }
    }
    out.sort_by_key(|(first, _)| *first);
    out.into_iter().map(|(_, b)| b).collect()
}

/// Run one batch with retries: the tasks that failed with a transient error run again after
/// a backoff, up to `options.retries` times.
#[allow(clippy::too_many_arguments)]
async fn run_batch<'a>(
    plan: &'a Plan,
    runner: &'a dyn Runner,
    store: &'a Store,
    run_id: i64,
    clock: &'a dyn Clock,
    options: &'a ExecOptions,
    observer: &'a dyn Observer,
    batch: Vec<usize>,
    jitter: Vec<f64>,
) -> BatchResult {
    let label = (batch.len() > 1).then(|| {
        let first = &plan.tasks[batch[0]];
        let last = &plan.tasks[batch[batch.len() - 1]];
        let name = first
            .id
            .rsplit_once('/')
            .map_or(first.id.as_str(), |(a, _)| a);
        format!(
            "{name} {}..{} ({} dates)",
            first.date,
            last.date,
            batch.len()
        )
    });
    let mut outcomes: BTreeMap<usize, (std::result::Result<TaskOutput, TaskError>, u32, f64)> =
        BTreeMap::new();
    let mut todo = batch.clone();
    let mut attempt = 0u32;
    while !todo.is_empty() {
        attempt += 1;
        let start_ms = clock.now_ms();
        let started = Instant::now();
        for &i in &todo {
            record(store.record_attempt(
                run_id,
                &plan.tasks[i].id,
                attempt,
                start_ms,
                None,
                "running",
                None,
                false,
                label.as_deref(),
            ));
        }
        observer.started(plan, &todo, attempt);
        let results = runner.run(plan, &todo).await;
        let seconds = started.elapsed().as_secs_f64();
        let end_ms = clock.now_ms();
        let mut again = Vec::new();
        let mut wait_error = String::new();
        for (k, &i) in todo.iter().enumerate() {
            let result = results.get(k).cloned().unwrap_or_else(|| {
                Err(TaskError::logic(
                    "the runner returned no result for this task",
                ))
            });
            let (status, error, transient) = match &result {
                Ok(_) => ("succeeded", None, false),
                Err(e) => ("failed", Some(e.message.as_str()), e.transient),
            };
            record(store.record_attempt(
                run_id,
                &plan.tasks[i].id,
                attempt,
                start_ms,
                Some(end_ms),
                status,
                error,
                transient,
                label.as_deref(),
            ));
            if transient && attempt <= options.retries {
                again.push(i);
                wait_error = error.unwrap_or_default().to_string();
            } else {
                outcomes.insert(i, (result, attempt, seconds));
            }
        }
        if !again.is_empty() {
            let j = jitter.get(attempt as usize - 1).copied().unwrap_or(0.0);
            let wait = backoff(options.retry_base, attempt, j);
            observer.retrying(plan, &again, wait, &wait_error);
            clock.sleep(wait).await;
        }
        todo = again;
    }
    let out = batch
        .iter()
        .map(|i| {
            outcomes
                .remove(i)
                .unwrap_or_else(|| (Err(TaskError::logic("no outcome recorded")), attempt, 0.0))
        })
        .collect();
    (batch, out)
}

/// History is best effort while tasks run: a failed write is logged, not fatal.
fn record(result: Result<()>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot record an attempt in the run history");
    }
}
