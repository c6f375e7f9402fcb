//! Extraction from a real PostgreSQL server (started by the tests from the Debian package).

// test code: a panic is a failed test
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Bench, loaded, only};
use darkroom_extract::TableStatus;
use tokio_postgres::{Client, NoTls};

/// A fresh database `name` with `setup` run in it: its URL and a client connected to it.
async fn database(name: &str, setup: &str) -> (String, Client) {
    let server = common::postgres();
    let admin = connect(&format!("{}/postgres", server.base_url)).await;
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .expect("create database");
    }
    let url = format!("{}/{name}", server.base_url);
    let client = connect(&url).await;
    client.batch_execute(setup).await.expect("setup SQL");
    (url, client)
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(connection);
    client
}

fn source_toml(url: &str, tables: &str) -> String {
    format!(
        "[[sources]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"{url}\"\nbatch_rows = 1000\n\
         retries = 1\nhash_salt = \"${{PII_SALT}}\"\n{tables}"
    )
}

const EVERY_TYPE: &str = r#"
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE every_type (
  id int4 PRIMARY KEY,
  i2 int2, i4 int4, i8 int8,
  n38 numeric(38,0), n38s numeric(38,10), price numeric(12,2), nfree numeric,
  f4 float4, f8 float8, b bool,
  t text, vc varchar(20), ch char(3), by bytea,
  d date, tm time, ts timestamp, tstz timestamptz,
  u uuid, j json, jb jsonb, m mood,
  ai int4[], at text[], ip inet
);
INSERT INTO every_type VALUES
 (1, -32768, -2147483648, -9223372036854775808,
  -99999999999999999999999999999999999999, -9999999999999999999999999999.9999999999,
  -0.01, 123.456,
  1.5, -2.25, true,
  'héllo 🌍 世界', 'x', 'ab', '\x00ff10',
  '0001-01-01', '00:00:00', '1970-01-01 00:00:00', '2026-03-08 01:59:59.999999-05',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}', 'happy',
  '{1,NULL,3}', '{}', '192.168.0.1'),
 (2, 32767, 2147483647, 9223372036854775807,
  99999999999999999999999999999999999999, 9999999999999999999999999999.9999999999,
  9999999999.99, 0.0000000001,
  0, 1e-300, false,
  '', 'y', 'c', '',
  '9999-12-31', '23:59:59.999999', '2262-04-11 23:47:16.5', '2026-11-01 06:30:00+01',
  '00000000-0000-0000-0000-000000000000', 'null', '[]', 'sad',
  '{}', '{"a","NULL",NULL}', '2001:db8::1/64'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_exactly_with_nulls_and_edge_values() {
    let (url, _client) = database("every_type", EVERY_TYPE).await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"every_type\"\n",
    ));
    let report = bench.extract(&source).await;
    loaded(&report);
    assert_eq!(only(&report).rows, 3);

    let rows = bench
        .rows(
            "SELECT id, i2, i4, i8, n38, n38s, price, nfree, f4, f8, b, t, vc, ch, by, d, tm, \
             ts, tstz, u, j, jb, m, ai, at, ip FROM raw_pg_every_type ORDER BY id",
        )
        .await;
    let expected: Vec<Vec<&str>> = vec![
        vec![
            "1",
            "-32768",
            "-2147483648",
            "-9223372036854775808",
            "-99999999999999999999999999999999999999",
            "-9999999999999999999999999999.9999999999",
            "-0.01",
            "123.4560000000",
            "1.5",
            "-2.25",
            "true",
            "héllo 🌍 世界",
            "x",
            "ab ",
            "00ff10",
            "0001-01-01",
            "00:00:00",
            "1970-01-01T00:00:00Z",
            "2026-03-08T06:59:59.999999Z",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            r#"{"a": [1, 2]}"#,
            r#"{"b": {"c": null}}"#,
            "happy",
            "[1, , 3]",
            "[]",
            "192.168.0.1",
        ],
        vec![
            "2",
            "32767",
            "2147483647",
            "9223372036854775807",
            "99999999999999999999999999999999999999",
            "9999999999999999999999999999.9999999999",
            "9999999999.99",
            "0.0000000001",
            "0.0",
            "1e-300",
            "false",
            "",
            "y",
            "c  ",
            "",
            "9999-12-31",
            "23:59:59.999999",
            "2262-04-11T23:47:16.500Z",
            "2026-11-01T05:30:00Z",
            "00000000-0000-0000-0000-000000000000",
            "null",
            "[]",
            "sad",
            "[]",
            "[a, NULL, ]",
            "2001:db8::1/64",
        ],
    ];
    for (got, want) in rows.iter().zip(&expected) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g, w, "row id {}, column {i}", want[0]);
        }
    }
    assert!(rows[2][1..].iter().all(|v| v == "NULL"), "{:?}", rows[2]);

    // the warehouse types are exact: decimals stay decimals, timestamps are UTC
    let schema = bench
        .warehouse
        .arrow_schema("raw_pg_every_type")
        .await
        .unwrap()
        .unwrap();
    let ty = |c: &str| format!("{}", schema.field_with_name(c).unwrap().data_type());
    assert_eq!(ty("n38s"), "Decimal128(38, 10)");
    assert_eq!(ty("price"), "Decimal128(12, 2)");
    assert_eq!(ty("i2"), "Int16");
    assert!(ty("tstz").starts_with("Timestamp(µs"), "{}", ty("tstz"));
    assert!(ty("ai").contains("List"), "{}", ty("ai"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_type_is_named_and_columns_can_be_excluded_or_hashed() {
    let (url, _client) = database(
        "unsupported",
        "CREATE TABLE members (id int PRIMARY KEY, email text, wait interval, ip inet);
         INSERT INTO members VALUES (1, 'ann@example.com', '1 day', '10.0.0.1'),
                                    (2, NULL, NULL, NULL);",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"members\"\n",
    ));
    let report = bench.extract(&source).await;
    let t = only(&report);
    assert_eq!(t.status, TableStatus::Failed);
    let error = t.error.as_deref().unwrap();
    assert!(
        error.contains("members") && error.contains("`wait`") && error.contains("interval"),
        "{error}"
    );
    assert_eq!(
        bench.version("raw_pg_members").await,
        None,
        "nothing written"
    );

    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"members\"\nexclude = [\"wait\", \"ip\"]\nhash = [\"email\"]\n",
    ));
    let report = bench.extract(&source).await;
    loaded(&report);
    let rows = bench
        .rows("SELECT id, email FROM raw_pg_members ORDER BY id")
        .await;
    assert_eq!(rows[0][1].len(), 64, "hex SHA-256: {}", rows[0][1]);
    assert_ne!(rows[0][1], "ann@example.com");
    assert_eq!(rows[1][1], "NULL");
    let columns = bench
        .rows("SELECT column_name FROM information_schema.columns WHERE table_name = 'raw_pg_members'")
        .await;
    assert!(
        !columns.iter().any(|c| c[0] == "wait" || c[0] == "ip"),
        "{columns:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_loads_pick_up_inserts_and_updates_and_never_duplicate() {
    let (url, client) = database(
        "incremental",
        "CREATE TABLE orders (id bigint PRIMARY KEY, status text, amount numeric(10,2),
                              updated_at timestamptz NOT NULL);
         INSERT INTO orders SELECT g, 'new', g * 1.25, '2026-11-01 00:00:00+00'::timestamptz
                              + g * interval '1 minute' FROM generate_series(1, 2500) g;",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"orders\"\nmode = \"incremental\"\ncursor = \"updated_at\"\nlookback = \"10m\"\n",
    ));
    let first = bench.extract(&source).await;
    loaded(&first);
    assert_eq!(only(&first).rows, 2500);
    let watermark = only(&first).watermark.clone().unwrap();
    assert!(watermark.starts_with("2026-11-02T17:40:00"), "{watermark}");

    // nothing changed: only the look-back window is read again, and merged without duplicates
    let again = bench.extract(&source).await;
    loaded(&again);
    assert_eq!(only(&again).rows, 11, "rows in the 10-minute look-back");

    client
        .batch_execute(
            "UPDATE orders SET status = 'paid', updated_at = '2026-11-03 00:00:00+00' WHERE id IN (7, 8);
             INSERT INTO orders VALUES (2501, 'new', 1.00, '2026-11-03 00:00:01+00');",
        )
        .await
        .unwrap();
    let third = bench.extract(&source).await;
    loaded(&third);
    // from the last watermark minus the look-back: 11 unchanged rows, 2 updated, 1 new
    assert_eq!(only(&third).rows, 14);
    let rows = bench
        .rows("SELECT count(*), count(DISTINCT id), sum(amount) FROM raw_pg_orders")
        .await;
    assert_eq!(rows[0][0], "2501");
    assert_eq!(rows[0][1], "2501");
    let changed = bench
        .rows("SELECT id, status FROM raw_pg_orders WHERE status = 'paid' ORDER BY id")
        .await;
    assert_eq!(changed, vec![vec!["7", "paid"], vec!["8", "paid"]]);
    assert!(
        only(&third)
            .watermark
            .as_deref()
            .unwrap()
            .starts_with("2026-11-03T00:00:01"),
        "{:?}",
        only(&third).watermark
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_drift_adds_new_columns_and_stops_on_dropped_renamed_or_retyped_ones() {
    let (url, client) = database(
        "drift",
        "CREATE TABLE photos (id int PRIMARY KEY, width int, title text);
         INSERT INTO photos VALUES (1, 6000, 'a'), (2, 4000, 'b');",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"photos\"\n",
    ));
    loaded(&bench.extract(&source).await);

    // a new column: added to the warehouse table, reported, earlier rows untouched
    client
        .batch_execute("ALTER TABLE photos ADD COLUMN camera text; UPDATE photos SET camera = 'x' WHERE id = 2;")
        .await
        .unwrap();
    let report = bench.extract(&source).await;
    loaded(&report);
    assert_eq!(only(&report).new_columns, vec!["camera"]);
    let rows = bench
        .rows("SELECT id, width, title, camera FROM raw_pg_photos ORDER BY id")
        .await;
    assert_eq!(rows[1], vec!["2", "4000", "b", "x"]);
    let version = bench.version("raw_pg_photos").await;

    // retyped: the load stops, naming the column and both types; nothing is rewritten
    client
        .batch_execute("ALTER TABLE photos ALTER COLUMN width TYPE text USING width || 'px'")
        .await
        .unwrap();
    let report = bench.extract(&source).await;
    let t = only(&report);
    assert_eq!(t.status, TableStatus::Failed);
    let error = t.error.as_deref().unwrap();
    assert!(
        error.contains("`width`") && error.contains("int32") && error.contains("text"),
        "{error}"
    );
    assert_eq!(bench.version("raw_pg_photos").await, version);

    // renamed (a drop and an add): the load stops, naming the column that went away
    client
        .batch_execute(
            "ALTER TABLE photos ALTER COLUMN width TYPE int USING replace(width, 'px', '')::int;
             ALTER TABLE photos RENAME COLUMN title TO caption;",
        )
        .await
        .unwrap();
    let report = bench.extract(&source).await;
    let error = only(&report).error.clone().unwrap();
    assert!(
        error.contains("`title`") && error.contains("dropped or renamed"),
        "{error}"
    );
    assert_eq!(bench.version("raw_pg_photos").await, version);
    assert_eq!(
        bench.rows("SELECT count(*) FROM raw_pg_photos").await[0][0],
        "2",
        "nothing already loaded is lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_tables_of_a_run_come_from_one_snapshot() {
    let (url, client) = database(
        "snapshot",
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text);
         INSERT INTO events SELECT g, repeat('x', 40) FROM generate_series(1, 300000) g;
         CREATE TABLE users (id int PRIMARY KEY);
         INSERT INTO users SELECT generate_series(1, 10);",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"events\"\n[[sources.tables]]\nname = \"users\"\n",
    ));
    // while `events` streams, a user is added: the run must not see it in `users`
    let extract = bench.extract(&source);
    let writer = async {
        wait_for_copy(&client, "events").await;
        client
            .batch_execute("INSERT INTO users VALUES (11)")
            .await
            .unwrap();
    };
    let (report, ()) = tokio::join!(extract, writer);
    loaded(&report);
    assert_eq!(
        bench.rows("SELECT count(*) FROM raw_pg_users").await[0][0],
        "10",
        "the row committed during the run is not in its snapshot"
    );
}

