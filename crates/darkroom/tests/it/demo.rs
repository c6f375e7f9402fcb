//! `darkroom demo`: the same seed gives the same bytes; the ground truth agrees with the files
//! as counted by independent tools (`zcat | wc -l`, `grep`, `sqlite3`); ingesting the logs gives
//! exactly the truth; a parser regression ends up, line for line, in the quarantine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{BIN, Run, TestProject};

/// Runs `darkroom demo DIR ARGS...`.
pub fn demo(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(BIN)
        .arg("demo")
        .arg(dir)
        .args(args)
        .env_remove("DARKROOM_PROJECT")
        .env_remove("DARKROOM_FAILPOINT")
        .output()
        .expect("run darkroom demo");
    Run::from_output(out)
}

pub fn truth(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join("truth").join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("truth/{name}.json: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("truth/{name}.json: {e}"))
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).expect("prefix").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The output of a shell pipeline (an independent tool, not the generator's code).
fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

fn sh_count(script: &str) -> u64 {
    let text = sh(script);
    text.parse()
        .unwrap_or_else(|e| panic!("`{script}` printed {text:?}: {e}"))
}

pub fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The nginx time of a parser-regression line: ISO 8601 instead of `[01/Jan/2026:...`.
const GARBLED: &str = r"\[[0-9]{4}-[0-9]{2}-[0-9]{2}T";

const FAULTS: [&str; 6] = [
    "sender-dies:host=api-2,from=2026-01-02T14:00,back=2026-01-04",
    "loss:date=2026-01-03,fraction=0.1",
    "garble:date=2026-01-02,fraction=0.05",
    "duplicate:host=web-1,date=2026-01-03",
    "clock-skew:host=web-3,hours=5",
    "schema-drift:change=rename",
];

fn with_faults<'a>(base: &[&'a str]) -> Vec<&'a str> {
    let mut args = base.to_vec();
    for f in FAULTS {
        args.extend(["--fault", f]);
    }
    args
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let args = with_faults(&["--days", "5", "--users", "300", "--seed", "7", "--no-run"]);
    demo(&a, &args).ok();
    demo(&b, &args).ok();
    let (fa, fb) = (files(&a), files(&b));
    assert_eq!(fa, fb, "the same files");
    assert!(fa.len() > 30, "{fa:?}");
    for rel in &fa {
        assert!(
            std::fs::read(a.join(rel)).unwrap() == std::fs::read(b.join(rel)).unwrap(),
            "{} differs between two runs with the same seed",
            rel.display()
        );
    }

    // Another seed: another company.
    let other = with_faults(&["--days", "5", "--users", "300", "--seed", "8", "--no-run"]);
    demo(&c, &other).ok();
    let web = Path::new("logs/web/web-1/access-2026-01-01.log.gz");
    assert_ne!(
        std::fs::read(a.join(web)).unwrap(),
        std::fs::read(c.join(web)).unwrap()
    );
}

