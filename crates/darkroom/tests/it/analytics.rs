//! `darkroom funnel`, `metric` and `retention` on the demo company, against its ground truth;
//! `window_funnel` in SQL agrees with the product funnels; bad definitions are reported with
//! file and line.

use std::path::Path;

use serde_json::Value;

use crate::demo::{n, truth};
use crate::harness::TestProject;

/// The demo's three funnels, step by step, equal the truth's persons; the daily metrics equal
/// the truth's days; every result says it read the published snapshot of the last night.
pub fn analytics_match_truth(dir: &Path, p: &TestProject) {
    let summary = truth(dir, "summary");
    let last_night = summary["end"].as_str().unwrap().to_string();
    let funnels = truth(dir, "funnels");
    let mut checked = 0;
    for f in funnels.as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        let from = f["entry_dates"]["from"].as_str().unwrap();
        let to = f["entry_dates"]["to"].as_str().unwrap();
        let window = format!("{}d", n(&f["window_days"]));
        let report = p
            .run(&[
                "funnel", name, "--from", from, "--to", to, "--window", &window, "--json",
            ])
            .ok()
            .json();
        let ours: Vec<u64> = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| n(&s["persons"]))
            .collect();
        let want: Vec<u64> = f["persons_reaching_step"]
            .as_array()
            .unwrap()
            .iter()
            .map(n)
            .collect();
        assert_eq!(ours, want, "funnel {name}: {report}");
        let names: Vec<&str> = report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        let truth_names: Vec<&str> = f["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(names, truth_names, "funnel {name}");
        assert_eq!(report["as_of"]["night"], Value::String(last_night.clone()));
        assert_eq!(report["as_of"]["source"], "published snapshot");
        checked += want[0];

        // the same funnel by platform: the groups add up to the whole
        let by = p
            .run(&[
                "funnel", name, "--from", from, "--to", to, "--window", &window, "--by",
                "platform", "--json",
            ])
            .ok()
            .json();
        for (k, &total) in want.iter().enumerate() {
            let sum: u64 = by["breakdown"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| n(&g["steps"][k]["persons"]))
                .sum();
            assert_eq!(sum, total, "funnel {name} by platform, step {k}");
        }
    }
    assert!(checked > 1000, "the funnels saw enough persons: {checked}");

    // window_funnel in SQL, over the same events, gives the buyer funnel's levels
    let buyer = funnels
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "buyer")
        .unwrap();
    let from = buyer["entry_dates"]["from"].as_str().unwrap();
    let to = buyer["entry_dates"]["to"].as_str().unwrap();
    let sql = format!(
        "WITH e AS ( \
           SELECT person_id, event_ts, 1 AS step FROM int_touches_resolved WHERE is_visit \
             AND event_date BETWEEN DATE '{from}' AND DATE '{to}' \
           UNION ALL SELECT person_id, event_ts, 2 FROM fct_events WHERE event_type = 'signup' \
           UNION ALL SELECT person_id, event_ts, 3 FROM fct_events WHERE event_type = 'purchase') \
         SELECT level, count(*) AS persons FROM ( \
           SELECT person_id, window_funnel(INTERVAL '14 days', event_ts, step = 1, step = 2, step = 3) AS level \
           FROM e GROUP BY person_id) GROUP BY level ORDER BY level"
    );
    let rows = p.query(&sql);
    let mut reaching = [0u64; 3];
    for r in &rows {
        let level = n(&r["level"]) as usize;
        for slot in reaching.iter_mut().take(level) {
            *slot += n(&r["persons"]);
        }
    }
    let want: Vec<u64> = buyer["persons_reaching_step"]
        .as_array()
        .unwrap()
        .iter()
        .map(n)
        .collect();
    assert_eq!(reaching.to_vec(), want, "window_funnel in SQL: {rows:?}");

    // metrics, day by day: signups, daily active users, visitors
    let daily = truth(dir, "daily");
    let daily = daily.as_array().unwrap();
    let first = daily[0]["date"].as_str().unwrap();
    let last = daily[daily.len() - 1]["date"].as_str().unwrap();
    for (metric, key) in [
        ("signups", "signups"),
        ("dau", "active_users"),
        ("visitors", "visitors"),
        ("engaged_users", "engaged_users"),
    ] {
        let report = p
            .run(&["metric", metric, "--from", first, "--to", last, "--json"])
            .ok()
            .json();
        let rows = report["rows"].as_array().unwrap();
        for day in daily {
            let date = day["date"].as_str().unwrap();
            let ours = rows
                .iter()
                .find(|r| r["period"] == date)
                .map_or(0.0, |r| r["value"].as_f64().unwrap());
            assert_eq!(ours as u64, n(&day[key]), "{metric} on {date}");
        }
        assert_eq!(report["as_of"]["night"], Value::String(last_night.clone()));
    }
    // weekly signups are the days' sum; sliced by platform they add up to it
    let weekly = p
        .run(&[
            "metric", "signups", "--from", first, "--to", last, "--grain", "week", "--by",
            "platform", "--json",
        ])
        .ok()
        .json();
    let total: f64 = weekly["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_f64().unwrap())
        .sum();
    let want: u64 = daily.iter().map(|d| n(&d["signups"])).sum();
    assert_eq!(total as u64, want);

    // retention answers, and leaves unfinished weeks empty
    let r = p
        .run(&[
            "retention",
            "--start",
            "signup",
            "--return",
            "daily_active",
            "--period",
            "week",
            "--periods",
            "2",
            "--from",
            first,
            "--to",
            last,
            "--json",
        ])
        .ok()
        .json();
    let cohorts = r["cohorts"].as_array().unwrap();
    assert!(!cohorts.is_empty(), "{r}");
    let signups: u64 = cohorts.iter().map(|c| n(&c["persons"])).sum();
    assert_eq!(
        signups, want,
        "every signup in the range is in a first-time cohort"
    );
    let newest = cohorts.last().unwrap();
    assert_eq!(newest["retained"][2], Value::Null, "{newest}");
}

