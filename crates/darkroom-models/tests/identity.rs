//! Identity resolution as the demo's models do it (the same files `darkroom demo` writes):
//! anonymous then identified, one person on two devices, a shared device, and late
//! identification re-attributing exactly the affected earlier days.

// test code: a panic is a failed test
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use darkroom_config::{Diagnostics, Project};
use darkroom_models::{BuildOptions, BuildReport, Models};
use darkroom_storage::{StorageSettings, Warehouse};

const TOML: &str = r#"
[project]
name = "identity"
timezone = "America/Toronto"

[[sources]]
name = "web"
kind = "nginx"
format = "combined"
path = "logs/web/{host}/{date}.log"
hosts = ["web-1"]

[[sources]]
name = "api"
kind = "nginx"
format = "combined"
path = "logs/api/{host}/{date}.log"
hosts = ["api-1"]

[[sources]]
name = "app"
kind = "jsonl"
path = "logs/app/{host}/{date}.jsonl"
hosts = ["api-1"]
timestamp_field = "ts"
timestamp_format = "rfc3339"

[[sources]]
name = "app_db"
kind = "sqlite"
url = "db/app.db"
tables = [{ name = "users", mode = "full" }, { name = "subscriptions", mode = "full" }]
"#;

const MODELS: &[(&str, &str)] = &[
    (
        "stg_web_requests.sql",
        include_str!("../../darkroom-demo/models/staging/stg_web_requests.sql"),
    ),
    (
        "stg_touches.sql",
        include_str!("../../darkroom-demo/models/staging/stg_touches.sql"),
    ),
    (
        "stg_identity_links.sql",
        include_str!("../../darkroom-demo/models/identity/stg_identity_links.sql"),
    ),
    (
        "map_identity.sql",
        include_str!("../../darkroom-demo/models/identity/map_identity.sql"),
    ),
    (
        "int_touches_resolved.sql",
        include_str!("../../darkroom-demo/models/identity/int_touches_resolved.sql"),
    ),
];

/// (UTC time, source, visitor id, logged-in user id)
const TOUCHES: &[(&str, &str, &str, Option<i64>)] = &[
    // A: browses anonymously long before, and two days before, signing in as 7
    ("2025-12-01 15:00:00", "web", "A", None),
    ("2026-01-01 15:00:00", "web", "A", None),
    ("2026-01-03 15:00:00", "web", "A", Some(7)),
    ("2026-01-03 16:00:00", "web", "A", None),
    // B: 7's phone, anonymous the day before 7 opens the app signed in on it
    ("2026-01-02 15:00:00", "app", "B", None),
    ("2026-01-03 17:00:00", "app", "B", Some(7)),
    // C: shared by 8 (first) and 9 (from the next day)
    ("2025-12-31 16:00:00", "web", "C", None),
    ("2026-01-01 14:00:00", "web", "C", Some(8)),
    ("2026-01-01 16:00:00", "web", "C", None),
    ("2026-01-02 14:00:00", "web", "C", Some(9)),
    ("2026-01-02 16:00:00", "web", "C", None),
    // D: never signs in
    ("2026-01-02 15:00:00", "web", "D", None),
];

struct Fixture {
    _dir: tempfile::TempDir,
    project: Project,
    warehouse: Warehouse,
}

fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("darkroom.toml"), TOML).unwrap();
        std::fs::create_dir_all(dir.path().join("models")).unwrap();
        for (name, text) in MODELS {
            std::fs::write(dir.path().join("models").join(name), text).unwrap();
        }
        // something downstream, built date by date
        std::fs::write(
            dir.path().join("models/persons_daily.sql"),
            "{{ config(materialized='incremental') }}\nSELECT event_date, count(DISTINCT person_id) AS persons \
             FROM {{ ref('int_touches_resolved') }} WHERE event_date = DATE '{{ run_date }}' \
             AND person_id LIKE 'v:%' GROUP BY 1",
        )
        .unwrap();
        let project = Project::load_with_env(dir.path(), &|_| None).unwrap();
        let warehouse =
            Warehouse::open(StorageSettings::local(dir.path().join("warehouse"))).unwrap();
        let f = Self {
            _dir: dir,
            project,
            warehouse,
        };
        let rows = |source: &str| -> Vec<String> {
            TOUCHES
                .iter()
                .filter(|t| t.1 == source)
                .map(|(ts, _, vid, user)| {
                    let user = user.map_or("NULL".to_string(), |u| format!("'{u}'"));
                    format!("('{ts}', '{vid}', {user})")
                })
                .collect()
        };
        let ts = "arrow_cast(CAST(column1 AS TIMESTAMP), 'Timestamp(µs, \"UTC\")')";
        let local = "CAST(arrow_cast(arrow_cast(CAST(column1 AS TIMESTAMP), 'Timestamp(µs, \"UTC\")'), 'Timestamp(µs, \"America/Toronto\")') AS DATE)";
        f.raw(
            "raw_web",
            &format!(
                "SELECT {ts} AS event_ts, {local} AS event_date, {local} AS file_date, 'web-1' AS host, \
                 'GET' AS request_method, '/' AS request_path, 200 AS status, '' AS http_referer, \
                 'Mozilla/5.0' AS http_user_agent, column2 AS cookie_vid, column3 AS user_id \
                 FROM (VALUES {})",
                rows("web").join(", ")
            ),
        )
        .await;
        f.raw(
            "raw_api",
            &format!(
                "SELECT {ts} AS event_ts, {local} AS event_date, {local} AS file_date, 'api-1' AS host, \
                 'GET' AS request_method, '/api/v1/feed' AS request_path, 200 AS status, '' AS http_referer, \
                 'Darkroom/3 (iPhone; iOS 17)' AS http_user_agent, column2 AS cookie_vid, column3 AS user_id \
                 FROM (VALUES ('2026-01-02 00:00:00', 'Z', CAST(NULL AS VARCHAR)))"
            ),
        )
        .await;
        f.raw(
            "raw_app",
            &format!(
                "SELECT {ts} AS event_ts, {local} AS event_date, {local} AS file_date, 'app_open' AS event, \
                 column2 AS device_id, 'ios' AS device_platform, column3 AS user_id FROM (VALUES {})",
                rows("app").join(", ")
            ),
        )
        .await;
        f
    }

    async fn raw(&self, table: &str, sql: &str) {
        common::write_raw(&self.warehouse, table, sql).await;
    }

    async fn build(&self, from: &str, to: &str) -> BuildReport {
        let mut diags = Diagnostics::default();
        let models = Models::load(&self.project, &mut diags);
        assert!(diags.is_empty(), "{diags}");
        let options = BuildOptions {
            date: Some(day(to)),
            from: Some(day(from)),
            ..BuildOptions::default()
        };
        let report =
            darkroom_models::build(&self.project, &models, &self.warehouse, &options, &|_| {})
                .await
                .unwrap();
        assert_eq!(report.failed(), 0, "{report:?}");
        report
    }

    /// visitor, UTC time -> (person_id, identified_by)
    async fn persons(&self) -> BTreeMap<(String, String), (String, String)> {
        let ctx = self.warehouse.session().await.unwrap();
        let result = darkroom_storage::run_sql(
            &ctx,
            "SELECT visitor_id, CAST(event_ts AS VARCHAR), person_id, identified_by FROM int_touches_resolved \
             WHERE visitor_id <> 'Z'",
        )
        .await
        .unwrap();
        let mut out = BTreeMap::new();
        for batch in &result.batches {
            let col = |i: usize, row: usize| {
                datafusion::arrow::util::display::array_value_to_string(batch.column(i), row)
                    .unwrap()
            };
            for row in 0..batch.num_rows() {
                let ts = col(1, row).replace('T', " ");
                let ts = ts.get(..19).unwrap_or(&ts).to_string();
                out.insert((col(0, row), ts), (col(2, row), col(3, row)));
            }
        }
        out
    }
}

fn expect(
    persons: &BTreeMap<(String, String), (String, String)>,
    vid: &str,
    ts: &str,
    who: &str,
    how: &str,
) {
    let got = persons
        .get(&(vid.to_string(), ts.to_string()))
        .unwrap_or_else(|| panic!("no touch {vid} at {ts} in {persons:?}"));
    assert_eq!(got, &(who.to_string(), how.to_string()), "{vid} at {ts}");
}

