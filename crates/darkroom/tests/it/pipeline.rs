//! The orchestrator end to end, on the demo company: a backfill builds exactly the truth, a
//! second run redoes nothing, two runs at once run each task once, kills at every step then a
//! resume leave no duplicate, late files rebuild exactly the dates they touch, failures skip
//! downstream and `--reprocess failed` reruns only them, and a missed deadline is reported
//! when nothing ran at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::demo::{demo, star_schema_matches_truth};
use crate::harness::TestProject;

const FIRST: &str = "2026-01-01";
const LAST: &str = "2026-01-07";

/// A 7-day demo company, generated but not run, with its database extracted for the last
/// night (a backfill builds from the snapshots already in the warehouse).
fn company(dir: &Path, seed: &str) -> TestProject {
    demo(
        dir,
        &["--days", "7", "--users", "400", "--seed", seed, "--no-run"],
    )
    .ok();
    let p = TestProject::open(dir);
    p.run(&["extract", "--date", LAST]).ok();
    p
}

/// Attempts per task, over every run, from the run history.
fn attempts(p: &TestProject) -> BTreeMap<String, i64> {
    let db = rusqlite::Connection::open(p.path().join(".darkroom/state.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT task, count(*) FROM attempts GROUP BY task")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The tasks of a run report, by status.
fn by_status(report: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in report["tasks"].as_array().unwrap() {
        out.entry(t["status"].as_str().unwrap().to_string())
            .or_default()
            .insert(t["task"].as_str().unwrap().to_string());
    }
    out
}

fn backfill_args() -> Vec<&'static str> {
    vec!["backfill", "--from", FIRST, "--to", LAST, "--json"]
}

#[test]
fn a_backfill_builds_the_truth_once_even_when_triggered_twice_and_a_rerun_redoes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let p = company(&dir, "21");

    // two triggers at once: one runs, the other stops at once naming it
    let first = p
        .command(&backfill_args())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let second = p.run(&backfill_args());
    let first = crate::harness::Run::from_output(first.wait_with_output().unwrap());
    let (winner, loser) = if first.code == Some(0) {
        (first, second)
    } else {
        (second, first)
    };
    let winner = winner.ok();
    assert_eq!(loser.code, Some(4), "{}\n{}", loser.stdout, loser.stderr);
    let locked = loser.json();
    let message = locked["error"].as_str().unwrap();
    assert!(
        message.contains("another backfill is running") && message.contains("pid "),
        "{message}"
    );
    let report = winner.json();
    assert_eq!(report["ok"], true);
    let statuses = by_status(&report);
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        ["succeeded"],
        "{statuses:?}"
    );
    // every task (one per source and date, per model and date, ...) had exactly one attempt
    let tried = attempts(&p);
    assert_eq!(tried.len(), statuses["succeeded"].len());
    assert!(tried.values().all(|n| *n == 1), "{tried:?}");
    for source in ["web", "api", "app"] {
        for d in 1..=7 {
            assert!(tried.contains_key(&format!("ingest/{source}/2026-01-0{d}")));
        }
    }
    assert!(tried.contains_key("build/fct_events/2026-01-07"));
    assert!(tried.contains_key("build/dim_person"));
    assert!(tried.contains_key("publish/2026-01-07"));

    // the star schema is the truth
    assert!(star_schema_matches_truth(&dir, &p) > 1000);

    // done means done: nothing runs again, no attempt is added
    let again = p.run(&backfill_args()).ok().json();
    let statuses = by_status(&again);
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        ["done"],
        "{statuses:?}"
    );
    assert_eq!(attempts(&p), tried);
    let plan = p
        .run(&[
            "backfill",
            "--from",
            FIRST,
            "--to",
            LAST,
            "--dry-run",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(plan["to_run"], 0);

    // status: the latest complete partitions, the runs, nothing failed
    let status = p.run(&["status", "--json"]).ok().json();
    assert_eq!(status["published"], LAST);
    let tables: BTreeMap<&str, &Value> = status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap(), t))
        .collect();
    assert_eq!(tables["fct_events"]["latest_partition"], LAST);
    assert_eq!(tables["raw_web"]["latest_partition"], LAST);
    assert_eq!(tables["fct_events"]["completions"], 7);
    let runs = status["runs"].as_array().unwrap();
    assert_eq!(runs[0]["status"], "succeeded");
    assert_eq!(runs[0]["kind"], "backfill");
    assert_eq!(runs[0]["project_hash"].as_str().unwrap().len(), 64);
    assert!(status["failed"].as_array().unwrap().is_empty());
    assert!(status["running"].is_null());

    // a table deleted behind Darkroom's back: its partitions are no longer done
    std::fs::remove_dir_all(dir.join("warehouse/fct_web_traffic")).unwrap();
    let plan = p
        .run(&[
            "backfill",
            "--from",
            FIRST,
            "--to",
            LAST,
            "--dry-run",
            "--json",
        ])
        .ok()
        .json();
    let to_run: BTreeSet<&str> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["planned"]["run"].is_object())
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(to_run.len(), 8, "{to_run:?}");
    assert!(to_run.contains("build/fct_web_traffic/2026-01-01"));
    assert!(to_run.contains("publish/2026-01-07"));

    // Without --json the run says how it went, stage by stage.
    let run = p.run(&["backfill", "--from", FIRST, "--to", LAST]).ok();
    assert!(
        run.stdout
            .contains(&format!("{FIRST} to {LAST}: succeeded")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("stage") && run.stdout.contains("publish"),
        "{}",
        run.stdout
    );
}