#[test]
fn the_truth_agrees_with_the_files_counted_by_zcat_grep_and_sqlite3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let args = with_faults(&["--days", "6", "--users", "400", "--seed", "3", "--no-run"]);
    demo(&dir, &args).ok();
    let summary = truth(&dir, "summary");
    let file_truth = truth(&dir, "files");
    let file_truth = file_truth.as_array().unwrap();

    // Every log file the truth lists exists, with exactly its lines and garbled lines; and
    // no log file is left out of the truth.
    let on_disk: Vec<String> = files(&dir.join("logs"))
        .iter()
        .map(|p| format!("logs/{}", p.display()))
        .collect();
    let mut listed: Vec<String> = file_truth
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    let (mut written, mut garbled, mut duplicates) = (0, 0, 0);
    for f in file_truth {
        let path = dir.join(f["path"].as_str().unwrap());
        let p = path.display();
        assert_eq!(
            sh_count(&format!("zcat '{p}' | wc -l")),
            n(&f["lines"]),
            "{f}"
        );
        assert_eq!(
            sh_count(&format!("zcat '{p}' | wc -c")),
            n(&f["bytes"]),
            "{f}"
        );
        assert_eq!(
            sh_count(&format!("zcat '{p}' | grep -cE '{GARBLED}' || true")),
            n(&f["garbled_lines"]),
            "{f}"
        );
        if f["duplicate_of"].is_null() {
            written += n(&f["lines"]);
            garbled += n(&f["garbled_lines"]);
        } else {
            duplicates += 1;
            let original = dir.join(f["duplicate_of"].as_str().unwrap());
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(original).unwrap()
            );
        }
    }
    let lines = &summary["log_lines"];
    assert_eq!(n(&lines["written"]), written);
    assert_eq!(n(&lines["garbled"]), garbled);
    assert!(garbled > 0, "the garble fault garbled nothing: {lines}");
    assert_eq!(n(&lines["duplicate_files"]), duplicates);
    assert_eq!(duplicates, 1, "web-1's files of 2026-01-03");

    // Produced = written + lost, and the loss is where the faults put it.
    let lost = truth(&dir, "lost_lines");
    let mut lost_by_cause: BTreeMap<String, u64> = BTreeMap::new();
    for l in lost.as_array().unwrap() {
        *lost_by_cause
            .entry(l["cause"].as_str().unwrap().to_owned())
            .or_default() += n(&l["lines"]);
    }
    assert_eq!(
        n(&lines["produced"]),
        written + lost_by_cause.values().sum::<u64>()
    );
    assert!(
        lost_by_cause.get("lost_in_transit").is_some_and(|&l| l > 0),
        "{lost_by_cause:?}"
    );
    let events = truth(&dir, "events");
    let produced: u64 = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| n(&e["count"]))
        .sum();
    assert_eq!(produced, n(&lines["produced"]));

    // The dead sender's lines arrive late, at the start of api-2's files of 2026-01-04.
    let backlog: u64 = file_truth
        .iter()
        .filter(|f| f["host"] == "api-2")
        .map(|f| n(&f["backlog_lines"]))
        .sum();
    assert!(backlog > 0);
    for f in file_truth.iter().filter(|f| n(&f["backlog_lines"]) > 0) {
        assert_eq!(f["host"], "api-2");
        assert_eq!(f["file_date"], "2026-01-04");
    }
    // No api-2 file dated 2026-01-03: the sender was dead all day.
    assert!(
        !file_truth
            .iter()
            .any(|f| f["host"] == "api-2" && f["file_date"] == "2026-01-03")
    );

    // The production database, counted by sqlite3.
    let db = dir.join("db/app.db");
    let db = db.display();
    let rows = summary["rows"].as_object().unwrap();
    assert!(rows.len() >= 10, "{rows:?}");
    for (table, count) in rows {
        assert_eq!(
            sh_count(&format!("sqlite3 '{db}' 'SELECT count(*) FROM {table}'")),
            n(count),
            "{table}"
        );
    }
    // The schema drift is applied and recorded.
    let columns = sh(&format!(
        "sqlite3 '{db}' 'SELECT name FROM pragma_table_info(\"users\")'"
    ));
    assert!(columns.lines().any(|c| c == "country_code"), "{columns}");
    assert!(!columns.lines().any(|c| c == "country"), "{columns}");
    assert!(!summary["database_changes"].as_array().unwrap().is_empty());
    // Signups per day in the truth are the users created that day (project time zone).
    let daily = truth(&dir, "daily");
    let signups: u64 = daily
        .as_array()
        .unwrap()
        .iter()
        .map(|d| n(&d["signups"]))
        .sum();
    assert_eq!(n(&rows["users"]), signups);
    assert_eq!(summary["faults"].as_array().unwrap().len(), FAULTS.len());

    // The three funnels: every step defined, counts falling step by step.
    let funnels = truth(&dir, "funnels");
    let names: Vec<&str> = funnels
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["activation", "creator", "buyer"]);
    for f in funnels.as_array().unwrap() {
        let steps = f["steps"].as_array().unwrap();
        for key in ["persons_reaching_step", "real_world_persons_reaching_step"] {
            let counts: Vec<u64> = f[key].as_array().unwrap().iter().map(n).collect();
            assert_eq!(counts.len(), steps.len(), "{f}");
            assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{key}: {f}");
            assert!(counts[0] > 0, "{key}: {f}");
        }
        for s in steps {
            assert!(
                f["step_definitions"][s.as_str().unwrap()].is_string(),
                "{s}: {f}"
            );
        }
    }
}

