//! The shared SQL session and table summaries.

use std::collections::BTreeSet;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::{Result, StorageError, TableInfo, Warehouse};

/// A new session: information_schema on, identifiers case-insensitive as in Postgres, and file
/// paths accepted as tables in `FROM` (Parquet, CSV, JSON lines), as analysts do with DuckDB.
pub(crate) fn new_context() -> SessionContext {
    // DATAFUSION_* environment variables tune the engine (DATAFUSION_EXECUTION_BATCH_SIZE=...)
    let mut config = SessionConfig::from_env()
        .unwrap_or_default()
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(true);
    if let Some(n) = threads_from_env() {
        config = config.with_target_partitions(n);
    }
    // errors carry the line and column of the SQL they point at
    config.options_mut().sql_parser.collect_spans = true;
    SessionContext::new_with_config(config).enable_url_table()
}

/// `DARKROOM_THREADS=N` (N >= 1): how many threads queries use; unset, one per core.
pub fn threads_from_env() -> Option<usize> {
    std::env::var("DARKROOM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n >= 1)
}

/// A session over no warehouse: files named by their path in `FROM` only (for `darkroom
/// query` outside a project).
pub fn file_session() -> SessionContext {
    new_context()
}

/// A hint shown when a query names a table that does not exist.
pub fn file_table_hint() -> &'static str {
    "tables are the warehouse's (see `darkroom tables`); a file is queried by its path in \
     quotes: SELECT * FROM 'data/events.parquet'"
}

/// The rows of a query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

impl Warehouse {
    /// Run one SQL statement over the warehouse session.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        let ctx = self.session().await?;
        run_sql(&ctx, sql).await
    }
}

/// Run a statement in a session and collect its rows.
pub async fn run_sql(ctx: &SessionContext, sql: &str) -> Result<QueryResult> {
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| StorageError::datafusion("query", e))?;
    let schema = SchemaRef::new(df.schema().as_arrow().clone());
    let batches = df
        .collect()
        .await
        .map_err(|e| StorageError::datafusion("query", e))?;
    Ok(QueryResult { schema, batches })
}

/// Summarise a table from its add actions (`add_actions_table(flatten = true)`).
pub(crate) fn summarize_add_actions(
    name: &str,
    version: u64,
    partition_columns: Vec<String>,
    batch: &RecordBatch,
) -> TableInfo {
    let files = batch.num_rows() as u64;
    let sum_i64 = |column: &str| -> u64 {
        batch
            .column_by_name(column)
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .map_or(0, |a| a.iter().flatten().map(|v| v.max(0) as u64).sum())
    };
    let rows = sum_i64("num_records");
    let bytes = sum_i64("size_bytes");
    let mut partitions = BTreeSet::new();
    if !partition_columns.is_empty() {
        let columns: Vec<_> = partition_columns
            .iter()
            .filter_map(|p| batch.column_by_name(&format!("partition.{p}")))
            .collect();
        for row in 0..batch.num_rows() {
            let key: Vec<String> = columns
                .iter()
                .map(|c| {
                    if c.is_null(row) {
                        "NULL".to_string()
                    } else {
                        array_value_to_string(c, row).unwrap_or_default()
                    }
                })
                .collect();
            partitions.insert(key.join("/"));
        }
    }
    TableInfo {
        name: name.to_string(),
        version,
        rows,
        files,
        bytes,
        partitions: partitions.len() as u64,
        last_partition: partitions.iter().next_back().cloned(),
        partition_columns,
    }
}