#[tokio::test]
async fn every_touch_resolves_to_one_person_by_the_documented_rules() {
    let f = Fixture::new().await;
    f.build("2025-12-01", "2026-01-03").await;
    let p = f.persons().await;
    assert_eq!(p.len(), TOUCHES.len());
    // anonymous, then identified: 30-day look-back, and not beyond it
    expect(&p, "A", "2025-12-01 15:00:00", "v:A", "none");
    expect(&p, "A", "2026-01-01 15:00:00", "7", "lookback");
    expect(&p, "A", "2026-01-03 15:00:00", "7", "login");
    expect(&p, "A", "2026-01-03 16:00:00", "7", "link");
    // a second device of the same person
    expect(&p, "B", "2026-01-02 15:00:00", "7", "lookback");
    expect(&p, "B", "2026-01-03 17:00:00", "7", "login");
    // a shared device: anonymous events go to the user most recently linked at the time
    expect(&p, "C", "2025-12-31 16:00:00", "8", "lookback");
    expect(&p, "C", "2026-01-01 16:00:00", "8", "link");
    expect(&p, "C", "2026-01-02 16:00:00", "9", "link");
    // never signed in: its own person
    expect(&p, "D", "2026-01-02 15:00:00", "v:D", "none");
}

#[tokio::test]
async fn late_identification_rebuilds_exactly_the_affected_days() {
    let f = Fixture::new().await;
    for d in ["2025-12-01", "2025-12-31", "2026-01-01", "2026-01-02"] {
        f.build(d, d).await;
    }
    let before = f.persons().await;
    let anonymous = |f: &Fixture| {
        let w = f.warehouse.clone();
        async move {
            let ctx = w.session().await.unwrap();
            common::pretty(
                &ctx,
                "SELECT CAST(event_date AS VARCHAR) AS d, persons FROM persons_daily ORDER BY 1",
            )
            .await
        }
    };
    let text = anonymous(&f).await;
    assert!(text.contains("| 2026-01-01 | 2       |"), "{text}");
    assert!(text.contains("| 2026-01-02 | 2       |"), "{text}");
    expect(&before, "A", "2026-01-01 15:00:00", "v:A", "none");
    expect(&before, "B", "2026-01-02 15:00:00", "v:B", "none");
    let version = |d: &'static str| {
        let w = f.warehouse.clone();
        async move {
            w.completion(
                "int_touches_resolved",
                &format!("build/int_touches_resolved/{d}"),
            )
            .await
            .unwrap()
            .map(|c| c.table_version)
        }
    };
    let untouched = [
        ("2025-12-01", version("2025-12-01").await),
        ("2025-12-31", version("2025-12-31").await),
    ];

    // 7 signs in on A and B on 01-03: their anonymous days are re-attributed
    let report = f.build("2026-01-03", "2026-01-03").await;
    let resolved = report
        .models
        .iter()
        .find(|m| m.model == "int_touches_resolved")
        .unwrap();
    assert_eq!(
        resolved.rebuilt_dates,
        [day("2026-01-01"), day("2026-01-02")]
    );
    let after = f.persons().await;
    expect(&after, "A", "2026-01-01 15:00:00", "7", "lookback");
    expect(&after, "B", "2026-01-02 15:00:00", "7", "lookback");
    expect(&after, "A", "2025-12-01 15:00:00", "v:A", "none");
    for (d, v) in untouched {
        assert_eq!(version(d).await, v, "{d} was not rebuilt");
    }
    // everything downstream that is incremental recomputes the same days (it counted two
    // anonymous persons on each of those days before)
    let daily = report
        .models
        .iter()
        .find(|m| m.model == "persons_daily")
        .unwrap();
    assert_eq!(daily.rebuilt_dates, [day("2026-01-01"), day("2026-01-02")]);
    let text = anonymous(&f).await;
    // anonymous persons: 01-01 had v:A and v:Z (an API call), 01-02 v:B and v:D
    assert!(text.contains("| 2026-01-01 | 1       |"), "{text}");
    assert!(text.contains("| 2026-01-02 | 1       |"), "{text}");
    let links = report
        .models
        .iter()
        .find(|m| m.model == "stg_identity_links")
        .unwrap();
    assert!(
        links.rebuilt_dates.is_empty(),
        "upstream models are not rebuilt"
    );
}

