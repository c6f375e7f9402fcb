//! The project's metadata store (SQLite, `.darkroom/state.db` in the project folder): every
//! run, task and attempt; the index of completions the warehouse's commits recorded; and the
//! lock that lets one run or backfill at a time work on the project.
//!
//! The warehouse is the truth about what is done (each completion is recorded in the commit
//! that wrote the data); the index here mirrors it so that planning a year of tasks or
//! answering `darkroom status` never replays Delta logs. A commit whose index entry was lost
//! (the process was killed between the two) is found again from the table itself before its
//! task would run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::{PipelineError, Result};

/// Where the store lives in a project folder.
pub const STATE_DIR: &str = ".darkroom";
pub const STATE_FILE: &str = "state.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    status TEXT NOT NULL,
    dates TEXT NOT NULL,
    args TEXT NOT NULL,
    project_hash TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    stage TEXT NOT NULL,
    date TEXT,
    status TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    started_ms INTEGER,
    ended_ms INTEGER,
    rows_in INTEGER,
    rows_out INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (run_id, task)
);
CREATE INDEX IF NOT EXISTS tasks_by_task ON tasks (task, run_id);
CREATE TABLE IF NOT EXISTS attempts (
    run_id INTEGER NOT NULL,
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    status TEXT NOT NULL,
    error TEXT,
    transient INTEGER NOT NULL DEFAULT 0,
    batch TEXT,
    PRIMARY KEY (run_id, task, attempt)
);
CREATE TABLE IF NOT EXISTS completions (
    location TEXT NOT NULL,
    table_name TEXT NOT NULL,
    task TEXT NOT NULL,
    txn_version INTEGER NOT NULL,
    table_version INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    recorded_ms INTEGER NOT NULL,
    PRIMARY KEY (location, table_name, task)
);
CREATE TABLE IF NOT EXISTS lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    run_id INTEGER,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    command TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL
);
";

/// One recorded completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexedCompletion {
    pub table: String,
    pub task: String,
    pub txn_version: i64,
    pub table_version: u64,
    pub fingerprint: String,
    pub recorded_ms: i64,
}

/// Who holds the project's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub run_id: Option<i64>,
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub started_ms: i64,
    pub heartbeat_ms: i64,
}

/// A run as the history keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub kind: String,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub status: String,
    pub dates: String,
    pub args: serde_json::Value,
    pub project_hash: String,
    pub pid: u32,
    pub host: String,
    pub summary: Option<serde_json::Value>,
}

/// A task of a run as the history keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub run_id: i64,
    pub task: String,
    pub stage: String,
    pub date: Option<String>,
    pub status: String,
    pub fingerprint: String,
    pub started_ms: Option<i64>,
    pub ended_ms: Option<i64>,
    pub rows_in: Option<u64>,
    pub rows_out: Option<u64>,
    pub attempts: u32,
    pub error: Option<String>,
}

/// One attempt of a task.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub run_id: i64,
    pub task: String,
    pub attempt: u32,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub status: String,
    pub error: Option<String>,
    pub transient: bool,
    pub batch: Option<String>,
}

/// The metadata store. Cheap to clone; every clone shares one connection.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> PipelineError + '_ {
    move |e| PipelineError::Store(format!("{}: {e}", path.display()))
}

impl Store {
    /// Open (creating if needed) the store of the project in `root`.
    pub fn open_project(root: &Path) -> Result<Self> {
        let dir = root.join(STATE_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| PipelineError::Store(format!("{}: {e}", dir.display())))?;
        Self::open(&dir.join(STATE_FILE))
    }