/// Rows per (date, host) of a raw table, by `column` (file_date or event_date).
fn per_date_host(p: &TestProject, table: &str, column: &str) -> BTreeMap<(String, String), u64> {
    p.query(&format!(
        "SELECT CAST({column} AS VARCHAR) AS d, host, count(*) AS n FROM {table} GROUP BY 1, 2"
    ))
    .iter()
    .map(|r| {
        (
            (
                r["d"].as_str().unwrap().to_owned(),
                r["host"].as_str().unwrap().to_owned(),
            ),
            n(&r["n"]),
        )
    })
    .collect()
}

/// Every table of the demo's database is in the warehouse with the truth's row count, row for
/// row as sqlite3 reads the generated file (the rows a `--db` server was loaded with).
fn database_matches(dir: &Path, p: &TestProject) {
    let rows = truth(dir, "summary")["rows"].clone();
    for (table, count) in rows.as_object().unwrap() {
        let raw = format!("raw_app_db_{table}");
        assert_eq!(
            p.count(&format!("SELECT count(*) FROM {raw}")),
            i64::try_from(n(count)).unwrap(),
            "{raw} holds the truth's rows"
        );
        let dump = sh(&format!(
            "sqlite3 -json '{}' 'SELECT * FROM {table} ORDER BY id'",
            dir.join("db/app.db").display()
        ));
        // sqlite3 prints nothing at all for no rows
        let theirs: Vec<Value> = if dump.trim().is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&dump).unwrap()
        };
        let ours = p.query(&format!("SELECT * FROM {raw} ORDER BY id"));
        assert_eq!(ours.len(), theirs.len(), "{raw}");
        for (o, t) in ours.iter().zip(&theirs) {
            for (column, want) in t.as_object().unwrap() {
                let got = o.get(column).unwrap_or(&Value::Null);
                assert!(
                    same_value(got, want),
                    "{raw} id {}: {column} is {got} in the warehouse, {want} in the database",
                    t["id"]
                );
            }
        }
    }
}

/// A warehouse value and the database's, as JSON: timestamps are UTC in both (the warehouse
/// writes `T` and `Z`), money is compared as the same decimal.
fn same_value(ours: &Value, theirs: &Value) -> bool {
    let timestamp = |s: &str| {
        let s = s.replace('T', " ").trim_end_matches('Z').to_string();
        match s.split_once('.') {
            Some((whole, frac)) => {
                let frac = frac.trim_end_matches('0');
                if frac.is_empty() {
                    whole.to_string()
                } else {
                    format!("{whole}.{frac}")
                }
            }
            None => s,
        }
    };
    match (ours, theirs) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::String(b)) => a == b || timestamp(a) == timestamp(b),
        (a, b) => a == b,
    }
}

#[test]
fn without_faults_ingest_gives_exactly_the_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let run = demo(
        &dir,
        &["--days", "4", "--users", "300", "--seed", "11", "--json"],
    )
    .ok();
    let report = run.json();
    assert_eq!(report["ingest"]["errors"], Value::Array(vec![]), "{report}");
    assert_eq!(
        report["ingest"]["incomplete"],
        Value::Array(vec![]),
        "{report}"
    );
    let p = TestProject::open(&dir);

    let mut expected: BTreeMap<String, BTreeMap<(String, String), u64>> = BTreeMap::new();
    for e in truth(&dir, "events").as_array().unwrap() {
        *expected
            .entry(e["source"].as_str().unwrap().to_owned())
            .or_default()
            .entry((
                e["date"].as_str().unwrap().to_owned(),
                e["host"].as_str().unwrap().to_owned(),
            ))
            .or_default() += n(&e["count"]);
    }
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        ["api", "app", "web"],
        "every source has events"
    );
    for (source, want) in &expected {
        let table = format!("raw_{source}");
        assert_eq!(
            &per_date_host(&p, &table, "event_date"),
            want,
            "{table} by event_date"
        );
        assert_eq!(
            &per_date_host(&p, &table, "file_date"),
            want,
            "{table} by file_date"
        );
        assert_eq!(
            p.count(&format!("SELECT count(*) FROM _quarantine_{source}")),
            0,
            "{source}"
        );
    }
    // The production database: every table extracted, row for row as sqlite3 reads it.
    database_matches(&dir, &p);

    // Distinct visitor ids and user ids appear as the logs carry them.
    assert!(p.count("SELECT count(DISTINCT cookie_vid) FROM raw_web") > 100);
    assert!(
        p.count("SELECT count(*) FROM raw_app WHERE device_platform IN ('ios', 'android')") > 0
    );
}