#[test]
fn kills_at_every_step_then_a_resume_leave_no_duplicate_and_redo_nothing_completed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let p = company(&dir, "22");
    let killed = |cmd: &mut std::process::Command, failpoint: &str| {
        cmd.env("DARKROOM_FAILPOINT", failpoint);
        let out = crate::harness::Run::from_output(cmd.output().unwrap());
        assert_eq!(
            out.code, None,
            "{failpoint}: killed by a signal\n{}",
            out.stderr
        );
        assert!(out.stderr.contains("failpoint"), "{}", out.stderr);
    };
    let redo_all = || {
        let mut args = backfill_args();
        args.extend(["--reprocess", "all"]);
        p.command(&args)
    };
    // killed between a commit and its entry in the run history's index
    killed(
        &mut p.command(&backfill_args()),
        "write.after_commit:_ingest_ledger",
    );
    // the resume takes the dead run's lock over and finishes; the completion committed just
    // before the kill is found in the warehouse, not redone
    let resumed = p.run(&backfill_args()).ok().json();
    assert_eq!(resumed["ok"], true, "{resumed}");
    assert!(resumed["took_over"]["pid"].is_u64(), "{resumed}");
    let found: Vec<&str> = resumed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["note"]
                .as_str()
                .is_some_and(|n| n.contains("found complete"))
        })
        .filter_map(|t| t["task"].as_str())
        .collect();
    assert_eq!(found.len(), 1, "{resumed}");
    assert!(found[0].starts_with("ingest/"), "{found:?}");
    // every other step of a write, in a run that redoes everything: each failpoint aborts the
    // process (as kill -9 would) the first time a write reaches it
    for failpoint in [
        "write.before_commit:raw_api",
        "write.input_consumed:stg_touches",
        "write.after_commit:stg_identity_links",
        "write.after_commit:map_identity",
        "write.before_commit:fct_events",
        "write.after_commit:_snapshots",
    ] {
        killed(&mut redo_all(), failpoint);
    }
    // then seeded random kills
    let mut seed: u64 = 0x0d0c_5eed;
    for _ in 0..3 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = redo_all().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(500 + seed % 4000));
        let _ = child.kill();
        let _ = child.wait();
    }
    let resumed = p.run(&backfill_args()).ok().json();
    assert_eq!(resumed["ok"], true, "{resumed}");
    // no duplicated row anywhere: the facts and raw tables are exactly the truth
    assert!(star_schema_matches_truth(&dir, &p) > 1000);
    let summary = crate::demo::truth(&dir, "summary");
    let lines = p.count("SELECT count(*) FROM raw_web")
        + p.count("SELECT count(*) FROM raw_api")
        + p.count("SELECT count(*) FROM raw_app");
    assert_eq!(
        lines as u64,
        crate::demo::n(&summary["log_lines"]["written"]),
        "raw rows = lines written"
    );
    for table in ["raw_web", "raw_api", "raw_app"] {
        assert_eq!(
            p.count(&format!(
                "SELECT count(*) FROM (SELECT DISTINCT file, line FROM {table})"
            )),
            p.count(&format!("SELECT count(*) FROM {table}")),
            "{table}: a line twice"
        );
    }
    // and a run after that has nothing left to do
    let again = p.run(&backfill_args()).ok().json();
    assert_eq!(by_status(&again).keys().collect::<Vec<_>>(), ["done"]);
}

