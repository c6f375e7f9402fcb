//! The executor, the lock and the schedule, on a fake clock: no sleeping, no warehouse. The
//! runner here is scripted (the tasks' real work is tested end to end with the binary).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use darkroom_pipeline::exec::{
    ExecOptions, Quiet, Runner, TaskError, TaskOutput, backoff, execute,
};
use darkroom_pipeline::plan::{Plan, Planned, Reprocess, Request, Stage, Task, TaskKind};
use darkroom_pipeline::schedule::Schedule;
use darkroom_pipeline::store::{LockHolder, Store};
use darkroom_pipeline::{Clock, FakeClock, PipelineError, lock};
use futures::future::BoxFuture;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, d).unwrap()
}

fn task(id: &str, kind: TaskKind, date: NaiveDate, deps: Vec<usize>, planned: Planned) -> Task {
    let stage = match &kind {
        TaskKind::Extract { .. } => Stage::Extract,
        TaskKind::Ingest { .. } => Stage::Ingest,
        TaskKind::BuildDate { .. } | TaskKind::BuildModel { .. } => Stage::Build,
        TaskKind::Publish => Stage::Publish,
    };
    Task {
        id: id.into(),
        stage,
        kind,
        date,
        table: String::new(),
        fingerprint: format!("fp-{id}"),
        deps,
        planned,
    }
}

fn run() -> Planned {
    Planned::Run { why: "new".into() }
}

fn ingest(source: &str, d: u32) -> (String, TaskKind, NaiveDate) {
    (
        format!("ingest/{source}/{}", day(d)),
        TaskKind::Ingest {
            source: source.into(),
        },
        day(d),
    )
}

fn plan(tasks: Vec<Task>) -> Plan {
    Plan {
        request: Request::Backfill {
            from: day(1),
            to: day(3),
        },
        reprocess: Reprocess::Missing,
        force: false,
        tasks,
        dates: vec![],
        date_fingerprints: Arc::default(),
    }
}

/// A runner that follows a script: per task id, the results of its attempts in order (then
/// success), and remembers every call.
#[derive(Default)]
struct Script {
    results: Mutex<HashMap<String, Vec<Result<(), TaskError>>>>,
    calls: Mutex<Vec<Vec<String>>>,
}

impl Script {
    fn fail(self, id: &str, errors: Vec<TaskError>) -> Self {
        self.results
            .lock()
            .unwrap()
            .insert(id.into(), errors.into_iter().map(Err).collect());
        self
    }
    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
    fn ran(&self) -> Vec<String> {
        self.calls().into_iter().flatten().collect()
    }
}

impl Runner for Script {
    fn run<'a>(
        &'a self,
        plan: &'a Plan,
        batch: &'a [usize],
    ) -> BoxFuture<'a, Vec<Result<TaskOutput, TaskError>>> {
        Box::pin(async move {
            let ids: Vec<String> = batch.iter().map(|&i| plan.tasks[i].id.clone()).collect();
            self.calls.lock().unwrap().push(ids.clone());
            tokio::task::yield_now().await;
            ids.iter()
                .map(|id| {
                    let mut results = self.results.lock().unwrap();
                    let next = results.get_mut(id).and_then(|r| {
                        if r.is_empty() {
                            None
                        } else {
                            Some(r.remove(0))
                        }
                    });
                    match next {
                        Some(Err(e)) => Err(e),
                        _ => Ok(TaskOutput {
                            rows_in: Some(1),
                            rows_out: Some(1),
                            note: None,
                            incomplete: false,
                        }),
                    }
                })
                .collect()
        })
    }
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.db")).unwrap();
    (dir, store)
}

fn options(parallel: usize) -> ExecOptions {
    ExecOptions {
        parallel,
        retries: 3,
        retry_base: Duration::from_secs(30),
        seed: 7,
    }
}

fn clock() -> FakeClock {
    FakeClock::new(Utc.with_ymd_and_hms(2026, 2, 1, 3, 0, 0).unwrap())
}

/// Record the plan's tasks as a run, as `darkroom run` does.
fn begin(store: &Store, plan: &Plan) -> i64 {
    let id = store
        .begin_run("test", "", &serde_json::json!({}), "h", 1, "here", 0)
        .unwrap();
    let records: Vec<_> = plan
        .tasks
        .iter()
        .map(|t| darkroom_pipeline::store::TaskRecord {
            run_id: id,
            task: t.id.clone(),
            stage: t.stage.name().into(),
            date: Some(t.date.to_string()),
            status: "planned".into(),
            fingerprint: t.fingerprint.clone(),
            started_ms: None,
            ended_ms: None,
            rows_in: None,
            rows_out: None,
            attempts: 0,
            error: None,
        })
        .collect();
    store.plan_tasks(id, &records).unwrap();
    id
}

