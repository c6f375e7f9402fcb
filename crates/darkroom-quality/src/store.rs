//! What the data-trust layer remembers, in `.darkroom/quality.sqlite` beside the run history:
//! each date's findings, incidents (one per date with failures), every alert delivery and
//! its attempts, and each night's publish state (published, blocked, failed).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::monitors::Flagged;
use crate::{Finding, Outcome, QualityError, Result, Severity};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS findings (
    date TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    outcome TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    evidence TEXT NOT NULL,
    at_stake INTEGER,
    tables TEXT NOT NULL,
    evaluated_ms INTEGER NOT NULL,
    PRIMARY KEY (date, id)
);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    date TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    findings TEXT NOT NULL,
    at_stake INTEGER,
    opened_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    resolved_ms INTEGER,
    last_alert_ms INTEGER,
    suppressed INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS incidents_open ON incidents(date) WHERE resolved_ms IS NULL;
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    incident INTEGER NOT NULL,
    event TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    sent_ms INTEGER
);
CREATE TABLE IF NOT EXISTS nights (
    date TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
";

/// The quality store.
#[derive(Clone)]
pub struct QualityStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for QualityStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QualityStore")
            .field("path", &self.path)
            .finish()
    }
}

/// An incident: a date whose findings failed, open until they all pass.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: i64,
    pub date: NaiveDate,
    pub severity: Severity,
    pub title: String,
    /// The failing findings when it was last updated.
    pub findings: Vec<Finding>,
    pub at_stake: Option<i64>,
    pub opened_ms: i64,
    pub updated_ms: i64,
    pub resolved_ms: Option<i64>,
    pub last_alert_ms: Option<i64>,
    /// Repeats not sent because the last alert was too recent.
    pub suppressed: i64,
}

/// One alert to one channel.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub incident: i64,
    /// `open`, `repeat` or `resolve`.
    pub event: String,
    pub channel: String,
    /// `pending`, `sent` or `failed` (attempts used up this run; retried by the next).
    pub status: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub payload: String,
    pub created_ms: i64,
    pub sent_ms: Option<i64>,
}

/// A night's publish state.
#[derive(Debug, Clone, Serialize)]
pub struct Night {
    pub date: NaiveDate,
    /// `published`, `blocked` (a blocking check failed) or `failed` (the run failed).
    pub state: String,
    pub reason: String,
    pub updated_ms: i64,
}

