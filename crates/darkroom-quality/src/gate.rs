//! What the orchestrator calls. At publish: evaluate the night (and every date the run
//! rebuilt, and every date with an open incident) and decide whether the night may publish.
//! After the run: record a failed run, open, update and resolve incidents, and send alerts.
//! On a schedule: the dead-man check (no night published by the deadline).

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use darkroom_config::Project;
use darkroom_storage::Warehouse;
use serde::Serialize;
use serde_json::json;

use crate::alerts::{self, AlertMessage, SendReport};
use crate::defs::QualityDefs;
use crate::monitors::{self, SourceInfo};
use crate::store::QualityStore;
use crate::{Finding, Outcome, QualityError, Result, Severity, checks};

/// How many days back declared checks run in one evaluation (monitors run for every date).
const CHECK_DAYS: i64 = 7;
/// Days of ledger history the monitors read before the earliest date evaluated.
const HISTORY_DAYS: u64 = 50;
/// Open incidents older than this are not re-evaluated each night.
const REEVALUATE_DAYS: i64 = 30;

/// The data-trust layer of one project.
#[derive(Debug, Clone)]
pub struct Gate {
    project: Project,
    pub store: QualityStore,
    pub defs: QualityDefs,
}

/// Whether a night may publish.
#[derive(Debug, Clone, Serialize)]
pub struct GateDecision {
    pub night: NaiveDate,
    pub publish: bool,
    /// The failing `error` findings that block it.
    pub blocking: Vec<Finding>,
    /// Earlier nights that were blocked or failed and never repaired: published as degraded.
    pub degraded: Vec<NaiveDate>,
    /// Findings evaluated (all dates, all outcomes).
    pub evaluated: usize,
    pub failing: usize,
}

impl GateDecision {
    /// One line for the publish task's error.
    pub fn reason(&self) -> String {
        let first: Vec<String> = self
            .blocking
            .iter()
            .take(3)
            .map(|f| f.message.clone())
            .collect();
        format!(
            "publish of {} blocked by {} failing error check(s): {}{}; the previous snapshot stays in service (see `darkroom health --date {}`)",
            self.night,
            self.blocking.len(),
            first.join("; "),
            if self.blocking.len() > 3 { "; ..." } else { "" },
            self.night
        )
    }
}

pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl Gate {
    pub fn open(project: &Project) -> Result<Self> {
        let defs = QualityDefs::load(&project.root).map_err(QualityError::Definitions)?;
        Ok(Self {
            project: project.clone(),
            store: QualityStore::open_project(&project.root)?,
            defs,
        })
    }

    fn sources(&self) -> Vec<SourceInfo> {
        self.project
            .sources
            .iter()
            .map(|s| SourceInfo {
                name: s.name.get_ref().clone(),
                table: format!("raw_{}", s.name.get_ref()),
                late_days: s.files.late_days,
            })
            .collect()
    }

    /// Evaluate monitors for `dates` (plus dates of open incidents), and declared checks and
    /// reconciliations for those of them in the week up to `night`; store the findings.
    pub async fn evaluate(
        &self,
        warehouse: &Warehouse,
        night: NaiveDate,
        dates: &[NaiveDate],
    ) -> Result<Vec<Finding>> {
        let tz = self.project.timezone();
        let mut all: BTreeSet<NaiveDate> = dates.iter().copied().collect();
        all.insert(night);
        for i in self.store.open_incidents()? {
            if (night - i.date).num_days() <= REEVALUATE_DAYS && i.date <= night {
                all.insert(i.date);
            }
        }
        let ctx = warehouse.private_session().await?;
        let Some(&earliest) = all.first() else {
            return Ok(Vec::new());
        };
        let ledger = monitors::load(&ctx, earliest - chrono::Days::new(HISTORY_DAYS), tz)
            .await
            .map_err(QualityError::Other)?;
        let sources = self.sources();
        let mut out = Vec::new();
        // oldest first, so a date flagged trains no later date's baseline
        for &date in &all {
            let flagged = self.store.flagged()?;
            let mut findings = monitors::evaluate(&ledger, &sources, date, tz, &flagged);
            for f in findings.iter_mut() {
                if f.kind == "parse_failures" && f.failed() {
                    let samples = monitors::quarantine_samples(&ctx, &f.subject, date).await;
                    if let Some(obj) = f.evidence.as_object_mut() {
                        obj.insert("samples".into(), json!(samples));
                    }
                }
            }
            let declared = (night - date).num_days() < CHECK_DAYS && date <= night;
            if declared {
                for c in &self.defs.checks {
                    findings.push(checks::run_check(&ctx, c, date, tz).await);
                }
                let mut pooled = Vec::new();
                for r in &self.defs.reconciles {
                    let f = checks::run_reconcile(&ctx, r, date).await;
                    if r.completeness {
                        pooled.push(f.clone());
                    }
                    findings.push(f);
                }
                let pooled: Vec<&Finding> = pooled.iter().collect();
                let lines = monitors::lines_on(&ledger, date, tz);
                findings.extend(monitors::log_completeness(&pooled, lines, date));
            }
            // declared checks of older dates stay as they were last evaluated
            let kinds: Vec<&str> = if declared {
                Vec::new()
            } else {
                MONITOR_KINDS.to_vec()
            };
            self.store.replace_findings(
                date,
                &findings,
                if declared { None } else { Some(&kinds) },
                now_ms(),
            )?;
            out.extend(findings);
        }
        Ok(out)
    }

    /// Decide on the night from its stored findings.
    pub fn decide(&self, night: NaiveDate, evaluated: &[Finding]) -> Result<GateDecision> {
        let blocking: Vec<Finding> = self
            .store
            .findings(night)?
            .into_iter()
            // an earlier run's failure and a missed deadline say what happened before: this
            // run reached its publish, so its own tasks succeeded
            .filter(|f| f.blocks() && f.kind != "deadline" && f.kind != "run")
            .collect();
        let degraded = self
            .store
            .degraded(night)?
            .into_iter()
            .map(|n| n.date)
            .filter(|d| *d != night)
            .collect();
        Ok(GateDecision {
            night,
            publish: blocking.is_empty(),
            blocking,
            degraded,
            evaluated: evaluated.len(),
            failing: evaluated.iter().filter(|f| f.failed()).count(),
        })
    }

    /// The night was published (a repaired night leaves the degraded list).
    pub fn published(&self, night: NaiveDate, tables: usize) -> Result<()> {
        self.store.set_night(
            night,
            "published",
            &format!("{tables} tables published"),
            now_ms(),
        )
    }

    /// The gate kept the night from publishing.
    pub fn blocked(&self, decision: &GateDecision) -> Result<()> {
        self.store
            .set_night(decision.night, "blocked", &decision.reason(), now_ms())
    }

    /// After a run: a failed run becomes a finding of its night (cleared when a run of that
    /// night succeeds); then incidents of every date evaluated since `started_ms` (and every
    /// open one) are opened, updated or resolved, and alerts sent.
    pub async fn after_run(
        &self,
        warehouse: &Warehouse,
        night: NaiveDate,
        failed_tasks: &[(String, String)],
        started_ms: i64,
    ) -> Result<SendReport> {
        // the gate's own refusal is already its findings
        let failures: Vec<&(String, String)> = failed_tasks
            .iter()
            .filter(|(_, e)| !e.contains("blocked by"))
            .collect();
        let run_finding = Finding {
            id: "run:nightly".into(),
            kind: "run".into(),
            subject: "pipeline".into(),
            date: night,
            outcome: if failures.is_empty() {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
            severity: Severity::Error,
            message: if failures.is_empty() {
                format!("the run of {night} succeeded")
            } else {
                let names: Vec<String> = failures
                    .iter()
                    .take(5)
                    .map(|(t, e)| format!("{t} ({})", first_line(e)))
                    .collect();
                format!(
                    "the run of {night} failed: {} task(s) failed: {}; dashboards stay on the last published snapshot",
                    failures.len(),
                    names.join(", ")
                )
            },
            evidence: json!({"failed_tasks": failures.iter().map(|(t, e)| json!({"task": t, "error": e})).collect::<Vec<_>>()}),
            at_stake: None,
            tables: Vec::new(),
        };
        self.store
            .replace_findings(night, &[run_finding], Some(&["run"]), now_ms())?;
        if !failures.is_empty()
            && self
                .store
                .night(night)?
                .is_none_or(|n| n.state != "published")
        {
            self.store.set_night(
                night,
                "failed",
                &format!("{} task(s) failed", failures.len()),
                now_ms(),
            )?;
        }
        let mut dates: BTreeSet<NaiveDate> = self.store.dates_evaluated_since(started_ms)?;
        // a run that failed before its publish still gets its checks run, over what the
        // tables hold: the evidence (a missing column, a new value) names the cause
        if !failures.is_empty() && !dates.contains(&night) {
            if let Err(e) = self.evaluate(warehouse, night, &[night]).await {
                tracing::warn!("cannot check the failed night {night}: {e}");
            }
            dates = self.store.dates_evaluated_since(started_ms)?;
        }
        dates.insert(night);
        self.sync(&dates).await
    }

    /// Open, update or resolve the incidents of `dates` (and re-check every open one), queue
    /// their alerts and send everything unsent.
    pub async fn sync(&self, dates: &BTreeSet<NaiveDate>) -> Result<SendReport> {
        let mut dates = dates.clone();
        for i in self.store.open_incidents()? {
            dates.insert(i.date);
        }
        let alerts = &self.project.alerts;
        let repeat_ms = (alerts.repeat_hours * 3_600_000.0) as i64;
        for date in dates {
            let failing: Vec<Finding> = self
                .store
                .findings(date)?
                .into_iter()
                .filter(Finding::failed)
                .collect();
            let now = now_ms();
            match (self.store.incident_of(date)?, failing.is_empty()) {
                (None, true) => {}
                (None, false) => {
                    let (severity, title, stake) = summarise(&failing);
                    let id = self
                        .store
                        .open_incident(date, severity, &title, &failing, stake, now)?;
                    if let Some(incident) = self.store.incident(id)? {
                        alerts::queue(
                            &self.store,
                            alerts,
                            &AlertMessage::new("open", &incident),
                            now,
                        )?;
                        self.store.note_alert(id, now)?;
                    }
                }
                (Some(open), false) => {
                    let (severity, title, stake) = summarise(&failing);
                    self.store
                        .update_incident(open.id, severity, &title, &failing, stake, now)?;
                    let worse = severity > open.severity;
                    let due = open.last_alert_ms.is_none_or(|t| now - t >= repeat_ms);
                    if worse || due {
                        if let Some(incident) = self.store.incident(open.id)? {
                            alerts::queue(
                                &self.store,
                                alerts,
                                &AlertMessage::new("repeat", &incident),
                                now,
                            )?;
                            self.store.note_alert(open.id, now)?;
                        }
                    } else {
                        self.store.note_suppressed(open.id)?;
                    }
                }
                (Some(open), true) => {
                    self.store.resolve_incident(open.id, now)?;
                    if let Some(incident) = self.store.incident(open.id)? {
                        alerts::queue(
                            &self.store,
                            alerts,
                            &AlertMessage::new("resolve", &incident),
                            now,
                        )?;
                    }
                }
            }
        }
        alerts::send_pending(&self.store, alerts).await
    }

    /// The dead-man check: the latest night whose deadline (`[pipeline] deadline`, the day
    /// after the night) has passed and that is not published is an incident, even if no run
    /// started. Returns that night, if one was missed.
    pub async fn deadman(&self, now: DateTime<Utc>) -> Result<(Option<NaiveDate>, SendReport)> {
        let Some(time) = self.project.pipeline.deadline_time() else {
            return Ok((None, SendReport::default()));
        };
        let tz = self.project.timezone();
        let today = now.with_timezone(&tz).date_naive();
        let mut missed = None;
        for night in [today - chrono::Days::new(2), today - chrono::Days::new(1)] {
            let Some(due) = night
                .succ_opt()
                .and_then(|d| tz.from_local_datetime(&d.and_time(time)).earliest())
                .map(|t| t.with_timezone(&Utc))
            else {
                continue;
            };
            if now < due {
                continue;
            }
            let published = self.store.published_since(night)?;
            let finding = Finding {
                id: "deadline".into(),
                kind: "deadline".into(),
                subject: "pipeline".into(),
                date: night,
                outcome: if published {
                    Outcome::Pass
                } else {
                    Outcome::Fail
                },
                severity: Severity::Error,
                message: if published {
                    format!("night {night} was published")
                } else {
                    let state = self
                        .store
                        .night(night)?
                        .map(|n| format!("{}: {}", n.state, n.reason))
                        .unwrap_or_else(|| "no run of it finished".into());
                    format!(
                        "night {night} was due by {} and is not published ({state}); dashboards show older data",
                        due.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z")
                    )
                },
                evidence: json!({"due": due.to_rfc3339()}),
                at_stake: None,
                tables: Vec::new(),
            };
            if !published {
                missed = Some(night);
            }
            self.store
                .replace_findings(night, &[finding], Some(&["deadline"]), now_ms())?;
        }
        let mut dates = BTreeSet::new();
        if let Some(m) = missed {
            dates.insert(m);
        }
        let report = self.sync(&dates).await?;
        Ok((missed, report))
    }
}

/// Kinds of the monitors (the findings an evaluation of an older date replaces).
pub const MONITOR_KINDS: &[&str] = &[
    "missing_files",
    "volume_host",
    "volume_daily",
    "parse_failures",
    "duplicate_files",
    "event_dates",
    "clock_skew",
];

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    if line.chars().count() > 200 {
        format!("{}…", line.chars().take(200).collect::<String>())
    } else {
        line.to_string()
    }
}

/// An incident's severity, title and events at stake from its failing findings: the most
/// severe finding names it; events at stake are the largest any finding counts (the monitors
/// of one cause count the same missing lines, so they are not added up).
fn summarise(failing: &[Finding]) -> (Severity, String, Option<i64>) {
    let severity = failing
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Warn);
    let lead = failing
        .iter()
        .find(|f| f.severity == severity)
        .map(|f| first_line(&f.message))
        .unwrap_or_default();
    let title = if failing.len() > 1 {
        format!("{lead} (and {} more)", failing.len() - 1)
    } else {
        lead
    };
    let stake = failing.iter().filter_map(|f| f.at_stake).max();
    (severity, title, stake)
}
