//! Data trust on the demo company: each fault the generator injects, on its own, on a fixed
//! day after eight weeks of history, for three seeds — caught, alerted once (to a real local
//! webhook), with the events at stake; and no alert on any other day.
//!
//! CI-affordable: per seed one clean warehouse is built once (small user count); each fault
//! copies it, swaps in the files the fault changed (the generator is deterministic, so every
//! other file is byte-identical) and runs only the nights around the fault.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{BIN, Hook, Run, TestProject};

const START: &str = "2026-01-01";
const DAYS: &str = "60";
const USERS: &str = "12000";
/// A Thursday, after 8 weeks of history.
const FAULT: &str = "2026-02-26";
const BEFORE: &str = "2026-02-25";
const AFTER: &str = "2026-02-27";

fn darkroom(dir: &Path, args: &[&str]) -> Run {
    let out = std::process::Command::new(BIN)
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    Run::from_output(out)
}

fn generate(dir: &Path, seed: u64, faults: &[&str]) {
    let seed = seed.to_string();
    let mut args = vec![
        "demo",
        dir.to_str().unwrap(),
        "--days",
        DAYS,
        "--users",
        USERS,
        "--seed",
        &seed,
        "--start",
        START,
        "--no-run",
    ];
    for f in faults {
        args.extend(["--fault", f]);
    }
    let out = std::process::Command::new(BIN)
        .args(&args)
        .output()
        .unwrap();
    Run::from_output(out).ok();
}

/// Files under `rel` of `from` that differ from (or are missing in) `to`, copied over.
fn sync_changed(from: &Path, to: &Path, rel: &str) -> Vec<PathBuf> {
    let mut changed = Vec::new();
    let mut stack = vec![from.join(rel)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let target = to.join(p.strip_prefix(from).unwrap());
            let new = std::fs::read(&p).unwrap();
            if std::fs::read(&target).ok().as_deref() != Some(&new[..]) {
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::write(&target, &new).unwrap();
                changed.push(target);
            }
        }
    }
    // files the fault removed (a missing day)
    let mut stack = vec![to.join(rel)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !from.join(p.strip_prefix(to).unwrap()).exists() {
                std::fs::remove_file(&p).unwrap();
                changed.push(p);
            }
        }
    }
    changed
}

/// One seed's clean warehouse, built through the day before the fault.
struct Base {
    seed: u64,
    dir: tempfile::TempDir,
}

impl Base {
    fn build(seed: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), seed, &[]);
        darkroom(dir.path(), &["run", "--date", START]).ok();
        let next = "2026-01-02";
        darkroom(dir.path(), &["backfill", "--from", next, "--to", BEFORE]).ok();
        let health = darkroom(dir.path(), &["health", "--json"]).json();
        // clean runs with weekday seasonality and growth: no incident on any day
        let incidents = health["incidents"].as_array().unwrap();
        assert!(
            incidents.is_empty(),
            "seed {seed}: clean history raised incidents: {}",
            serde_json::to_string_pretty(incidents).unwrap()
        );
        Self { seed, dir }
    }

    /// A copy with the fault's files swapped in and alerts going to `hook`.
    fn with_fault(&self, faults: &[&str], hook: &Hook) -> (tempfile::TempDir, Value) {
        let faulty = tempfile::tempdir().unwrap();
        generate(faulty.path(), self.seed, faults);
        let copy = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", self.dir.path().display()))
            .arg(copy.path())
            .status()
            .unwrap();
        assert!(status.success());
        for rel in ["logs", "db", "truth", "models"] {
            sync_changed(faulty.path(), copy.path(), rel);
        }
        let mut toml = std::fs::read_to_string(copy.path().join("darkroom.toml")).unwrap();
        toml.push_str(&format!(
            "\n[pipeline]\nretries = 0\ndeadline = \"06:00\"\n\n[alerts]\nretry_seconds = 0\n\n\
             [[alerts.channels]]\nname = \"test-hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            hook.url
        ));
        std::fs::write(copy.path().join("darkroom.toml"), toml).unwrap();
        let truth: Value = serde_json::from_slice(
            &std::fs::read(faulty.path().join("truth/lost_lines.json")).unwrap(),
        )
        .unwrap();
        (copy, truth)
    }
}

