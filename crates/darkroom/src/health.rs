//! `darkroom health`: can the numbers be trusted?

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Result, anyhow};
use chrono::NaiveDate;
use darkroom_quality::health::Health;

use crate::exit;
use crate::output::print_json;
use crate::project;

/// Each metric and the table it reads (a ratio or derived metric: the table of its first
/// input that has one).
fn metric_tables(root: &Path) -> Vec<(String, String)> {
    let Ok(defs) = darkroom_analytics::Definitions::load(root) else {
        return Vec::new();
    };
    let table_of = |name: &str| -> Option<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let m = defs.metrics.get(&n)?;
            if let Some(t) = &m.table {
                return Some(t.clone());
            }
            todo.extend(m.inputs());
        }
        None
    };
    defs.metrics
        .keys()
        .filter_map(|m| table_of(m).map(|t| (m.clone(), t)))
        .collect()
}

pub async fn health(
    explicit: Option<&Path>,
    date: Option<NaiveDate>,
    json: bool,
    notify: bool,
    recheck: bool,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<u8> {
    let project = project::load(explicit)?;
    let gate = darkroom_quality::Gate::open(&project).map_err(|e| anyhow!("{e}"))?;
    let warehouse = project::warehouse(&project)?;
    let mut notes = Vec::new();
    if recheck {
        let night = match date {
            Some(d) => d,
            None => warehouse
                .snapshots(1)
                .await?
                .first()
                .map(|s| s.night)
                .ok_or_else(|| anyhow!("nothing published yet: name the night with --date"))?,
        };
        let started = chrono::Utc::now().timestamp_millis();
        let findings = gate
            .evaluate(&warehouse, night, &[night])
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let report = gate
            .sync(
                &gate
                    .store
                    .dates_evaluated_since(started)
                    .map_err(|e| anyhow!("{e}"))?,
            )
            .await
            .map_err(|e| anyhow!("{e}"))?;
        notes.push(format!(
            "rechecked {night}: {} findings, {} failing; alerts: {} sent, {} failed",
            findings.len(),
            findings.iter().filter(|f| f.failed()).count(),
            report.sent,
            report.failed
        ));
    }
    if notify {
        let (missed, report) = gate
            .deadman(as_of.unwrap_or_else(chrono::Utc::now))
            .await
            .map_err(|e| anyhow!("{e}"))?;
        if let Some(m) = missed {
            notes.push(format!(
                "night {m} missed its deadline: incident opened and alerted"
            ));
        }
        notes.push(format!(
            "alerts: {} sent, {} failed{}",
            report.sent,
            report.failed,
            if report.errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", report.errors.join("; "))
            }
        ));
    }
    let metrics = metric_tables(&project.root);
    let report = darkroom_quality::health::health(&gate.store, &warehouse, date, &metrics)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let code = if report.ok() {
        exit::OK
    } else {
        exit::INCOMPLETE
    };
    if json {
        print_json(&report)?;
        return Ok(code);
    }
    print!("{}", render(&report, &project.timezone()));
    for n in notes {
        println!("{n}");
    }
    Ok(code)
}

fn render(h: &Health, tz: &chrono_tz::Tz) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let Some(date) = h.date else {
        return "No night has been checked yet: `darkroom run` runs last night and its checks.\n"
            .into();
    };
    let state = h
        .night
        .as_ref()
        .map(|n| format!("{} ({})", n.state, n.reason))
        .unwrap_or_else(|| "not run".into());
    let _ = writeln!(out, "Night {date}: {state}");
    match (&h.published_night, &h.published_at) {
        (Some(n), Some(at)) => {
            let _ = writeln!(
                out,
                "Readers see the snapshot of night {n} (published {at})"
            );
        }
        _ => {
            let _ = writeln!(out, "Nothing published yet");
        }
    }
    if !h.degraded.is_empty() {
        let list: Vec<String> = h
            .degraded
            .iter()
            .map(|n| format!("{} ({})", n.date, n.state))
            .collect();
        let _ = writeln!(out, "Degraded dates: {}", list.join(", "));
    }
    let _ = writeln!(out, "\nOpen incidents: {}", h.incidents.len());
    for i in &h.incidents {
        let opened = chrono::DateTime::from_timestamp_millis(i.opened_ms)
            .map(|t| t.with_timezone(tz).format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  #{} [{}] {} — {}{}",
            i.id,
            i.severity.name(),
            i.date,
            i.title,
            i.at_stake
                .map(|n| format!(" — about {n} events at stake"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "     opened {opened}");
        for f in &i.findings {
            let _ = writeln!(out, "     - [{}] {}", f.severity.name(), f.message);
            if let Some(samples) = f.evidence.get("samples").and_then(|s| s.as_array()) {
                for s in samples.iter().take(3) {
                    let _ = writeln!(
                        out,
                        "         {}:{} {} | {}",
                        s["file"].as_str().unwrap_or_default(),
                        s["line"].as_str().unwrap_or_default(),
                        s["reason"].as_str().unwrap_or_default(),
                        s["text"].as_str().unwrap_or_default()
                    );
                }
            }
        }
    }
    let count = |status: &str| h.tables.iter().filter(|t| t.status == status).count();
    let _ = writeln!(
        out,
        "\nTables: {} ok, {} degraded, {} failed, {} stale",
        count("ok"),
        count("degraded"),
        count("failed"),
        count("stale")
    );
    for t in h.tables.iter().filter(|t| t.status != "ok") {
        let _ = writeln!(out, "  {:<32} {:<9} {}", t.name, t.status, t.reason);
    }
    let bad_metrics: Vec<&darkroom_quality::health::ItemHealth> =
        h.metrics.iter().filter(|m| m.status != "ok").collect();
    let _ = writeln!(
        out,
        "Metrics: {} ok, {} not ok",
        h.metrics.len() - bad_metrics.len(),
        bad_metrics.len()
    );
    for m in bad_metrics {
        let _ = writeln!(out, "  {:<32} {:<9} {}", m.name, m.status, m.reason);
    }
    let failing = h.findings.iter().filter(|f| f.failed()).count();
    let pending = h
        .findings
        .iter()
        .filter(|f| f.outcome == darkroom_quality::Outcome::NoVerdict)
        .count();
    let _ = writeln!(
        out,
        "\nChecks of {date}: {} evaluated, {failing} failing, {pending} without a verdict yet",
        h.findings.len()
    );
    if !h.undelivered.is_empty() {
        let _ = writeln!(
            out,
            "Alerts not delivered (tried again by the next run): {}",
            h.undelivered.len()
        );
        for d in &h.undelivered {
            let _ = writeln!(
                out,
                "  #{} {} to {}: {}",
                d.incident,
                d.event,
                d.channel,
                d.error.clone().unwrap_or_default()
            );
        }
    }
    out
}
