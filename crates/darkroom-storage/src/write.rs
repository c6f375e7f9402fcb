//! Writing one partition: replace exactly that partition, and record it complete in the same
//! commit.
//!
//! A partition write streams its input into Parquet files (zstd), then makes one Delta commit
//! that removes the partition's old files, adds the new ones, and carries an application
//! transaction (`txn`) naming the task, plus the fingerprint of its inputs in the commit info.
//! A crash before that commit leaves the old partition (the new files are unreferenced and
//! vacuumed later); a crash after it leaves the new one. Running the same write twice leaves
//! the same rows.

use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::ScalarValue;
use datafusion::datasource::provider_as_source;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col, lit};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use deltalake::DeltaTable;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::WriteBuilder;
use deltalake::protocol::SaveMode;
use futures::StreamExt;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::json;

use crate::{Result, StorageError, Warehouse, failpoint};

/// The zstd level of every Parquet file the warehouse writes.
pub const ZSTD_LEVEL: i32 = 1;

/// Proof that a partition is complete, as recorded in the commit that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Completion {
    /// Application id of the task, e.g. `ingest/web/2026-01-31`.
    pub task: String,
    /// The Delta application-transaction version (1 for the first completion, then +1).
    pub txn_version: i64,
    /// The table version of the commit.
    pub table_version: u64,
    /// Fingerprint of the inputs the partition was built from.
    pub fingerprint: String,
}

/// One partition to replace.
pub struct PartitionWrite {
    /// Table name in the warehouse (a folder under the location).
    pub table: String,
    /// The table's partition columns (used when the table is created).
    pub partition_columns: Vec<String>,
    /// The partition being replaced, as column = value pairs (every row written must match).
    pub partition: Vec<(String, ScalarValue)>,
    /// Schema of the rows, partition columns included.
    pub schema: SchemaRef,
    /// The rows. Consumed as a stream: memory stays bounded by the batch size.
    pub input: SendableRecordBatchStream,
    /// Task id recorded as the commit's application transaction.
    pub task: String,
    /// Fingerprint of the inputs (file checksums, upstream versions).
    pub fingerprint: String,
}

impl std::fmt::Debug for PartitionWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionWrite")
            .field("table", &self.table)
            .field("partition", &self.partition)
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

/// What a partition write did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteOutcome {
    pub table: String,
    pub table_version: u64,
    pub rows: u64,
    pub completion: Completion,
}

/// `col1 = v1 AND col2 = v2 ...` for a partition.
pub fn partition_predicate(partition: &[(String, ScalarValue)]) -> Option<Expr> {
    partition
        .iter()
        .map(|(c, v)| col(c.as_str()).eq(lit(v.clone())))
        .reduce(Expr::and)
}

/// The id under which a task's completion is recorded.
fn app_id(task: &str) -> String {
    format!("darkroom/{task}")
}

/// Parquet settings shared by every table: zstd, dictionary where it helps, page statistics.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(1 << 20))
        .build()
}

/// A one-shot stream exposed as a DataFusion partition, so delta-rs can pull from it.
struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl std::fmt::Debug for OneShot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneShot")
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }
    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(stream) => stream,
            None => Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::once(async {
                    Err(datafusion::error::DataFusionError::Internal(
                        "partition input stream was read twice".into(),
                    ))
                }),
            )),
        }
    }
}