fn night(dir: &Path, date: &str) -> Run {
    darkroom(dir, &["run", "--date", date])
}

fn findings(alert: &Value) -> Vec<&Value> {
    alert["findings"].as_array().unwrap().iter().collect()
}

/// The only alerts are `open` alerts for `date` (plus what `also` allows).
fn only_opens_for(alerts: &[Value], date: &str, what: &str) -> Value {
    assert_eq!(
        alerts.len(),
        1,
        "{what}: expected one alert, got {}",
        serde_json::to_string_pretty(alerts).unwrap()
    );
    let a = alerts[0].clone();
    assert_eq!(a["event"], "open", "{what}: {a}");
    assert_eq!(a["date"], date, "{what}: an alert on another day: {a}");
    a
}

/// Lines the truth says were lost on the fault day (local date), by source and host.
fn lost_on(truth: &Value, source: &str, host: Option<&str>) -> f64 {
    let tz: chrono_tz::Tz = "America/Toronto".parse().unwrap();
    truth
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["source"] == source && host.is_none_or(|h| l["host"] == h))
        .filter(|l| {
            let hour = chrono::DateTime::parse_from_rfc3339(l["hour"].as_str().unwrap()).unwrap();
            hour.with_timezone(&tz).date_naive().to_string() == FAULT
        })
        .map(|l| l["lines"].as_f64().unwrap())
        .sum()
}

fn within(actual: f64, truth: f64, what: &str) {
    assert!(truth > 0.0, "{what}: the truth counts nothing");
    let err = (actual - truth).abs() / truth;
    assert!(
        err <= 0.2,
        "{what}: {actual} events at stake, truth {truth} ({:.0}% off)",
        err * 100.0
    );
}

