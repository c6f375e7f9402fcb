//! `darkroom health`: the state of the latest night for every table and metric, every open
//! incident with its evidence and events at stake, and the degraded dates — what the UI shows.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use darkroom_storage::Warehouse;
use serde::Serialize;

use crate::store::{Delivery, Incident, Night, QualityStore};
use crate::{Finding, Result, Severity};

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// The night reported on.
    pub date: Option<NaiveDate>,
    /// That night's publish state (`published`, `blocked`, `failed`) if it ran.
    pub night: Option<Night>,
    /// The snapshot readers see: its night and when it was published.
    pub published_night: Option<NaiveDate>,
    pub published_at: Option<String>,
    /// `ok` / `degraded` / `failed` / `stale` per table, and why.
    pub tables: Vec<ItemHealth>,
    pub metrics: Vec<ItemHealth>,
    pub incidents: Vec<Incident>,
    /// Nights published as degraded or not published at all.
    pub degraded: Vec<Night>,
    /// Every finding of the night (failures first).
    pub findings: Vec<Finding>,
    /// Alerts not delivered (tried again by the next run).
    pub undelivered: Vec<Delivery>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemHealth {
    pub name: String,
    /// For a metric: the table it reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub status: &'static str,
    pub reason: String,
}

impl Health {
    /// Whether anything needs a person: an open incident, a failed or stale table.
    pub fn ok(&self) -> bool {
        self.incidents.iter().all(|i| i.severity == Severity::Info)
            && self.tables.iter().all(|t| t.status == "ok")
    }
}

/// Build the report for `date` (default: the latest night with findings or a publish).
pub async fn health(
    store: &QualityStore,
    warehouse: &Warehouse,
    date: Option<NaiveDate>,
    metrics: &[(String, String)],
) -> Result<Health> {
    let snapshot = warehouse.snapshots(1).await?.into_iter().next();
    let published_night = snapshot.as_ref().map(|s| s.night);
    let published_at = snapshot.as_ref().and_then(|s| {
        chrono::DateTime::from_timestamp_micros(s.published_at_us).map(|t| t.to_rfc3339())
    });
    let date = date.or(store.latest_date()?.max(published_night));
    let findings = match date {
        Some(d) => store.findings(d)?,
        None => Vec::new(),
    };
    let night = match date {
        Some(d) => store.night(d)?,
        None => None,
    };
    let run_failed = findings.iter().any(|f| f.kind == "run" && f.failed());
    let not_published = date.is_some_and(|d| published_night.is_none_or(|p| p < d));
    let mut tables = Vec::new();
    let mut by_table: BTreeMap<String, &'static str> = BTreeMap::new();
    for name in warehouse.list_tables().await? {
        if name.starts_with('_') && name != "_ingest_ledger" {
            continue;
        }
        let failing: Vec<&Finding> = findings
            .iter()
            .filter(|f| f.failed() && f.severity >= Severity::Warn && f.tables.contains(&name))
            .collect();
        let (status, reason) = if run_failed && not_published {
            (
                "failed",
                "the night's run failed; readers see the last published snapshot".to_string(),
            )
        } else if !failing.is_empty() {
            (
                "degraded",
                failing
                    .iter()
                    .map(|f| f.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        } else if not_published {
            (
                "stale",
                match published_night {
                    Some(p) => format!("the night is not published; readers see {p}"),
                    None => "nothing published yet".into(),
                },
            )
        } else {
            ("ok", String::new())
        };
        by_table.insert(name.clone(), status);
        tables.push(ItemHealth {
            name,
            table: None,
            status,
            reason,
        });
    }
    let metrics = metrics
        .iter()
        .map(|(m, t)| {
            let status = by_table.get(t).copied().unwrap_or("stale");
            ItemHealth {
                name: m.clone(),
                table: Some(t.clone()),
                status,
                reason: if status == "ok" {
                    String::new()
                } else {
                    format!("its table {t} is {status}")
                },
            }
        })
        .collect();
    let degraded = store.degraded(date.unwrap_or(NaiveDate::MAX))?;
    let undelivered = store
        .unsent()?
        .into_iter()
        .filter(|d| d.status == "failed")
        .collect();
    Ok(Health {
        date,
        night,
        published_night,
        published_at,
        tables,
        metrics,
        incidents: store.open_incidents()?,
        degraded,
        findings,
        undelivered,
    })
}
