//! Writing one partition: replace exactly that partition, and record it complete in the same
//! commit.
//!
//! A partition write streams its input into Parquet files (zstd), then makes one Delta commit
//! that removes the partition's old files, adds the new ones, and carries an application
//! transaction (`txn`) naming the task, plus the fingerprint of its inputs in the commit info.
//! A crash before that commit leaves the old partition (the new files are unreferenced and
//! vacuumed later); a crash after it leaves the new one. Running the same write twice leaves
//! the same rows.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU64;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::array::{Array, ArrayRef, Scalar};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::datatypes::{DataType, Date32Type, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::ScalarValue;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, col, lit};
use delta_kernel::expressions::Scalar as DeltaScalar;
use deltalake::DeltaTable;
use deltalake::TableProperty;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::scalars::ScalarExt;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TableReference};
use deltalake::kernel::{Action, MetadataExt, StructType, Transaction};
use deltalake::operations::create::CreateBuilder;
use deltalake::operations::get_num_idx_cols_and_stats_columns;
use deltalake::operations::write::writer::{PartitionWriter, PartitionWriterConfig};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use futures::StreamExt;
use indexmap::IndexMap;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde_json::json;

use crate::date_writers::{DateWriters, FileSettings};
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
    pub fingerprint: Fingerprint,
    /// Columns holding a different value in nearly every row (a raw log line): written with
    /// no Parquet dictionary and no statistics.
    pub plain_columns: Vec<String>,
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

/// Several date partitions replaced at once: a backfill of a date-partitioned model, or an
/// ingest of many dates of a log source.
pub struct RangeWrite {
    pub table: String,
    /// The DATE partition column.
    pub partition_column: String,
    /// The partition columns before the date, each with the one value every row written
    /// holds (the ledger's `source`): only partitions with these values are replaced.
    pub fixed: Vec<(String, ScalarValue)>,
    /// The dates replaced (see [`RangeWrite::days`] for a span): each is replaced by the rows
    /// given for it, or emptied when none are. A date not listed is left as it is.
    pub dates: BTreeSet<chrono::NaiveDate>,
    pub schema: SchemaRef,
    pub input: SendableRecordBatchStream,
    /// Each date is recorded complete as the task `<task_prefix>/<date>`.
    pub task_prefix: String,
    /// The fingerprint recorded for each date not in `fingerprints`.
    pub fingerprint: String,
    /// Each date's own fingerprint (the inputs of that partition), where known.
    pub fingerprints: BTreeMap<chrono::NaiveDate, String>,
    /// Columns holding a different value in nearly every row (see [`PartitionWrite`]).
    pub plain_columns: Vec<String>,
    /// Text columns whose values vary freely (a request path, a user agent): written with a
    /// dictionary where it helps but no min/max statistics, which would never prune a file
    /// or a page and cost time (one string comparison per value and bound).
    pub free_text_columns: Vec<String>,
}

impl RangeWrite {
    /// Every date from `from` to `to`, both included.
    pub fn days(from: chrono::NaiveDate, to: chrono::NaiveDate) -> BTreeSet<chrono::NaiveDate> {
        from.iter_days().take_while(|d| *d <= to).collect()
    }
}

impl std::fmt::Debug for RangeWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeWrite")
            .field("table", &self.table)
            .field("fixed", &self.fixed)
            .field("dates", &self.dates)
            .finish_non_exhaustive()
    }
}

/// The fingerprint of a write's inputs, recorded in the commit that writes the partition.
#[derive(Debug, Clone)]
pub enum Fingerprint {
    /// Known before the write starts.
    Known(String),
    /// Set by whoever produces the input, at the latest just before the input ends — for a
    /// checksum computed while the input was read. Still unset when the input has ended, the
    /// write fails and commits nothing.
    Deferred(Arc<OnceLock<String>>),
}

impl Fingerprint {
    fn resolve(&self) -> Option<String> {
        match self {
            Self::Known(f) => Some(f.clone()),
            Self::Deferred(cell) => cell.get().cloned(),
        }
    }
}

