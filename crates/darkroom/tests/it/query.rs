//! `darkroom query` and `darkroom tables`.

use crate::harness::{TestProject, lines};

#[test]
fn query_formats_and_files_named_in_from() {
    let p = TestProject::nginx("combined", "");
    p.write(
        "logs/web-1/access-2026-03-01.log",
        lines(20, "2026-03-01", false).as_bytes(),
    );
    p.run(&["ingest", "web", "--date", "2026-03-01"]).ok();

    let table = p.run(&["query", "SELECT count(*) AS n FROM raw_web"]).ok();
    assert!(
        table.stdout.contains("| n  |") && table.stdout.contains("| 20 |"),
        "{}",
        table.stdout
    );
    let csv = p
        .run(&[
            "query",
            "SELECT status, count(*) AS n FROM raw_web GROUP BY status",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(csv.stdout.trim(), "status,n\n200,20");
    let empty = p
        .run(&["query", "SELECT * FROM raw_web WHERE false", "--json"])
        .ok();
    assert_eq!(empty.json(), serde_json::json!([]));

    // Files by path, as with DuckDB: CSV, JSON lines, and Parquet written by the engine itself.
    p.write("data/plans.csv", b"plan,price\nfree,0\npro,12.5\n");
    p.write(
        "data/events.json",
        b"{\"e\":\"a\"}\n{\"e\":\"b\"}\n{\"e\":\"a\"}\n",
    );
    let csv_path = p.path().join("data/plans.csv");
    let rows = p.query(&format!(
        "SELECT plan, price FROM '{}' ORDER BY price",
        csv_path.display()
    ));
    assert_eq!(rows[1]["plan"], "pro");
    assert_eq!(rows[1]["price"], 12.5);
    let json_path = p.path().join("data/events.json");
    assert_eq!(
        p.count(&format!(
            "SELECT count(*) FROM '{}' WHERE e = 'a'",
            json_path.display()
        )),
        2
    );
    let parquet = p.path().join("data/out.parquet");
    p.run(&[
        "query",
        &format!(
            "COPY (SELECT host, line FROM raw_web) TO '{}' STORED AS PARQUET",
            parquet.display()
        ),
    ])
    .ok();
    assert_eq!(
        p.count(&format!("SELECT count(*) FROM '{}'", parquet.display())),
        20
    );

    // A bad query says what is wrong; a missing table hints at file paths.
    let bad = p.run(&["query", "SELECT nope FROM raw_web"]);
    assert_eq!(bad.code, Some(1));
    assert!(bad.stderr.contains("nope"), "{}", bad.stderr);
    let missing = p.run(&["query", "SELECT * FROM raw_nothing"]);
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("raw_nothing"), "{}", missing.stderr);
    assert!(missing.stderr.contains("hint"), "{}", missing.stderr);
}

#[test]
fn tables_lists_rows_partitions_and_versions() {
    let p = TestProject::nginx("combined", "");
    let empty = p.run(&["tables"]).ok();
    assert!(empty.stdout.contains("no tables yet"), "{}", empty.stdout);
    for d in ["2026-03-01", "2026-03-02"] {
        p.write(
            &format!("logs/web-1/access-{d}.log"),
            lines(7, d, false).as_bytes(),
        );
    }
    p.run(&[
        "ingest",
        "web",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-02",
    ])
    .ok();
    let tables = p.run(&["tables", "--json"]).ok().json();
    let raw = tables
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "raw_web")
        .unwrap()
        .clone();
    assert_eq!(raw["rows"], 14);
    assert_eq!(raw["partitions"], 2);
    assert_eq!(raw["partition_columns"], serde_json::json!(["file_date"]));
    assert_eq!(raw["last_partition"], "2026-03-02");
    assert!(raw["version"].as_u64().unwrap() >= 1);
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["_ingest_ledger", "_quarantine_web", "raw_web"]);
    let text = p.run(&["tables"]).ok();
    assert!(text.stdout.contains("raw_web"));
}