    /// Open (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let err = sql_error(path);
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(&err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(&err)?;
        conn.execute_batch(SCHEMA).map_err(&err)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| PipelineError::Store("the store's lock was poisoned".into()))?;
        f(&mut conn).map_err(sql_error(&self.path))
    }

    // ---- completions index ----

    /// Record completions a commit wrote (newer versions replace older ones).
    pub fn record_completions(
        &self,
        location: &str,
        table: &str,
        table_version: u64,
        completions: &[(String, i64, String)],
        now_ms: i64,
    ) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO completions (location, table_name, task, txn_version, \
                     table_version, fingerprint, recorded_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (location, table_name, task) DO UPDATE SET \
                     txn_version = excluded.txn_version, table_version = excluded.table_version, \
                     fingerprint = excluded.fingerprint, recorded_ms = excluded.recorded_ms \
                     WHERE excluded.table_version >= completions.table_version",
                )?;
                for (task, txn, fingerprint) in completions {
                    stmt.execute(params![
                        location,
                        table,
                        task,
                        txn,
                        table_version as i64,
                        fingerprint,
                        now_ms
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Every completion recorded for the warehouse at `location`, by (table, task).
    pub fn completions(
        &self,
        location: &str,
    ) -> Result<HashMap<(String, String), IndexedCompletion>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT table_name, task, txn_version, table_version, fingerprint, recorded_ms \
                 FROM completions WHERE location = ?1",
            )?;
            let rows = stmt.query_map(params![location], |r| {
                Ok(IndexedCompletion {
                    table: r.get(0)?,
                    task: r.get(1)?,
                    txn_version: r.get(2)?,
                    table_version: r.get::<_, i64>(3)?.unsigned_abs(),
                    fingerprint: r.get(4)?,
                    recorded_ms: r.get(5)?,
                })
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let row = row?;
                out.insert((row.table.clone(), row.task.clone()), row);
            }
            Ok(out)
        })
    }

    /// The newest table version the index heard of for `table`.
    pub fn max_table_version(&self, location: &str, table: &str) -> Result<Option<u64>> {
        self.with(|c| {
            c.query_row(
                "SELECT max(table_version) FROM completions WHERE location = ?1 AND table_name = ?2",
                params![location, table],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|v| v.map(i64::unsigned_abs))
        })
    }

    /// Forget the completions of a table (it was dropped or rebuilt from scratch).
    pub fn forget_table(&self, location: &str, table: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM completions WHERE location = ?1 AND table_name = ?2",
                params![location, table],
            )
            .map(|_| ())
        })
    }

    // ---- lock ----

    /// The current holder of the lock, if any.
    pub fn lock_holder(&self) -> Result<Option<LockHolder>> {
        self.with(|c| c.query_row(LOCK_ROW, [], lock_holder).optional())
    }

    /// Take the lock for `me` unless a live holder has it: `alive` decides whether the
    /// current holder is still there. Returns the holder that was replaced (a stale lock
    /// taken over), or the live holder as an error.
    pub fn try_lock(
        &self,
        me: &LockHolder,
        alive: &dyn Fn(&LockHolder) -> bool,
    ) -> Result<std::result::Result<Option<LockHolder>, LockHolder>> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current = tx.query_row(LOCK_ROW, [], lock_holder).optional()?;
            if let Some(holder) = &current
                && alive(holder)
            {
                return Ok(Err(holder.clone()));
            }
            tx.execute(
                "INSERT OR REPLACE INTO lock (id, run_id, pid, host, command, started_ms, \
                 heartbeat_ms) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    me.run_id,
                    i64::from(me.pid),
                    me.host,
                    me.command,
                    me.started_ms,
                    me.heartbeat_ms
                ],
            )?;
            tx.commit()?;
            Ok(Ok(current))
        })
    }

    /// Refresh the heartbeat of the lock held by `pid` (false if it is no longer ours).
    pub fn heartbeat(&self, pid: u32, now_ms: i64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE lock SET heartbeat_ms = ?1 WHERE id = 1 AND pid = ?2",
                params![now_ms, i64::from(pid)],
            )
            .map(|n| n == 1)
        })
    }

    /// Name the run the lock is held for.
    pub fn lock_run(&self, pid: u32, run_id: i64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE lock SET run_id = ?1 WHERE id = 1 AND pid = ?2",
                params![run_id, i64::from(pid)],
            )
            .map(|_| ())
        })
    }

    /// Release the lock if `pid` holds it.
    pub fn unlock(&self, pid: u32) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM lock WHERE id = 1 AND pid = ?1",
                params![i64::from(pid)],
            )
            .map(|_| ())
        })
    }

    // ---- history ----

    /// Start a run; returns its id.
    #[allow(clippy::too_many_arguments)]
    pub fn begin_run(
        &self,
        kind: &str,
        dates: &str,
        args: &serde_json::Value,
        project_hash: &str,
        pid: u32,
        host: &str,
        now_ms: i64,
    ) -> Result<i64> {
        self.with(|c| {
            c.execute(
                "INSERT INTO runs (kind, started_ms, status, dates, args, project_hash, pid, host) \
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7)",
                params![
                    kind,
                    now_ms,
                    dates,
                    args.to_string(),
                    project_hash,
                    i64::from(pid),
                    host
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Runs still marked running whose process is gone become `interrupted`.
    pub fn mark_interrupted(&self, except_run: Option<i64>, now_ms: i64) -> Result<usize> {
        self.with(|c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE runs SET status = 'interrupted', ended_ms = ?1 \
                 WHERE status = 'running' AND id IS NOT ?2",
                params![now_ms, except_run],
            )?;
            tx.execute(
                "UPDATE tasks SET status = 'interrupted', ended_ms = ?1 \
                 WHERE status = 'running' AND run_id IS NOT ?2",
                params![now_ms, except_run],
            )?;
            tx.execute(
                "UPDATE attempts SET status = 'interrupted', ended_ms = ?1 \
                 WHERE status = 'running' AND run_id IS NOT ?2",
                params![now_ms, except_run],
            )?;
            tx.commit()?;
            Ok(n)
        })
    }

    /// End a run with its status and summary.
    pub fn end_run(
        &self,
        run_id: i64,
        status: &str,
        summary: &serde_json::Value,
        now_ms: i64,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE runs SET status = ?1, ended_ms = ?2, summary = ?3 WHERE id = ?4",
                params![status, now_ms, summary.to_string(), run_id],
            )
            .map(|_| ())
        })
    }

    /// Record the tasks of a run as planned (status `planned` or `done`).
    pub fn plan_tasks(&self, run_id: i64, tasks: &[TaskRecord]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO tasks (run_id, task, stage, date, status, fingerprint, \
                     attempts, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
                )?;
                for t in tasks {
                    stmt.execute(params![
                        run_id,
                        t.task,
                        t.stage,
                        t.date,
                        t.status,
                        t.fingerprint,
                        t.error
                    ])?;
                }
            }
            tx.commit()
        })
    }

    /// Update a task's status (and its outcome when it ended).
    #[allow(clippy::too_many_arguments)]
    pub fn update_task(
        &self,
        run_id: i64,
        task: &str,
        status: &str,
        started_ms: Option<i64>,
        ended_ms: Option<i64>,
        rows: (Option<u64>, Option<u64>),
        attempts: u32,
        error: Option<&str>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE tasks SET status = ?3, started_ms = COALESCE(?4, started_ms), \
                 ended_ms = ?5, rows_in = ?6, rows_out = ?7, attempts = ?8, error = ?9 \
                 WHERE run_id = ?1 AND task = ?2",
                params![
                    run_id,
                    task,
                    status,
                    started_ms,
                    ended_ms,
                    rows.0.map(|v| v as i64),
                    rows.1.map(|v| v as i64),
                    attempts,
                    error
                ],
            )
            .map(|_| ())
        })
    }

    /// Record an attempt starting (`running`) or ending.
    #[allow(clippy::too_many_arguments)]
    pub fn record_attempt(
        &self,
        run_id: i64,
        task: &str,
        attempt: u32,
        started_ms: i64,
        ended_ms: Option<i64>,
        status: &str,
        error: Option<&str>,
        transient: bool,
        batch: Option<&str>,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO attempts (run_id, task, attempt, started_ms, ended_ms, \
                 status, error, transient, batch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    run_id, task, attempt, started_ms, ended_ms, status, error, transient, batch
                ],
            )
            .map(|_| ())
        })
    }

    /// The latest runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, kind, started_ms, ended_ms, status, dates, args, project_hash, pid, \
                 host, summary FROM runs ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                let args: String = r.get(6)?;
                let summary: Option<String> = r.get(10)?;
                Ok(RunRecord {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    started_ms: r.get(2)?,
                    ended_ms: r.get(3)?,
                    status: r.get(4)?,
                    dates: r.get(5)?,
                    args: serde_json::from_str(&args).unwrap_or_default(),
                    project_hash: r.get(7)?,
                    pid: r.get::<_, i64>(8)?.unsigned_abs() as u32,
                    host: r.get(9)?,
                    summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
                })
            })?;
            rows.collect()
        })
    }

    /// The tasks of a run (all, or only those with `status`).
    pub fn tasks(&self, run_id: i64, status: Option<&str>) -> Result<Vec<TaskRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT run_id, task, stage, date, status, fingerprint, started_ms, ended_ms, \
                 rows_in, rows_out, attempts, error FROM tasks \
                 WHERE run_id = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY rowid",
            )?;
            let rows = stmt.query_map(params![run_id, status], task_record)?;
            rows.collect()
        })
    }

    /// Tasks whose latest recorded outcome (over every run) is `failed` or `skipped`.
    pub fn last_failed(&self) -> Result<std::collections::HashSet<String>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT t.task, t.status FROM tasks t JOIN (SELECT task, max(run_id) AS run_id \
                 FROM tasks WHERE status IN ('succeeded', 'failed', 'skipped') GROUP BY task) m \
                 ON t.task = m.task AND t.run_id = m.run_id",
            )?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = std::collections::HashSet::new();
            for row in rows {
                let (task, status) = row?;
                if status != "succeeded" {
                    out.insert(task);
                }
            }
            Ok(out)
        })
    }

    /// Every attempt of a task, over every run, oldest first.
    pub fn attempts(&self, task: &str) -> Result<Vec<AttemptRecord>> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT run_id, task, attempt, started_ms, ended_ms, status, error, transient, \
                 batch FROM attempts WHERE task = ?1 ORDER BY run_id, attempt",
            )?;
            let rows = stmt.query_map(params![task], |r| {
                Ok(AttemptRecord {
                    run_id: r.get(0)?,
                    task: r.get(1)?,
                    attempt: r.get(2)?,
                    started_ms: r.get(3)?,
                    ended_ms: r.get(4)?,
                    status: r.get(5)?,
                    error: r.get(6)?,
                    transient: r.get(7)?,
                    batch: r.get(8)?,
                })
            })?;
            rows.collect()
        })
    }
}

const LOCK_ROW: &str =
    "SELECT run_id, pid, host, command, started_ms, heartbeat_ms FROM lock WHERE id = 1";

fn lock_holder(r: &rusqlite::Row<'_>) -> rusqlite::Result<LockHolder> {
    Ok(LockHolder {
        run_id: r.get(0)?,
        pid: r.get::<_, i64>(1)?.unsigned_abs() as u32,
        host: r.get(2)?,
        command: r.get(3)?,
        started_ms: r.get(4)?,
        heartbeat_ms: r.get(5)?,
    })
}

fn task_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<TaskRecord> {
    Ok(TaskRecord {
        run_id: r.get(0)?,
        task: r.get(1)?,
        stage: r.get(2)?,
        date: r.get(3)?,
        status: r.get(4)?,
        fingerprint: r.get(5)?,
        started_ms: r.get(6)?,
        ended_ms: r.get(7)?,
        rows_in: r.get::<_, Option<i64>>(8)?.map(i64::unsigned_abs),
        rows_out: r.get::<_, Option<i64>>(9)?.map(i64::unsigned_abs),
        attempts: r.get(10)?,
        error: r.get(11)?,
    })
}