#[test]
fn bad_definitions_are_reported_with_file_and_line() {
    let p = TestProject::new("[project]\nname = \"t\"\n");
    p.write(
        "models/metrics.toml",
        b"[[metric]]\nname = \"signups\"\nkind = \"count\"\n\n[[funnel]]\nname = \"f\"\nwindow = \"fortnight\"\nsteps = [\"visit\", \"signup\"]\n",
    );
    let run = p.run(&["validate"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let err = &run.stderr;
    assert!(
        err.contains("metrics.toml:1:1: metric `signups` (count) needs `table`"),
        "{err}"
    );
    assert!(
        err.contains("metrics.toml:8:") && err.contains("unknown event `visit`"),
        "{err}"
    );
    assert!(
        err.contains("metrics.toml:7:10") && err.contains("`fortnight` is not a duration"),
        "{err}"
    );
    // the reports refuse to run on them, with the same messages
    let run = p.run(&["metric", "signups"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("needs `table`"), "{}", run.stderr);
}

#[test]
fn window_funnel_on_a_file_outside_any_project() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("e.csv"),
        "user_id,ts,event\n1,0,visit\n1,5,signup\n2,0,visit\n2,50,signup\n",
    )
    .unwrap();
    let out = std::process::Command::new(crate::harness::BIN)
        .current_dir(dir.path())
        .env_remove("DARKROOM_PROJECT")
        .args([
            "query",
            "--format",
            "csv",
            "SELECT user_id, window_funnel(10, ts, event = 'visit', event = 'signup') AS level \
             FROM 'e.csv' GROUP BY user_id ORDER BY user_id",
        ])
        .output()
        .unwrap();
    let run = crate::harness::Run::from_output(out).ok();
    assert_eq!(run.stdout, "user_id,level\n1,2\n2,1\n");
}