#[test]
fn a_late_file_rebuilds_exactly_the_dates_it_touches() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let p = company(&dir, "23");
    // web-2's file of the 4th arrives late: it is not there for the backfill
    let late = dir.join("logs/web/web-2/access-2026-01-04.log.gz");
    let away = dir.join("late.log.gz");
    std::fs::rename(&late, &away).unwrap();
    // done, but a host's file was missing: exit code 3, the task says which
    let first = p.run(&backfill_args());
    assert_eq!(first.code, Some(3), "{}", first.stderr);
    let first = first.json();
    let missing: Vec<&Value> = first["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["incomplete"] == true)
        .collect();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["task"], "ingest/web/2026-01-04");
    assert_eq!(missing[0]["note"], "incomplete: no file from web-2");
    let before = p.count("SELECT count(*) FROM raw_web");
    std::fs::rename(&away, &late).unwrap();

    let plan = p
        .run(&["run", "--date", LAST, "--dry-run", "--json"])
        .ok()
        .json();
    let why: BTreeMap<&str, &str> = plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| Some((t["id"].as_str()?, t["planned"]["run"]["why"].as_str()?)))
        .collect();
    assert_eq!(
        why.get("ingest/web/2026-01-04"),
        Some(&"late data: its files changed since it was done"),
        "{why:?}"
    );

    let report = p.run(&["run", "--date", LAST, "--json"]).ok().json();
    let ran = by_status(&report)["succeeded"].clone();
    let ingested: Vec<&String> = ran.iter().filter(|t| t.starts_with("ingest/")).collect();
    assert_eq!(ingested, ["ingest/web/2026-01-04"]);
    // the dated builds that ran: models reading the web logs, for the event dates file date
    // 2026-01-04 holds (the 3rd to the 5th, with late_days = 1), and nothing else
    let rebuilt: BTreeSet<(&str, &str)> = ran
        .iter()
        .filter_map(|t| {
            let rest = t.strip_prefix("build/")?;
            let (model, date) = rest.split_once('/')?;
            Some((model, date))
        })
        .collect();
    let dates: BTreeSet<&str> = rebuilt.iter().map(|(_, d)| *d).collect();
    assert_eq!(
        dates,
        BTreeSet::from(["2026-01-03", "2026-01-04", "2026-01-05"]),
        "{rebuilt:?}"
    );
    let models: BTreeSet<&str> = rebuilt.iter().map(|(m, _)| *m).collect();
    for reads_web in [
        "stg_web_requests",
        "fct_web_traffic",
        "stg_touches",
        "mart_daily_kpis",
    ] {
        assert!(
            models.contains(reads_web),
            "{reads_web} not rebuilt: {models:?}"
        );
    }
    for independent in ["fct_marketplace_sales", "fct_subscriptions"] {
        assert!(
            !models.contains(independent),
            "{independent} rebuilt: {models:?}"
        );
    }
    assert!(ran.contains("publish/2026-01-07"));
    // the warehouse now holds the late file too, and is again exactly the truth
    assert!(p.count("SELECT count(*) FROM raw_web") > before);
    assert!(star_schema_matches_truth(&dir, &p) > 1000);
}

#[test]
fn a_failed_model_skips_what_reads_it_and_reprocess_failed_reruns_only_that() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let p = company(&dir, "24");
    p.run(&backfill_args()).ok();
    let before = attempts(&p);
    // a model that fails when it runs (not when it is planned): a logic error, not retried
    let model = dir.join("models/staging/stg_web_requests.sql");
    let good = std::fs::read_to_string(&model).unwrap();
    let bad = good.replacen("SELECT", "SELECT CAST('not a number' AS INT) AS broken,", 1);
    std::fs::write(&model, bad).unwrap();
    let failed = p.run(&backfill_args());
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    let report = failed.json();
    let statuses = by_status(&report);
    assert!(
        statuses["failed"]
            .iter()
            .all(|t| t.starts_with("build/stg_web_requests/"))
    );
    assert_eq!(statuses["failed"].len(), 7);
    assert!(statuses["skipped"].contains("build/fct_web_traffic/2026-01-03"));
    assert!(statuses["skipped"].contains("publish/2026-01-07"));
    // what does not read it was done and stays done
    assert!(statuses["done"].contains("build/fct_marketplace_sales/2026-01-03"));
    let tried = attempts(&p);
    assert_eq!(
        tried["build/stg_web_requests/2026-01-03"], 2,
        "no retry of a logic error"
    );
    let status = p.run(&["status", "--json"]).ok().json();
    let failed_tasks = status["failed"].as_array().unwrap();
    assert!(
        failed_tasks
            .iter()
            .any(|t| t["status"] == "failed"
                && t["error"].as_str().unwrap().contains("not a number"))
    );

    // fixed (not the very same text: an undone change would find the old partitions done):
    // only what failed or was skipped runs again
    std::fs::write(&model, format!("{good}\n-- fixed\n")).unwrap();
    let fixed = p
        .run(&[
            "backfill",
            "--from",
            FIRST,
            "--to",
            LAST,
            "--reprocess",
            "failed",
            "--json",
        ])
        .ok()
        .json();
    let statuses = by_status(&fixed);
    let reran: BTreeSet<&String> = statuses["succeeded"].iter().collect();
    assert!(reran.contains(&"build/stg_web_requests/2026-01-03".to_string()));
    assert!(reran.contains(&"publish/2026-01-07".to_string()));
    assert!(reran.iter().all(|t| !t.starts_with("ingest/")));
    assert!(!reran.contains(&"build/fct_marketplace_sales/2026-01-03".to_string()));
    let after = attempts(&p);
    for (task, n) in &after {
        let was = before.get(task).copied().unwrap_or(0);
        assert!(*n - was <= 2, "{task}: {was} -> {n}");
    }
    assert!(star_schema_matches_truth(&dir, &p) > 1000);
}

