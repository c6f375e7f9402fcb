//! Data trust: is this night's data fit to publish, and if not, who is told what.
//!
//! - [`defs`]: checks and reconciliations declared in `models/**/*.toml` (`[[check]]`,
//!   `[[reconcile]]`).
//! - [`checks`]: running them (one SQL query each) for a night.
//! - [`monitors`]: what needs no configuration, learned from the ingest ledger's history:
//!   volume per host and hour, daily volume per source, parse failures, duplicate files,
//!   missing files, events dated far from their file, clock skew.
//! - [`baseline`]: the robust baselines the monitors compare against.
//! - [`store`]: findings per date, incidents, alert deliveries and degraded dates (SQLite,
//!   beside the run history).
//! - [`alerts`]: Slack-compatible and JSON webhooks and SMTP email, retried, every delivery
//!   recorded.
//! - [`gate`]: what the orchestrator calls: evaluate, decide whether a night may publish,
//!   open and resolve incidents, alert.
//! - [`health`]: `darkroom health`.

pub mod alerts;
pub mod baseline;
pub mod checks;
pub mod defs;
pub mod gate;
pub mod health;
pub mod monitors;
pub mod store;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use gate::{Gate, GateDecision};

#[derive(Debug, thiserror::Error)]
pub enum QualityError {
    #[error("{0}")]
    Storage(String),
    #[error("quality store {path}: {message}")]
    Store { path: String, message: String },
    #[error("{0}")]
    Definitions(darkroom_config::Diagnostics),
    #[error("{0}")]
    Other(String),
}

impl From<darkroom_storage::StorageError> for QualityError {
    fn from(e: darkroom_storage::StorageError) -> Self {
        Self::Storage(e.to_string())
    }
}

pub type Result<T, E = QualityError> = std::result::Result<T, E>;

/// How much a failed finding matters. `error` blocks publishing; `warn` is reported and
/// alerted; `info` is a notice.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warn,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "info" => Some(Self::Info),
            "warn" => Some(Self::Warn),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// What one check or monitor found for one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not enough history (or data) to judge: said, not guessed.
    NoVerdict,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::NoVerdict => "no_verdict",
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "pass" => Self::Pass,
            "fail" => Self::Fail,
            _ => Self::NoVerdict,
        }
    }
}

/// One check's or monitor's result for one date.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    /// Stable across runs: `volume_host:api:api-2`, `check:fct_events_user_not_null`.
    pub id: String,
    /// `not_null`, `unique`, ..., `volume_host`, `volume_daily`, `parse_failures`,
    /// `duplicate_files`, `missing_files`, `event_dates`, `clock_skew`, `reconcile`, `run`.
    pub kind: String,
    /// What it is about: a table, `source/host`, a source, a reconciliation's name.
    pub subject: String,
    pub date: NaiveDate,
    pub outcome: Outcome,
    pub severity: Severity,
    /// One line a person can act on.
    pub message: String,
    /// The numbers behind it (expected and actual counts, sample rows, hours).
    pub evidence: serde_json::Value,
    /// Events (rows, lines) at stake: missing, extra or wrong.
    pub at_stake: Option<i64>,
    /// Warehouse tables whose data it concerns.
    pub tables: Vec<String>,
}

impl Finding {
    pub fn failed(&self) -> bool {
        self.outcome == Outcome::Fail
    }
    /// Fails and blocks publishing.
    pub fn blocks(&self) -> bool {
        self.failed() && self.severity == Severity::Error
    }
}

/// Render a date for SQL: `DATE '2026-02-10'`.
pub fn sql_date(date: NaiveDate) -> String {
    format!("DATE '{date}'")
}