#[tokio::test]
async fn traffic_rules_keep_bots_health_checks_and_static_assets_out_of_page_views_and_count_them()
{
    let f = Fixture::new().await;
    std::fs::write(
        f.project.root.join("models/fct_web_traffic.sql"),
        include_str!("../../darkroom-demo/models/marts/fct_web_traffic.sql"),
    )
    .unwrap();
    let requests = [
        (
            "GET",
            "/",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0",
            "page_view",
        ),
        (
            "GET",
            "/photos/3?ref=x",
            "Mozilla/5.0 (Macintosh) Safari/605.1.15",
            "page_view",
        ),
        (
            "POST",
            "/api/v1/photos/3/like",
            "Mozilla/5.0 (X11) Firefox/125.0",
            "action",
        ),
        (
            "GET",
            "/",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "bot",
        ),
        ("GET", "/photos/1", "curl/8.5.0", "bot"),
        ("GET", "/healthz", "kube-probe/1.29", "health_check"),
        ("GET", "/status", "Mozilla/5.0", "health_check"),
        (
            "GET",
            "/static/app.3f2a.js",
            "Mozilla/5.0 (X11) Firefox/125.0",
            "static_asset",
        ),
        (
            "GET",
            "/favicon.ico",
            "Mozilla/5.0 (X11) Firefox/125.0",
            "static_asset",
        ),
        (
            "GET",
            "/img/cover.webp?w=300",
            "Mozilla/5.0 (X11) Firefox/125.0",
            "static_asset",
        ),
    ];
    let values: Vec<String> = requests
        .iter()
        .enumerate()
        .map(|(i, (m, path, agent, _))| {
            format!("('2026-01-02 15:00:{i:02}', '{m}', '{path}', '{agent}', 'V{i}')")
        })
        .collect();
    let ts = "arrow_cast(CAST(column1 AS TIMESTAMP), 'Timestamp(µs, \"UTC\")')";
    f.raw(
        "raw_web",
        &format!(
            "SELECT {ts} AS event_ts, DATE '2026-01-02' AS event_date, DATE '2026-01-02' AS file_date, \
             'web-1' AS host, column2 AS request_method, column3 AS request_path, 200 AS status, \
             '' AS http_referer, column4 AS http_user_agent, column5 AS cookie_vid, \
             CAST(NULL AS VARCHAR) AS user_id FROM (VALUES {})",
            values.join(", ")
        ),
    )
    .await;
    f.build("2026-01-02", "2026-01-02").await;
    let ctx = f.warehouse.session().await.unwrap();
    let text = common::pretty(
        &ctx,
        "SELECT traffic_class, CAST(requests AS BIGINT) AS n FROM fct_web_traffic ORDER BY 1",
    )
    .await;
    for (class, n) in [
        ("action", 1),
        ("bot", 2),
        ("health_check", 2),
        ("page_view", 2),
        ("static_asset", 3),
    ] {
        assert!(
            text.contains(&format!("| {class:<13} | {n} |")),
            "{class}:\n{text}"
        );
    }
    // only page views and actions become touches (and so visitors and persons)
    let touches = darkroom_storage::run_sql(
        &ctx,
        "SELECT visitor_id FROM stg_touches WHERE source = 'web' ORDER BY 1",
    )
    .await
    .unwrap();
    assert_eq!(touches.num_rows(), 3);
}

