//! SQL models against a real warehouse (Delta tables in a temporary folder): templating,
//! graph errors, every materialisation, SCD2 run sequences, unknown members, lineage.

// test code: a panic is a failed test
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use darkroom_config::{Diagnostics, Project};
use darkroom_models::{BuildOptions, BuildReport, Models, RenderContext};
use darkroom_storage::{StorageSettings, Warehouse};

const TOML: &str = r#"
[project]
name = "shop"
timezone = "America/Toronto"

[[sources]]
name = "app_db"
kind = "sqlite"
url = "db/app.db"
tables = [{ name = "users", mode = "full" }, { name = "orders", mode = "full" }]

[[sources]]
name = "web"
kind = "nginx"
format = "combined"
path = "logs/{host}/{date}.log"
hosts = ["web-1"]
"#;

struct Fixture {
    dir: tempfile::TempDir,
    project: Project,
    warehouse: Warehouse,
}

fn day(text: &str) -> NaiveDate {
    text.parse().expect("date")
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("darkroom.toml"), TOML).expect("toml");
        let project = Project::load_with_env(dir.path(), &|_| None).expect("project");
        let warehouse =
            Warehouse::open(StorageSettings::local(dir.path().join("warehouse"))).expect("wh");
        Self {
            dir,
            project,
            warehouse,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn model(&self, path: &str, text: &str) {
        let p = self.root().join("models").join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write model");
    }

    fn remove_model(&self, path: &str) {
        std::fs::remove_file(self.root().join("models").join(path)).expect("rm");
    }

    /// Replace a raw table with the rows of a query.
    async fn raw(&self, table: &str, sql: &str) {
        common::write_raw(&self.warehouse, table, sql).await;
    }

    /// Replace raw_web with rows of (file_date, event_date, path).
    async fn web(&self, rows: &[(&str, &str, &str)]) {
        let values: Vec<String> = rows
            .iter()
            .map(|(file, event, path)| format!("('{file}', '{event}', '{path}')"))
            .collect();
        self.raw(
            "raw_web",
            &format!(
                "SELECT CAST(column1 AS DATE) AS file_date, CAST(column2 AS DATE) AS event_date, \
                 column3 AS path FROM (VALUES {})",
                values.join(", ")
            ),
        )
        .await;
    }

    fn load(&self) -> (Models, Diagnostics) {
        let mut diags = Diagnostics::default();
        let models = Models::load(&self.project, &mut diags);
        (models, diags)
    }

    async fn check(&self, date: &str) -> Diagnostics {
        let (models, mut diags) = self.load();
        darkroom_models::check::check(
            &self.project,
            &models,
            &self.warehouse,
            day(date),
            &BTreeMap::new(),
            &mut diags,
        )
        .await;
        diags.sort();
        diags
    }

    async fn build(&self, date: &str, select: &[&str]) -> BuildReport {
        let (models, diags) = self.load();
        assert!(diags.is_empty(), "{diags}");
        let options = BuildOptions {
            date: Some(day(date)),
            from: None,
            select: select.iter().map(|s| (*s).to_string()).collect(),
            vars: BTreeMap::new(),
        };
        darkroom_models::build(&self.project, &models, &self.warehouse, &options, &|_| {})
            .await
            .unwrap_or_else(|e| panic!("build: {e}"))
    }

    async fn build_range(&self, from: &str, to: &str) -> BuildReport {
        let (models, diags) = self.load();
        assert!(diags.is_empty(), "{diags}");
        let options = BuildOptions {
            date: Some(day(to)),
            from: Some(day(from)),
            ..BuildOptions::default()
        };
        darkroom_models::build(&self.project, &models, &self.warehouse, &options, &|_| {})
            .await
            .unwrap_or_else(|e| panic!("build: {e}"))
    }

    async fn rows(&self, sql: &str) -> String {
        let (models, _) = self.load();
        let ctx = darkroom_models::build::prepare_session(&self.project, &models, &self.warehouse)
            .await
            .expect("session");
        common::pretty(&ctx, sql).await
    }
}

