//! `darkroom build`, `compile`, `docs` and `--target dev` through the binary.

use std::path::Path;

use crate::harness::{BIN, Run, TestProject};

fn darkroom(dir: &Path, args: &[&str]) -> Run {
    let out = std::process::Command::new(BIN)
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    Run::from_output(out)
}

#[test]
fn a_starter_project_has_a_model_that_validates_and_compiles() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    Run::from_output(
        std::process::Command::new(BIN)
            .args(["init"])
            .arg(&dir)
            .output()
            .unwrap(),
    )
    .ok();
    darkroom(&dir, &["validate"]).ok();
    let sql = darkroom(&dir, &["compile", "daily_requests", "--date", "2026-01-31"])
        .ok()
        .stdout;
    assert!(sql.contains("FROM \"raw_web\""), "{sql}");
    assert!(
        sql.contains("event_date BETWEEN DATE '2026-01-31' AND DATE '2026-01-31'"),
        "{sql}"
    );
    // nothing ingested yet: the build says what to do, with the model's file and line
    let run = darkroom(&dir, &["build", "--date", "2026-01-31"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("daily_requests.sql:") && run.stderr.contains("ingest"),
        "{}",
        run.stderr
    );
}

#[test]
fn models_build_check_and_document_and_a_dev_target_leaves_shared_tables_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    Run::from_output(
        std::process::Command::new(BIN)
            .args(["demo"])
            .arg(&dir)
            .args(["--days", "3", "--users", "150", "--seed", "3", "--json"])
            .output()
            .unwrap(),
    )
    .ok();
    let p = TestProject::open(&dir);
    let before = p.count("SELECT count(*) FROM fct_web_traffic");
    assert!(before > 0);

    // an edit tried on the dev target: built there, the shared table untouched
    let model = dir.join("models/marts/fct_web_traffic.sql");
    let text = std::fs::read_to_string(&model).unwrap();
    std::fs::write(
        &model,
        text.replace("count(*) AS requests", "count(*) AS requests, 1 AS edited"),
    )
    .unwrap();
    let report = darkroom(
        &dir,
        &[
            "build",
            "--target",
            "dev",
            "--select",
            "fct_web_traffic",
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-03",
            "--json",
        ],
    )
    .ok()
    .json();
    assert_eq!(report["models"][0]["status"], "built", "{report}");
    assert!(dir.join("warehouse-dev/fct_web_traffic").is_dir());
    assert!(
        !dir.join("warehouse-dev/raw_web").exists(),
        "the dev target reads production's raw tables, it does not copy them"
    );
    let shared = p.query("SELECT * FROM fct_web_traffic LIMIT 1");
    assert!(shared[0].get("edited").is_none(), "{shared:?}");
    assert_eq!(p.count("SELECT count(*) FROM fct_web_traffic"), before);

    // a broken model: nothing runs, every problem is named with its file and line
    std::fs::write(
        &model,
        "SELECT event_date,\n       hots\nFROM {{ ref('stg_web_request') }}",
    )
    .unwrap();
    std::fs::write(
        dir.join("models/marts/broken.sql"),
        "SELECT nope FROM {{ ref('fct_events') }}",
    )
    .unwrap();
    let run = darkroom(&dir, &["build", "--json"]);
    assert_eq!(run.code, Some(1));
    let problems = run.json()["problems"].clone();
    let problems = problems.as_array().unwrap();
    let at = |file: &str, line: u64, needle: &str| {
        problems.iter().any(|p| {
            p["file"].as_str().unwrap().ends_with(file)
                && p["line"] == line
                && p["message"].as_str().unwrap().contains(needle)
        })
    };
    assert!(
        at("fct_web_traffic.sql", 3, "stg_web_requests"),
        "{problems:?}"
    );
    assert!(at("broken.sql", 1, "nope"), "{problems:?}");
    std::fs::remove_file(dir.join("models/marts/broken.sql")).unwrap();
    std::fs::write(&model, text).unwrap();

    // the catalogue: grain, owner, columns with types and lineage
    let docs = darkroom(&dir, &["docs", "--json"]).ok().json();
    let models = docs["models"].as_array().unwrap();
    let fct = models.iter().find(|m| m["name"] == "fct_events").unwrap();
    assert_eq!(fct["owner"], "product");
    assert!(
        fct["grain"]
            .as_str()
            .unwrap()
            .contains("one row per business event")
    );
    let user_key = fct["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "user_key")
        .unwrap();
    assert_eq!(user_key["data_type"], "Int64");
    assert!(
        user_key["lineage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("user_key")),
        "{user_key}"
    );
    assert!(dir.join("target/docs/index.html").is_file());
}
