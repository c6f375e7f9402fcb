//! Published snapshots and maintenance.
//!
//! Delta has no multi-table transactions, so a night's star schema is published by recording
//! the set of (table, version) pairs that belong together, plus the dates known degraded, in
//! `_snapshots` (one row per published night; publishing a night again replaces its row).
//! Readers pin those versions; builders keep writing newer ones.
//!
//! Maintenance compacts a table's small files into large ones and vacuums files no version
//! in use needs: the latest version's files are never touched, and neither is any file a kept
//! snapshot's version still reads.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, AsArray, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use datafusion::common::ScalarValue;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::operations::optimize::OptimizeType;

use crate::{PartitionWrite, Result, StorageError, Warehouse, days_since_epoch, writer_properties};

/// The table of published snapshots.
pub const SNAPSHOTS_TABLE: &str = "_snapshots";

/// A published night: the table versions readers see, and the dates known degraded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub night: NaiveDate,
    /// When it was published (UTC, microseconds since the epoch).
    pub published_at_us: i64,
    pub tables: BTreeMap<String, u64>,
    pub degraded: Vec<NaiveDate>,
}

fn snapshots_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "published_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("tables", DataType::Utf8, false),
        Field::new("degraded", DataType::Utf8, false),
        Field::new("night", DataType::Date32, false),
    ]))
}

/// What maintaining one table did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MaintainReport {
    pub table: String,
    /// Small files rewritten into `files_added` larger ones.
    pub files_compacted: u64,
    pub files_added: u64,
    /// Files deleted by the vacuum.
    pub files_vacuumed: u64,
    /// Versions whose files were kept for a published snapshot.
    pub kept_versions: Vec<u64>,
    pub version: u64,
}