fn date_of(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

impl QualityStore {
    /// Open (creating) the store of the project in `root`.
    pub fn open_project(root: &Path) -> Result<Self> {
        let dir = root.join(".darkroom");
        std::fs::create_dir_all(&dir).map_err(|e| QualityError::Store {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Self::open(&dir.join("quality.sqlite"))
    }

    pub fn open(path: &Path) -> Result<Self> {
        let err = |e: rusqlite::Error| QualityError::Store {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            path: path.to_path_buf(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().map_err(|_| QualityError::Store {
            path: self.path.display().to_string(),
            message: "lock poisoned".into(),
        })?;
        f(&mut conn).map_err(|e| QualityError::Store {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })
    }

    // ---- findings ----

    /// Replace a date's findings of the kinds evaluated (others, like a failed run, stay).
    pub fn replace_findings(
        &self,
        date: NaiveDate,
        findings: &[Finding],
        kinds_replaced: Option<&[&str]>,
        now_ms: i64,
    ) -> Result<()> {
        self.with(|conn| {
            let tx = conn.transaction()?;
            match kinds_replaced {
                None => {
                    tx.execute(
                        "DELETE FROM findings WHERE date = ?1 AND kind NOT IN ('run', 'deadline')",
                        params![date.to_string()],
                    )?;
                }
                Some(kinds) => {
                    for k in kinds {
                        tx.execute(
                            "DELETE FROM findings WHERE date = ?1 AND kind = ?2",
                            params![date.to_string(), k],
                        )?;
                    }
                }
            }
            for f in findings {
                tx.execute(
                    "INSERT OR REPLACE INTO findings (date, id, kind, subject, outcome, severity, \
                     message, evidence, at_stake, tables, evaluated_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        f.date.to_string(),
                        f.id,
                        f.kind,
                        f.subject,
                        f.outcome.name(),
                        f.severity.name(),
                        f.message,
                        f.evidence.to_string(),
                        f.at_stake,
                        serde_json::to_string(&f.tables).unwrap_or_default(),
                        now_ms
                    ],
                )?;
            }
            tx.commit()
        })
    }

    /// A date's findings (all outcomes), most severe failures first.
    pub fn findings(&self, date: NaiveDate) -> Result<Vec<Finding>> {
        self.query_findings("WHERE date = ?1", &date.to_string())
    }

    fn query_findings(&self, filter: &str, arg: &str) -> Result<Vec<Finding>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT date, id, kind, subject, outcome, severity, message, evidence, at_stake, \
                 tables FROM findings {filter} ORDER BY date, id"
            ))?;
            let rows = stmt.query_map(params![arg], |r| {
                Ok(Finding {
                    date: date_of(&r.get::<_, String>(0)?),
                    id: r.get(1)?,
                    kind: r.get(2)?,
                    subject: r.get(3)?,
                    outcome: Outcome::parse(&r.get::<_, String>(4)?),
                    severity: Severity::parse(&r.get::<_, String>(5)?).unwrap_or_default(),
                    message: r.get(6)?,
                    evidence: serde_json::from_str(&r.get::<_, String>(7)?).unwrap_or_default(),
                    at_stake: r.get(8)?,
                    tables: serde_json::from_str(&r.get::<_, String>(9)?).unwrap_or_default(),
                })
            })?;
            let mut out: Vec<Finding> = rows.collect::<rusqlite::Result<_>>()?;
            out.sort_by(|a, b| {
                b.failed()
                    .cmp(&a.failed())
                    .then(b.severity.cmp(&a.severity))
                    .then(a.id.cmp(&b.id))
            });
            Ok(out)
        })
    }

    /// The dates each finding id failed (kept out of that monitor's baseline).
    pub fn flagged(&self) -> Result<Flagged> {
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT id, date FROM findings WHERE outcome = 'fail'")?;
            let mut out = Flagged::new();
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (id, date) = row?;
                out.entry(id).or_default().insert(date_of(&date));
            }
            Ok(out)
        })
    }

    /// The latest date with findings.
    pub fn latest_date(&self) -> Result<Option<NaiveDate>> {
        self.with(|conn| {
            conn.query_row("SELECT max(date) FROM findings", [], |r| {
                r.get::<_, Option<String>>(0)
            })
        })
        .map(|d| d.map(|d| date_of(&d)))
    }

    // ---- incidents ----

    pub fn open_incidents(&self) -> Result<Vec<Incident>> {
        self.incidents("WHERE resolved_ms IS NULL ORDER BY date")
    }

    pub fn incident_of(&self, date: NaiveDate) -> Result<Option<Incident>> {
        Ok(self
            .incidents(&format!("WHERE date = '{date}' AND resolved_ms IS NULL"))?
            .into_iter()
            .next())
    }

    pub fn incident(&self, id: i64) -> Result<Option<Incident>> {
        Ok(self
            .incidents(&format!("WHERE id = {id}"))?
            .into_iter()
            .next())
    }

    /// Every incident (open and resolved), newest first.
    pub fn all_incidents(&self, limit: usize) -> Result<Vec<Incident>> {
        self.incidents(&format!("ORDER BY id DESC LIMIT {limit}"))
    }

    fn incidents(&self, filter: &str) -> Result<Vec<Incident>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT id, date, severity, title, findings, at_stake, opened_ms, updated_ms, \
                 resolved_ms, last_alert_ms, suppressed FROM incidents {filter}"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok(Incident {
                    id: r.get(0)?,
                    date: date_of(&r.get::<_, String>(1)?),
                    severity: Severity::parse(&r.get::<_, String>(2)?).unwrap_or_default(),
                    title: r.get(3)?,
                    findings: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                    at_stake: r.get(5)?,
                    opened_ms: r.get(6)?,
                    updated_ms: r.get(7)?,
                    resolved_ms: r.get(8)?,
                    last_alert_ms: r.get(9)?,
                    suppressed: r.get(10)?,
                })
            })?;
            rows.collect()
        })
    }

    pub fn open_incident(
        &self,
        date: NaiveDate,
        severity: Severity,
        title: &str,
        findings: &[Finding],
        at_stake: Option<i64>,
        now_ms: i64,
    ) -> Result<i64> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO incidents (date, severity, title, findings, at_stake, opened_ms, updated_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![
                    date.to_string(),
                    severity.name(),
                    title,
                    serde_json::to_string(findings).unwrap_or_default(),
                    at_stake,
                    now_ms
                ],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    pub fn update_incident(
        &self,
        id: i64,
        severity: Severity,
        title: &str,
        findings: &[Finding],
        at_stake: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE incidents SET severity = ?2, title = ?3, findings = ?4, at_stake = ?5, \
                 updated_ms = ?6 WHERE id = ?1",
                params![
                    id,
                    severity.name(),
                    title,
                    serde_json::to_string(findings).unwrap_or_default(),
                    at_stake,
                    now_ms
                ],
            )?;
            Ok(())
        })
    }

    pub fn resolve_incident(&self, id: i64, now_ms: i64) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE incidents SET resolved_ms = ?2, updated_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )?;
            Ok(())
        })
    }

    pub fn note_alert(&self, id: i64, now_ms: i64) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE incidents SET last_alert_ms = ?2 WHERE id = ?1",
                params![id, now_ms],
            )?;
            Ok(())
        })
    }

    pub fn note_suppressed(&self, id: i64) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE incidents SET suppressed = suppressed + 1 WHERE id = ?1",
                params![id],
            )?;
            Ok(())
        })
    }

    // ---- deliveries ----

    pub fn queue_delivery(
        &self,
        incident: i64,
        event: &str,
        channel: &str,
        payload: &str,
        now_ms: i64,
    ) -> Result<i64> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO deliveries (incident, event, channel, status, payload, created_ms) \
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
                params![incident, event, channel, payload, now_ms],
            )?;
            Ok(conn.last_insert_rowid())
        })
    }

    /// Deliveries not yet sent (pending, or failed in an earlier run).
    pub fn unsent(&self) -> Result<Vec<Delivery>> {
        self.deliveries("WHERE status != 'sent' ORDER BY id")
    }

    pub fn deliveries_of(&self, incident: i64) -> Result<Vec<Delivery>> {
        self.deliveries(&format!("WHERE incident = {incident} ORDER BY id"))
    }

    /// Every delivery, oldest first.
    pub fn all_deliveries(&self) -> Result<Vec<Delivery>> {
        self.deliveries("ORDER BY id")
    }

    fn deliveries(&self, filter: &str) -> Result<Vec<Delivery>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT id, incident, event, channel, status, attempts, error, payload, created_ms, \
                 sent_ms FROM deliveries {filter}"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    incident: r.get(1)?,
                    event: r.get(2)?,
                    channel: r.get(3)?,
                    status: r.get(4)?,
                    attempts: r.get(5)?,
                    error: r.get(6)?,
                    payload: r.get(7)?,
                    created_ms: r.get(8)?,
                    sent_ms: r.get(9)?,
                })
            })?;
            rows.collect()
        })
    }

    pub fn record_attempt(
        &self,
        id: i64,
        status: &str,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, status = ?2, error = ?3, \
                 sent_ms = CASE WHEN ?2 = 'sent' THEN ?4 ELSE sent_ms END WHERE id = ?1",
                params![id, status, error, now_ms],
            )?;
            Ok(())
        })
    }

    // ---- nights ----

    pub fn set_night(&self, date: NaiveDate, state: &str, reason: &str, now_ms: i64) -> Result<()> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO nights (date, state, reason, updated_ms) VALUES (?1, ?2, ?3, ?4)",
                params![date.to_string(), state, reason, now_ms],
            )?;
            Ok(())
        })
    }

    pub fn night(&self, date: NaiveDate) -> Result<Option<Night>> {
        self.with(|conn| {
            conn.query_row(
                "SELECT date, state, reason, updated_ms FROM nights WHERE date = ?1",
                params![date.to_string()],
                |r| {
                    Ok(Night {
                        date: date_of(&r.get::<_, String>(0)?),
                        state: r.get(1)?,
                        reason: r.get(2)?,
                        updated_ms: r.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Nights up to `up_to` that were blocked or failed and never published since.
    pub fn degraded(&self, up_to: NaiveDate) -> Result<Vec<Night>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT date, state, reason, updated_ms FROM nights \
                 WHERE state IN ('blocked', 'failed') AND date <= ?1 ORDER BY date",
            )?;
            let rows = stmt.query_map(params![up_to.to_string()], |r| {
                Ok(Night {
                    date: date_of(&r.get::<_, String>(0)?),
                    state: r.get(1)?,
                    reason: r.get(2)?,
                    updated_ms: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Dates with findings that failed, from `since` on.
    pub fn failing_dates(&self, since: NaiveDate) -> Result<BTreeSet<NaiveDate>> {
        self.with(|conn| {
            let mut stmt = conn.prepare(
                "SELECT DISTINCT date FROM findings WHERE outcome = 'fail' AND date >= ?1",
            )?;
            let rows = stmt.query_map(params![since.to_string()], |r| r.get::<_, String>(0))?;
            rows.map(|r| r.map(|d| date_of(&d))).collect()
        })
    }

    /// Dates whose findings were evaluated at or after `since_ms`.
    pub fn dates_evaluated_since(&self, since_ms: i64) -> Result<BTreeSet<NaiveDate>> {
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT DISTINCT date FROM findings WHERE evaluated_ms >= ?1")?;
            let rows = stmt.query_map(params![since_ms], |r| r.get::<_, String>(0))?;
            rows.map(|r| r.map(|d| date_of(&d))).collect()
        })
    }

    /// Whether `night` or a later night was published (a later snapshot holds its data).
    pub fn published_since(&self, night: NaiveDate) -> Result<bool> {
        self.with(|conn| {
            conn.query_row(
                "SELECT count(*) FROM nights WHERE state = 'published' AND date >= ?1",
                params![night.to_string()],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| n > 0)
    }
}