#[test]
fn a_parser_regression_ends_up_in_the_quarantine_line_for_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let garbled_day = "2026-01-02";
    let run = demo(
        &dir,
        &[
            "--days",
            "3",
            "--users",
            "300",
            "--seed",
            "5",
            "--fault",
            &format!("garble:date={garbled_day},fraction=0.05"),
        ],
    )
    .ok();
    assert!(run.stdout.contains("quarantined"), "{}", run.stdout);
    let p = TestProject::open(&dir);
    let summary = truth(&dir, "summary");
    let garbled = n(&summary["log_lines"]["garbled"]);
    assert!(garbled > 10, "{summary}");

    let mut quarantined = 0;
    for source in ["web", "api"] {
        // Exactly the garbled lines, byte for byte, as grep finds them in the files.
        let mut want: Vec<String> = Vec::new();
        for f in truth(&dir, "files").as_array().unwrap() {
            if f["source"] == source && n(&f["garbled_lines"]) > 0 {
                assert_eq!(f["file_date"], garbled_day);
                let path = dir.join(f["path"].as_str().unwrap());
                let text = sh(&format!("zcat '{}' | grep -E '{GARBLED}'", path.display()));
                want.extend(text.lines().map(str::to_owned));
            }
        }
        want.sort();
        let mut got: Vec<String> = p
            .query(&format!(
                "SELECT CAST(file_date AS VARCHAR) AS d, CAST(raw AS VARCHAR) AS raw FROM _quarantine_{source}"
            ))
            .iter()
            .map(|r| {
                assert_eq!(r["d"], garbled_day);
                r["raw"].as_str().unwrap().to_owned()
            })
            .collect();
        got.sort();
        assert_eq!(got.len(), want.len(), "{source}");
        assert!(
            got == want,
            "{source}: the quarantine is not the garbled lines"
        );
        quarantined += got.len() as u64;
    }
    assert_eq!(quarantined, garbled);
    assert_eq!(p.count("SELECT count(*) FROM _quarantine_app"), 0);
    // Every other line was parsed.
    let written = n(&summary["log_lines"]["written"]);
    let rows = p.count(
        "SELECT (SELECT count(*) FROM raw_web) + (SELECT count(*) FROM raw_api) + (SELECT count(*) FROM raw_app)",
    );
    assert_eq!(rows as u64 + quarantined, written);
}

#[test]
fn bad_demo_arguments_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let run = demo(
        &tmp.path().join("d"),
        &["--fault", "loss:date=2026-13-01,fraction=0.1"],
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("2026-13-01"), "{}", run.stderr);
    let run = demo(
        &tmp.path().join("d"),
        &["--fault", "meteor:date=2026-01-01"],
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("meteor"), "{}", run.stderr);
    assert!(
        !tmp.path().join("d").exists(),
        "nothing written on a bad command line"
    );
}

#[path = "../../../darkroom-extract/tests/common/servers.rs"]
mod servers;

fn demo_with_server(url: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let run = demo(
        &dir,
        &[
            "--days", "3", "--users", "300", "--seed", "5", "--db", url, "--json",
        ],
    )
    .ok();
    let report = run.json();
    assert_eq!(report["ingest"]["errors"], Value::Array(vec![]), "{report}");
    let extract = &report["ingest"]["extract"][0];
    let kind = if url.starts_with("postgres") {
        "postgres"
    } else {
        "mysql"
    };
    assert_eq!(extract["kind"], kind, "{report}");
    let toml = std::fs::read_to_string(dir.join("darkroom.toml")).unwrap();
    assert!(toml.contains(&format!("kind = \"{kind}\"")), "{toml}");
    database_matches(&dir, &TestProject::open(&dir));
}

#[test]
fn demo_db_loads_postgres_and_extracts_it_row_for_row() {
    demo_with_server(&servers::postgres_database("demo"));
}