#[test]
fn a_missed_deadline_is_reported_when_nothing_ran_at_all() {
    let p = TestProject::nginx(
        "combined",
        "\n[pipeline]\ndeadline = \"00:01\"\nschedule = \"30 2 * * *\"\n",
    );
    let out = p.run(&["status", "--json"]);
    assert_eq!(out.code, Some(3), "{}\n{}", out.stdout, out.stderr);
    let status = out.json();
    let deadlines = status["deadlines"].as_array().unwrap();
    assert_eq!(deadlines[0]["state"], "missed", "{status}");
    assert!(
        deadlines[0]["message"]
            .as_str()
            .unwrap()
            .contains("no night has ever been published")
    );
    let text = p.run(&["status"]);
    assert_eq!(text.code, Some(3));
    assert!(text.stdout.contains("MISSED"), "{}", text.stdout);
    // a bad deadline or schedule is refused with its line
    let bad = TestProject::nginx(
        "combined",
        "\n[pipeline]\ndeadline = \"7am\"\nschedule = \"* * *\"\n",
    );
    let out = bad.run(&["validate"]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stdout.contains("7am") || out.stderr.contains("7am"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("5-field") || out.stderr.contains("5-field"),
        "{}{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn the_schedule_wakes_at_the_deadline_and_alerts_when_no_night_was_published() {
    // Nothing has ever run; the nightly run is months away; the deadline is this minute (local
    // time): `darkroom schedule` wakes a minute past it, finds last night unpublished and
    // alerts, without a run.
    let hook = crate::harness::Hook::start();
    let tz: chrono_tz::Tz = "America/Toronto".parse().unwrap();
    // far from the end of a minute, so the schedule starts within the minute the deadline
    // names (else it would wait for tomorrow's)
    use chrono::Timelike as _;
    let second = chrono::Utc::now().second();
    if second >= 45 {
        std::thread::sleep(Duration::from_secs(u64::from(61 - second)));
    }
    let now = chrono::Utc::now().with_timezone(&tz);
    let p = TestProject::nginx(
        "combined",
        &format!(
            "\n[pipeline]\ndeadline = \"{}\"\nschedule = \"0 12 1 1 *\"\n\n[alerts]\nretry_seconds = 0\n\n\
             [[alerts.channels]]\nname = \"test-hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
            now.format("%H:%M"),
            hook.url
        ),
    );
    let mut child = p
        .command(&["schedule"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let alerts = loop {
        let got = hook.take();
        if !got.is_empty() || started.elapsed() > Duration::from_secs(150) {
            break got;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let woke = chrono::Utc::now().with_timezone(&tz).date_naive();
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(alerts.len(), 1, "{alerts:?}\n{stderr}");
    let alert = &alerts[0];
    let night = woke.pred_opt().unwrap().to_string();
    assert_eq!(alert["event"], "open", "{alert}");
    assert_eq!(alert["date"], night.as_str(), "{alert}");
    let deadline = alert["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "deadline")
        .unwrap_or_else(|| panic!("no deadline finding: {alert}"));
    assert_eq!(deadline["severity"], "error", "{deadline}");
    assert!(
        deadline["message"]
            .as_str()
            .unwrap()
            .contains("is not published"),
        "{deadline}"
    );
    assert!(stderr.contains("next dead-man check at"), "{stderr}");
    assert!(
        stderr.contains(&format!("night {night} missed its deadline: alerted")),
        "{stderr}"
    );
}
