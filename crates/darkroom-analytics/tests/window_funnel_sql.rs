//! `window_funnel` as SQL users call it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt8Type;
use datafusion::prelude::SessionContext;

async fn ctx() -> SessionContext {
    let ctx = SessionContext::new();
    darkroom_analytics::register(&ctx);
    // user, event, ts (seconds): u1 visit->signup within a day, u2 signup 31 days later,
    // u3 signup exactly 30 days later (the bound is inclusive), u4 only signs up.
    ctx.sql(
        "CREATE TABLE e AS SELECT column1 AS user_id, column2 AS event, \
         arrow_cast(column3, 'Timestamp(Second, None)') AS ts FROM (VALUES \
         (1, 'visit', 0), (1, 'other', 10), (1, 'signup', 3600), (1, 'buy', 7200), \
         (2, 'visit', 0), (2, 'signup', 2678400), \
         (3, 'visit', 0), (3, 'signup', 2592000), \
         (4, 'signup', 5))",
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    ctx
}

async fn levels(ctx: &SessionContext, call: &str) -> Vec<(i64, u8)> {
    let sql = format!("SELECT user_id, {call} AS level FROM e GROUP BY user_id ORDER BY user_id");
    user_levels(ctx, &sql).await
}

/// The (user_id, level) rows of a query.
async fn user_levels(ctx: &SessionContext, sql: &str) -> Vec<(i64, u8)> {
    let batches: Vec<RecordBatch> = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let users = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Int64,
        )
        .unwrap();
        let users = users.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let lv = b.column(1).as_primitive::<UInt8Type>();
        for i in 0..b.num_rows() {
            out.push((users.value(i), lv.value(i)));
        }
    }
    out
}

#[tokio::test]
async fn interval_and_seconds_windows_agree() {
    let ctx = ctx().await;
    let want = vec![(1, 3), (2, 1), (3, 2), (4, 0)];
    let by_interval = levels(
        &ctx,
        "window_funnel(INTERVAL '30 days', ts, event = 'visit', event = 'signup', event = 'buy')",
    )
    .await;
    assert_eq!(by_interval, want);
    let by_seconds = levels(
        &ctx,
        "window_funnel(2592000, ts, event = 'visit', event = 'signup', event = 'buy')",
    )
    .await;
    assert_eq!(by_seconds, want);
}

#[tokio::test]
async fn modes_are_a_leading_string() {
    let ctx = ctx().await;
    // user 1: visit, other, signup -> strict_order stops at `other`
    let got = levels(
        &ctx,
        "window_funnel('strict_order', INTERVAL '30 days', ts, event = 'visit', event = 'signup')",
    )
    .await;
    assert_eq!(got, vec![(1, 1), (2, 1), (3, 2), (4, 0)]);
}

#[tokio::test]
async fn bad_arguments_are_explained() {
    let ctx = ctx().await;
    for (call, says) in [
        (
            "window_funnel('sideways', 10, ts, event = 'visit')",
            "unknown funnel mode `sideways`",
        ),
        (
            "window_funnel(INTERVAL '1 month', ts, event = 'visit')",
            "no fixed length",
        ),
        ("window_funnel(10, event, event = 'visit')", "time argument"),
        ("window_funnel(10, ts)", "arguments"),
    ] {
        let sql = format!("SELECT {call} FROM e");
        let err = match ctx.sql(&sql).await {
            Err(e) => e.to_string(),
            Ok(df) => df
                .collect()
                .await
                .map(|_| String::new())
                .unwrap_or_else(|e| e.to_string()),
        };
        assert!(err.contains(says), "{call}: {err}");
    }
}

#[tokio::test]
async fn one_group_without_group_by() {
    let ctx = ctx().await;
    let b = ctx
        .sql("SELECT window_funnel(100, ts, event = 'visit', event = 'other') FROM e WHERE user_id = 1")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(b[0].column(0).as_primitive::<UInt8Type>().value(0), 2);
}

#[tokio::test]
async fn persons_with_many_events_get_the_same_levels() {
    // two partitions, so partial states are merged; u1 converts early and then has hundreds
    // more events (its events are dropped once it is known to be at the last step), u2 never
    // reaches step 3, u3 reaches it only at its last event
    let config = datafusion::prelude::SessionConfig::new().with_target_partitions(2);
    let ctx = SessionContext::new_with_config(config);
    darkroom_analytics::register(&ctx);
    ctx.sql(
        "CREATE TABLE m AS \
         SELECT 1 AS user_id, v AS ts, v % 3 AS step FROM unnest(range(0, 500)) AS t(v) \
         UNION ALL SELECT 2, v, v % 2 FROM unnest(range(0, 500)) AS t(v) \
         UNION ALL SELECT 3, v, CASE WHEN v = 499 THEN 2 ELSE v % 2 END FROM unnest(range(0, 500)) AS t(v)",
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    for (mode, want) in [
        ("", vec![(1, 3), (2, 2), (3, 3)]),
        ("'strict_increase', ", vec![(1, 3), (2, 2), (3, 3)]),
        ("'strict_deduplication', ", vec![(1, 3), (2, 2), (3, 2)]),
    ] {
        let sql = format!(
            "SELECT user_id, window_funnel({mode}10, ts, step = 0, step = 1, step = 2) AS level \
             FROM (SELECT * FROM m ORDER BY random()) GROUP BY user_id ORDER BY user_id"
        );
        let got = user_levels(&ctx, &sql).await;
        assert_eq!(got, want, "mode {mode}");
    }
}