impl Warehouse {
    /// Publish `tables` (name -> version) as the snapshot of `night`, in one commit recorded
    /// as task `task` with `fingerprint`.
    pub async fn publish(
        &self,
        night: NaiveDate,
        tables: &BTreeMap<String, u64>,
        degraded: &[NaiveDate],
        task: &str,
        fingerprint: &str,
    ) -> Result<Snapshot> {
        let published_at_us = chrono::Utc::now().timestamp_micros();
        let schema = snapshots_schema();
        let text = |v: serde_json::Value| Arc::new(StringArray::from(vec![v.to_string()]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![published_at_us]).with_timezone("UTC"),
                ),
                text(serde_json::json!(tables)),
                text(serde_json::json!(degraded)),
                Arc::new(Date32Array::from(vec![days_since_epoch(night)])),
            ],
        )
        .map_err(|e| StorageError::InvalidWrite {
            table: SNAPSHOTS_TABLE.into(),
            message: e.to_string(),
        })?;
        self.replace_partition(PartitionWrite {
            table: SNAPSHOTS_TABLE.into(),
            partition_columns: vec!["night".into()],
            partition: vec![(
                "night".into(),
                ScalarValue::Date32(Some(days_since_epoch(night))),
            )],
            schema: Arc::clone(&schema),
            input: Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::iter(vec![Ok(batch)]),
            )),
            task: task.to_string(),
            fingerprint: fingerprint.into(),
            plain_columns: vec![],
        })
        .await?;
        Ok(Snapshot {
            night,
            published_at_us,
            tables: tables.clone(),
            degraded: degraded.to_vec(),
        })
    }

    /// The published snapshots, newest first (at most `limit`).
    pub async fn snapshots(&self, limit: usize) -> Result<Vec<Snapshot>> {
        let Some(table) = self.table(SNAPSHOTS_TABLE).await? else {
            return Ok(Vec::new());
        };
        let ctx = crate::session::new_context();
        self.register(&ctx, SNAPSHOTS_TABLE, &table).await?;
        let sql = format!(
            "SELECT CAST(night AS INT) AS night, CAST(published_at AS BIGINT) AS at, tables, \
             degraded FROM {SNAPSHOTS_TABLE} ORDER BY published_at DESC LIMIT {limit}"
        );
        let result = crate::run_sql(&ctx, &sql).await?;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
        let mut out = Vec::new();
        for batch in &result.batches {
            let cast = |i: usize, t: &DataType| arrow::compute::cast(batch.column(i), t);
            let err = |e: arrow::error::ArrowError| StorageError::InvalidWrite {
                table: SNAPSHOTS_TABLE.into(),
                message: e.to_string(),
            };
            let night = cast(0, &DataType::Int64).map_err(err)?;
            let at = cast(1, &DataType::Int64).map_err(err)?;
            let tables = cast(2, &DataType::Utf8).map_err(err)?;
            let degraded = cast(3, &DataType::Utf8).map_err(err)?;
            let night: &Int64Array = night.as_primitive();
            let at: &Int64Array = at.as_primitive();
            for row in 0..batch.num_rows() {
                if night.is_null(row) {
                    continue;
                }
                out.push(Snapshot {
                    night: epoch + chrono::Days::new(night.value(row).unsigned_abs()),
                    published_at_us: at.value(row),
                    tables: serde_json::from_str(tables.as_string::<i32>().value(row))
                        .unwrap_or_default(),
                    degraded: serde_json::from_str(degraded.as_string::<i32>().value(row))
                        .unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// A local table's latest version as the file names in its log say, without reading the
    /// log: `Some(None)` when there is no such table, `None` when it cannot be told this way
    /// (a remote warehouse).
    pub fn local_version(&self, name: &str) -> Option<Option<u64>> {
        let crate::Location::Local(root) = self.location() else {
            return None;
        };
        let Ok(entries) = std::fs::read_dir(root.join(name).join("_delta_log")) else {
            return Some(None);
        };
        let latest = entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name();
                let file = file.to_str()?;
                let (number, rest) = file.split_once('.')?;
                (rest == "json" || rest.starts_with("checkpoint"))
                    .then(|| number.parse::<u64>().ok())
                    .flatten()
            })
            .max();
        Some(latest)
    }

    /// A session with every table of `snapshot` registered at the version it published:
    /// what readers use, so they never see half a night.
    pub async fn pinned_session(
        &self,
        snapshot: &Snapshot,
    ) -> Result<datafusion::prelude::SessionContext> {
        let ctx = crate::session::new_context();
        for (name, version) in &snapshot.tables {
            let mut table = self.table_handle(name)?;
            table
                .load_version(*version)
                .await
                .map_err(|e| StorageError::delta(name, e))?;
            self.register(&ctx, name, &table).await?;
        }
        Ok(ctx)
    }

    /// Compact the table's small files, then delete the files no kept version needs: files
    /// removed more than `retention` ago that neither the latest version nor any version in
    /// `keep_versions` reads.
    pub async fn maintain(
        &self,
        name: &str,
        keep_versions: &[u64],
        retention: Duration,
    ) -> Result<MaintainReport> {
        let lock = self.write_lock(name);
        let _writing = lock.lock().await;
        let mut report = MaintainReport {
            table: name.to_string(),
            kept_versions: keep_versions.to_vec(),
            ..Default::default()
        };
        let Some(table) = self.table(name).await? else {
            return Ok(report);
        };
        let (table, metrics) = table
            .optimize()
            .with_type(OptimizeType::Compact)
            .with_target_size(NonZeroU64::new(256 << 20).unwrap_or(NonZeroU64::MIN))
            .with_writer_properties(writer_properties())
            .await
            .map_err(|e| StorageError::delta(name, e))?;
        report.files_compacted = metrics.num_files_removed;
        report.files_added = metrics.num_files_added;
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let (table, vacuumed) = table
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_keep_versions(keep_versions)
            .await
            .map_err(|e| StorageError::delta(name, e))?;
        report.files_vacuumed = vacuumed.files_deleted.len() as u64;
        report.version = table.version().unwrap_or(0);
        self.refresh_shared(name).await?;
        Ok(report)
    }
}