impl From<String> for Fingerprint {
    fn from(value: String) -> Self {
        Self::Known(value)
    }
}

impl From<&str> for Fingerprint {
    fn from(value: &str) -> Self {
        Self::Known(value.to_string())
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
pub(crate) fn app_id(task: &str) -> String {
    format!("darkroom/{task}")
}

/// Data files roll over to a new file past this size.
const TARGET_FILE_SIZE: NonZeroU64 = NonZeroU64::new(256 << 20).unwrap();

/// Parquet settings shared by every table: zstd, dictionary where it helps, page statistics.
pub fn writer_properties() -> WriterProperties {
    writer_properties_builder().build()
}

fn writer_properties_builder() -> parquet::file::properties::WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(1 << 20))
}

/// [`writer_properties`], except for columns that hold a different value in nearly every row
/// (a raw log `line`): those get no dictionary and no min/max statistics, which cost time
/// and would buy nothing.
fn writer_properties_for(file_schema: &SchemaRef, plain_columns: &[String]) -> WriterProperties {
    writer_properties_with(file_schema, plain_columns, &[])
}

/// [`writer_properties_for`], and no statistics for `free_text` columns either.
fn writer_properties_with(
    file_schema: &SchemaRef,
    plain_columns: &[String],
    free_text: &[String],
) -> WriterProperties {
    let mut builder = writer_properties_builder();
    for c in plain_columns {
        if file_schema.index_of(c).is_ok() {
            let path = ColumnPath::from(c.as_str());
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_statistics_enabled(path, EnabledStatistics::None);
        }
    }
    for c in free_text {
        if file_schema.index_of(c).is_ok() {
            builder = builder.set_column_statistics_enabled(
                ColumnPath::from(c.as_str()),
                EnabledStatistics::None,
            );
        }
    }
    builder.build()
}

/// One partition column's value in a write: checked against every row written, and
/// compared with each file's `partitionValues` to find the files it replaces.
struct PartitionValue {
    column: String,
    /// The column's index in the rows written.
    index: usize,
    /// The value as a one-row array.
    value: ArrayRef,
    /// The value as Delta writes it in a file's `partitionValues`.
    serialized: String,
    scalar: DeltaScalar,
}

impl PartitionValue {
    fn new(
        schema: &SchemaRef,
        column: &str,
        value: &ScalarValue,
    ) -> std::result::Result<Self, String> {
        let index = schema
            .index_of(column)
            .map_err(|_| format!("partition column `{column}` is not in the rows' schema"))?;
        if value.is_null() {
            return Err(format!("partition column `{column}` cannot be NULL"));
        }
        let array = value
            .to_array()
            .map_err(|e| format!("partition value {column} = {value}: {e}"))?;
        let scalar = ScalarExt::from_array(array.as_ref(), 0)
            .ok_or_else(|| format!("partition value {column} = {value} has no Delta type"))?;
        Ok(Self {
            column: column.to_string(),
            index,
            value: array,
            serialized: ScalarExt::serialize(&scalar),
            scalar,
        })
    }

    /// An error naming the first row of `batch` holding another value, if any.
    fn check(&self, batch: &RecordBatch) -> std::result::Result<(), String> {
        let c = &self.column;
        let column = batch
            .columns()
            .get(self.index)
            .ok_or_else(|| format!("the rows have no column `{c}`"))?;
        let outside = distinct(column, &Scalar::new(Arc::clone(&self.value)))
            .map_err(|e| format!("cannot compare `{c}`: {e}"))?;
        match outside.iter().position(|v| v == Some(true)) {
            None => Ok(()),
            Some(row) => {
                let value = if column.is_null(row) {
                    "NULL".to_string()
                } else {
                    array_value_to_string(column, row).unwrap_or_default()
                };
                Err(format!(
                    "row {row} of a batch has {c} = {value}, outside the partition being \
                     written ({c} = {}); nothing was committed",
                    self.serialized
                ))
            }
        }
    }

    /// Whether a data file with these partition values has this value.
    fn holds(&self, file_values: &HashMap<String, Option<String>>) -> bool {
        file_values.get(&self.column).and_then(Option::as_deref) == Some(self.serialized.as_str())
    }
}