impl Warehouse {
    /// Replace one partition of a table with the rows of `write.input`, creating the table if
    /// needed, in a single Delta commit that also records the partition complete.
    pub async fn replace_partition(&self, write: PartitionWrite) -> Result<WriteOutcome> {
        let PartitionWrite {
            table: name,
            partition_columns,
            partition,
            schema,
            input,
            task,
            fingerprint,
        } = write;
        for (c, _) in &partition {
            if !partition_columns.contains(c) {
                return Err(StorageError::InvalidWrite {
                    table: name.clone(),
                    message: format!("`{c}` is not a partition column"),
                });
            }
        }
        let existing = self.table(&name).await?;
        let previous_txn = match &existing {
            Some(t) => t
                .snapshot()
                .map_err(|e| StorageError::delta(&name, e))?
                .transaction_version(t.log_store().as_ref(), app_id(&task))
                .await
                .map_err(|e| StorageError::delta(&name, e))?
                .unwrap_or(0),
            None => 0,
        };
        let txn_version = previous_txn + 1;
        let table = match existing {
            Some(t) => t,
            None => self.table_handle(&name)?,
        };

        // Count rows as they stream past. The `write.input_consumed` failpoint fires when the
        // last row has been handed to the Parquet writer, while the last file is being closed.
        let rows = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = Arc::clone(&rows);
        let failpoint_table = name.clone();
        let counted = input.map(move |batch| {
            if let Ok(b) = &batch {
                counter.fetch_add(b.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
            }
            batch
        });
        let counted: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            counted.chain(futures::stream::poll_fn(move |_| {
                failpoint::hit("write.input_consumed", &failpoint_table);
                std::task::Poll::Ready(None)
            })),
        ));
        let source = StreamingTable::try_new(
            Arc::clone(&schema),
            vec![Arc::new(OneShot {
                schema: Arc::clone(&schema),
                stream: Mutex::new(Some(counted)),
            })],
        )
        .map_err(|e| StorageError::datafusion(format!("table {name}"), e))?;
        let plan = LogicalPlanBuilder::scan("input", provider_as_source(Arc::new(source)), None)
            .and_then(LogicalPlanBuilder::build)
            .map_err(|e| StorageError::datafusion(format!("table {name}"), e))?;

        let partition_text: Vec<String> =
            partition.iter().map(|(c, v)| format!("{c}={v}")).collect();
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new(app_id(&task), txn_version))
            .with_metadata([(
                "darkroom".to_string(),
                json!({
                    "task": task,
                    "partition": partition_text,
                    "fingerprint": fingerprint,
                    "txn_version": txn_version,
                }),
            )]);

        failpoint::hit("write.before_data_files", &name);
        let snapshot = table.snapshot().ok().map(|s| s.snapshot().clone());
        let mut builder = WriteBuilder::new(table.log_store(), snapshot)
            .with_input_plan(plan)
            .with_save_mode(SaveMode::Overwrite)
            .with_partition_columns(partition_columns.clone())
            .with_writer_properties(writer_properties())
            .with_commit_properties(properties)
            .with_table_name(name.clone());
        if let Some(predicate) = partition_predicate(&partition) {
            builder = builder.with_replace_where(predicate);
        }
        let written: DeltaTable = builder.await.map_err(|e| StorageError::delta(&name, e))?;
        failpoint::hit("write.after_commit", &name);
        self.refresh_shared(&name).await?;
        let table_version = written.version().unwrap_or(0);
        Ok(WriteOutcome {
            table: name,
            table_version,
            rows: rows.load(std::sync::atomic::Ordering::Relaxed),
            completion: Completion {
                task,
                txn_version,
                table_version,
                fingerprint,
            },
        })
    }

    /// The recorded completion of `task` in `table`, if any: the latest commit carrying the
    /// task's application transaction, with the fingerprint it recorded.
    pub async fn completion(&self, table: &str, task: &str) -> Result<Option<Completion>> {
        let Some(t) = self.table(table).await? else {
            return Ok(None);
        };
        let id = app_id(task);
        let state = t.snapshot().map_err(|e| StorageError::delta(table, e))?;
        let Some(txn_version) = state
            .transaction_version(t.log_store().as_ref(), id.clone())
            .await
            .map_err(|e| StorageError::delta(table, e))?
        else {
            return Ok(None);
        };
        let mut history = t.history(None);
        let mut version = state.version();
        while let Some(info) = history.next().await {
            let info = info.map_err(|e| StorageError::delta(table, e))?;
            let commit_version = info.read_version.map_or(version, |v| v + 1);
            if let Some(meta) = info.info.get("darkroom")
                && meta.get("task").and_then(|v| v.as_str()) == Some(task)
                && meta.get("txn_version").and_then(serde_json::Value::as_i64) == Some(txn_version)
            {
                let fingerprint = meta
                    .get("fingerprint")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string();
                return Ok(Some(Completion {
                    task: task.to_string(),
                    txn_version,
                    table_version: commit_version,
                    fingerprint,
                }));
            }
            version = version.saturating_sub(1);
        }
        Ok(None)
    }
}