#[test]
fn demo_db_loads_mariadb_and_extracts_it_row_for_row() {
    demo_with_server(&servers::mariadb_database("demo"));
}

#[test]
fn demo_db_refuses_a_database_that_holds_other_tables() {
    let url = servers::postgres_database("not_for_demo");
    servers::postgres_sql("not_for_demo", "CREATE TABLE accounts (id int)");
    let tmp = tempfile::tempdir().unwrap();
    let run = demo(
        &tmp.path().join("demo"),
        &["--days", "2", "--users", "50", "--db", &url, "--no-run"],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("already holds other tables (accounts)"),
        "{}",
        run.stderr
    );
}

/// The demo's star schema, built by `darkroom demo`, against the ground truth: every day's
/// visitors (persons as identity resolution can know them), daily active and engaged users,
/// and every business event count and the sales revenue.
#[test]
fn the_star_schema_matches_the_ground_truth_day_by_day() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let run = demo(
        &dir,
        &["--days", "40", "--users", "1200", "--seed", "5", "--json"],
    )
    .ok();
    let report = run.json();
    assert_eq!(report["ingest"]["errors"], Value::Array(vec![]), "{report}");
    // the orchestrator found every ingest done and built every model's dates
    let pipeline = &report["ingest"]["pipeline"];
    assert_eq!(pipeline["ok"], true, "{pipeline}");
    let build = &pipeline["stages"]["build"]["tasks"];
    assert!(
        build["succeeded"].as_u64().unwrap() >= 12 * 40,
        "{pipeline}"
    );
    assert_eq!(
        pipeline["stages"]["ingest"]["tasks"]["done"], 120,
        "{pipeline}"
    );
    let p = TestProject::open(&dir);
    let checked = star_schema_matches_truth(&dir, &p);
    assert!(checked > 10_000, "the demo is big enough to mean something");
    // the funnels, metrics and retention the demo declares, read from the published snapshot
    crate::analytics::analytics_match_truth(&dir, &p);
    // the identity rules were exercised: anonymous views re-attributed to a later sign-in
    assert!(
        p.count("SELECT count(*) FROM int_touches_resolved WHERE identified_by = 'lookback'") > 0
    );
    // and household devices two members log in on: the owner's anonymous views after the
    // second member's first login go to that member (the most recently linked), which the
    // visitor counts above agree with
    let summary = truth(&dir, "summary");
    assert!(
        n(&summary["as_resolvable"]["shared_devices"]) > 0,
        "{summary}"
    );
    assert!(
        p.count(
            "SELECT count(*) FROM int_touches_resolved t JOIN ( \
               SELECT visitor_id, first_value(user_id ORDER BY first_linked_at, user_id) AS first_user \
               FROM map_identity GROUP BY visitor_id HAVING count(*) > 1) m \
             ON m.visitor_id = t.visitor_id \
             WHERE t.identified_by = 'link' AND t.user_id <> m.first_user"
        ) > 0,
        "no anonymous view on a shared device went to its most recent user"
    );
    // and the whole period's totals, from the facts themselves
    for (fact, rows) in [
        ("fct_marketplace_sales", &summary["rows"]["sales"]),
        (
            "fct_events WHERE event_type = 'like'",
            &summary["rows"]["likes"],
        ),
        (
            "dim_photo WHERE photo_key <> -1",
            &summary["rows"]["photos"],
        ),
        (
            "dim_user WHERE is_current AND user_key <> -1",
            &summary["rows"]["users"],
        ),
    ] {
        let ours = u64::try_from(p.count(&format!("SELECT count(*) FROM {fact}"))).unwrap();
        assert_eq!(ours, n(rows), "{fact}");
    }
    // Every web visitor's first page view from outside the site (the first touch, as
    // dim_person takes it; a session cut at midnight can log a click within the site in the
    // same second) gets the channel it arrived by (referer, UTM tags, click ids): the channel
    // rules of fct_pageviews agree with the simulation, channel by channel.
    let landings = p.query(
        "SELECT channel, count(*) AS n FROM ( \
           SELECT visitor_id, first_value(channel ORDER BY event_ts) AS channel \
           FROM fct_pageviews WHERE channel <> 'internal' GROUP BY visitor_id) \
         GROUP BY channel ORDER BY channel",
    );
    let expected = summary["real_world"]["web_devices_by_landing_channel"]
        .as_object()
        .unwrap();
    assert_eq!(
        landings.len(),
        expected.len(),
        "{landings:?} vs {expected:?}"
    );
    for row in &landings {
        let channel = row["channel"].as_str().unwrap();
        assert_eq!(row["n"], expected[channel], "landings by {channel}");
    }
    for channel in ["direct", "search", "social", "paid", "referral"] {
        assert!(
            expected.contains_key(channel),
            "the demo has {channel} visitors"
        );
    }
}

