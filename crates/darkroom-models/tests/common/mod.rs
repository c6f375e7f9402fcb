//! Shared by the model tests: raw tables written from SQL, pretty-printed query results.

use std::sync::Arc;

use darkroom_storage::{PartitionWrite, Warehouse};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;

/// Replace a warehouse table with the rows of a query (run in a session of its own).
pub async fn write_raw(warehouse: &Warehouse, table: &str, sql: &str) {
    let ctx = SessionContext::new();
    let df = ctx.sql(sql).await.expect("raw sql");
    let schema = Arc::new(df.schema().as_arrow().clone());
    let input = df.execute_stream().await.expect("stream");
    warehouse
        .replace_table(PartitionWrite {
            table: table.into(),
            partition_columns: vec![],
            partition: vec![],
            schema,
            input,
            task: format!("test/{table}"),
            fingerprint: "test".into(),
            plain_columns: vec![],
        })
        .await
        .expect("write raw");
}

/// The rows of a query as a text table.
pub async fn pretty(ctx: &SessionContext, sql: &str) -> String {
    let result = darkroom_storage::run_sql(ctx, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&result.batches)
        .expect("format")
        .to_string()
}
