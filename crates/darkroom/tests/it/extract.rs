//! `darkroom extract` end to end, on a SQLite database made with the sqlite3 tool.

use serde_json::Value;

use crate::harness::TestProject;

fn shop() -> TestProject {
    let p = TestProject::new(
        r#"
[project]
name = "shop"
timezone = "America/Toronto"

[[sources]]
name = "shop"
kind = "sqlite"
url = "db/shop.db"
timestamp_timezone = "America/Toronto"

[[sources.tables]]
name = "orders"
mode = "incremental"
cursor = "id"

[[sources.tables]]
name = "customers"
"#,
    );
    std::fs::create_dir_all(p.path().join("db")).unwrap();
    sqlite(
        &p,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, joined DATETIME);
         INSERT INTO customers VALUES (1, 'Zoë', '2026-01-31 19:30:00'), (2, NULL, NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, total DECIMAL(10,2));
         INSERT INTO orders VALUES (1, 1, '19.99'), (2, 1, '0.10'), (3, 2, '1000000.00');",
    );
    p
}

fn sqlite(p: &TestProject, sql: &str) {
    let out = std::process::Command::new("sqlite3")
        .arg(p.path().join("db/shop.db"))
        .arg(sql)
        .output()
        .expect("sqlite3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn extract_prints_a_summary_and_json_and_loads_exact_values() {
    let p = shop();
    let run = p.run(&["extract", "shop", "--date", "2026-02-01"]).ok();
    assert!(
        run.stdout
            .contains("shop.orders -> raw_shop_orders (incremental): 3 rows"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("watermark 3"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("shop.customers -> raw_shop_customers (full): 2 rows"),
        "{}",
        run.stdout
    );
    let rows =
        p.query("SELECT id, CAST(total AS VARCHAR) AS total FROM raw_shop_orders ORDER BY id");
    let totals: Vec<&str> = rows.iter().map(|r| r["total"].as_str().unwrap()).collect();
    assert_eq!(totals, ["19.99", "0.10", "1000000.00"]);
    // a wall-clock time in the source's zone is stored in UTC
    let rows = p.query(
        "SELECT name, CAST(joined AS VARCHAR) AS joined FROM raw_shop_customers ORDER BY id",
    );
    assert_eq!(rows[0]["name"], "Zoë");
    assert!(
        rows[0]["joined"]
            .as_str()
            .unwrap()
            .starts_with("2026-02-01T00:30:00"),
        "{}",
        rows[0]["joined"]
    );

    sqlite(&p, "INSERT INTO orders VALUES (4, 2, '5.00');");
    let run = p
        .run(&["extract", "shop", "--table", "orders", "--json"])
        .ok();
    let report = run.json();
    let tables = report["reports"][0]["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "only --table orders: {report}");
    assert_eq!(tables[0]["rows"], 2, "from the watermark (3) on: {report}");
    assert_eq!(tables[0]["status"], "loaded");
    assert!(tables[0]["bytes"].as_u64().unwrap() > 0);
    assert!(tables[0]["seconds"].as_f64().is_some());
    assert_eq!(p.count("SELECT count(*) FROM raw_shop_orders"), 4);
}

#[test]
fn a_failing_table_is_named_the_others_load_and_the_exit_code_says_so() {
    let p = shop();
    p.run(&["extract", "shop"]).ok();
    // a value that is not a decimal where the schema promises one: named, never cast
    sqlite(&p, "INSERT INTO orders VALUES (5, 1, 'twelve');");
    sqlite(
        &p,
        "INSERT INTO customers VALUES (3, 'Ann', '2026-02-02 10:00:00');",
    );
    let run = p.run(&["extract", "shop", "--json"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let report = run.json();
    let tables = report["reports"][0]["tables"].as_array().unwrap();
    let orders = &tables[0];
    assert_eq!(orders["status"], "failed");
    let error = orders["error"].as_str().unwrap();
    assert!(
        error.contains("orders")
            && error.contains("row 2 read")
            && error.contains("`total`")
            && error.contains("twelve"),
        "{error}"
    );
    assert_eq!(tables[1]["status"], "loaded", "customers carried on");
    assert_eq!(p.count("SELECT count(*) FROM raw_shop_customers"), 3);
    assert_eq!(
        p.count("SELECT count(*) FROM raw_shop_orders"),
        3,
        "kept as it was"
    );
}

#[test]
fn extract_explains_what_is_wrong() {
    let p = shop();
    let run = p.run(&["extract", "nope"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("no database source named `nope`") && run.stderr.contains("shop"),
        "{}",
        run.stderr
    );
    let run = p.run(&["extract", "shop", "--table", "nope"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no table `nope`"), "{}", run.stderr);
    std::fs::remove_file(p.path().join("db/shop.db")).unwrap();
    let run = p.run(&["extract", "shop", "--json"]);
    assert_eq!(run.code, Some(1));
    let report: Value = run.json();
    let error = report["errors"][0].as_str().unwrap();
    assert!(
        error.contains("source shop") && error.contains("no such database file"),
        "{error}"
    );
}