/// Two sources, a model reading each, a model reading both, and a publish.
fn diamond(planned_a: Planned) -> Plan {
    let (a, ka, da) = ingest("a", 1);
    let (b, kb, db) = ingest("b", 1);
    plan(vec![
        task(&a, ka, da, vec![], planned_a),
        task(&b, kb, db, vec![], run()),
        task(
            "build/from_a/2026-01-01",
            TaskKind::BuildDate {
                model: "from_a".into(),
            },
            day(1),
            vec![0],
            run(),
        ),
        task(
            "build/from_b/2026-01-01",
            TaskKind::BuildDate {
                model: "from_b".into(),
            },
            day(1),
            vec![1],
            run(),
        ),
        task(
            "build/both",
            TaskKind::BuildModel {
                model: "both".into(),
            },
            day(1),
            vec![2, 3],
            run(),
        ),
        task(
            "publish/2026-01-01",
            TaskKind::Publish,
            day(1),
            vec![0, 1, 2, 3, 4],
            run(),
        ),
    ])
}

#[tokio::test]
async fn tasks_run_after_everything_they_need() {
    let (_dir, store) = store();
    for parallel in [1, 2, 4] {
        let plan = diamond(run());
        let script = Script::default();
        let id = begin(&store, &plan);
        let summary = execute(
            &plan,
            &script,
            &store,
            id,
            &clock(),
            &options(parallel),
            &Quiet,
        )
        .await
        .unwrap();
        assert!(summary.ok(), "{summary:?}");
        let ran = script.ran();
        assert_eq!(ran.len(), 6, "every task once: {ran:?}");
        let at = |id: &str| ran.iter().position(|r| r == id).unwrap();
        for t in &plan.tasks {
            for &d in &t.deps {
                assert!(
                    at(&plan.tasks[d].id) < at(&t.id),
                    "{} ran before {} (parallel {parallel}): {ran:?}",
                    t.id,
                    plan.tasks[d].id
                );
            }
        }
    }
}

#[tokio::test]
async fn complete_output_is_not_run_again() {
    let (_dir, store) = store();
    let plan = diamond(Planned::Done);
    let script = Script::default();
    let id = begin(&store, &plan);
    let summary = execute(&plan, &script, &store, id, &clock(), &options(2), &Quiet)
        .await
        .unwrap();
    assert!(summary.ok());
    assert!(!script.ran().contains(&"ingest/a/2026-01-01".to_string()));
    assert_eq!(summary.count("done"), 1);
    assert_eq!(summary.count("succeeded"), 5);
    assert!(store.attempts("ingest/a/2026-01-01").unwrap().is_empty());
}

#[tokio::test]
async fn an_upstream_failure_skips_downstream_while_an_independent_branch_succeeds() {
    let (_dir, store) = store();
    let plan = diamond(run());
    let script = Script::default().fail(
        "ingest/a/2026-01-01",
        vec![TaskError::logic("line 3: cannot parse the format string")],
    );
    let id = begin(&store, &plan);
    let summary = execute(&plan, &script, &store, id, &clock(), &options(2), &Quiet)
        .await
        .unwrap();
    let status: BTreeMap<&str, &str> = summary
        .tasks
        .iter()
        .map(|t| (t.task.as_str(), t.status))
        .collect();
    assert_eq!(status["ingest/a/2026-01-01"], "failed");
    assert_eq!(status["ingest/b/2026-01-01"], "succeeded");
    assert_eq!(status["build/from_b/2026-01-01"], "succeeded");
    assert_eq!(status["build/from_a/2026-01-01"], "skipped");
    assert_eq!(status["build/both"], "skipped");
    assert_eq!(status["publish/2026-01-01"], "skipped");
    let skipped = summary
        .tasks
        .iter()
        .find(|t| t.task == "build/from_a/2026-01-01")
        .unwrap();
    assert_eq!(
        skipped.error.as_deref(),
        Some("upstream task ingest/a/2026-01-01 failed")
    );
    // the history says the same
    let recorded: BTreeMap<String, String> = store
        .tasks(id, None)
        .unwrap()
        .into_iter()
        .map(|t| (t.task, t.status))
        .collect();
    assert_eq!(recorded["build/both"], "skipped");
    assert_eq!(recorded["ingest/a/2026-01-01"], "failed");
    // a logic error is not retried
    assert_eq!(store.attempts("ingest/a/2026-01-01").unwrap().len(), 1);
    assert!(script.ran().iter().all(|r| r != "build/from_a/2026-01-01"));
}

