//! The data files of a range write: one Parquet writer per date partition, fed without
//! copying the rows of a batch that holds a single date.
//!
//! delta-rs' `DeltaWriter` sorts and copies (`take`) every column of every batch to split it
//! by partition, even when the whole batch belongs to one partition — which is what an ingest
//! always sends (a log file has one `file_date`). Here a one-date batch only loses its
//! partition columns (a projection, no copy); a batch of several dates (a model computing a
//! month at once) is split with one `take` per date.
//!
//! When a batch of a single date arrives, the writers of the other dates are closed: an
//! ingest sends its dates one after the other, so at most one partition's row group is held
//! in memory, however many dates the write spans. A date that comes back later gets a new
//! file.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use datafusion::arrow::datatypes::{Date32Type, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use delta_kernel::expressions::Scalar as DeltaScalar;
use delta_kernel::table_properties::DataSkippingNumIndexedCols;
use deltalake::kernel::Add;
use deltalake::logstore::ObjectStoreRef;
use deltalake::operations::write::writer::{PartitionWriter, PartitionWriterConfig};
use indexmap::IndexMap;
use parquet::file::properties::WriterProperties;

use crate::{Result, StorageError};

/// Where the files go and how they are written.
pub(crate) struct FileSettings {
    pub store: ObjectStoreRef,
    pub properties: WriterProperties,
    pub target_file_size: std::num::NonZeroU64,
    pub num_indexed_cols: DataSkippingNumIndexedCols,
    pub stats_columns: Option<Vec<String>>,
}

/// One writer per date (days since 1970-01-01) of a range write.
pub(crate) struct DateWriters {
    table: String,
    settings: FileSettings,
    /// Values of the partition columns before the date (the same for every row).
    fixed: Vec<(String, DeltaScalar)>,
    date_column: String,
    /// The rows' column indexes that go into the files (all but the partition columns).
    file_columns: Vec<usize>,
    file_schema: SchemaRef,
    open: BTreeMap<i32, PartitionWriter>,
    adds: Vec<Add>,
}

impl DateWriters {
    pub(crate) fn new(
        table: &str,
        schema: &SchemaRef,
        fixed: Vec<(String, DeltaScalar)>,
        date_column: &str,
        settings: FileSettings,
    ) -> Result<Self> {
        let partitioned = |name: &str| name == date_column || fixed.iter().any(|(c, _)| c == name);
        let file_columns: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| !partitioned(schema.field(i).name()))
            .collect();
        let file_schema =
            Arc::new(
                schema
                    .project(&file_columns)
                    .map_err(|e| StorageError::InvalidWrite {
                        table: table.to_string(),
                        message: format!("cannot build the file schema: {e}"),
                    })?,
            );
        Ok(Self {
            table: table.to_string(),
            settings,
            fixed,
            date_column: date_column.to_string(),
            file_columns,
            file_schema,
            open: BTreeMap::new(),
            adds: Vec::new(),
        })
    }

    /// Writes `batch`, whose column `date_index` holds a date (never NULL: the caller has
    /// checked every row) of the write for each row.
    pub(crate) async fn write(&mut self, batch: &RecordBatch, date_index: usize) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let days = batch.column(date_index).as_primitive_opt::<Date32Type>();
        let Some(days) = days else {
            return Err(StorageError::InvalidWrite {
                table: self.table.clone(),
                message: format!("`{}` is not a DATE", self.date_column),
            });
        };
        let values = days.values();
        let first = values[0];
        if values.iter().all(|&d| d == first) {
            self.close_all_but(first).await?;
            let file_batch = self.project(batch)?;
            return self.write_to(first, &file_batch).await;
        }
        // Row indexes of each date, in the order of the rows.
        let mut groups: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
        for (i, &d) in values.iter().enumerate() {
            groups.entry(d).or_default().push(i as u32);
        }
        for (day, rows) in groups {
            let part = take_record_batch(batch, &UInt32Array::from(rows))
                .map_err(|e| self.arrow_error(e))?;
            let file_batch = self.project(&part)?;
            self.write_to(day, &file_batch).await?;
        }
        Ok(())
    }

    /// Closes every writer and returns the files written.
    pub(crate) async fn close(mut self) -> Result<Vec<Add>> {
        self.close_all_but(i32::MIN).await?;
        Ok(self.adds)
    }

    fn project(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        batch
            .project(&self.file_columns)
            .and_then(|b| b.with_schema(Arc::clone(&self.file_schema)))
            .map_err(|e| self.arrow_error(e))
    }

    async fn write_to(&mut self, day: i32, file_batch: &RecordBatch) -> Result<()> {
        let writer = match self.open.entry(day) {
            Entry::Occupied(open) => open.into_mut(),
            Entry::Vacant(slot) => slot.insert(new_writer(
                &self.table,
                &self.settings,
                &self.fixed,
                &self.date_column,
                &self.file_schema,
                day,
            )?),
        };
        writer
            .write(file_batch)
            .await
            .map_err(|e| StorageError::delta(&self.table, e))
    }

    async fn close_all_but(&mut self, keep: i32) -> Result<()> {
        let days: Vec<i32> = self.open.keys().copied().filter(|d| *d != keep).collect();
        for day in days {
            if let Some(writer) = self.open.remove(&day) {
                let adds = writer
                    .close()
                    .await
                    .map_err(|e| StorageError::delta(&self.table, e))?;
                self.adds.extend(adds);
            }
        }
        Ok(())
    }

    fn arrow_error(&self, e: datafusion::arrow::error::ArrowError) -> StorageError {
        StorageError::InvalidWrite {
            table: self.table.clone(),
            message: format!("the rows do not match the table: {e}"),
        }
    }
}

/// The writer of one date's partition.
fn new_writer(
    table: &str,
    settings: &FileSettings,
    fixed: &[(String, DeltaScalar)],
    date_column: &str,
    file_schema: &SchemaRef,
    day: i32,
) -> Result<PartitionWriter> {
    let mut values: IndexMap<String, DeltaScalar> = fixed.iter().cloned().collect();
    values.insert(date_column.to_string(), DeltaScalar::Date(day));
    let config = PartitionWriterConfig::try_new(
        Arc::clone(file_schema),
        values,
        Some(settings.properties.clone()),
        Some(settings.target_file_size),
        None,
        None,
        None,
    )
    .map_err(|e| StorageError::delta(table, e))?;
    PartitionWriter::try_with_config(
        Arc::clone(&settings.store),
        config,
        settings.num_indexed_cols,
        settings.stats_columns.clone(),
    )
    .map_err(|e| StorageError::delta(table, e))
}
