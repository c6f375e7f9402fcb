//! Extraction from a real MariaDB server (started by the tests from the Debian package).

// test code: a panic is a failed test
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Bench, loaded, only};
use darkroom_extract::TableStatus;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// A fresh database `name` with `setup` run in it: its URL and a connection to it.
async fn database(name: &str, setup: &str) -> (String, Conn) {
    let server = common::mariadb();
    let mut admin = Conn::from_url(format!("{}/mysql", server.base_url))
        .await
        .expect("connect to mariadb");
    admin
        .query_drop(format!(
            "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} CHARACTER SET utf8mb4"
        ))
        .await
        .expect("create database");
    let url = format!("{}/{name}", server.base_url);
    let mut conn = Conn::from_url(url.clone()).await.expect("connect");
    conn.query_drop(setup).await.expect("setup SQL");
    (url, conn)
}

fn source_toml(url: &str, tables: &str) -> String {
    format!(
        "[[sources]]\nname = \"my\"\nkind = \"mysql\"\nurl = \"{url}\"\nbatch_rows = 1000\n\
         retries = 1\n{tables}"
    )
}

const EVERY_TYPE: &str = r#"
SET SESSION sql_mode = '';
SET SESSION time_zone = '+00:00';
CREATE TABLE every_type (
  id int PRIMARY KEY,
  flag tinyint(1), ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned,
  mi mediumint, i int, iu int unsigned, bi bigint, biu bigint unsigned,
  d38 decimal(38,10), price decimal(10,2), f float, db double, bt bit(1),
  ch char(3), vc varchar(20), tx text, en enum('sad','ok','happy'), st set('a','b'),
  js json, bl blob, dt date, dtm datetime(6), ts timestamp(6) NULL DEFAULT NULL,
  tm time(6), yr year
);
INSERT INTO every_type VALUES
 (1, 1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295,
  -9223372036854775808, 18446744073709551615,
  -9999999999999999999999999999.9999999999, -0.01, 1.5, -2.25, b'1',
  'ab', 'x', 'héllo 🌍 世界', 'happy', 'a,b',
  '{"a": [1, 2]}', x'00ff10', '1000-01-01', '2026-03-08 01:59:59.999999',
  '2026-11-01 05:30:00.5', '-838:59:59', 1901),
 (2, 0, 127, 0, 32767, 0, 8388607, 2147483647, 0,
  9223372036854775807, 0,
  9999999999999999999999999999.9999999999, 99999999.99, 0, 1e-300, b'0',
  '', '', '', 'sad', '',
  '[]', '', '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '00:00:00', 2155),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_exactly_and_zero_dates_are_counted() {
    let (url, _conn) = database("every_type", EVERY_TYPE).await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"every_type\"\n",
    ));
    let report = bench.extract(&source).await;
    loaded(&report);
    let t = only(&report);
    assert_eq!(t.rows, 3);
    // row 2 holds a zero date in each of dt, dtm and ts
    assert_eq!(
        t.zero_dates
            .iter()
            .map(|(c, n)| (c.as_str(), *n))
            .collect::<Vec<_>>(),
        vec![("dt", 1), ("dtm", 1), ("ts", 1)]
    );
    let rows = bench
        .rows(
            "SELECT id, flag, ti, tiu, si, siu, mi, i, iu, bi, biu, d38, price, f, db, bt, ch, \
             vc, tx, en, st, js, bl, dt, dtm, ts, tm, yr FROM raw_my_every_type ORDER BY id",
        )
        .await;
    let expected: Vec<Vec<&str>> = vec![
        vec![
            "1",
            "true",
            "-128",
            "255",
            "-32768",
            "65535",
            "-8388608",
            "-2147483648",
            "4294967295",
            "-9223372036854775808",
            "18446744073709551615",
            "-9999999999999999999999999999.9999999999",
            "-0.01",
            "1.5",
            "-2.25",
            "true",
            "ab",
            "x",
            "héllo 🌍 世界",
            "happy",
            "a,b",
            r#"{"a": [1, 2]}"#,
            "00ff10",
            "1000-01-01",
            "2026-03-08T01:59:59.999999Z",
            "2026-11-01T05:30:00.500Z",
            "-838:59:59.000000",
            "1901",
        ],
        vec![
            "2",
            "false",
            "127",
            "0",
            "32767",
            "0",
            "8388607",
            "2147483647",
            "0",
            "9223372036854775807",
            "0",
            "9999999999999999999999999999.9999999999",
            "99999999.99",
            "0.0",
            "1e-300",
            "false",
            "",
            "",
            "",
            "sad",
            "",
            "[]",
            "",
            "NULL",
            "NULL",
            "NULL",
            "00:00:00.000000",
            "2155",
        ],
    ];
    for (got, want) in rows.iter().zip(&expected) {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g, w, "row id {}, column {i}", want[0]);
        }
    }
    assert!(rows[2][1..].iter().all(|v| v == "NULL"), "{:?}", rows[2]);
    let schema = bench
        .warehouse
        .arrow_schema("raw_my_every_type")
        .await
        .unwrap()
        .unwrap();
    let ty = |c: &str| format!("{}", schema.field_with_name(c).unwrap().data_type());
    assert_eq!(ty("flag"), "Boolean", "tinyint(1) is a boolean");
    assert_eq!(
        ty("biu"),
        "Decimal128(20, 0)",
        "bigint unsigned keeps every value"
    );
    assert_eq!(ty("d38"), "Decimal128(38, 10)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_type_is_named() {
    let (url, _conn) = database(
        "unsupported",
        "CREATE TABLE places (id int PRIMARY KEY, spot point);",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"places\"\n",
    ));
    let report = bench.extract(&source).await;
    let error = only(&report).error.clone().unwrap();
    assert!(
        error.contains("places") && error.contains("`spot`") && error.contains("point"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_loads_pick_up_inserts_and_updates_and_never_duplicate() {
    let (url, mut conn) = database(
        "incremental",
        "CREATE TABLE orders (id bigint PRIMARY KEY, status varchar(10), amount decimal(10,2),
                              updated_at datetime(3) NOT NULL);
         INSERT INTO orders SELECT seq, 'new', seq * 1.25,
                DATE_ADD('2026-11-01', INTERVAL seq MINUTE) FROM seq_1_to_2500;",
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
    let again = bench.extract(&source).await;
    loaded(&again);
    assert_eq!(only(&again).rows, 11, "rows in the 10-minute look-back");
    conn.query_drop(
        "UPDATE orders SET status = 'paid', updated_at = '2026-11-03 00:00:00' WHERE id IN (7, 8);
         INSERT INTO orders VALUES (2501, 'new', 1.00, '2026-11-03 00:00:01');",
    )
    .await
    .unwrap();
    let third = bench.extract(&source).await;
    loaded(&third);
    // from the last watermark minus the look-back: 11 unchanged rows, 2 updated, 1 new
    assert_eq!(only(&third).rows, 14);
    let rows = bench
        .rows("SELECT count(*), count(DISTINCT id) FROM raw_my_orders")
        .await;
    assert_eq!(rows[0], vec!["2501", "2501"]);
    let changed = bench
        .rows("SELECT id FROM raw_my_orders WHERE status = 'paid' ORDER BY id")
        .await;
    assert_eq!(changed, vec![vec!["7"], vec!["8"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_drift_adds_new_columns_and_stops_on_a_retyped_one() {
    let (url, mut conn) = database(
        "drift",
        "CREATE TABLE photos (id int PRIMARY KEY, width int);
         INSERT INTO photos VALUES (1, 6000);",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(
        &url,
        "[[sources.tables]]\nname = \"photos\"\n",
    ));
    loaded(&bench.extract(&source).await);
    conn.query_drop("ALTER TABLE photos ADD COLUMN camera varchar(20)")
        .await
        .unwrap();
    let report = bench.extract(&source).await;
    loaded(&report);
    assert_eq!(only(&report).new_columns, vec!["camera"]);
    let version = bench.version("raw_my_photos").await;
    conn.query_drop("ALTER TABLE photos MODIFY width varchar(10)")
        .await
        .unwrap();
    let report = bench.extract(&source).await;
    let error = only(&report).error.clone().unwrap();
    assert!(
        error.contains("`width`") && error.contains("int32") && error.contains("varchar(10)"),
        "{error}"
    );
    assert_eq!(bench.version("raw_my_photos").await, version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_extract_leaves_the_previous_version_intact() {
    let (url, mut conn) = database(
        "killed",
        "CREATE TABLE big (id bigint PRIMARY KEY, payload varchar(50));
         INSERT INTO big SELECT seq, REPEAT('y', 40) FROM seq_1_to_300000;",
    )
    .await;
    let bench = Bench::new();
    let source = bench.source(&source_toml(&url, "[[sources.tables]]\nname = \"big\"\n"));
    loaded(&bench.extract(&source).await);
    let version = bench.version("raw_my_big").await;

    let extract = bench.extract(&source);
    let killer = async {
        let started = Instant::now();
        loop {
            let ids: Vec<u64> = conn
                .query(
                    "SELECT ID FROM information_schema.PROCESSLIST \
                      WHERE INFO LIKE 'SELECT%FROM `big`%' AND ID <> CONNECTION_ID()",
                )
                .await
                .unwrap();
            if let Some(id) = ids.first() {
                conn.query_drop(format!("KILL {id}")).await.unwrap();
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no SELECT seen"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (report, ()) = tokio::join!(extract, killer);
    let t = only(&report);
    assert_eq!(t.status, TableStatus::Failed, "{t:?}");
    assert_eq!(bench.version("raw_my_big").await, version, "no commit");
    assert_eq!(
        bench.rows("SELECT count(*) FROM raw_my_big").await[0][0],
        "300000"
    );
}