#[tokio::test]
async fn page_views_carry_sessions_channels_and_each_person_a_first_touch_channel() {
    let f = Fixture::new().await;
    for (name, text) in [
        (
            "stg_users.sql",
            include_str!("../../darkroom-demo/models/staging/stg_users.sql"),
        ),
        (
            "dim_user.sql",
            include_str!("../../darkroom-demo/models/marts/dim_user.sql"),
        ),
        (
            "int_user_versions.sql",
            include_str!("../../darkroom-demo/models/marts/int_user_versions.sql"),
        ),
        (
            "dim_platform.sql",
            include_str!("../../darkroom-demo/models/marts/dim_platform.sql"),
        ),
        (
            "fct_pageviews.sql",
            include_str!("../../darkroom-demo/models/marts/fct_pageviews.sql"),
        ),
        (
            "int_person_days.sql",
            include_str!("../../darkroom-demo/models/identity/int_person_days.sql"),
        ),
        (
            "dim_person.sql",
            include_str!("../../darkroom-demo/models/identity/dim_person.sql"),
        ),
    ] {
        std::fs::write(f.project.root.join("models").join(name), text).unwrap();
    }
    f.raw(
        "raw_app_db_users",
        "SELECT CAST(1 AS BIGINT) AS id, 'ann' AS username, 'CA' AS country, 'web' AS signup_platform, \
         'search' AS acquisition_channel, arrow_cast(TIMESTAMP '2026-01-01T00:00:00', 'Timestamp(µs, \"UTC\")') AS created_at, \
         arrow_cast(TIMESTAMP '2026-01-01T00:00:00', 'Timestamp(µs, \"UTC\")') AS updated_at, \
         arrow_cast(NULL, 'Timestamp(µs, \"UTC\")') AS deleted_at",
    )
    .await;
    f.raw(
        "raw_app_db_subscriptions",
        "SELECT CAST(1 AS BIGINT) AS id, CAST(1 AS BIGINT) AS user_id, 'pro' AS plan, 'active' AS status, \
         arrow_cast(TIMESTAMP '2026-01-01T00:00:00', 'Timestamp(µs, \"UTC\")') AS started_at",
    )
    .await;
    // (UTC time, visitor, path, referrer) -> expected channel
    let views = [
        (
            "15:00:00",
            "P1",
            "/?utm_source=fb&utm_medium=cpc",
            "",
            "paid",
        ),
        (
            "15:00:00",
            "P2",
            "/photos/1?gclid=abc",
            "https://www.google.com/",
            "paid",
        ),
        ("15:00:00", "S1", "/", "https://www.facebook.com/", "social"),
        (
            "15:00:00",
            "S2",
            "/?utm_source=ig&utm_medium=social",
            "",
            "social",
        ),
        ("15:00:00", "G1", "/", "https://www.google.com/", "search"),
        (
            "15:00:00",
            "O1",
            "/?utm_source=newsletter&utm_medium=email",
            "",
            "organic",
        ),
        ("15:00:00", "D1", "/", "", "direct"),
        (
            "15:00:00",
            "R1",
            "/",
            "https://blog.example.org/a-post",
            "referral",
        ),
        // one person's day: an internal click, then search; 40 minutes later a new session
        (
            "16:00:00",
            "X",
            "/explore",
            "https://darkroom.example/",
            "internal",
        ),
        ("16:20:00", "X", "/", "https://www.bing.com/", "search"),
        (
            "17:00:00",
            "X",
            "/pricing",
            "https://darkroom.example/explore",
            "internal",
        ),
    ];
    let values: Vec<String> = views
        .iter()
        .map(|(t, v, path, referer, _)| format!("('2026-01-02 {t}', '{v}', '{path}', '{referer}')"))
        .collect();
    let ts = "arrow_cast(CAST(column1 AS TIMESTAMP), 'Timestamp(µs, \"UTC\")')";
    f.raw(
        "raw_web",
        &format!(
            "SELECT {ts} AS event_ts, DATE '2026-01-02' AS event_date, DATE '2026-01-02' AS file_date, \
             'web-1' AS host, 'GET' AS request_method, column3 AS request_path, 200 AS status, \
             column4 AS http_referer, 'Mozilla/5.0 (X11) Firefox/125.0' AS http_user_agent, \
             column2 AS cookie_vid, CAST(NULL AS VARCHAR) AS user_id FROM (VALUES {})",
            values.join(", ")
        ),
    )
    .await;
    f.build("2026-01-02", "2026-01-02").await;
    let ctx = f.warehouse.session().await.unwrap();
    let rows = darkroom_storage::run_sql(
        &ctx,
        "SELECT visitor_id, CAST(event_ts AS VARCHAR) AS ts, channel, session_number FROM fct_pageviews",
    )
    .await
    .unwrap();
    let mut got = BTreeMap::new();
    for batch in &rows.batches {
        for row in 0..batch.num_rows() {
            let v = |i: usize| {
                datafusion::arrow::util::display::array_value_to_string(batch.column(i), row)
                    .unwrap()
            };
            got.insert((v(0), v(1)[11..19].to_string()), (v(2), v(3)));
        }
    }
    assert_eq!(got.len(), views.len(), "{got:?}");
    for (t, v, _, _, channel) in views {
        let (c, _) = &got[&(v.to_string(), t.to_string())];
        assert_eq!(c, channel, "{v} at {t}");
    }
    let session = |t: &str| got[&("X".to_string(), t.to_string())].1.clone();
    assert_eq!(
        (
            session("16:00:00"),
            session("16:20:00"),
            session("17:00:00")
        ),
        ("1".to_string(), "1".to_string(), "2".to_string()),
        "a new session after 30 minutes without a page view"
    );
    // first touch: the first page view from outside the site
    let text = common::pretty(
        &ctx,
        "SELECT acquisition_channel FROM dim_person WHERE person_id = 'v:X'",
    )
    .await;
    assert!(text.contains("| search "), "{text}");
}