/// Where the rows of one partition write go: the partition's values (as Delta records them
/// in each file's entry) and the file schema — the table's columns without the partition
/// columns, whose values live in the folder names.
struct PartitionTarget {
    file_schema: SchemaRef,
    file_columns: Vec<usize>,
    values: IndexMap<String, DeltaScalar>,
    checks: Vec<PartitionValue>,
}

impl PartitionTarget {
    fn new(
        schema: &SchemaRef,
        partition_columns: &[String],
        partition: &[(String, ScalarValue)],
    ) -> std::result::Result<Self, String> {
        for (c, _) in partition {
            if !partition_columns.contains(c) {
                return Err(format!("`{c}` is not a partition column"));
            }
        }
        let mut values = IndexMap::new();
        let mut checks = Vec::new();
        for c in partition_columns {
            let value = partition
                .iter()
                .find(|(name, _)| name == c)
                .map(|(_, v)| v)
                .ok_or_else(|| format!("no value given for partition column `{c}`"))?;
            let check = PartitionValue::new(schema, c, value)?;
            values.insert(c.clone(), check.scalar.clone());
            checks.push(check);
        }
        let file_columns: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !partition_columns.contains(schema.field(*i).name()))
            .collect();
        let file_schema = Arc::new(
            schema
                .project(&file_columns)
                .map_err(|e| format!("cannot build the file schema: {e}"))?,
        );
        Ok(Self {
            file_schema,
            file_columns,
            values,
            checks,
        })
    }

    /// The batch as written to a data file: every row checked to belong to the partition,
    /// partition columns dropped.
    fn file_batch(&self, batch: &RecordBatch) -> std::result::Result<RecordBatch, String> {
        for check in &self.checks {
            check.check(batch)?;
        }
        RecordBatch::try_new(
            Arc::clone(&self.file_schema),
            self.file_columns
                .iter()
                .map(|i| Arc::clone(batch.column(*i)))
                .collect(),
        )
        .map_err(|e| format!("the rows do not match the schema: {e}"))
    }

    /// Whether a data file with these partition values belongs to the partition.
    fn holds(&self, file_values: &HashMap<String, Option<String>>) -> bool {
        self.checks.iter().all(|c| c.holds(file_values))
    }
}