#[tokio::test]
async fn transient_errors_are_retried_with_exponential_backoff_and_logic_errors_are_not() {
    let (_dir, store) = store();
    let (a, ka, da) = ingest("a", 1);
    let (b, kb, db) = ingest("b", 1);
    let plan = plan(vec![
        task(&a, ka, da, vec![], run()),
        task(&b, kb, db, vec![], run()),
    ]);
    let refused = || TaskError::classify("s3://logs: Connection refused (os error 111)");
    assert!(refused().transient);
    let script = Script::default().fail(&a, vec![refused(), refused(), refused()]);
    let clock = clock();
    let start = clock.now();
    let id = begin(&store, &plan);
    let summary = execute(&plan, &script, &store, id, &clock, &options(1), &Quiet)
        .await
        .unwrap();
    assert!(summary.ok(), "{summary:?}");
    let sleeps = clock.sleeps();
    assert_eq!(sleeps.len(), 3, "{sleeps:?}");
    for (k, wait) in sleeps.iter().enumerate() {
        let base = Duration::from_secs(30 * (1 << k));
        assert!(
            *wait >= base && *wait <= base.mul_f64(1.25),
            "retry {} waited {wait:?}, expected {base:?} plus at most 25%",
            k + 1
        );
    }
    // the fake clock moved by exactly the waits
    let waited: Duration = sleeps.iter().sum();
    assert_eq!((clock.now() - start).to_std().unwrap(), waited);
    let attempts = store.attempts(&a).unwrap();
    assert_eq!(attempts.len(), 4);
    assert!(
        attempts[..3]
            .iter()
            .all(|t| t.status == "failed" && t.transient)
    );
    assert_eq!(attempts[3].status, "succeeded");
    let result = summary.tasks.iter().find(|t| t.task == a).unwrap();
    assert_eq!(result.attempts, 4);

    // the retries stop at the limit
    let (_dir, store) = self::store();
    let script = Script::default().fail(&a, vec![refused(); 10]);
    let clock = self::clock();
    let id = begin(&store, &plan);
    let summary = execute(&plan, &script, &store, id, &clock, &options(1), &Quiet)
        .await
        .unwrap();
    assert_eq!(summary.count("failed"), 1);
    assert_eq!(store.attempts(&a).unwrap().len(), 4, "1 try + 3 retries");
    assert_eq!(clock.sleeps().len(), 3);

    // a logic error: one attempt, no wait
    let (_dir, store) = self::store();
    let script = Script::default().fail(
        &a,
        vec![TaskError::classify(
            "Schema error: No field named usr_id. Valid fields are user_id",
        )],
    );
    let clock = self::clock();
    let id = begin(&store, &plan);
    let summary = execute(&plan, &script, &store, id, &clock, &options(1), &Quiet)
        .await
        .unwrap();
    assert_eq!(summary.count("failed"), 1);
    assert!(clock.sleeps().is_empty());
    assert_eq!(store.attempts(&a).unwrap().len(), 1);
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let base = Duration::from_secs(30);
    assert_eq!(backoff(base, 1, 0.0), Duration::from_secs(30));
    assert_eq!(backoff(base, 2, 0.0), Duration::from_secs(60));
    assert_eq!(backoff(base, 3, 1.0), Duration::from_secs(150));
    assert_eq!(backoff(base, 30, 0.0), Duration::from_secs(600));
}

#[tokio::test]
async fn the_dates_of_one_model_run_as_one_batch_with_one_attempt_each() {
    let (_dir, store) = store();
    let mut tasks = Vec::new();
    for d in 1..=3 {
        let (id, k, date) = ingest("a", d);
        tasks.push(task(&id, k, date, vec![], run()));
    }
    for d in 1..=3 {
        tasks.push(task(
            &format!("build/m/{}", day(d)),
            TaskKind::BuildDate { model: "m".into() },
            day(d),
            vec![(d - 1) as usize],
            run(),
        ));
    }
    let plan = plan(tasks);
    let script = Script::default();
    let id = begin(&store, &plan);
    let summary = execute(&plan, &script, &store, id, &clock(), &options(2), &Quiet)
        .await
        .unwrap();
    assert!(summary.ok());
    let calls = script.calls();
    let batch = calls.iter().find(|c| c[0].starts_with("build/m")).unwrap();
    assert_eq!(batch.len(), 3, "{calls:?}");
    for d in 1..=3 {
        let attempts = store.attempts(&format!("build/m/{}", day(d))).unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(
            attempts[0].batch.as_deref(),
            Some("build/m 2026-01-01..2026-01-03 (3 dates)")
        );
    }
}

