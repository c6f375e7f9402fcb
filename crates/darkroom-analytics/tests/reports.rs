//! Funnels, retention and metrics on small hand-made data, where every number can be worked
//! out by hand; and the published snapshot as what they read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::NaiveDate;
use darkroom_analytics::defs::{Definitions, ExclusionDef};
use darkroom_analytics::funnels::{self, FunnelQuery};
use darkroom_analytics::metrics::{self, Grain, MetricQuery};
use darkroom_analytics::retention::{self, RetentionQuery};
use darkroom_analytics::{AsOf, Reader};
use darkroom_config::{Diagnostics, SourceFile};
use datafusion::arrow::array::{Date32Array, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;

const DEFS: &str = r#"
[[event]]
name = "a"
table = "ev"
filter = "kind = 'a'"
properties = ["platform"]

[[event]]
name = "b"
table = "ev"
filter = "kind = 'b'"
properties = ["platform"]

[[event]]
name = "c"
table = "ev"
filter = "kind = 'c'"
properties = ["platform"]

[[event]]
name = "x"
table = "ev"
filter = "kind = 'x'"

[[dimension]]
name = "platform"
column = "platform"

[[dimension]]
name = "plan"
table = "users"
key = "person_id"
column = "plan"

[[metric]]
name = "events"
kind = "count"
table = "facts"
dimensions = ["platform", "plan"]

[[metric]]
name = "persons"
kind = "count_distinct"
table = "facts"
column = "person_id"
dimensions = ["platform", "plan"]

[[metric]]
name = "paid"
kind = "count"
table = "facts"
filter = "amount > 0"
dimensions = ["platform"]

[[metric]]
name = "revenue"
kind = "sum"
table = "facts"
column = "amount"

[[metric]]
name = "average_amount"
kind = "average"
table = "facts"
column = "amount"

[[metric]]
name = "paid_share"
kind = "ratio"
numerator = "paid"
denominator = "events"

[[metric]]
name = "per_person"
kind = "derived"
expression = "events / persons"

[[metric]]
name = "by_timestamp"
kind = "count"
table = "ev"
time = "event_ts"

[[metric]]
name = "persons_3d"
kind = "count_distinct"
table = "facts"
column = "person_id"
rolling_days = 3
"#;

fn defs() -> Definitions {
    let mut diags = Diagnostics::default();
    let defs = Definitions::from_sources(
        &[SourceFile::new("models/defs.toml".into(), DEFS.into())],
        &mut diags,
    );
    assert!(diags.is_empty(), "{diags}");
    defs
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

/// `ev` (person_id, event_ts, platform, kind), `facts` and `users`, in a plain session.
async fn reader(night: u32) -> Reader {
    let ctx = SessionContext::new();
    darkroom_analytics::register(&ctx);
    let ev = [
        // p1: a (web) -> b (ios) -> c, all on day 2: level 3
        ("p1", "2026-03-02T10:00:00Z", "web", "a"),
        ("p1", "2026-03-02T11:00:00Z", "ios", "b"),
        ("p1", "2026-03-02T12:00:00Z", "ios", "c"),
        // p2: b exactly one day after a (the bound is inclusive), c one second too late
        ("p2", "2026-03-02T10:00:00Z", "ios", "a"),
        ("p2", "2026-03-03T10:00:00Z", "ios", "b"),
        ("p2", "2026-03-03T10:00:01Z", "ios", "c"),
        // p3: x between a and b (an exclusion, when declared)
        ("p3", "2026-03-03T09:00:00Z", "web", "a"),
        ("p3", "2026-03-03T09:30:00Z", "web", "x"),
        ("p3", "2026-03-03T10:00:00Z", "web", "b"),
        // p4: no first step; p5: enters after the entry dates
        ("p4", "2026-03-02T10:00:00Z", "web", "b"),
        ("p5", "2026-03-09T10:00:00Z", "web", "a"),
        ("p5", "2026-03-09T10:00:01Z", "web", "b"),
    ];
    let values: Vec<String> = ev
        .iter()
        .map(|(p, t, pl, k)| format!("('{p}', TIMESTAMP '{t}', '{pl}', '{k}')"))
        .collect();
    for sql in [
        format!(
            "CREATE TABLE ev AS SELECT column1 AS person_id, column2 AS event_ts, \
             column3 AS platform, column4 AS kind FROM (VALUES {})",
            values.join(", ")
        ),
        // facts: day, person, platform, amount
        "CREATE TABLE facts AS SELECT CAST(column1 AS DATE) AS event_date, column2 AS person_id, \
         column3 AS platform, CAST(column4 AS DOUBLE) AS amount FROM (VALUES \
         ('2026-03-02', 'p1', 'web', 10), ('2026-03-02', 'p1', 'web', 0), \
         ('2026-03-02', 'p2', 'ios', 5), ('2026-03-03', 'p1', 'ios', 0), \
         ('2026-03-04', 'p3', 'web', 0), ('2026-03-10', 'p3', 'web', 7))"
            .to_string(),
        "CREATE TABLE users AS SELECT column1 AS person_id, column2 AS plan FROM (VALUES \
         ('p1', 'pro'), ('p2', 'free'))"
            .to_string(),
    ] {
        ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    }
    Reader {
        ctx,
        as_of: AsOf {
            night: Some(day(night)),
            published_at: None,
            degraded: vec![day(3)],
            source: "published snapshot".into(),
        },
    }
}

fn funnel(defs: &Definitions, steps: &[&str]) -> FunnelQuery {
    let def = darkroom_analytics::defs::FunnelDef {
        name: "t".into(),
        description: String::new(),
        owner: None,
        steps: steps
            .iter()
            .map(|s| darkroom_analytics::defs::StepDef {
                name: s.to_string(),
                event: s.to_string(),
                filter: None,
            })
            .collect(),
        window_seconds: 86_400,
        mode: Default::default(),
        exclusions: vec![],
        attribution: 0,
        origin: defs.events["a"].origin.clone(),
    };
    FunnelQuery::from_def(&def, day(1), day(3))
}

fn persons(r: &funnels::FunnelReport) -> Vec<u64> {
    r.steps.iter().map(|s| s.persons).collect()
}

#[tokio::test]
async fn funnel_steps_conversion_and_time_to_convert() {
    let (defs, r) = (defs(), reader(10).await);
    let q = funnel(&defs, &["a", "b", "c"]);
    let report = funnels::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    // p1 reaches c; p2 reaches b (at exactly the window) but c a second late; p3 reaches b;
    // p4 never enters; p5 enters after --to
    assert_eq!(persons(&report), vec![3, 3, 1]);
    let b = &report.steps[1];
    assert_eq!((b.conversion_from_previous, b.dropped_off), (1.0, 0));
    let c = &report.steps[2];
    assert!((c.conversion_from_previous - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(c.dropped_off, 2);
    // from a to b: 1h (p1), 24h (p2), 1h (p3)
    let t = b.time_to_convert.as_ref().unwrap();
    assert_eq!(t.median_seconds, 3_600.0);
    assert_eq!(t.mean_seconds, (3_600.0 + 86_400.0 + 3_600.0) / 3.0);
    let buckets: u64 = t.distribution.iter().map(|b| b.persons).sum();
    assert_eq!(buckets, 3);
    // every result says what it read; day 3 is degraded
    assert_eq!(report.as_of.night, Some(day(10)));
    assert_eq!(report.degraded_dates, vec![day(3)]);
    // the trend by week of entry: all three entered in the week of Monday March 2
    assert_eq!(report.trend_by_entry_week.len(), 1);
    assert_eq!(report.trend_by_entry_week[0].week, day(2));
    assert_eq!(
        report.trend_by_entry_week[0].persons_per_step,
        vec![3, 3, 1]
    );
}

#[tokio::test]
async fn any_order_reads_later_steps_before_the_entering_event() {
    let (defs, r) = (defs(), reader(10).await);
    let mut q = funnel(&defs, &["b", "a"]);
    q.from = day(3);
    q.to = day(3);
    q.mode = darkroom_analytics::funnel::Mode::parse("any_order").unwrap();
    // entering with b on day 3: p2 (its a came the day before, within the window) and p3
    // (a at 09:00, b at 10:00)
    let report = funnels::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    assert_eq!(persons(&report), vec![2, 2]);
    // ordered, p2's a came before its b: it stops at the first step
    q.mode = Default::default();
    let ordered = funnels::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    assert_eq!(persons(&ordered), vec![2, 0]);
    // strict_order needs every event, which a product funnel does not read: refused
    q.mode = darkroom_analytics::funnel::Mode::parse("strict_order").unwrap();
    let err = funnels::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("window_funnel('strict_order'"),
        "{err}"
    );
}

#[tokio::test]
async fn exclusions_take_persons_out_between_two_steps() {
    let (defs, r) = (defs(), reader(10).await);
    let mut q = funnel(&defs, &["a", "b", "c"]);
    q.exclusions = vec![ExclusionDef {
        event: "x".into(),
        filter: None,
        after: 1,
    }];
    let report = funnels::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    // p3 did x between a and b
    assert_eq!(persons(&report), vec![3, 2, 1]);
}

#[tokio::test]
async fn breakdowns_count_each_person_under_the_attributed_steps_value() {
    let (defs, r) = (defs(), reader(10).await);
    let mut q = funnel(&defs, &["a", "b", "c"]);
    q.by = Some("platform".into());
    let by_first = funnels::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    let group = |rep: &funnels::FunnelReport, v: &str| {
        rep.breakdown
            .iter()
            .find(|g| g.value == v)
            .map(|g| g.steps.iter().map(|s| s.persons).collect::<Vec<_>>())
    };
    // first step: p1 and p3 entered on the web, p2 on iOS
    assert_eq!(group(&by_first, "web"), Some(vec![2, 2, 1]));
    assert_eq!(group(&by_first, "ios"), Some(vec![1, 1, 0]));
    // attributed to step b: p1's b was on iOS
    q.attribution = 1;
    let by_b = funnels::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    assert_eq!(by_b.attributed_to.as_deref(), Some("b"));
    assert_eq!(group(&by_b, "ios"), Some(vec![2, 2, 1]));
    assert_eq!(group(&by_b, "web"), Some(vec![1, 1, 0]));
    // attributed to step c, which only p1 reached: the others are counted apart, not under
    // another step's value
    q.attribution = 2;
    let by_c = funnels::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    assert_eq!(group(&by_c, "ios"), Some(vec![1, 1, 1]));
    assert_eq!(group(&by_c, "(did not reach c)"), Some(vec![2, 2, 0]));
    // an event without the property cannot be broken down by it
    let mut bad = funnel(&defs, &["x", "a"]);
    bad.by = Some("platform".into());
    let err = funnels::compute(&r, &defs, chrono_tz::UTC, &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no such property"), "{err}");
}

/// Retention on two persons: r1 starts (a) on days 1 and 3 and returns (b) on days 2 and 4;
/// r2 starts on day 2 and returns on days 2 and 5. The data runs to day 5.
async fn retention_reader() -> Reader {
    let ctx = SessionContext::new();
    let rows = [
        ("r1", 1, "a"),
        ("r1", 3, "a"),
        ("r1", 2, "b"),
        ("r1", 4, "b"),
        ("r2", 2, "a"),
        ("r2", 2, "b"),
        ("r2", 5, "b"),
    ];
    let values: Vec<String> = rows
        .iter()
        .map(|(p, d, k)| format!("('{p}', TIMESTAMP '2026-03-0{d}T12:00:00Z', 'web', '{k}')"))
        .collect();
    let sql = format!(
        "CREATE TABLE ev AS SELECT column1 AS person_id, column2 AS event_ts, column3 AS platform, \
         column4 AS kind FROM (VALUES {})",
        values.join(", ")
    );
    ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    Reader {
        ctx,
        as_of: AsOf {
            night: Some(day(5)),
            published_at: None,
            degraded: vec![],
            source: "published snapshot".into(),
        },
    }
}

fn retained(r: &retention::RetentionReport, cohort: u32) -> Vec<Option<u64>> {
    r.cohorts
        .iter()
        .find(|c| c.cohort == day(cohort))
        .map(|c| c.retained.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn retention_first_time_or_recurring_on_or_on_or_after() {
    let (defs, r) = (defs(), retention_reader().await);
    let mut q = RetentionQuery {
        start_event: "a".into(),
        return_event: "b".into(),
        from: day(1),
        to: day(5),
        period: Grain::Day,
        first_time: true,
        unbounded: false,
        periods: 5,
        by: None,
    };
    let on = retention::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    // r1's cohort is day 1 (its first start); day 6 has not elapsed: left empty, not zero
    assert_eq!(
        retained(&on, 1),
        vec![Some(0), Some(1), Some(0), Some(1), Some(0), None]
    );
    assert_eq!(
        retained(&on, 2),
        vec![Some(1), Some(0), Some(0), Some(1), None, None]
    );
    assert!(
        retained(&on, 3).is_empty(),
        "first-time: r1 is not in day 3's cohort"
    );
    // the overall rate counts only cohorts whose period N has elapsed
    assert_eq!(on.overall[4], Some(0.0));
    assert_eq!(on.overall[5], None);

    q.unbounded = true;
    let after = retention::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    assert_eq!(after.returns, "on or after period N");
    assert_eq!(
        retained(&after, 1),
        vec![Some(1), Some(1), Some(1), Some(1), Some(0), None]
    );
    assert_eq!(
        retained(&after, 2),
        vec![Some(1), Some(1), Some(1), Some(1), None, None]
    );

    q.unbounded = false;
    q.first_time = false;
    let recurring = retention::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    // r1 is in day 1's cohort and again in day 3's
    assert_eq!(
        retained(&recurring, 3),
        vec![Some(0), Some(1), Some(0), None, None, None]
    );
    assert_eq!(recurring.cohorts.iter().map(|c| c.persons).sum::<u64>(), 3);

    // weekly: days 1..5 of March 2026 fall in two ISO weeks (Sunday the 1st, then Monday the 2nd)
    q.period = Grain::Week;
    q.first_time = true;
    q.periods = 1;
    let weekly = retention::compute(&r, &defs, chrono_tz::UTC, &q)
        .await
        .unwrap();
    assert_eq!(
        weekly.cohorts.iter().map(|c| c.cohort).collect::<Vec<_>>(),
        vec![NaiveDate::from_ymd_opt(2026, 2, 23).unwrap(), day(2)]
    );
    // the week of March 2 has not ended by day 5: nothing elapsed for its cohort
    assert_eq!(retained(&weekly, 2), vec![None, None]);
}

fn values(r: &metrics::MetricReport) -> Vec<(String, Vec<Option<String>>, Option<f64>)> {
    r.rows
        .iter()
        .map(|row| (row.period.to_string(), row.slice.clone(), row.value))
        .collect()
}

#[tokio::test]
async fn metrics_of_every_kind() {
    let (defs, r) = (defs(), reader(10).await);
    let q = |metric: &str, grain: Grain, by: &[&str]| MetricQuery {
        metric: metric.into(),
        from: day(2),
        to: day(4),
        grain,
        by: by.iter().map(|s| s.to_string()).collect(),
    };
    let run = |q: MetricQuery| {
        let (r, defs) = (r.clone(), defs.clone());
        async move { metrics::compute(&r, &defs, &q).await.unwrap() }
    };
    let s = |v: &str| Some(v.to_string());
    let events = run(q("events", Grain::Day, &[])).await;
    assert_eq!(
        values(&events),
        vec![
            ("2026-03-02".into(), vec![], Some(3.0)),
            ("2026-03-03".into(), vec![], Some(1.0)),
            ("2026-03-04".into(), vec![], Some(1.0)),
        ]
    );
    assert_eq!(events.degraded_dates, vec![day(3)]);
    // sliced through a join: p3 has no plan
    let by_plan = run(q("persons", Grain::Week, &["plan"])).await;
    assert_eq!(
        values(&by_plan),
        vec![
            ("2026-03-02".into(), vec![None], Some(1.0)),
            ("2026-03-02".into(), vec![s("free")], Some(1.0)),
            ("2026-03-02".into(), vec![s("pro")], Some(1.0)),
        ]
    );
    // a month is counted whole, even when the range cuts it (day 10's 7 included)
    let revenue = run(q("revenue", Grain::Month, &[])).await;
    assert_eq!(
        values(&revenue),
        vec![("2026-03-01".into(), vec![], Some(22.0))]
    );
    assert_eq!((revenue.from, revenue.to), (day(1), day(31)));
    let avg = run(q("average_amount", Grain::Month, &[])).await;
    assert_eq!(avg.rows[0].value, Some(22.0 / 6.0));
    // ratio: day 3 has no paid event (0 / 1), a missing count is 0
    let share = run(q("paid_share", Grain::Day, &[])).await;
    assert_eq!(
        share.rows.iter().map(|r| r.value).collect::<Vec<_>>(),
        vec![Some(2.0 / 3.0), Some(0.0), Some(0.0)]
    );
    // by platform: the ratio's slices come from both inputs
    let share = run(q("paid_share", Grain::Day, &["platform"])).await;
    assert!(
        values(&share).contains(&("2026-03-02".into(), vec![s("ios")], Some(1.0))),
        "{share:?}"
    );
    let per_person = run(q("per_person", Grain::Day, &[])).await;
    assert_eq!(per_person.rows[0].value, Some(1.5));
    // rolling: the 3 days ending each day (day 4: p1, p2, p3 over days 2..4)
    let rolling = run(q("persons_3d", Grain::Day, &[])).await;
    assert_eq!(
        rolling.rows.iter().map(|r| r.value).collect::<Vec<_>>(),
        vec![Some(2.0), Some(2.0), Some(3.0)]
    );
    // a dimension the metric does not declare is refused, naming the ones it does
    let err = metrics::compute(&r, &defs, &q("revenue", Grain::Day, &["plan"]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot be sliced by `plan`"),
        "{err}"
    );
}

fn partition(day: i32, person: &str, amount: f64) -> darkroom_storage::PartitionWrite {
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_date", DataType::Date32, false),
        Field::new("person_id", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Date32Array::from(vec![day])),
            Arc::new(StringArray::from(vec![person])),
            Arc::new(Float64Array::from(vec![amount])),
        ],
    )
    .unwrap();
    darkroom_storage::PartitionWrite {
        table: "facts".into(),
        partition_columns: vec!["event_date".into()],
        partition: vec![("event_date".into(), ScalarValue::Date32(Some(day)))],
        schema: Arc::clone(&schema),
        input: Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(batch)]),
        )),
        task: format!("test/facts/{day}"),
        fingerprint: "fp".into(),
        plain_columns: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_read_the_published_snapshot_not_half_a_night() {
    let dir = tempfile::tempdir().unwrap();
    let w = darkroom_storage::Warehouse::open(darkroom_storage::StorageSettings::local(dir.path()))
        .unwrap();
    // nothing published yet: the latest versions, and said so
    let d = |n: u32| (day(n) - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
    w.replace_partition(partition(d(2), "p1", 10.0))
        .await
        .unwrap();
    let version = w.table_info("facts").await.unwrap().unwrap().version;
    let r = Reader::open(&w).await.unwrap();
    assert_eq!(r.as_of.night, None);
    assert!(r.as_of.describe().contains("nothing published"));
    // publish night 2 at that version; then a later night writes day 3 without publishing
    let tables = std::collections::BTreeMap::from([("facts".to_string(), version)]);
    w.publish(day(2), &tables, &[day(1)], "publish/2026-03-02", "fp")
        .await
        .unwrap();
    w.replace_partition(partition(d(3), "p2", 5.0))
        .await
        .unwrap();
    let r = Reader::open(&w).await.unwrap();
    assert_eq!(r.as_of.night, Some(day(2)));
    assert_eq!(r.as_of.degraded, vec![day(1)]);
    let defs = defs();
    let q = MetricQuery {
        metric: "revenue".into(),
        from: day(1),
        to: day(5),
        grain: Grain::Month,
        by: vec![],
    };
    let report = metrics::compute(&r, &defs, &q).await.unwrap();
    assert_eq!(report.rows[0].value, Some(10.0), "day 3 is not published");
    assert!(report.warning.unwrap().contains("2026-03-02"));
    // the SQL aggregate is registered in the pinned session too
    let rows = r
        .sql(
            "x",
            "SELECT window_funnel(1, event_date, amount > 0) AS l FROM facts",
        )
        .await
        .unwrap();
    assert_eq!(rows[0].num_rows(), 1);
}