fn trim(table: &str) -> String {
    table
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn assert_rows(actual: &str, expected: &str) {
    assert_eq!(trim(actual), trim(expected), "\nactual:\n{actual}");
}

async fn users(f: &Fixture, rows: &str) {
    f.raw(
        "raw_app_db_users",
        &format!(
            "SELECT CAST(column1 AS BIGINT) AS id, column2 AS country, column3 AS plan, \
             arrow_cast(CAST(column4 AS TIMESTAMP), 'Timestamp(µs, \"UTC\")') AS updated_at \
             FROM (VALUES {rows})"
        ),
    )
    .await;
}

#[tokio::test]
async fn templates_render_refs_sources_dates_and_vars() {
    let f = Fixture::new();
    let text = "{{ config(materialized='incremental') }}\n\
        SELECT * FROM {{ ref('stg_web') }} JOIN {{ source('app_db', 'users') }} u ON true\n\
        WHERE file_date BETWEEN DATE '{{ prev_date }}' AND DATE '{{ late_date }}'\n\
        AND event_date = DATE '{{ run_date }}' AND ts >= '{{ run_start_utc }}' AND ts < '{{ run_end_utc }}'\n\
        AND x = {{ var('limit', 5) }} AND y = '{{ var('who') }}' {% if is_incremental() %}AND inc{% endif %}";
    let mut vars = BTreeMap::new();
    vars.insert("who".to_string(), "ann".to_string());
    let ctx = RenderContext {
        project: &f.project,
        date_from: day("2026-03-08"),
        run_date: day("2026-03-08"),
        is_incremental: true,
        vars,
    };
    let r = darkroom_models::render("fct_x", text, &ctx).expect("render");
    assert_eq!(r.refs, vec!["stg_web".to_string()]);
    assert_eq!(r.sources[0].1.as_deref(), Ok("raw_app_db_users"));
    assert_eq!(r.config["materialized"], "incremental");
    // the config() call renders to nothing but keeps its line, so lines match the file
    assert_eq!(r.sql.lines().count(), text.lines().count());
    assert!(
        r.sql
            .contains(r#"FROM "stg_web" JOIN "raw_app_db_users" u"#),
        "{}",
        r.sql
    );
    assert!(
        r.sql
            .contains("BETWEEN DATE '2026-03-07' AND DATE '2026-03-10'")
    );
    // 2026-03-08 is the day Toronto moves to daylight time: 05:00Z to 04:00Z next day
    assert!(
        r.sql
            .contains("ts >= '2026-03-08T05:00:00Z' AND ts < '2026-03-09T04:00:00Z'"),
        "{}",
        r.sql
    );
    assert!(r.sql.contains("x = 5 AND y = 'ann' AND inc"), "{}", r.sql);

    // an undefined variable is an error, never an empty string
    let e = darkroom_models::render("m", "SELECT {{ run_dat }}", &ctx).expect_err("undefined");
    assert_eq!(e.line(), Some(1));
    let missing = RenderContext {
        vars: BTreeMap::new(),
        ..ctx.clone()
    };
    let e =
        darkroom_models::render("m", "SELECT '{{ var('who') }}'", &missing).expect_err("unset var");
    assert!(
        darkroom_models::template::describe_error(&e).contains("--var who="),
        "{e}"
    );
}

#[tokio::test]
async fn every_graph_and_column_problem_is_reported_at_once_with_lines() {
    let f = Fixture::new();
    users(&f, "(1, 'CA', 'free', '2026-01-01 10:00:00')").await;
    f.model(
        "a.sql",
        "SELECT id,\n  contry\nFROM {{ source('app_db', 'users') }}",
    );
    f.model("b.sql", "SELECT 1 AS x\nFROM {{ ref('c') }}");
    f.model("c.sql", "SELECT 1 AS x\nFROM {{ ref('b') }}");
    f.model("d.sql", "SELECT *\n\nFROM {{ ref('stg_missing') }}");
    f.model("e.sql", "SELECT *\nFROM {{ source('app_db', 'payments') }}");
    f.model(
        "f.sql",
        "{{ config(materialized='incremental', partition_by='day', colour='red') }}\nSELECT 1 AS x",
    );
    f.model("g.sql", "SELECT id FROM {{ ref('a') }}");
    f.model("Bad-Name.sql", "SELECT 1");
    f.model(
        "h.sql",
        "SELECT count(*) AS n, country\nFROM {{ source('app_db', 'users') }}",
    );
    let diags = f.check("2026-01-02").await;
    let text = diags.to_string();
    let has = |file: &str, line: usize, needle: &str| {
        assert!(
            diags.iter().any(|d| d.path.ends_with(file)
                && d.line == Some(line)
                && d.message.contains(needle)),
            "no `{needle}` at {file}:{line} in:\n{text}"
        );
    };
    has("a.sql", 2, "contry");
    has("b.sql", 2, "dependency cycle");
    has("c.sql", 2, "dependency cycle");
    has("d.sql", 3, "no model named `stg_missing`");
    has("e.sql", 2, "no table `payments`");
    has("f.sql", 1, "unknown field `colour`");
    has("h.sql", 1, "country");
    assert!(
        diags
            .iter()
            .any(|d| d.path.ends_with("Bad-Name.sql") && d.message.contains("cannot name a model")),
        "{text}"
    );
    // g reads the broken a: not planned, not reported twice
    assert!(!diags.iter().any(|d| d.path.ends_with("g.sql")), "{text}");

    // and building stops before anything runs
    let (models, _) = f.load();
    let built = darkroom_models::build(
        &f.project,
        &models,
        &f.warehouse,
        &BuildOptions::default(),
        &|_| {},
    )
    .await;
    assert!(built.is_err());
    assert!(f.warehouse.table("h").await.expect("open").is_none());
}

#[tokio::test]
async fn a_table_is_rebuilt_whole_and_may_change_shape_and_a_view_is_read_live() {
    let f = Fixture::new();
    users(
        &f,
        "(1, 'CA', 'free', '2026-01-01 10:00:00'), (2, 'DE', 'pro', '2026-01-01 11:00:00')",
    )
    .await;
    f.model(
        "stg_users.sql",
        "{{ config(materialized='view') }}\nSELECT id AS user_id, country, plan FROM {{ source('app_db', 'users') }}",
    );
    f.model(
        "by_country.sql",
        "SELECT country, count(*) AS users FROM {{ ref('stg_users') }} GROUP BY country",
    );
    let report = f.build("2026-01-02", &[]).await;
    assert_eq!(report.failed(), 0, "{report:?}");
    assert_rows(
        &f.rows("SELECT * FROM by_country ORDER BY country").await,
        "+---------+-------+
         | country | users |
         +---------+-------+
         | CA      | 1     |
         | DE      | 1     |
         +---------+-------+",
    );
    let v1 = f
        .warehouse
        .table_info("by_country")
        .await
        .expect("info")
        .expect("table")
        .version;

    // new rows and a new shape: one commit swaps both in
    users(
        &f,
        "(1, 'CA', 'free', '2026-01-01 10:00:00'), (3, 'CA', 'pro', '2026-01-02 11:00:00')",
    )
    .await;
    f.model(
        "by_country.sql",
        "SELECT country, count(*) AS members, max(plan) AS top_plan FROM {{ ref('stg_users') }} GROUP BY country",
    );
    f.build("2026-01-02", &["by_country"]).await;
    assert_rows(
        &f.rows("SELECT * FROM by_country").await,
        "+---------+---------+----------+
         | country | members | top_plan |
         +---------+---------+----------+
         | CA      | 2       | pro      |
         +---------+---------+----------+",
    );
    let v2 = f
        .warehouse
        .table_info("by_country")
        .await
        .expect("info")
        .expect("table")
        .version;
    assert_eq!(v2, v1 + 1, "one commit replaces the table");
    // the view reads the raw table as it is now, without a build
    assert_rows(
        &f.rows("SELECT count(*) AS n FROM stg_users").await,
        "+---+
         | n |
         +---+
         | 2 |
         +---+",
    );
}

#[tokio::test]
async fn an_incremental_model_replaces_exactly_its_date_and_reruns_are_idempotent() {
    let f = Fixture::new();
    f.web(&[
        ("2026-01-01", "2026-01-01", "/a"),
        ("2026-01-02", "2026-01-01", "/late"),
        ("2026-01-02", "2026-01-02", "/b"),
        ("2026-01-02", "2026-01-02", "/c"),
    ])
    .await;
    f.model(
        "fct_views.sql",
        "{{ config(materialized='incremental') }}\n\
         SELECT event_date, path FROM {{ source('web') }}\n\
         WHERE file_date BETWEEN DATE '{{ prev_date }}' AND DATE '{{ late_date }}' AND event_date = DATE '{{ run_date }}'",
    );
    for d in ["2026-01-01", "2026-01-02", "2026-01-01"] {
        let r = f.build(d, &[]).await;
        assert_eq!(r.failed(), 0, "{r:?}");
    }
    let counts = "SELECT event_date, count(*) AS n FROM fct_views GROUP BY 1 ORDER BY 1";
    let expected = "+------------+---+
                    | event_date | n |
                    +------------+---+
                    | 2026-01-01 | 2 |
                    | 2026-01-02 | 2 |
                    +------------+---+";
    assert_rows(&f.rows(counts).await, expected);

    // a late row for 01-02 changes only that partition when 01-02 is rebuilt
    f.web(&[
        ("2026-01-01", "2026-01-01", "/a"),
        ("2026-01-02", "2026-01-02", "/b"),
        ("2026-01-03", "2026-01-02", "/late2"),
    ])
    .await;
    f.build("2026-01-02", &[]).await;
    assert_rows(
        &f.rows(counts).await,
        "+------------+---+
         | event_date | n |
         +------------+---+
         | 2026-01-01 | 2 |
         | 2026-01-02 | 2 |
         +------------+---+",
    );
    assert_rows(
        &f.rows("SELECT path FROM fct_views WHERE event_date = DATE '2026-01-02' ORDER BY 1")
            .await,
        "+--------+
         | path   |
         +--------+
         | /b     |
         | /late2 |
         +--------+",
    );

    // a model that computes rows of another date fails and commits nothing
    f.model(
        "fct_views.sql",
        "{{ config(materialized='incremental') }}\nSELECT event_date, path FROM {{ source('web') }}",
    );
    let before = f
        .warehouse
        .table_info("fct_views")
        .await
        .expect("i")
        .expect("t")
        .version;
    let r = f.build("2026-01-02", &[]).await;
    assert_eq!(r.failed(), 1);
    let error = r.models[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("outside the partition") && error.contains("run_date"),
        "{error}"
    );
    let after = f
        .warehouse
        .table_info("fct_views")
        .await
        .expect("i")
        .expect("t")
        .version;
    assert_eq!(before, after);
}

/// The SCD2 run sequence: insert, change, no change, delete, re-insert.
#[tokio::test]
async fn a_snapshot_keeps_every_version_through_change_delete_and_return() {
    let f = Fixture::new();
    f.model(
        "dim_user.sql",
        "{{ config(materialized='snapshot', unique_key='user_id', strategy='check', check_cols=['country', 'plan'], unknown_member=true) }}\n\
         SELECT id AS user_id, country, plan FROM {{ source('app_db', 'users') }}",
    );
    let history = "SELECT user_id, country, plan, valid_from, valid_to, is_current FROM dim_user ORDER BY user_id, valid_from";

    // day 1: two users
    users(
        &f,
        "(1, 'CA', 'free', '2026-01-01 10:00:00'), (2, 'DE', 'free', '2026-01-01 10:00:00')",
    )
    .await;
    let r = f.build("2026-01-01", &[]).await;
    let s = r.models[0].snapshot.clone().expect("changes");
    assert_eq!((s.new, s.changed, s.deleted), (2, 0, 0));
    // day 2: user 1 upgrades
    users(
        &f,
        "(1, 'CA', 'pro', '2026-01-02 10:00:00'), (2, 'DE', 'free', '2026-01-01 10:00:00')",
    )
    .await;
    let s = f.build("2026-01-02", &[]).await.models[0]
        .snapshot
        .clone()
        .expect("c");
    assert_eq!((s.new, s.changed, s.unchanged), (0, 1, 1));
    // day 3: nothing changes
    let s = f.build("2026-01-03", &[]).await.models[0]
        .snapshot
        .clone()
        .expect("c");
    assert_eq!((s.changed, s.unchanged), (0, 2));
    // day 4: user 2 is deleted
    users(&f, "(1, 'CA', 'pro', '2026-01-02 10:00:00')").await;
    let s = f.build("2026-01-04", &[]).await.models[0]
        .snapshot
        .clone()
        .expect("c");
    assert_eq!((s.deleted, s.unchanged), (1, 1));
    // day 5: user 2 comes back
    users(
        &f,
        "(1, 'CA', 'pro', '2026-01-02 10:00:00'), (2, 'DE', 'free', '2026-01-01 10:00:00')",
    )
    .await;
    let s = f.build("2026-01-05", &[]).await.models[0]
        .snapshot
        .clone()
        .expect("c");
    assert_eq!((s.reopened, s.unchanged), (1, 1));

    // snapshot times are the end of each day in Toronto (05:00Z in winter)
    assert_rows(
        &f.rows(history).await,
        "+---------+---------+---------+----------------------+----------------------+------------+
         | user_id | country | plan    | valid_from           | valid_to             | is_current |
         +---------+---------+---------+----------------------+----------------------+------------+
         | 1       | CA      | free    | 2026-01-02T05:00:00Z | 2026-01-03T05:00:00Z | false      |
         | 1       | CA      | pro     | 2026-01-03T05:00:00Z |                      | true       |
         | 2       | DE      | free    | 2026-01-02T05:00:00Z | 2026-01-05T05:00:00Z | false      |
         | 2       | DE      | free    | 2026-01-06T05:00:00Z |                      | true       |
         |         | unknown | unknown | 1970-01-01T00:00:00Z |                      | true       |
         +---------+---------+---------+----------------------+----------------------+------------+",
    );
    // surrogate keys: one per version, the unknown member -1, stable across a rebuild
    let keys = "SELECT user_id, user_key FROM dim_user ORDER BY user_key";
    let before = f.rows(keys).await;
    assert!(before.contains("| -1 "), "{before}");
    f.build("2026-01-05", &[]).await;
    assert_eq!(f.rows(keys).await, before);
    assert_rows(
        &f.rows("SELECT count(DISTINCT user_key) AS n FROM dim_user")
            .await,
        "+---+
         | n |
         +---+
         | 5 |
         +---+",
    );
    // a snapshot does not go back in time
    let r = f.build("2026-01-03", &[]).await;
    assert_eq!(r.failed(), 1);
    assert!(
        r.models[0]
            .error
            .clone()
            .unwrap_or_default()
            .contains("only moves forward"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_timestamp_snapshot_opens_versions_at_updated_at() {
    let f = Fixture::new();
    f.model(
        "dim_user.sql",
        "{{ config(materialized='snapshot', unique_key='user_id', strategy='timestamp', updated_at='updated_at') }}\n\
         SELECT id AS user_id, plan, updated_at FROM {{ source('app_db', 'users') }}",
    );
    users(&f, "(1, 'CA', 'free', '2026-01-01 10:00:00')").await;
    f.build("2026-01-01", &[]).await;
    // the plan changes but updated_at does not move: not a change under this strategy
    users(&f, "(1, 'CA', 'team', '2026-01-01 10:00:00')").await;
    let s = f.build("2026-01-02", &[]).await.models[0]
        .snapshot
        .clone()
        .expect("c");
    assert_eq!((s.changed, s.unchanged), (0, 1));
    users(&f, "(1, 'CA', 'pro', '2026-01-03 08:30:00')").await;
    let s = f.build("2026-01-03", &[]).await.models[0]
        .snapshot
        .clone()
        .expect("c");
    assert_eq!(s.changed, 1);
    assert_rows(
        &f.rows("SELECT plan, valid_from, valid_to, is_current FROM dim_user ORDER BY valid_from")
            .await,
        "+------+----------------------+----------------------+------------+
         | plan | valid_from           | valid_to             | is_current |
         +------+----------------------+----------------------+------------+
         | free | 2026-01-01T10:00:00Z | 2026-01-03T08:30:00Z | false      |
         | pro  | 2026-01-03T08:30:00Z |                      | true       |
         +------+----------------------+----------------------+------------+",
    );
}

#[tokio::test]
async fn facts_keep_rows_whose_dimension_row_is_missing_and_count_them() {
    let f = Fixture::new();
    users(&f, "(1, 'CA', 'free', '2026-01-01 10:00:00')").await;
    f.raw(
        "raw_app_db_orders",
        "SELECT CAST(column1 AS BIGINT) AS id, CAST(column2 AS BIGINT) AS user_id, CAST(column3 AS DATE) AS event_date \
         FROM (VALUES (10, 1, '2026-01-01'), (11, 2, '2026-01-01'), (12, 1, '2026-01-01'))",
    )
    .await;
    f.model(
        "dim_user.sql",
        "{{ config(unique_key='user_id', surrogate_key='user_key', unknown_member=true) }}\n\
         SELECT surrogate_key(id) AS user_key, id AS user_id, country FROM {{ source('app_db', 'users') }}",
    );
    f.model(
        "fct_orders.sql",
        "{{ config(materialized='incremental') }}\n\
         SELECT o.id AS order_id, o.event_date, coalesce(u.user_key, -1) AS user_key\n\
         FROM {{ source('app_db', 'orders') }} o LEFT JOIN {{ ref('dim_user') }} u ON u.user_id = o.user_id\n\
         WHERE o.event_date = DATE '{{ run_date }}'",
    );
    let r = f.build("2026-01-01", &[]).await;
    assert_eq!(r.failed(), 0, "{r:?}");
    let fct = r
        .models
        .iter()
        .find(|m| m.model == "fct_orders")
        .expect("fct");
    assert_eq!(fct.rows, Some(3));
    assert_eq!(fct.unknown_keys.get("user_key"), Some(&1));
    // an inner join to the dimension keeps every fact, through the unknown member
    assert_rows(
        &f.rows("SELECT d.country, count(*) AS orders FROM fct_orders o JOIN dim_user d USING (user_key) GROUP BY 1 ORDER BY 1").await,
        "+---------+--------+
         | country | orders |
         +---------+--------+
         | CA      | 2      |
         | unknown | 1      |
         +---------+--------+",
    );
    // the same natural key gives the same surrogate key anywhere
    assert_rows(
        &f.rows("SELECT surrogate_key(1) = user_key AS same FROM dim_user WHERE user_id = 1")
            .await,
        "+------+
         | same |
         +------+
         | true |
         +------+",
    );
}

#[tokio::test]
async fn select_picks_downstream_and_upstream_and_failures_skip_only_downstream() {
    let f = Fixture::new();
    users(&f, "(1, 'CA', 'free', '2026-01-01 10:00:00')").await;
    f.model(
        "a.sql",
        "SELECT id, country FROM {{ source('app_db', 'users') }}",
    );
    f.model("b.sql", "SELECT id FROM {{ ref('a') }}");
    f.model("c.sql", "SELECT count(*) AS n FROM {{ ref('b') }}");
    f.model("z.sql", "SELECT 1 AS one");
    let names =
        |r: &BuildReport| -> Vec<String> { r.models.iter().map(|m| m.model.clone()).collect() };
    assert_eq!(names(&f.build("2026-01-01", &["b+"]).await), ["b", "c"]);
    assert_eq!(names(&f.build("2026-01-01", &["+b"]).await), ["a", "b"]);
    assert_eq!(
        names(&f.build("2026-01-01", &["z", "+c"]).await),
        ["a", "b", "c", "z"]
    );

    // b fails at run time (a division by zero the planner cannot see): c is skipped, z built
    f.model(
        "b.sql",
        "SELECT CAST(id AS INT) / CAST(0 AS INT) AS id FROM {{ ref('a') }}",
    );
    let r = f.build("2026-01-01", &[]).await;
    let status: BTreeMap<String, &str> = r
        .models
        .iter()
        .map(|m| (m.model.clone(), m.status))
        .collect();
    assert_eq!(status["a"], "built");
    assert_eq!(status["b"], "failed");
    assert_eq!(status["c"], "skipped");
    assert_eq!(status["z"], "built");
    f.remove_model("b.sql");
}

#[tokio::test]
async fn the_catalogue_has_types_docs_and_column_lineage() {
    let f = Fixture::new();
    users(&f, "(1, 'CA', 'free', '2026-01-01 10:00:00')").await;
    f.model(
        "stg_users.sql",
        "{{ config(materialized='view', description='Users') }}\nSELECT id AS user_id, upper(country) AS country FROM {{ source('app_db', 'users') }}",
    );
    f.model(
        "dim_country.sql",
        "SELECT country, count(user_id) AS users FROM {{ ref('stg_users') }} GROUP BY country",
    );
    std::fs::write(
        f.root().join("models/dim_country.toml"),
        "grain = 'one row per country'\nowner = 'growth'\n[columns]\ncountry = 'ISO code, upper case'\n",
    )
    .expect("toml");
    let (models, diags) = f.load();
    assert!(diags.is_empty(), "{diags}");
    let catalog = darkroom_models::docs::catalog(&f.project, &models, &f.warehouse).await;
    let dim = catalog
        .models
        .iter()
        .find(|m| m.name == "dim_country")
        .expect("dim");
    assert_eq!(dim.grain.as_deref(), Some("one row per country"));
    assert_eq!(dim.owner.as_deref(), Some("growth"));
    assert_eq!(dim.reads_models, ["stg_users"]);
    let country = &dim.columns[0];
    assert_eq!(country.doc.as_deref(), Some("ISO code, upper case"));
    assert_eq!(country.lineage, ["stg_users.country"]);
    assert_eq!(dim.columns[1].data_type, "Int64");
    let stg = catalog
        .models
        .iter()
        .find(|m| m.name == "stg_users")
        .expect("stg");
    assert_eq!(stg.columns[1].lineage, ["raw_app_db_users.country"]);
    assert_eq!(stg.read_by, ["dim_country"]);
    let dir = f.root().join("target/docs");
    darkroom_models::docs::write(&catalog, &dir).expect("write");
    let html = std::fs::read_to_string(dir.join("index.html")).expect("html");
    assert!(html.contains("ISO code, upper case") && html.contains("stg_users.country"));

    // a documented column the model does not have is a problem, found before running
    std::fs::write(
        f.root().join("models/dim_country.toml"),
        "[columns]\ncountri = 'typo'\n",
    )
    .expect("toml");
    let diags = f.check("2026-01-01").await;
    assert!(
        diags.to_string().contains("`countri` is documented"),
        "{diags}"
    );
}

#[tokio::test]
async fn a_range_build_writes_every_date_in_one_commit_and_records_each_complete() {
    let f = Fixture::new();
    f.web(&[
        ("2026-01-01", "2026-01-01", "/a"),
        ("2026-01-02", "2026-01-02", "/b"),
        ("2026-01-04", "2026-01-04", "/d"),
    ])
    .await;
    // a partition that existed before the range is built and has no rows now: removed
    f.model(
        "fct_views.sql",
        "{{ config(materialized='incremental') }}\nSELECT event_date, path, 'old' AS v FROM {{ source('web') }}\n\
         WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'",
    );
    f.build_range("2026-01-01", "2026-01-04").await;
    // 01-02 loses its only row at the source
    f.web(&[
        ("2026-01-01", "2026-01-01", "/a"),
        ("2026-01-03", "2026-01-03", "/c"),
        ("2026-01-04", "2026-01-04", "/d"),
    ])
    .await;
    f.model(
        "fct_views.sql",
        "{{ config(materialized='incremental') }}\nSELECT event_date, path, 'new' AS v FROM {{ source('web') }}\n\
         WHERE event_date BETWEEN DATE '{{ date_from }}' AND DATE '{{ date_to }}'",
    );
    let before = f
        .warehouse
        .table_info("fct_views")
        .await
        .unwrap()
        .unwrap()
        .version;
    let r = f.build_range("2026-01-01", "2026-01-03").await;
    assert_eq!(r.failed(), 0, "{r:?}");
    assert_eq!(
        r.models[0].partition.as_deref(),
        Some("event_date=2026-01-01..2026-01-03")
    );
    let after = f
        .warehouse
        .table_info("fct_views")
        .await
        .unwrap()
        .unwrap()
        .version;
    assert_eq!(after, before + 1, "one commit for the whole range");
    assert_rows(
        &f.rows("SELECT event_date, path, v FROM fct_views ORDER BY 1")
            .await,
        "+------------+------+-----+
         | event_date | path | v   |
         +------------+------+-----+
         | 2026-01-01 | /a   | new |
         | 2026-01-03 | /c   | new |
         | 2026-01-04 | /d   | old |
         +------------+------+-----+",
    );
    for d in ["2026-01-01", "2026-01-02", "2026-01-03"] {
        let done = f
            .warehouse
            .completion("fct_views", &format!("build/fct_views/{d}"))
            .await
            .unwrap();
        assert_eq!(done.map(|c| c.table_version), Some(after), "{d}");
    }
    let earlier = f
        .warehouse
        .completion("fct_views", "build/fct_views/2026-01-04")
        .await
        .unwrap()
        .map(|c| c.table_version);
    assert_eq!(
        earlier,
        Some(before),
        "04 stays as the first range build left it"
    );
}
