//! `darkroom status`: each table's latest complete partition, the last runs, what runs now,
//! what failed and why, and whether the night's data met its deadline — from the metadata
//! store alone (no Delta log is read), so it answers at once.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use darkroom_config::Project;
use serde::Serialize;

use crate::Result;
use crate::lock::{holder_alive, host_name};
use crate::store::{LockHolder, RunRecord, Store, TaskRecord};

/// One table's completeness.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub table: String,
    /// The newest date partition recorded complete (for date-partitioned tables).
    pub latest_partition: Option<NaiveDate>,
    /// How many tasks (partitions, builds) are recorded complete.
    pub completions: usize,
    /// When its newest completion was recorded (UTC, ms since the epoch).
    pub last_recorded_ms: i64,
    pub table_version: u64,
}

/// Whether a night's data was complete by the project's deadline.
#[derive(Debug, Clone, Serialize)]
pub struct Deadline {
    pub night: NaiveDate,
    /// The deadline, in UTC.
    pub due: DateTime<Utc>,
    /// `met`, `met_late`, `missed` (due and still not published), `pending` (not due yet).
    pub state: &'static str,
    pub published_ms: Option<i64>,
    pub message: String,
}

/// Everything `darkroom status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub now: DateTime<Utc>,
    pub timezone: String,
    pub running: Option<Running>,
    pub runs: Vec<RunRecord>,
    /// Failed and skipped tasks of the latest finished run.
    pub failed: Vec<TaskRecord>,
    pub tables: Vec<TableStatus>,
    /// The newest published night.
    pub published: Option<NaiveDate>,
    /// The latest night whose deadline has passed, and the next one.
    pub deadlines: Vec<Deadline>,
}

/// The run working now.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    pub holder: LockHolder,
    /// Whether it still shows signs of life (a killed run leaves a stale lock until the
    /// next run takes it over).
    pub alive: bool,
    pub tasks_done: usize,
    pub tasks_running: Vec<String>,
    pub tasks_total: usize,
}

fn trailing_date(task: &str) -> Option<NaiveDate> {
    task.rsplit_once('/')?.1.parse().ok()
}

/// Read the status of the project whose warehouse has index key `location`.
pub fn status(
    project: &Project,
    store: &Store,
    location: &str,
    now: DateTime<Utc>,
) -> Result<Status> {
    let index = store.completions(location)?;
    let mut tables: BTreeMap<String, TableStatus> = BTreeMap::new();
    let mut published: Option<NaiveDate> = None;
    let mut publish_times: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for ((table, task), c) in &index {
        let date = trailing_date(task);
        if task.starts_with("publish/")
            && let Some(d) = date
        {
            published = published.max(Some(d));
            publish_times.insert(d, c.recorded_ms);
        }
        let name = if table.is_empty() {
            task.rsplit_once('/')
                .map_or(task.as_str(), |(a, _)| a)
                .to_string()
        } else {
            table.clone()
        };
        let entry = tables.entry(name.clone()).or_insert(TableStatus {
            table: name,
            latest_partition: None,
            completions: 0,
            last_recorded_ms: 0,
            table_version: 0,
        });
        entry.completions += 1;
        entry.latest_partition = entry.latest_partition.max(date);
        entry.last_recorded_ms = entry.last_recorded_ms.max(c.recorded_ms);
        entry.table_version = entry.table_version.max(c.table_version);
    }
    let runs = store.runs(10)?;
    let holder = store.lock_holder()?;
    let running = match holder {
        Some(holder) => {
            let alive = holder_alive(&holder, &host_name(), now.timestamp_millis());
            let (mut done, mut active, mut total) = (0, Vec::new(), 0);
            if let Some(id) = holder.run_id {
                for t in store.tasks(id, None)? {
                    total += 1;
                    match t.status.as_str() {
                        "running" => active.push(t.task),
                        "planned" => {}
                        _ => done += 1,
                    }
                }
            }
            Some(Running {
                holder,
                alive,
                tasks_done: done,
                tasks_running: active,
                tasks_total: total,
            })
        }
        None => None,
    };
    let failed = match runs.iter().find(|r| r.status != "running") {
        Some(r) => store
            .tasks(r.id, None)?
            .into_iter()
            .filter(|t| t.status == "failed" || t.status == "skipped")
            .collect(),
        None => Vec::new(),
    };
    let deadlines = deadlines(project, now, &publish_times);
    Ok(Status {
        now,
        timezone: project.timezone().name().to_string(),
        running,
        runs,
        failed,
        tables: tables.into_values().collect(),
        published,
        deadlines,
    })
}

/// The deadline of the latest night that is due, and of the next night if it is not yet.
fn deadlines(
    project: &Project,
    now: DateTime<Utc>,
    published: &BTreeMap<NaiveDate, i64>,
) -> Vec<Deadline> {
    let Some(time) = project.pipeline.deadline_time() else {
        return Vec::new();
    };
    let tz = project.timezone();
    let today = now.with_timezone(&tz).date_naive();
    let due_of = |night: NaiveDate| -> Option<DateTime<Utc>> {
        let day = night.succ_opt()?;
        day.and_time(time)
            .and_local_timezone(tz)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    let mut out = Vec::new();
    for night in [today - chrono::Days::new(2), today - chrono::Days::new(1)] {
        let Some(due) = due_of(night) else { continue };
        // a later night's publish holds this night's data too
        let published_ms = published.range(night..).map(|(_, ms)| *ms).min();
        let due_ms = due.timestamp_millis();
        let local_due = due.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z");
        let (state, message) = match published_ms {
            Some(ms) if ms <= due_ms => {
                ("met", format!("night {night} published before {local_due}"))
            }
            Some(_) => (
                "met_late",
                format!("night {night} was published after its deadline {local_due}"),
            ),
            None if now >= due => (
                "missed",
                format!(
                    "MISSED: night {night} was due by {local_due} and is not published{}",
                    if published.is_empty() {
                        " (no night has ever been published)".to_string()
                    } else {
                        String::new()
                    }
                ),
            ),
            None => ("pending", format!("night {night} is due by {local_due}")),
        };
        out.push(Deadline {
            night,
            due,
            state,
            published_ms,
            message,
        });
    }
    // only the latest due night and the next pending one matter
    if let Some(k) = out.iter().rposition(|d| d.due <= now) {
        out.drain(..k);
    }
    out
}