fn seed_acceptance(seed: u64) {
    let base = Base::build(seed);
    let hook = Hook::start();
    let tz_name = std::fs::read_to_string(base.dir.path().join("darkroom.toml")).unwrap();
    assert!(
        tz_name.contains("America/Toronto"),
        "the demo's time zone changed"
    );

    // ---- clean nights: nothing at all ----
    let (p, _) = base.with_fault(&[], &hook);
    night(p.path(), FAULT).ok();
    night(p.path(), AFTER).ok();
    let alerts = hook.take();
    assert!(
        alerts.is_empty(),
        "seed {seed}: clean nights alerted: {alerts:?}"
    );

    // ---- an API host's sender dies at 14:00 and its backlog arrives the next day ----
    let (p, _) = base.with_fault(
        &[&format!(
            "sender-dies:host=api-2,from={FAULT}T14:00,back={AFTER}"
        )],
        &hook,
    );
    night(p.path(), FAULT).ok();
    let alert = only_opens_for(&hook.take(), FAULT, "sender-dies");
    let (_, truth) = {
        // the same death without a comeback: the truth counts the lines as lost
        let t = tempfile::tempdir().unwrap();
        generate(
            t.path(),
            seed,
            &[&format!("sender-dies:host=api-2,from={FAULT}T14:00")],
        );
        let truth: Value =
            serde_json::from_slice(&std::fs::read(t.path().join("truth/lost_lines.json")).unwrap())
                .unwrap();
        ((), truth)
    };
    for source in ["api", "app"] {
        let f = findings(&alert)
            .into_iter()
            .find(|f| f["id"] == format!("volume_host:{source}:api-2"))
            .unwrap_or_else(|| {
                panic!("seed {seed}: no volume finding for {source}/api-2: {alert}")
            });
        assert!(f["message"].as_str().unwrap().contains("api-2"), "{f}");
        // reported from the first hour bucket after the stop
        assert_eq!(
            f["evidence"]["from"],
            format!("{FAULT} 14:00"),
            "seed {seed}: {f}"
        );
        within(
            f["at_stake"].as_f64().unwrap(),
            lost_on(&truth, source, Some("api-2")),
            &format!("seed {seed} sender-dies {source}"),
        );
    }
    // the backlog arrives: the fault day is rebuilt and its incident resolves
    night(p.path(), AFTER).ok();
    let alerts = hook.take();
    assert_eq!(alerts.len(), 1, "seed {seed}: {alerts:?}");
    assert_eq!(alerts[0]["event"], "resolve", "seed {seed}: {alerts:?}");
    assert_eq!(alerts[0]["date"], FAULT);
    let rows = TestProject::open(p.path()).count(&format!(
        "SELECT count(*) FROM raw_api WHERE host = 'api-2' AND event_date = DATE '{FAULT}' \
         AND event_ts >= TIMESTAMP '{FAULT}T19:00:00Z'"
    ));
    assert!(rows > 0, "the backlog was not ingested");

    // ---- 10% of a day's lines lost in transit, on every host ----
    let (p, truth) = base.with_fault(&[&format!("loss:date={FAULT},fraction=0.1")], &hook);
    night(p.path(), FAULT).ok();
    let alert = only_opens_for(&hook.take(), FAULT, "loss");
    // the day's volume alone is within this demo's day-to-day swing (arrivals vary by +-10%):
    // the logs' completeness against the database says how much was lost
    let complete = findings(&alert)
        .into_iter()
        .find(|f| f["kind"] == "log_completeness")
        .unwrap_or_else(|| panic!("seed {seed}: no log-completeness finding: {alert}"));
    let lost: f64 = ["web", "api", "app"]
        .iter()
        .map(|s| lost_on(&truth, s, None))
        .sum();
    within(
        complete["at_stake"].as_f64().unwrap(),
        lost,
        &format!("seed {seed} loss"),
    );
    assert!(
        findings(&alert).iter().any(|f| f["kind"] == "reconcile"),
        "seed {seed}: the reconciliation against the database agreed: {alert}"
    );

    // ---- a parser regression on 5% of the day's nginx lines ----
    let (p, _) = base.with_fault(&[&format!("garble:date={FAULT},fraction=0.05")], &hook);
    night(p.path(), FAULT).ok();
    let alert = only_opens_for(&hook.take(), FAULT, "garble");
    let parse: Vec<&Value> = findings(&alert)
        .into_iter()
        .filter(|f| f["kind"] == "parse_failures")
        .collect();
    assert!(
        !parse.is_empty(),
        "seed {seed}: no parse-failure finding: {alert}"
    );
    for f in parse {
        let samples = f["evidence"]["samples"].as_array().unwrap();
        assert!(!samples.is_empty(), "{f}");
        // the regression wrote ISO 8601 times: the samples show them, with the reason
        assert!(
            samples
                .iter()
                .all(|s| !s["reason"].as_str().unwrap().is_empty()
                    && s["text"].as_str().unwrap().contains("+00:00]")),
            "{f}"
        );
    }

    // the format is added to the sources: re-running the day empties the quarantine and the
    // counts equal the truth
    let toml_path = p.path().join("darkroom.toml");
    let toml = std::fs::read_to_string(&toml_path).unwrap();
    let iso = crate::harness::DEMO_FORMAT.replace("$time_local", "$time_iso8601");
    let toml = toml.replace(
        &format!("format = '{}'\n", crate::harness::DEMO_FORMAT),
        &format!(
            "format = '{}'\nalso_formats = ['{iso}']\n",
            crate::harness::DEMO_FORMAT
        ),
    );
    assert_eq!(toml.matches("also_formats").count(), 2, "{toml}");
    std::fs::write(&toml_path, toml).unwrap();
    night(p.path(), FAULT).ok();
    let project = TestProject::open(p.path());
    let files: Value =
        serde_json::from_slice(&std::fs::read(p.path().join("truth/files.json")).unwrap()).unwrap();
    for source in ["web", "api"] {
        let quarantined = project.count(&format!(
            "SELECT count(*) FROM _quarantine_{source} WHERE file_date = DATE '{FAULT}'"
        ));
        assert_eq!(quarantined, 0, "seed {seed}: {source} still quarantines");
        let written: i64 = files
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["source"] == source && f["file_date"] == FAULT)
            .map(|f| f["lines"].as_i64().unwrap())
            .sum();
        let rows = project.count(&format!(
            "SELECT count(*) FROM raw_{source} WHERE file_date = DATE '{FAULT}'"
        ));
        assert_eq!(rows, written, "seed {seed}: {source} rows after the fix");
    }
    // the incident resolves
    let alerts = hook.take();
    assert!(
        alerts
            .iter()
            .all(|a| a["event"] == "resolve" && a["date"] == FAULT),
        "seed {seed}: {alerts:?}"
    );

    // ---- a file delivered twice: counted once, and a notice ----
    let (p, _) = base.with_fault(&[&format!("duplicate:host=web-1,date={FAULT}")], &hook);
    night(p.path(), FAULT).ok();
    let alert = only_opens_for(&hook.take(), FAULT, "duplicate");
    assert_eq!(alert["severity"], "info", "seed {seed}: {alert}");
    assert!(
        findings(&alert)
            .iter()
            .all(|f| f["kind"] == "duplicate_files"),
        "{alert}"
    );
    let project = TestProject::open(p.path());
    let files: Value =
        serde_json::from_slice(&std::fs::read(p.path().join("truth/files.json")).unwrap()).unwrap();
    let written: i64 = files
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["source"] == "web" && f["file_date"] == FAULT && f["duplicate_of"].is_null())
        .map(|f| f["lines"].as_i64().unwrap())
        .sum();
    let rows = project.count(&format!(
        "SELECT count(*) FROM raw_web WHERE file_date = DATE '{FAULT}'"
    ));
    assert_eq!(rows, written, "seed {seed}: the duplicate was counted");

    // ---- a whole day of logs missing: not published, and the deadline says so ----
    let (p, _) = base.with_fault(&[&format!("missing-day:date={FAULT}")], &hook);
    let run = night(p.path(), FAULT);
    assert_ne!(
        run.code,
        Some(0),
        "seed {seed}: a night without logs published"
    );
    let alert = only_opens_for(&hook.take(), FAULT, "missing-day");
    assert_eq!(alert["severity"], "error");
    assert!(
        findings(&alert).iter().any(|f| f["kind"] == "freshness"),
        "seed {seed}: no freshness failure: {alert}"
    );
    let health = darkroom(
        p.path(),
        &[
            "health",
            "--json",
            "--notify",
            "--as-of",
            &format!("{AFTER}T12:00:00Z"),
        ],
    )
    .json();
    assert_eq!(health["published_night"], BEFORE);
    let deadline = health["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "deadline")
        .unwrap_or_else(|| {
            panic!(
                "no dead-man finding: {}",
                health["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["message"].to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
    assert_eq!(deadline["outcome"], "fail", "{deadline}");
    // the incident was alerted already: the dead-man finding joins it without a repeat
    assert!(hook.take().is_empty());

    // ---- the nightly run fails: the database is unreachable ----
    let (p, _) = base.with_fault(&[], &hook);
    std::fs::rename(p.path().join("db"), p.path().join("db-away")).unwrap();
    let run = night(p.path(), FAULT);
    assert_ne!(run.code, Some(0));
    let alert = only_opens_for(&hook.take(), FAULT, "db-unreachable");
    assert!(
        findings(&alert).iter().any(|f| f["kind"] == "run"
            && f["message"]
                .as_str()
                .unwrap()
                .contains(&format!("extract/app_db/{FAULT}"))),
        "seed {seed}: the alert does not name the failed task: {alert}"
    );
    // dashboards stay on the last good snapshot, labelled with its date
    let metric = darkroom(
        p.path(),
        &["metric", "dau", "--from", BEFORE, "--to", BEFORE, "--json"],
    )
    .ok()
    .json();
    assert_eq!(metric["as_of"]["night"], BEFORE, "{metric}");

    // ---- schema drift: a new enum value, a renamed column ----
    let (p, _) = base.with_fault(&["schema-drift:change=enum"], &hook);
    night(p.path(), FAULT);
    let alert = only_opens_for(&hook.take(), FAULT, "schema-drift enum");
    assert!(
        findings(&alert)
            .iter()
            .any(|f| f["kind"] == "accepted_values"
                && f["message"].as_str().unwrap().contains("`team`")),
        "seed {seed}: no accepted-values alert naming the value: {alert}"
    );
    let (p, _) = base.with_fault(&["schema-drift:change=rename"], &hook);
    night(p.path(), FAULT);
    let alert = only_opens_for(&hook.take(), FAULT, "schema-drift rename");
    assert!(
        findings(&alert)
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("`country`")),
        "seed {seed}: no alert naming the column: {alert}"
    );

    // a retyped column (photos.width turned into text): the extract refuses it, the night
    // fails and the alert names the column
    let (p, _) = base.with_fault(&["schema-drift:change=type"], &hook);
    assert_ne!(
        night(p.path(), FAULT).code,
        Some(0),
        "seed {seed}: a retyped column published"
    );
    let alert = only_opens_for(&hook.take(), FAULT, "schema-drift type");
    assert!(
        findings(&alert)
            .iter()
            .any(|f| f["message"].as_str().unwrap().contains("`width`")),
        "seed {seed}: no alert naming the retyped column: {alert}"
    );

    // ---- one web host's clock five hours ahead from the fault day ----
    // On its first day the skew only empties the host's first five hours (quiet night hours
    // of a bursty web host): the hourly shape gives it away once a whole day is shifted, so
    // the alert may come the next morning; both days are faulty, no other day may alert.
    let (p, _) = base.with_fault(
        &[&format!("clock-skew:host=web-3,hours=5,from={FAULT}")],
        &hook,
    );
    night(p.path(), FAULT);
    night(p.path(), AFTER);
    let alerts = hook.take();
    assert!(
        alerts
            .iter()
            .all(|a| a["date"] == FAULT || a["date"] == AFTER),
        "seed {seed}: clock-skew alerted another day: {alerts:?}"
    );
    let skew: Vec<&Value> = alerts
        .iter()
        .flat_map(|a| a["findings"].as_array().unwrap().iter())
        .filter(|f| f["kind"] == "clock_skew")
        .collect();
    assert!(
        skew.iter()
            .any(|f| f["message"].as_str().unwrap().contains("web/web-3")
                && f["message"].as_str().unwrap().contains("5 hour(s) ahead")),
        "seed {seed}: no clock-skew alert naming the host and the skew: {alerts:?}"
    );
    assert!(
        skew.iter()
            .all(|f| f["message"].as_str().unwrap().contains("web/web-3")),
        "seed {seed}: another host blamed: {skew:?}"
    );
}

/// The seeds a test runs: its own, or DARKROOM_TRUST_SEEDS (e.g. `7` or `4,5`) instead of all
/// three, which then run in `seed_1` alone (the others return at once).
fn seeds_for(own: u64) -> Vec<u64> {
    match std::env::var("DARKROOM_TRUST_SEEDS") {
        Ok(s) if own == 1 => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Ok(_) => Vec::new(),
        Err(_) => vec![own],
    }
}

// One test per seed, so cargo's test threads run two seeds at once on two cores (each night
// of the pipeline leaves a core idle much of the time).
#[test]
fn demo_faults_are_caught_and_nothing_else_alerts_seed_1() {
    seeds_for(1).into_iter().for_each(seed_acceptance);
}

#[test]
fn demo_faults_are_caught_and_nothing_else_alerts_seed_2() {
    seeds_for(2).into_iter().for_each(seed_acceptance);
}

#[test]
fn demo_faults_are_caught_and_nothing_else_alerts_seed_3() {
    seeds_for(3).into_iter().for_each(seed_acceptance);
}