/// The daily mart agrees with the truth, day by day and measure by measure; returns how many
/// events were compared.
pub fn star_schema_matches_truth(dir: &Path, p: &TestProject) -> u64 {
    let rows = p
        .run(&[
            "query",
            "--json",
            "SELECT * FROM mart_daily_kpis ORDER BY event_date",
        ])
        .ok()
        .json();
    let rows = rows.as_array().unwrap();
    let daily = truth(dir, "daily");
    let daily = daily.as_array().unwrap();
    assert_eq!(rows.len(), daily.len());
    let keys = [
        "visitors",
        "active_users",
        "engaged_users",
        "signups",
        "uploads",
        "likes",
        "comments",
        "follows",
        "submissions",
        "purchases",
        "sales",
        "sales_cents",
        "subscriptions_started",
        "subscriptions_canceled",
        "plan_changes",
    ];
    let mut checked = 0;
    for (ours, truth) in rows.iter().zip(daily) {
        assert_eq!(ours["event_date"], truth["date"]);
        for k in keys {
            assert_eq!(
                n(&ours[k]),
                n(&truth[k]),
                "{k} on {}: warehouse {} truth {}",
                truth["date"],
                ours[k],
                truth[k]
            );
            checked += n(&truth[k]);
        }
    }
    checked
}

/// `--fault db-unreachable:date=D` is enacted, not only recorded: the night of D runs while
/// the production database cannot be reached, its extract fails and nothing is published that
/// night; the nights after it are built again, the last one publishes with D listed as
/// degraded, and `darkroom run --date D` repairs it once the database answers.
#[test]
fn an_unreachable_database_fails_its_night_and_the_next_publish_lists_it_degraded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let (down, last) = ("2026-01-04", "2026-01-06");
    let fault = format!("db-unreachable:date={down}");
    let run = demo(
        &dir,
        &[
            "--days", "6", "--users", "300", "--seed", "9", "--fault", &fault, "--json",
        ],
    );
    assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let runs = report["ingest"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{report}");
    assert_eq!(runs[0]["ok"], true, "{report}");
    assert_eq!(
        runs[0]["request"]["backfill"]["to"], "2026-01-03",
        "{report}"
    );
    assert_eq!(runs[1]["ok"], false, "{report}");
    assert_eq!(runs[1]["request"]["run"], down, "{report}");
    assert_eq!(runs[2]["ok"], true, "{report}");
    assert_eq!(report["ingest"]["pipeline"], runs[2], "{report}");
    let errors = report["ingest"]["errors"].to_string();
    assert!(
        errors.contains(&format!("extract/app_db/{down}")),
        "the failed task is named: {errors}"
    );
    // the real database was never touched, nor a stand-in created
    assert!(!dir.join("db/unreachable").exists());
    database_matches(&dir, &TestProject::open(&dir));

    let p = TestProject::open(&dir);
    let health = p.run(&["health", "--json"]).json();
    let degraded: Vec<&str> = health["degraded"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["date"].as_str())
        .collect();
    assert_eq!(degraded, [down], "{health}");
    let status = p.run(&["status", "--json"]).ok().json();
    assert_eq!(status["published"], last, "{status}");
    assert_eq!(status["runs"][1]["status"], "failed", "{status}");
    assert_eq!(status["runs"][1]["dates"], down, "{status}");

    // the database answers again: the night is run again and leaves the degraded list
    p.run(&["run", "--date", down, "--json"]).ok();
    let health = p.run(&["health", "--json"]).json();
    assert_eq!(health["degraded"], Value::Array(vec![]), "{health}");
    let status = p.run(&["status", "--json"]).ok().json();
    assert_eq!(status["published"], last, "{status}");
}