/// The rows' columns and partitioning must be the table's.
fn check_schema(
    state: &DeltaTableState,
    schema: &SchemaRef,
    partition_columns: &[String],
) -> std::result::Result<(), String> {
    let table_partitions = state.metadata().partition_columns();
    if table_partitions != partition_columns {
        return Err(format!(
            "the table is partitioned by [{}], this write by [{}]",
            table_partitions.join(", "),
            partition_columns.join(", ")
        ));
    }
    let ours: StructType = schema
        .as_ref()
        .try_into_kernel()
        .map_err(|e| format!("the rows have a type Delta tables cannot hold: {e}"))?;
    let theirs = state.schema();
    let mut problems = Vec::new();
    for field in theirs.fields() {
        match ours.field(field.name()) {
            None => problems.push(format!(
                "column `{}` ({}) is missing from the rows written",
                field.name(),
                field.data_type()
            )),
            Some(f) if f.data_type() != field.data_type() => problems.push(format!(
                "column `{}` is {} in the table but {} in the rows written",
                field.name(),
                field.data_type(),
                f.data_type()
            )),
            Some(_) => {}
        }
    }
    for field in ours.fields() {
        if theirs.field(field.name()).is_none() {
            problems.push(format!(
                "column `{}` ({}) is not in the table",
                field.name(),
                field.data_type()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

impl Warehouse {
    /// Replace one partition of a table with the rows of `write.input`, creating the table if
    /// needed, in a single Delta commit that also records the partition complete.
    ///
    /// The rows stream straight into Parquet files under the partition's folder (every row
    /// must belong to the partition); only then does one commit remove the partition's old
    /// files, add the new ones and record the task's application transaction.
    pub async fn replace_partition(&self, write: PartitionWrite) -> Result<WriteOutcome> {
        self.replace(write, false).await
    }

    /// Replace every row of an unpartitioned table (`partition_columns` and `partition`
    /// empty) in one commit that also records the task complete. Unlike a partition write,
    /// the rows may bring a new schema: the same commit changes the table's schema, so
    /// readers see the old rows with the old columns or the new rows with the new ones.
    pub async fn replace_table(&self, write: PartitionWrite) -> Result<WriteOutcome> {
        if !write.partition_columns.is_empty() || !write.partition.is_empty() {
            return Err(StorageError::InvalidWrite {
                table: write.table,
                message: "replace_table writes an unpartitioned table whole".into(),
            });
        }
        self.replace(write, true).await
    }

    async fn replace(&self, write: PartitionWrite, new_schema: bool) -> Result<WriteOutcome> {
        let PartitionWrite {
            table: name,
            partition_columns,
            partition,
            schema,
            mut input,
            task,
            fingerprint,
            plain_columns,
        } = write;
        let invalid = |message: String| StorageError::InvalidWrite {
            table: name.clone(),
            message,
        };
        let target =
            PartitionTarget::new(&schema, &partition_columns, &partition).map_err(&invalid)?;
        let (_writing, table, state) = self
            .open_for_write(&name, &schema, &partition_columns)
            .await?;
        let mut metadata = None;
        if let Err(problem) = check_schema(&state, &schema, &partition_columns) {
            if !new_schema || state.metadata().partition_columns() != partition_columns {
                return Err(invalid(problem));
            }
            let fields: StructType = schema.as_ref().try_into_kernel().map_err(|e| {
                invalid(format!(
                    "the rows have a type Delta tables cannot hold: {e}"
                ))
            })?;
            metadata = Some(
                state
                    .metadata()
                    .clone()
                    .with_schema(&fields)
                    .map_err(|e| invalid(format!("cannot record the new schema: {e}")))?,
            );
        }
        let txn_version = state
            .transaction_version(table.log_store().as_ref(), app_id(&task))
            .await
            .map_err(|e| StorageError::delta(&name, e))?
            .unwrap_or(0)
            + 1;

        failpoint::hit("write.before_data_files", &name);
        let (num_indexed_cols, stats_columns) =
            get_num_idx_cols_and_stats_columns(Some(state.table_config()), HashMap::new());
        let config = PartitionWriterConfig::try_new(
            Arc::clone(&target.file_schema),
            target.values.clone(),
            Some(writer_properties_for(&target.file_schema, &plain_columns)),
            Some(TARGET_FILE_SIZE),
            None,
            None,
            None,
        )
        .map_err(|e| StorageError::delta(&name, e))?;
        let mut writer = PartitionWriter::try_with_config(
            table.object_store(),
            config,
            num_indexed_cols,
            stats_columns,
        )
        .map_err(|e| StorageError::delta(&name, e))?;
        let mut rows = 0u64;
        while let Some(batch) = input.next().await {
            let batch =
                batch.map_err(|e| StorageError::datafusion(format!("input of table {name}"), e))?;
            let file_batch = target.file_batch(&batch).map_err(&invalid)?;
            rows += batch.num_rows() as u64;
            writer
                .write(&file_batch)
                .await
                .map_err(|e| StorageError::delta(&name, e))?;
        }
        failpoint::hit("write.input_consumed", &name);
        let adds = writer
            .close()
            .await
            .map_err(|e| StorageError::delta(&name, e))?;
        failpoint::hit("write.before_commit", &name);
        let fingerprint = fingerprint.resolve().ok_or_else(|| {
            invalid("the input ended before its fingerprint was set; nothing was committed".into())
        })?;

        let mut actions: Vec<Action> = metadata.into_iter().map(Action::Metadata).collect();
        actions.extend(adds.into_iter().map(Action::Add));
        actions.extend(remove_files(&name, &table, &state, |values| target.holds(values)).await?);
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
                    "rows": rows,
                }),
            )]);
        let operation = DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: Some(partition_columns.clone()),
            predicate: partition_predicate(&partition).map(|p| p.to_string()),
        };
        let table_version = self
            .commit(&name, &table, &state, actions, properties, operation)
            .await?;
        let completion = Completion {
            task,
            txn_version,
            table_version,
            fingerprint,
        };
        self.committed(&name, table_version, vec![completion.clone()]);
        Ok(WriteOutcome {
            table: name,
            table_version,
            rows,
            completion,
        })
    }

    /// Replace the partitions of `write.dates` (with the `write.fixed` values) in one commit
    /// that also records each date complete (one application transaction per date). A row
    /// of another date, or another fixed value, stops the write before anything is
    /// committed.
    pub async fn replace_date_range(&self, write: RangeWrite) -> Result<WriteOutcome> {
        let RangeWrite {
            table: name,
            partition_column,
            fixed,
            dates,
            schema,
            mut input,
            task_prefix,
            fingerprint,
            fingerprints,
            plain_columns,
            free_text_columns,
        } = write;
        let invalid = |message: String| StorageError::InvalidWrite {
            table: name.clone(),
            message,
        };
        let (Some(&from), Some(&to)) = (dates.first(), dates.last()) else {
            return Err(invalid("no date to write".into()));
        };
        let column = schema
            .index_of(&partition_column)
            .map_err(|_| invalid(format!("the rows have no column `{partition_column}`")))?;
        if schema.field(column).data_type() != &DataType::Date32 {
            return Err(invalid(format!("`{partition_column}` is not a DATE")));
        }
        let fixed_values = fixed
            .iter()
            .map(|(c, v)| PartitionValue::new(&schema, c, v))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(&invalid)?;
        let mut partition_columns: Vec<String> = fixed.iter().map(|(c, _)| c.clone()).collect();
        partition_columns.push(partition_column.clone());
        let (_writing, table, state) = self
            .open_for_write(&name, &schema, &partition_columns)
            .await?;
        check_schema(&state, &schema, &partition_columns).map_err(&invalid)?;
        // Every date's application transaction gets the version of the commit being made:
        // above any version an earlier commit recorded for it (a task's version grows by at
        // most one per commit), so it still only grows, and no lookup in the log is needed —
        // asking the log for each date's last version replays the checkpoint once per date.
        let version = i64::try_from(state.version() + 1).unwrap_or(i64::MAX);
        let mut txns = Vec::new();
        let mut tasks = serde_json::Map::new();
        let mut per_task = serde_json::Map::new();
        let mut completions = Vec::new();
        for &d in &dates {
            let task = format!("{task_prefix}/{d}");
            txns.push(Transaction::new(app_id(&task), version));
            tasks.insert(task.clone(), json!(version));
            let own = fingerprints.get(&d).unwrap_or(&fingerprint);
            if fingerprints.contains_key(&d) {
                per_task.insert(task.clone(), json!(own));
            }
            completions.push((task, own.clone()));
        }

        failpoint::hit("write.before_data_files", &name);
        let (num_indexed_cols, stats_columns) =
            get_num_idx_cols_and_stats_columns(Some(state.table_config()), HashMap::new());
        let mut writer = DateWriters::new(
            &name,
            &schema,
            fixed_values
                .iter()
                .map(|f| (f.column.clone(), f.scalar.clone()))
                .collect(),
            &partition_column,
            FileSettings {
                store: table.object_store(),
                properties: writer_properties_with(&schema, &plain_columns, &free_text_columns),
                target_file_size: TARGET_FILE_SIZE,
                num_indexed_cols,
                stats_columns,
            },
        )?;
        let (lo, hi) = (days_since_epoch(from), days_since_epoch(to));
        // wanted[day - lo]: whether that day is one of the dates written.
        let mut wanted = vec![false; usize::try_from(hi - lo).unwrap_or(0) + 1];
        for d in &dates {
            if let Some(w) = usize::try_from(days_since_epoch(*d) - lo)
                .ok()
                .and_then(|i| wanted.get_mut(i))
            {
                *w = true;
            }
        }
        let is_wanted = |day: i32| {
            usize::try_from(day - lo)
                .ok()
                .and_then(|i| wanted.get(i))
                .copied()
                .unwrap_or(false)
        };
        let mut rows = 0u64;
        while let Some(batch) = input.next().await {
            let batch =
                batch.map_err(|e| StorageError::datafusion(format!("input of table {name}"), e))?;
            for check in &fixed_values {
                check.check(&batch).map_err(&invalid)?;
            }
            let days = batch.column(column).as_primitive::<Date32Type>();
            if let Some(row) =
                (0..days.len()).find(|&i| days.is_null(i) || !is_wanted(days.value(i)))
            {
                let value = if days.is_null(row) {
                    "NULL".to_string()
                } else {
                    array_value_to_string(days, row).unwrap_or_default()
                };
                let span = if dates.len() == 1 {
                    format!("{from}")
                } else if dates.len() == wanted.len() {
                    format!("{from} to {to}")
                } else {
                    format!("{} dates from {from} to {to}", dates.len())
                };
                return Err(invalid(format!(
                    "a row has {partition_column} = {value}, outside the dates being written \
                     ({span}); nothing was committed"
                )));
            }
            rows += batch.num_rows() as u64;
            writer.write(&batch, column).await?;
        }
        failpoint::hit("write.input_consumed", &name);
        let adds = writer.close().await?;
        failpoint::hit("write.before_commit", &name);
        let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
        let inside = |values: &HashMap<String, Option<String>>| {
            fixed_values.iter().all(|f| f.holds(values))
                && values
                    .get(&partition_column)
                    .and_then(Option::as_deref)
                    .and_then(|v| v.parse::<chrono::NaiveDate>().ok())
                    .is_some_and(|d| dates.contains(&d))
        };
        actions.extend(remove_files(&name, &table, &state, inside).await?);
        let mut partition_text: Vec<String> = fixed_values
            .iter()
            .map(|f| format!("{}={}", f.column, f.serialized))
            .collect();
        partition_text.push(if dates.len() == 1 {
            format!("{partition_column}={from}")
        } else {
            format!("{partition_column}={from}..{to}")
        });
        let summary_task = if dates.len() == 1 {
            format!("{task_prefix}/{from}")
        } else {
            format!("{task_prefix}/{from}..{to}")
        };
        let properties = CommitProperties::default()
            .with_application_transactions(txns)
            .with_metadata([(
                "darkroom".to_string(),
                json!({
                    "task": summary_task,
                    "tasks": tasks,
                    "fingerprints": per_task,
                    "partition": partition_text,
                    "fingerprint": fingerprint,
                    "rows": rows,
                }),
            )]);
        let date_list: Vec<Expr> = dates
            .iter()
            .map(|d| lit(ScalarValue::Date32(Some(days_since_epoch(*d)))))
            .collect();
        let predicate = fixed
            .iter()
            .map(|(c, v)| col(c.as_str()).eq(lit(v.clone())))
            .chain([if dates.len() == wanted.len() {
                col(partition_column.as_str())
                    .gt_eq(lit(ScalarValue::Date32(Some(lo))))
                    .and(col(partition_column.as_str()).lt_eq(lit(ScalarValue::Date32(Some(hi)))))
            } else {
                col(partition_column.as_str()).in_list(date_list, false)
            }])
            .reduce(Expr::and);
        let operation = DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: Some(partition_columns.clone()),
            predicate: predicate.map(|p| p.to_string()),
        };
        let table_version = self
            .commit(&name, &table, &state, actions, properties, operation)
            .await?;
        self.committed(
            &name,
            table_version,
            completions
                .into_iter()
                .map(|(task, fingerprint)| Completion {
                    task,
                    txn_version: version,
                    table_version,
                    fingerprint,
                })
                .collect(),
        );
        Ok(WriteOutcome {
            table: name,
            table_version,
            rows,
            completion: Completion {
                task: format!("{task_prefix}/{to}"),
                txn_version: version,
                table_version,
                fingerprint,
            },
        })
    }

    /// Commit a write's actions on top of `state`, then show the new version to the shared
    /// session. Returns the table version committed.
    async fn commit(
        &self,
        name: &str,
        table: &DeltaTable,
        state: &DeltaTableState,
        actions: Vec<Action>,
        properties: CommitProperties,
        operation: DeltaOperation,
    ) -> Result<u64> {
        let committed = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(
                Some(state as &dyn TableReference),
                table.log_store(),
                operation,
            )
            .await
            .map_err(|e| StorageError::delta(name, e))?;
        failpoint::hit("write.after_commit", name);
        self.refresh_shared(name).await?;
        Ok(committed.version())
    }

    /// Take the table's write lock (held until the returned guard drops, past the commit),
    /// then open the table — created if need be — and read its state.
    async fn open_for_write(
        &self,
        name: &str,
        schema: &SchemaRef,
        partition_columns: &[String],
    ) -> Result<(
        tokio::sync::OwnedMutexGuard<()>,
        DeltaTable,
        DeltaTableState,
    )> {
        let guard = self.write_lock(name).lock_owned().await;
        let table = self.open_or_create(name, schema, partition_columns).await?;
        let state = table
            .snapshot()
            .map_err(|e| StorageError::delta(name, e))?
            .clone();
        Ok((guard, table, state))
    }

    /// Open a table, creating it (empty, with this schema and partitioning) if it does not
    /// exist. Creating is its own commit: a crash right after it leaves an empty table with no
    /// partition recorded complete.
    async fn open_or_create(
        &self,
        name: &str,
        schema: &SchemaRef,
        partition_columns: &[String],
    ) -> Result<DeltaTable> {
        if let Some(table) = self.table(name).await? {
            return Ok(table);
        }
        let fields: StructType =
            schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| StorageError::InvalidWrite {
                    table: name.to_string(),
                    message: format!("the schema has a type Delta tables cannot hold: {e}"),
                })?;
        let handle = self.table_handle(name)?;
        CreateBuilder::new()
            .with_log_store(handle.log_store())
            .with_table_name(name)
            .with_columns(fields.fields().cloned())
            .with_partition_columns(partition_columns.to_vec())
            // A checkpoint every 10 commits: opening a table replays at most 9 JSON commits
            // (each costs a JSON decoder), where Delta's default of 100 made every open of a
            // table written once a night per source read up to 99.
            .with_configuration_property(TableProperty::CheckpointInterval, Some("10"))
            .with_save_mode(SaveMode::Ignore)
            .await
            .map_err(|e| StorageError::delta(name, e))?;
        self.table(name)
            .await?
            .ok_or_else(|| StorageError::InvalidWrite {
                table: name.to_string(),
                message: "the table was created but cannot be opened".into(),
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
            let recorded = info.info.get("darkroom").is_some_and(|meta| {
                (meta.get("task").and_then(|v| v.as_str()) == Some(task)
                    && meta.get("txn_version").and_then(serde_json::Value::as_i64)
                        == Some(txn_version))
                    || meta
                        .get("tasks")
                        .and_then(|t| t.get(task))
                        .and_then(serde_json::Value::as_i64)
                        == Some(txn_version)
            });
            if let Some(meta) = info.info.get("darkroom").filter(|_| recorded) {
                let fingerprint = meta
                    .get("fingerprints")
                    .and_then(|f| f.get(task))
                    .or_else(|| meta.get("fingerprint"))
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

/// `Remove` actions for the table's data files whose partition values `pick` selects.
async fn remove_files(
    name: &str,
    table: &DeltaTable,
    state: &DeltaTableState,
    pick: impl Fn(&HashMap<String, Option<String>>) -> bool,
) -> Result<Vec<Action>> {
    let mut removes = Vec::new();
    let mut files = state
        .snapshot()
        .file_views(table.log_store().as_ref(), None);
    while let Some(file) = files.next().await {
        let file = file.map_err(|e| StorageError::delta(name, e))?;
        if pick(&file.partition_values_map()) {
            removes.push(Action::Remove(file.remove_action(true)));
        }
    }
    Ok(removes)
}

/// Days since 1970-01-01 (a Date32 value).
pub fn days_since_epoch(date: chrono::NaiveDate) -> i32 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from((date - epoch).num_days()).unwrap_or(i32::MAX)
}
