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
    let batches: Vec<RecordBatch> = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
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