#[test]
fn the_schedule_fires_at_the_right_instants_across_daylight_saving_changes() {
    let tz: chrono_tz::Tz = "America/Toronto".parse().unwrap();
    // 02:30 does not exist on 2026-03-08 (02:00 -> 03:00): it fires at 03:00 EDT that day
    let s = Schedule::new("30 2 * * *", tz).unwrap();
    let fires = s.fires_between(
        Utc.with_ymd_and_hms(2026, 3, 6, 12, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap(),
    );
    let utc: Vec<String> = fires.iter().map(|t| t.to_rfc3339()).collect();
    assert_eq!(
        utc,
        [
            "2026-03-07T07:30:00+00:00", // 02:30 EST
            "2026-03-08T07:00:00+00:00", // 03:00 EDT, right after the gap
            "2026-03-09T06:30:00+00:00", // 02:30 EDT
            "2026-03-10T06:30:00+00:00",
        ]
    );
    assert_eq!(
        s.night_of(fires[1]),
        NaiveDate::from_ymd_opt(2026, 3, 7).unwrap()
    );
    // 01:30 happens twice on 2026-11-01 (02:00 EDT -> 01:00 EST): it fires once
    let s = Schedule::new("30 1 * * *", tz).unwrap();
    let fires = s.fires_between(
        Utc.with_ymd_and_hms(2026, 10, 31, 12, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 2, 12, 0, 0).unwrap(),
    );
    let utc: Vec<String> = fires.iter().map(|t| t.to_rfc3339()).collect();
    assert_eq!(
        utc,
        [
            "2026-11-01T05:30:00+00:00", // 01:30 EDT, the first time
            "2026-11-02T06:30:00+00:00", // 01:30 EST
        ]
    );
    // the maintenance default: Sundays at 05:00
    let s = Schedule::new("0 5 * * 0", tz).unwrap();
    let next = s
        .next_after(Utc.with_ymd_and_hms(2026, 11, 27, 0, 0, 0).unwrap())
        .unwrap();
    assert_eq!(next.to_rfc3339(), "2026-11-29T10:00:00+00:00");
    // six fields, or a bad field, are refused with the reason
    assert!(Schedule::new("0 30 2 * * *", tz).is_err());
    let e = Schedule::new("61 2 * * *", tz).unwrap_err().to_string();
    assert!(e.contains("61 2 * * *"), "{e}");
}

fn holder(pid: u32, host: &str, heartbeat_ms: i64) -> LockHolder {
    LockHolder {
        run_id: None,
        pid,
        host: host.into(),
        command: "run".into(),
        started_ms: heartbeat_ms,
        heartbeat_ms,
    }
}

#[tokio::test]
async fn a_second_run_is_refused_and_a_dead_holders_lock_is_taken_over() {
    let (_dir, store) = store();
    let clock: Arc<dyn darkroom_pipeline::Clock> = Arc::new(darkroom_pipeline::SystemClock);
    let (guard, replaced) = lock::acquire(&store, "run", Arc::clone(&clock)).unwrap();
    assert!(replaced.is_none());
    // the same project, while the first holds it: refused, naming the holder
    match lock::acquire(&store, "backfill", Arc::clone(&clock)) {
        Err(PipelineError::Locked(h)) => {
            assert_eq!(h.pid, std::process::id());
            let message = PipelineError::Locked(h).to_string();
            assert!(
                message.contains(&format!("pid {}", std::process::id())),
                "{message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(guard);
    assert!(store.lock_holder().unwrap().is_none());

    // a holder killed with -9: its pid is gone on this host
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let now = Utc::now().timestamp_millis();
    let me = holder(dead, &lock::host_name(), now);
    store.try_lock(&me, &|_| false).unwrap().unwrap();
    let (_guard, replaced) = lock::acquire(&store, "run", Arc::clone(&clock)).unwrap();
    assert_eq!(replaced.unwrap().pid, dead);

    // another host: alive while its heartbeat is fresh, stale after a minute
    assert!(lock::holder_alive(
        &holder(1, "elsewhere", now - 5_000),
        "here",
        now
    ));
    assert!(!lock::holder_alive(
        &holder(1, "elsewhere", now - 61_000),
        "here",
        now
    ));
}