/// Wait until a COPY of `table` is running on the server.
async fn wait_for_copy(client: &Client, table: &str) -> i32 {
    let started = Instant::now();
    loop {
        let rows = client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY%' AND query LIKE $1",
                &[&format!("%\"{table}\"%")],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            return row.get(0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no COPY of {table} seen"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_extract_leaves_the_previous_version_intact() {
    let (url, client) = database(
        "killed",
        "CREATE TABLE big (id bigint PRIMARY KEY, payload text);
         INSERT INTO big SELECT g, repeat('y', 40) FROM generate_series(1, 400000) g;",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(&url, "[[sources.tables]]\nname = \"big\"\n"));
    loaded(&bench.extract(&source).await);
    let version = bench.version("raw_pg_big").await;
    client
        .batch_execute("DELETE FROM big WHERE id > 1000")
        .await
        .unwrap();
    client
        .batch_execute("INSERT INTO big SELECT g, 'z' FROM generate_series(1001, 400000) g")
        .await
        .unwrap();

    let extract = bench.extract(&source);
    let killer = async {
        let pid = wait_for_copy(&client, "big").await;
        client
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap();
    };
    let (report, ()) = tokio::join!(extract, killer);
    let t = only(&report);
    assert_eq!(t.status, TableStatus::Failed, "{t:?}");
    assert!(t.error.as_deref().unwrap().contains("big"), "{t:?}");
    assert_eq!(bench.version("raw_pg_big").await, version, "no commit");
    let rows = bench
        .rows("SELECT count(*), count(*) FILTER (WHERE payload = 'z') FROM raw_pg_big")
        .await;
    assert_eq!(rows[0], vec!["400000", "0"], "the previous copy, whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_retried_then_named_without_its_password() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bench = Bench::new();
    let source = bench.source(&format!(
        "[[sources]]\nname = \"down\"\nkind = \"postgres\"\n\
         url = \"postgres://app:hunter2secret@127.0.0.1:{port}/prod\"\nretries = 2\n\
         [[sources.tables]]\nname = \"users\"\n"
    ));
    let started = Instant::now();
    let error = bench.try_extract(&source).await.unwrap_err().to_string();
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "backoff 0.5 s + 1 s"
    );
    assert!(error.contains("source down"), "{error}");
    assert!(error.contains("after 3 attempt"), "{error}");
    assert!(error.contains(&format!("127.0.0.1:{port}/prod")), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_snapshot_history_keeps_one_partition_per_date() {
    let (url, _client) = database(
        "history",
        "CREATE TABLE plans (id int PRIMARY KEY, name text);
         INSERT INTO plans VALUES (1, 'plus'), (2, 'pro');",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"plans\"\nhistory = \"snapshot\"\n",
    ));
    for date in [25, 26, 26] {
        let options = darkroom_extract::ExtractOptions {
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, date),
            project_root: bench.dir.path().to_path_buf(),
            ..Default::default()
        };
        let report =
            darkroom_extract::extract_source(&bench.warehouse, chrono_tz::UTC, &source, &options)
                .await
                .unwrap();
        loaded(&report);
    }
    let rows = bench
        .rows("SELECT snapshot_date, count(*) FROM raw_pg_plans GROUP BY 1 ORDER BY 1")
        .await;
    assert_eq!(
        rows,
        vec![vec!["2026-11-25", "2"], vec!["2026-11-26", "2"]],
        "a re-run of a date replaces its partition"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_in_one_table_does_not_stop_the_next() {
    let (url, _client) = database(
        "server_error",
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1);
         CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b VALUES (1), (2);",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"a\"\nwhere = \"no_such_column > 0\"\n\
         [[sources.tables]]\nname = \"b\"\n",
    ));
    let report = bench.extract(&source).await;
    let error = report.tables[0].error.clone().unwrap();
    assert!(error.contains("no_such_column"), "{error}");
    assert_eq!(report.tables[1].status, TableStatus::Loaded, "{report:#?}");
    assert_eq!(bench.rows("SELECT count(*) FROM raw_pg_b").await[0][0], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_mid_extract_leaves_the_previous_version_intact() {
    // a server of this test's own: it is stopped halfway through a COPY
    let server = common::own_postgres();
    let url = format!("{}/postgres", server.base_url);
    let client = connect(&url).await;
    client
        .batch_execute(
            "CREATE TABLE big (id bigint PRIMARY KEY, payload text);
             INSERT INTO big SELECT g, repeat('y', 40) FROM generate_series(1, 400000) g;",
        )
        .await
        .unwrap();
    let bench = Bench::new();
    let source = bench.source(&source_toml(&url, "[[sources.tables]]\nname = \"big\"\n"));
    loaded(&bench.extract(&source).await);
    let version = bench.version("raw_pg_big").await;

    let extract = bench.extract(&source);
    let stopper = async {
        wait_for_copy(&client, "big").await;
        server.stop_postgres_now();
    };
    let (report, ()) = tokio::join!(extract, stopper);
    let t = only(&report);
    assert_eq!(t.status, TableStatus::Failed, "{t:?}");
    assert_eq!(bench.version("raw_pg_big").await, version, "no commit");
    assert_eq!(
        bench.rows("SELECT count(*) FROM raw_pg_big").await[0][0],
        "400000",
        "the previous copy, whole"
    );
}
