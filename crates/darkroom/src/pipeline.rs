//! `darkroom run`, `backfill`, `schedule`, `status` and `maintain`: the orchestrator's
//! commands.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use chrono::NaiveDate;
use darkroom_pipeline::{
    Clock, Observer, PipelineError, Plan, Planned, Reprocess, Request, RunOptions, RunOutcome,
    SystemClock, TaskResult,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{BackfillArgs, RunArgs};
use crate::exit;
use crate::output::{print_json, print_text};

/// `writeln!` into a String (which cannot fail).
macro_rules! say {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}
use crate::project;

/// The live view: a bar of tasks done, what runs, failures and rows per second.
struct Live {
    bar: ProgressBar,
    done: AtomicUsize,
    failed: AtomicUsize,
    rows: AtomicU64,
    running: Mutex<Vec<String>>,
    started: std::time::Instant,
}

impl Live {
    fn new(plan: &Plan, quiet: bool) -> Option<Self> {
        if quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new(plan.to_run() as u64);
        bar.set_style(
            ProgressStyle::with_template("[{bar:30}] {pos}/{len} tasks {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Some(Self {
            bar,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            rows: AtomicU64::new(0),
            running: Mutex::new(Vec::new()),
            started: std::time::Instant::now(),
        })
    }

    fn refresh(&self) {
        let running = self.running.lock().map(|r| r.clone()).unwrap_or_default();
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rows = self.rows.load(Ordering::Relaxed) as f64;
        let failed = self.failed.load(Ordering::Relaxed);
        let mut msg = format!("· {:.0} rows/s", rows / seconds);
        if failed > 0 {
            msg.push_str(&format!(" · {failed} failed"));
        }
        if !running.is_empty() {
            msg.push_str(&format!(" · running {}", running.join(", ")));
        }
        self.bar.set_message(msg);
        self.bar
            .set_position(self.done.load(Ordering::Relaxed) as u64);
    }
}

impl Observer for Live {
    fn started(&self, plan: &Plan, batch: &[usize], attempt: u32) {
        if let Ok(mut r) = self.running.lock() {
            let t = &plan.tasks[batch[0]];
            let mut label = if batch.len() > 1 {
                format!(
                    "{} ({} dates)",
                    t.id.rsplit_once('/').map_or(t.id.as_str(), |x| x.0),
                    batch.len()
                )
            } else {
                t.id.clone()
            };
            if attempt > 1 {
                label.push_str(&format!(" (attempt {attempt})"));
            }
            r.push(label);
        }
        self.refresh();
    }
    fn finished(&self, plan: &Plan, result: &TaskResult) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if result.status == "failed" {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.rows
            .fetch_add(result.rows_out.unwrap_or(0), Ordering::Relaxed);
        if let Ok(mut r) = self.running.lock() {
            let prefix = plan
                .tasks
                .iter()
                .find(|t| t.id == result.task)
                .map(|t| {
                    t.id.rsplit_once('/')
                        .map_or(t.id.clone(), |x| x.0.to_string())
                })
                .unwrap_or_default();
            r.retain(|l| l != &result.task && !l.starts_with(&format!("{prefix} (")));
        }
        self.refresh();
    }
    fn retrying(&self, plan: &Plan, batch: &[usize], wait: Duration, error: &str) {
        self.bar.println(format!(
            "{} failed ({error}); retrying in {:.0}s",
            plan.tasks[batch[0]].id,
            wait.as_secs_f64()
        ));
    }
}

/// No live view: nothing is drawn.
struct Silent;
impl Observer for Silent {}

fn parse_vars(vars: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    crate::models::parse_vars(vars)
}

/// `darkroom run`.
pub async fn run(explicit: Option<&Path>, args: RunArgs) -> Result<u8> {
    let project = project::load(explicit)?;
    let night = args
        .date
        .unwrap_or_else(|| darkroom_models::build::default_date(&project));
    let options = RunOptions {
        kind: "run".into(),
        request: Request::Run { night },
        reprocess: Reprocess::Missing,
        force: args.force,
        parallel: args.parallel,
        dry_run: args.dry_run,
        vars: parse_vars(&args.vars)?,
        args: serde_json::json!({"command": "run", "date": night, "force": args.force,
            "parallel": args.parallel, "dry_run": args.dry_run}),
    };
    execute(&project, &options, args.json).await
}

/// `darkroom backfill`.
pub async fn backfill(explicit: Option<&Path>, args: BackfillArgs) -> Result<u8> {
    if args.to < args.from {
        anyhow::bail!("--to {} is before --from {}", args.to, args.from);
    }
    let project = project::load(explicit)?;
    let options = RunOptions {
        kind: "backfill".into(),
        request: Request::Backfill {
            from: args.from,
            to: args.to,
        },
        reprocess: args.reprocess,
        force: false,
        parallel: args.parallel,
        dry_run: args.dry_run,
        vars: parse_vars(&args.vars)?,
        args: serde_json::json!({"command": "backfill", "from": args.from, "to": args.to,
            "reprocess": args.reprocess, "parallel": args.parallel, "dry_run": args.dry_run}),
    };
    execute(&project, &options, args.json).await
}

/// Plan and run, print the outcome; the exit code says how it went.
pub async fn execute(
    project: &darkroom_config::Project,
    options: &RunOptions,
    json: bool,
) -> Result<u8> {
    let (store, warehouse) = darkroom_pipeline::open(project)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if options.dry_run {
        let outcome =
            darkroom_pipeline::run(project, &store, &warehouse, options, clock, &Silent).await?;
        print_plan(&outcome, json)?;
        return Ok(exit::OK);
    }
    // the live view needs the plan's size: it is created when the plan is known
    let observer = LazyLive::new(json);
    let outcome = match darkroom_pipeline::run(
        project, &store, &warehouse, options, clock, &observer,
    )
    .await
    {
        Ok(o) => o,
        Err(PipelineError::Locked(holder)) => {
            let e = PipelineError::Locked(holder);
            if json {
                print_json(&serde_json::json!({"error": e.to_string(), "locked": true}))?;
            } else {
                eprintln!("error: {e}");
            }
            return Ok(exit::LOCKED);
        }
        Err(e) => return Err(e.into()),
    };
    observer.finish();
    print_outcome(&outcome, json)?;
    let incomplete = outcome
        .summary
        .iter()
        .flat_map(|s| &s.tasks)
        .any(|t| t.incomplete);
    Ok(if !outcome.ok() {
        exit::FAILED
    } else if incomplete {
        exit::INCOMPLETE
    } else {
        exit::OK
    })
}

/// A live view created on the first event (when the plan is known).
pub(crate) struct LazyLive {
    quiet: bool,
    live: std::sync::OnceLock<Option<Live>>,
}

impl LazyLive {
    pub(crate) fn new(quiet: bool) -> Self {
        Self {
            quiet,
            live: std::sync::OnceLock::new(),
        }
    }
    fn get(&self, plan: &Plan) -> Option<&Live> {
        self.live
            .get_or_init(|| Live::new(plan, self.quiet))
            .as_ref()
    }
    pub(crate) fn finish(&self) {
        if let Some(Some(live)) = self.live.get() {
            live.bar.finish_and_clear();
        }
    }
}

impl Observer for LazyLive {
    fn started(&self, plan: &Plan, batch: &[usize], attempt: u32) {
        if let Some(l) = self.get(plan) {
            l.started(plan, batch, attempt);
        }
    }
    fn finished(&self, plan: &Plan, result: &TaskResult) {
        if let Some(l) = self.get(plan) {
            l.finished(plan, result);
        }
    }
    fn retrying(&self, plan: &Plan, batch: &[usize], wait: Duration, error: &str) {
        match self.get(plan) {
            Some(l) => l.retrying(plan, batch, wait, error),
            None if !self.quiet => eprintln!(
                "{} failed ({error}); retrying in {:.0}s",
                plan.tasks[batch[0]].id,
                wait.as_secs_f64()
            ),
            None => {}
        }
    }
}

fn request_text(request: &Request) -> String {
    match request {
        Request::Run { night } => format!("night {night}"),
        Request::Backfill { from, to } => format!("{from} to {to}"),
    }
}

fn print_plan(outcome: &RunOutcome, json: bool) -> Result<()> {
    let plan = &outcome.plan;
    if json {
        return print_json(&serde_json::json!({
            "request": plan.request,
            "reprocess": plan.reprocess,
            "plan_seconds": outcome.plan_seconds,
            "to_run": plan.to_run(),
            "done": plan.done(),
            "tasks": plan.tasks,
        }));
    }
    let mut out = String::new();
    say!(
        out,
        "Plan for {} (dry run, planned in {:.2}s): {} task(s) to run, {} already done.",
        request_text(&plan.request),
        outcome.plan_seconds,
        plan.to_run(),
        plan.done()
    );
    let mut shown = 0;
    for t in &plan.tasks {
        match &t.planned {
            Planned::Run { why } => {
                if shown < 60 {
                    say!(out, "  run   {:<48} {why}", t.id);
                }
                shown += 1;
            }
            Planned::Excluded { why } => say!(out, "  leave {:<48} {why}", t.id),
            Planned::Done => {}
        }
    }
    if shown > 60 {
        say!(out, "  ... and {} more", shown - 60);
    }
    print_text(&out)
}

pub(crate) fn print_outcome(outcome: &RunOutcome, json: bool) -> Result<()> {
    let Some(summary) = &outcome.summary else {
        return Ok(());
    };
    if json {
        let stages: serde_json::Map<String, serde_json::Value> = summary
            .by_stage()
            .into_iter()
            .map(|(s, (counts, rows))| {
                (
                    s.to_string(),
                    serde_json::json!({"tasks": counts, "rows": rows}),
                )
            })
            .collect();
        return print_json(&serde_json::json!({
            "run_id": outcome.run_id,
            "request": outcome.plan.request,
            "ok": outcome.ok(),
            "plan_seconds": outcome.plan_seconds,
            "seconds": summary.seconds,
            "took_over": outcome.took_over,
            "stages": stages,
            "tasks": summary.tasks,
        }));
    }
    let mut out = String::new();
    if let Some(old) = &outcome.took_over {
        say!(
            out,
            "Took over the lock of a run that stopped (pid {} on {}, last heartbeat {}).",
            old.pid,
            old.host,
            darkroom_pipeline::format_ms(old.heartbeat_ms)
        );
    }
    say!(
        out,
        "Run {} — {}: {} in {:.1}s (planned in {:.2}s)",
        outcome.run_id.unwrap_or_default(),
        request_text(&outcome.plan.request),
        if outcome.ok() { "succeeded" } else { "FAILED" },
        summary.seconds,
        outcome.plan_seconds
    );
    say!(
        out,
        "  {:<8} {:>9} {:>6} {:>7} {:>6} {:>9} {:>12}",
        "stage",
        "succeeded",
        "failed",
        "skipped",
        "done",
        "excluded",
        "rows"
    );
    for (stage, (counts, rows)) in summary.by_stage() {
        let c = |s: &str| counts.get(s).copied().unwrap_or(0);
        say!(
            out,
            "  {:<8} {:>9} {:>6} {:>7} {:>6} {:>9} {:>12}",
            stage,
            c("succeeded"),
            c("failed"),
            c("skipped"),
            c("done"),
            c("excluded"),
            rows
        );
    }
    let failed: Vec<&TaskResult> = summary
        .tasks
        .iter()
        .filter(|t| t.status == "failed")
        .collect();
    for t in &failed {
        say!(
            out,
            "  FAILED {} after {} attempt(s): {}",
            t.task,
            t.attempts,
            t.error.as_deref().unwrap_or("")
        );
    }
    let skipped = summary.count("skipped");
    if skipped > 0 {
        say!(
            out,
            "  {skipped} task(s) skipped because something they need failed"
        );
    }
    let notes: Vec<&TaskResult> = summary
        .tasks
        .iter()
        .filter(|t| t.note.is_some() && t.status == "succeeded" && t.stage != "build")
        .collect();
    for t in notes.iter().take(10) {
        say!(
            out,
            "  note: {}: {}",
            t.task,
            t.note.as_deref().unwrap_or("")
        );
    }
    if notes.len() > 10 {
        say!(
            out,
            "  ... and {} more notes (--json has them all)",
            notes.len() - 10
        );
    }
    print_text(&out)
}

/// Per stage: tasks by status, and rows written.
pub(crate) fn stages_json(summary: &darkroom_pipeline::Summary) -> serde_json::Value {
    summary
        .by_stage()
        .into_iter()
        .map(|(s, (counts, rows))| {
            (
                s.to_string(),
                serde_json::json!({"tasks": counts, "rows": rows}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `darkroom status`.
pub fn status(explicit: Option<&Path>, json: bool) -> Result<u8> {
    let project = project::load(explicit)?;
    let store = darkroom_pipeline::Store::open_project(&project.root)?;
    let location =
        darkroom_storage::Location::parse(project.warehouse.location.get_ref(), &project.root)?
            .root_url()?
            .to_string();
    let status =
        darkroom_pipeline::status::status(&project, &store, &location, chrono::Utc::now())?;
    let missed = status.deadlines.iter().any(|d| d.state == "missed");
    if json {
        print_json(&status)?;
        return Ok(if missed { exit::INCOMPLETE } else { exit::OK });
    }
    let tz = project.timezone();
    let mut out = String::new();
    let local = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    say!(
        out,
        "Project {} (times in {})",
        project.project.name,
        status.timezone
    );
    for d in &status.deadlines {
        say!(out, "  deadline: {}", d.message);
    }
    match &status.published {
        Some(n) => say!(out, "  published: night {n}"),
        None => say!(out, "  published: nothing yet"),
    }
    if let Some(r) = &status.running {
        say!(
            out,
            "  running now: {} (pid {} on {}, since {}), {}/{} tasks ended{}{}",
            r.holder.command,
            r.holder.pid,
            r.holder.host,
            local(r.holder.started_ms),
            r.tasks_done,
            r.tasks_total,
            if r.tasks_running.is_empty() {
                String::new()
            } else {
                format!(", running {}", r.tasks_running.join(", "))
            },
            if r.alive {
                ""
            } else {
                " — NO HEARTBEAT: the process is gone; the next run takes over"
            }
        );
    }
    say!(out, "Last runs:");
    if status.runs.is_empty() {
        say!(
            out,
            "  none yet: `darkroom run` runs last night, `darkroom backfill` a range"
        );
    }
    for r in status.runs.iter().take(5) {
        say!(
            out,
            "  #{:<4} {:<9} {:<23} {:<11} started {}{}",
            r.id,
            r.kind,
            r.dates,
            r.status,
            local(r.started_ms),
            r.ended_ms
                .map(|e| format!(", {:.1}s", (e - r.started_ms) as f64 / 1000.0))
                .unwrap_or_default()
        );
    }
    if !status.failed.is_empty() {
        say!(out, "Failed or skipped in the last finished run:");
        for t in status.failed.iter().filter(|t| t.status == "failed") {
            say!(
                out,
                "  FAILED {} ({} attempt(s)): {}",
                t.task,
                t.attempts,
                t.error.as_deref().unwrap_or("")
            );
        }
        let skipped = status
            .failed
            .iter()
            .filter(|t| t.status == "skipped")
            .count();
        if skipped > 0 {
            say!(out, "  {skipped} task(s) skipped downstream of a failure");
        }
    }
    say!(out, "Tables (latest complete partition):");
    for t in &status.tables {
        say!(
            out,
            "  {:<32} {:<12} {:>6} completions, version {}, recorded {}",
            t.table,
            t.latest_partition
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            t.completions,
            t.table_version,
            local(t.last_recorded_ms)
        );
    }
    print_text(&out)?;
    Ok(if missed { exit::INCOMPLETE } else { exit::OK })
}

/// `darkroom maintain`.
pub async fn maintain(explicit: Option<&Path>, json: bool) -> Result<u8> {
    let project = project::load(explicit)?;
    let (store, warehouse) = darkroom_pipeline::open(&project)?;
    let reports = match darkroom_pipeline::maintain(
        &project,
        &store,
        &warehouse,
        Arc::new(SystemClock),
    )
    .await
    {
        Ok(r) => r,
        Err(e @ PipelineError::Locked(_)) => {
            eprintln!("error: {e}");
            return Ok(exit::LOCKED);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(&reports)?;
    } else {
        let mut out = String::new();
        for r in &reports {
            say!(
                out,
                "{:<32} compacted {} file(s) into {}, vacuumed {} file(s), kept versions {:?}",
                r.table,
                r.files_compacted,
                r.files_added,
                r.files_vacuumed,
                r.kept_versions
            );
        }
        print_text(&out)?;
    }
    Ok(exit::OK)
}

/// The next `[pipeline] deadline` instant after `now` (a minute past it, so the night is
/// due when checked).
fn next_deadline(
    project: &darkroom_config::Project,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone as _;
    let time = project.pipeline.deadline_time()?;
    let tz = project.timezone();
    let today = now.with_timezone(&tz).date_naive();
    [today, today.succ_opt()?]
        .into_iter()
        .filter_map(|d| tz.from_local_datetime(&d.and_time(time)).earliest())
        .map(|t| t.with_timezone(&chrono::Utc) + chrono::Duration::minutes(1))
        .find(|t| *t > now)
}

/// `darkroom schedule`: fire the nightly run (and maintenance) on their cron schedules,
/// forever (or `runs` times), and the dead-man check at `[pipeline] deadline` whether or not
/// a run happened.
pub async fn schedule(explicit: Option<&Path>, runs: Option<usize>, json: bool) -> Result<u8> {
    let project = project::load(explicit)?;
    let tz = project.timezone();
    let nightly =
        darkroom_pipeline::schedule::Schedule::new(project.pipeline.schedule.get_ref(), tz)?;
    let maintenance =
        darkroom_pipeline::schedule::Schedule::new(project.pipeline.maintenance.get_ref(), tz)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut fired = 0usize;
    loop {
        let now = clock.now();
        let (Some(run_at), Some(maintain_at)) =
            (nightly.next_after(now), maintenance.next_after(now))
        else {
            anyhow::bail!("the schedule never fires again");
        };
        // the dead-man check fires at the deadline whether or not a run happened
        if let Some(due) = next_deadline(&project, now)
            && due < run_at.min(maintain_at)
        {
            eprintln!(
                "darkroom schedule: next dead-man check at {}",
                due.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
            );
            clock.sleep((due - now).to_std().unwrap_or_default()).await;
            match darkroom_quality::Gate::open(&project) {
                Ok(gate) => match gate.deadman(clock.now()).await {
                    Ok((Some(night), _)) => {
                        eprintln!("darkroom schedule: night {night} missed its deadline: alerted")
                    }
                    Ok((None, _)) => {}
                    Err(e) => eprintln!("darkroom schedule: dead-man check: {e}"),
                },
                Err(e) => eprintln!("darkroom schedule: dead-man check: {e}"),
            }
            continue;
        }
        let (at, is_run) = if run_at <= maintain_at {
            (run_at, true)
        } else {
            (maintain_at, false)
        };
        eprintln!(
            "darkroom schedule: next {} at {} ({})",
            if is_run { "nightly run" } else { "maintenance" },
            at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
            if is_run {
                nightly.text()
            } else {
                maintenance.text()
            }
        );
        let wait = (at - now).to_std().unwrap_or_default();
        clock.sleep(wait).await;
        if is_run {
            let night: NaiveDate = nightly.night_of(at);
            let options = RunOptions {
                kind: "schedule".into(),
                request: Request::Run { night },
                reprocess: Reprocess::Missing,
                force: false,
                parallel: None,
                dry_run: false,
                vars: Default::default(),
                args: serde_json::json!({"command": "schedule", "cron": nightly.text(), "fired_at": at}),
            };
            // a failed night is in the history; the schedule keeps going
            match execute(&project, &options, json).await {
                Ok(code) => {
                    eprintln!("darkroom schedule: night {night} ended with exit code {code}")
                }
                Err(e) => eprintln!("darkroom schedule: night {night}: {e:#}"),
            }
        } else {
            match maintain(explicit, json).await {
                Ok(_) => {}
                Err(e) => eprintln!("darkroom schedule: maintenance: {e:#}"),
            }
        }
        fired += 1;
        if runs.is_some_and(|n| fired >= n) {
            return Ok(exit::OK);
        }
    }
}
