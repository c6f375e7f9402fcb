//! `darkroom init`, `validate`, and errors on bad projects.

use std::process::Command;

use crate::harness::{BIN, TestProject};

#[test]
fn init_writes_a_project_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("acme");
    let out = Command::new(BIN)
        .args(["init"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = std::fs::read_to_string(target.join("darkroom.toml")).unwrap();
    assert!(
        toml.lines().filter(|l| l.starts_with('#')).count() > 20,
        "commented"
    );
    let out = Command::new(BIN)
        .arg("-C")
        .arg(&target)
        .args(["validate", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    // never overwrites
    let out = Command::new(BIN)
        .args(["init"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn validate_reports_every_problem_with_file_and_line() {
    let p = TestProject::new(
        r#"[project]
name = "x"
timezone = "Europe/Atlantis"

[[sources]]
name = "web"
kind = "nginx"
path = "logs/{host}.log"
format = '$remote_addr $$broken'
pth = "typo"

[[sources]]
name = "app"
kind = "jsonl"
path = "logs/{date}.jsonl"
timestamp_field = "ts"
timestamp_format = "epoch-ish"
"#,
    );
    let run = p.run(&["validate"]);
    assert_eq!(run.code, Some(1));
    let err = run.stderr;
    assert!(
        err.contains("darkroom.toml:3:12: unknown time zone"),
        "{err}"
    );
    assert!(
        err.contains("darkroom.toml:8:8: path `logs/{host}.log` has no `{date}`"),
        "{err}"
    );
    assert!(
        err.contains("darkroom.toml:10:1: unknown field `pth`"),
        "{err}"
    );
    assert!(
        err.contains("darkroom.toml:17:20:"),
        "timestamp format on line 17: {err}"
    );

    let json = p.run(&["validate", "--json"]).json();
    assert_eq!(json["valid"], false);
    assert!(json["problems"].as_array().unwrap().len() >= 4, "{json}");

    // Every command refuses to run on an invalid project, naming the problems.
    let run = p.run(&["tables"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("unknown time zone"));
}

#[test]
fn bad_format_string_is_reported_at_its_line() {
    let p = TestProject::nginx("$remote_addr$remote_user [$time_local]", "");
    let run = p.run(&["validate"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("darkroom.toml:10:"), "{}", run.stderr);
}

#[test]
fn unknown_source_and_bad_dates_are_clear_errors() {
    let p = TestProject::nginx("combined", "");
    let run = p.run(&["ingest", "nope", "--date", "2026-03-01"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("no source named `nope`"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("web"), "{}", run.stderr);
    let run = p.run(&["ingest", "web", "--date", "2026-13-01"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    let run = p.run(&[
        "ingest",
        "web",
        "--from",
        "2026-03-02",
        "--to",
        "2026-03-01",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("before --from"), "{}", run.stderr);
}

#[test]
fn every_command_has_help() {
    for cmd in ["init", "validate", "ingest", "query", "tables"] {
        let out = Command::new(BIN).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.len() > 200, "{cmd} --help is too thin:\n{text}");
    }
}
