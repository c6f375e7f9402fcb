//! Copying production database tables into the warehouse.
//!
//! A database source (`kind = "postgres" | "mysql" | "sqlite"`) lists tables; each run copies
//! them into `raw_<source>_<table>`:
//!
//! - every table of one source is read inside one repeatable-read, read-only transaction, so
//!   the copies are one consistent snapshot of the database;
//! - each source column maps to an exact warehouse type ([`columns::Ty`]); a type with no exact
//!   mapping is an error naming the table, column and type;
//! - rows stream through Arrow batches of `batch_rows` into the table's Parquet files, so
//!   memory is bounded by the batch size whatever the table's size; the write commits only
//!   once every row is read, so a failure mid-table leaves the previous version in place;
//! - a column added at the source is added to the warehouse table; a column dropped, renamed
//!   or retyped stops that table's load with a message naming it (other tables carry on);
//! - `full` tables are replaced (or kept per `snapshot_date`); `incremental` tables read rows
//!   past the watermark (recorded in the commit that wrote them) and merge them on the key.

pub mod columns;
mod mysql;
mod plan;
mod postgres;
mod sink;
mod sqlite;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use darkroom_config::{DatabaseKind, DatabaseSourceConfig, FullHistory, TableConfig, TableMode};
use darkroom_storage::{Fingerprint, PartitionWrite, Warehouse};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use serde::Serialize;

pub use plan::{Discovered, SourceColumn};
use plan::{TablePlan, Watermark};
use sink::{BatchSink, SinkShared};

/// The column every extracted row carries: when the snapshot was taken (UTC).
pub const EXTRACTED_AT: &str = "_extracted_at";
/// The partition column of `history = "snapshot"` tables.
pub const SNAPSHOT_DATE: &str = "snapshot_date";

/// An extraction failure, naming the source (never the password) and what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(
        "source {source_name}: cannot connect to {target} after {attempts} attempt(s): {cause}"
    )]
    Connect {
        source_name: String,
        target: String,
        attempts: u32,
        cause: String,
    },
    #[error("source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
}

/// Told when a table starts: its warehouse name and the row counter the load advances.
pub type OnTable = Arc<dyn Fn(&str, Arc<AtomicU64>) + Send + Sync>;
/// Told when a table ends.
pub type OnTableDone = Arc<dyn Fn(&TableReport) + Send + Sync>;

/// What to extract.
#[derive(Clone, Default)]
pub struct ExtractOptions {
    /// Only these tables (by database or short name); all when empty.
    pub tables: Vec<String>,
    /// The date the snapshot is recorded for (`snapshot_date`, task ids).
    pub date: Option<NaiveDate>,
    /// The project folder, for relative SQLite paths.
    pub project_root: std::path::PathBuf,
    /// Told when a table starts (its warehouse name) and given the row counter it advances.
    pub on_table: Option<OnTable>,
    /// Told when a table ends.
    pub on_table_done: Option<OnTableDone>,
}

impl std::fmt::Debug for ExtractOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractOptions")
            .field("tables", &self.tables)
            .field("date", &self.date)
            .finish_non_exhaustive()
    }
}

/// What happened to one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub source: String,
    /// The table in the database.
    pub table: String,
    /// The warehouse table written.
    pub warehouse_table: String,
    pub mode: String,
    pub status: TableStatus,
    pub rows: u64,
    /// Bytes of values read from the database.
    pub bytes: u64,
    pub seconds: f64,
    /// Warehouse table version after the load.
    pub table_version: Option<u64>,
    /// Columns added to the warehouse table because they appeared at the source.
    pub new_columns: Vec<String>,
    /// MySQL zero dates (`0000-00-00`) stored as NULL, per column.
    pub zero_dates: std::collections::BTreeMap<String, u64>,
    /// The incremental watermark after the load.
    pub watermark: Option<String>,
    /// Why the table failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableStatus {
    Loaded,
    Failed,
}

/// What happened to one source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub kind: &'static str,
    pub date: NaiveDate,
    /// When the snapshot was taken (UTC, RFC 3339).
    pub snapshot_at: String,
    pub tables: Vec<TableReport>,
}

impl SourceReport {
    pub fn is_ok(&self) -> bool {
        self.tables.iter().all(|t| t.status == TableStatus::Loaded)
    }
}

/// The scheme, user, host, port and database of a URL, without the password.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.has_host() => {
            let user = if u.username().is_empty() {
                String::new()
            } else {
                format!("{}@", u.username())
            };
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{user}{}{port}{}",
                u.scheme(),
                u.host_str().unwrap_or_default(),
                u.path()
            )
        }
        _ => url.to_string(),
    }
}

/// An open connection to a source, inside its snapshot transaction.
enum Connection {
    Postgres(postgres::PgSource),
    Mysql(mysql::MySource),
    Sqlite(sqlite::LiteSource),
}

impl Connection {
    async fn open(source: &DatabaseSourceConfig, root: &std::path::Path) -> Result<Self, String> {
        let tz = source.timestamp_timezone;
        match source.kind {
            DatabaseKind::Postgres => postgres::PgSource::connect(&source.url, tz)
                .await
                .map(Self::Postgres),
            DatabaseKind::Mysql => mysql::MySource::connect(&source.url, tz)
                .await
                .map(Self::Mysql),
            DatabaseKind::Sqlite => sqlite::LiteSource::open(&source.url, root, tz)
                .await
                .map(Self::Sqlite),
        }
    }

    async fn discover(&mut self, table: &str) -> Result<Discovered, String> {
        match self {
            Self::Postgres(c) => c.discover(table).await,
            Self::Mysql(c) => c.discover(table).await,
            Self::Sqlite(c) => c.discover(table).await,
        }
    }

    async fn read(&mut self, plan: &TablePlan, sink: BatchSink) -> Result<BatchSink, String> {
        match self {
            Self::Postgres(c) => c.read(plan, sink).await,
            Self::Mysql(c) => c.read(plan, sink).await,
            Self::Sqlite(c) => c.read(plan, sink).await,
        }
    }

    /// Mark the start of one table's reads: a server error in it (a bad `where`, no
    /// permission) must not abort the snapshot transaction the next tables read from.
    async fn begin_table(&mut self) -> Result<(), String> {
        match self {
            Self::Postgres(c) => c.savepoint("SAVEPOINT darkroom_table").await,
            Self::Mysql(_) | Self::Sqlite(_) => Ok(()),
        }
    }

    async fn end_table(&mut self, ok: bool) -> Result<(), String> {
        match self {
            Self::Postgres(c) => {
                c.savepoint(if ok {
                    "RELEASE SAVEPOINT darkroom_table"
                } else {
                    "ROLLBACK TO SAVEPOINT darkroom_table"
                })
                .await
            }
            Self::Mysql(_) | Self::Sqlite(_) => Ok(()),
        }
    }

    async fn close(self) {
        match self {
            Self::Postgres(c) => c.close().await,
            Self::Mysql(c) => c.close().await,
            Self::Sqlite(c) => c.close().await,
        }
    }
}

/// Extract the tables of one source into the warehouse.
///
/// A source that cannot be reached is retried with exponential backoff (`retries` times);
/// then the whole source fails with [`ExtractError::Connect`]. Once connected, each table is
/// loaded or fails on its own; the report says which.
pub async fn extract_source(
    warehouse: &Warehouse,
    project_tz: chrono_tz::Tz,
    source: &DatabaseSourceConfig,
    options: &ExtractOptions,
) -> Result<SourceReport, ExtractError> {
    let date = options.date.unwrap_or_else(|| {
        chrono::Utc::now().with_timezone(&project_tz).date_naive() - chrono::Days::new(1)
    });
    let tables: Vec<&TableConfig> = if options.tables.is_empty() {
        source.tables.iter().collect()
    } else {
        let mut picked = Vec::new();
        for wanted in &options.tables {
            let table = source.table(wanted).ok_or_else(|| ExtractError::Source {
                source_name: source.name().to_string(),
                message: format!(
                    "no table `{wanted}` in this source; its tables: {}",
                    source
                        .tables
                        .iter()
                        .map(TableConfig::name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
            picked.push(table);
        }
        picked
    };

    let mut connection = connect_with_retries(source, &options.project_root).await?;
    let snapshot_at = chrono::Utc::now();
    let mut reports = Vec::new();
    for table in tables {
        let started = Instant::now();
        let mut report = TableReport {
            source: source.name().to_string(),
            table: table.name().to_string(),
            warehouse_table: source.raw_table(table),
            mode: match &table.mode {
                TableMode::Full {
                    history: FullHistory::Replace,
                } => "full".into(),
                TableMode::Full {
                    history: FullHistory::Snapshot,
                } => "full (snapshot)".into(),
                TableMode::Incremental { .. } => "incremental".into(),
            },
            status: TableStatus::Failed,
            rows: 0,
            bytes: 0,
            seconds: 0.0,
            table_version: None,
            new_columns: Vec::new(),
            zero_dates: Default::default(),
            watermark: None,
            error: None,
        };
        let counter = Arc::new(AtomicU64::new(0));
        if let Some(f) = &options.on_table {
            f(&report.warehouse_table, Arc::clone(&counter));
        }
        let mut result = connection.begin_table().await;
        if result.is_ok() {
            result = extract_table(
                warehouse,
                &mut connection,
                source,
                table,
                date,
                snapshot_at,
                counter,
                &mut report,
            )
            .await;
            let ended = connection.end_table(result.is_ok()).await;
            if result.is_ok() {
                result = ended;
            }
        }
        report.seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => report.status = TableStatus::Loaded,
            Err(message) => {
                tracing::info!(source = source.name(), table = table.name(), %message, "table failed");
                report.error = Some(message);
            }
        }
        if let Some(f) = &options.on_table_done {
            f(&report);
        }
        reports.push(report);
    }
    connection.close().await;
    Ok(SourceReport {
        source: source.name().to_string(),
        kind: source.kind.name(),
        date,
        snapshot_at: snapshot_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        tables: reports,
    })
}

async fn connect_with_retries(
    source: &DatabaseSourceConfig,
    root: &std::path::Path,
) -> Result<Connection, ExtractError> {
    let attempts = source.retries + 1;
    let mut last = String::new();
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        match Connection::open(source, root).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::info!(source = source.name(), attempt, error = %e, "cannot connect");
                last = e;
            }
        }
    }
    Err(ExtractError::Connect {
        source_name: source.name().to_string(),
        target: redact(&source.url),
        attempts,
        cause: last,
    })
}

/// 0.5 s, 1 s, 2 s, ... capped at 30 s, each with up to 25% jitter.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500).saturating_mul(1 << attempt.min(6).saturating_sub(1));
    let base = base.min(Duration::from_secs(30));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 4000.0);
    base + jitter
}

/// The task id under which a table's load is recorded complete.
fn task_id(source: &str, table: &str, date: Option<NaiveDate>) -> String {
    match date {
        Some(d) => format!("extract/{source}/{table}/{d}"),
        None => format!("extract/{source}/{table}"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn extract_table(
    warehouse: &Warehouse,
    connection: &mut Connection,
    source: &DatabaseSourceConfig,
    table: &TableConfig,
    date: NaiveDate,
    snapshot_at: chrono::DateTime<chrono::Utc>,
    counter: Arc<AtomicU64>,
    report: &mut TableReport,
) -> Result<(), String> {
    let target = source.raw_table(table);
    let discovered = connection.discover(table.name()).await?;
    let existing = warehouse
        .arrow_schema(&target)
        .await
        .map_err(|e| e.to_string())?;
    let incremental = matches!(table.mode, TableMode::Incremental { .. });
    let task = task_id(
        source.name(),
        &table.short_name(),
        (!incremental).then_some(date),
    );
    // an incremental table continues from the watermark its last load recorded
    let previous = if incremental && existing.is_some() {
        warehouse
            .completion(&target, &task)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|c| {
                let TableMode::Incremental { cursor, .. } = &table.mode else {
                    return None;
                };
                Watermark::from_fingerprint(&c.fingerprint, cursor)
            })
    } else {
        None
    };
    let plan = TablePlan::new(
        source,
        table,
        &discovered,
        existing.as_deref(),
        previous.as_ref(),
    )?;
    if !plan.new_columns.is_empty() {
        let fields: Vec<_> = plan
            .new_columns
            .iter()
            .filter_map(|name| {
                plan.schema
                    .field_with_name(name)
                    .ok()
                    .map(|f| f.as_ref().clone())
            })
            .collect();
        warehouse
            .add_columns(&target, &fields)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(table = %target, columns = ?plan.new_columns, "columns added at the source");
        report.new_columns = plan.new_columns.clone();
    }

    let merge = incremental && previous.is_some();
    let write_table = if merge {
        format!("_staging_{target}")
    } else {
        target.clone()
    };
    if merge {
        warehouse
            .drop_table(&write_table)
            .await
            .map_err(|e| e.to_string())?;
    }
    let snapshot = matches!(
        table.mode,
        TableMode::Full {
            history: FullHistory::Snapshot
        }
    );
    let shared = Arc::new(SinkShared::new(counter));
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let err_tx = tx.clone();
    let sink = BatchSink::new(
        &plan,
        source,
        snapshot_at.timestamp_micros(),
        snapshot.then_some(date),
        tx,
        Arc::clone(&shared),
    );
    let input = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    });
    let fingerprint_cell = Arc::new(std::sync::OnceLock::new());
    let write = PartitionWrite {
        table: write_table.clone(),
        partition_columns: if snapshot {
            vec![SNAPSHOT_DATE.to_string()]
        } else {
            Vec::new()
        },
        partition: if snapshot {
            vec![(
                SNAPSHOT_DATE.to_string(),
                ScalarValue::Date32(Some(columns::days_since_epoch(date))),
            )]
        } else {
            Vec::new()
        },
        schema: Arc::clone(&plan.schema),
        input: Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&plan.schema),
            input,
        )),
        task: if merge {
            format!("stage/{task}")
        } else {
            task.clone()
        },
        fingerprint: Fingerprint::Deferred(Arc::clone(&fingerprint_cell)),
        plain_columns: Vec::new(),
    };
    // the writer encodes Parquet on another worker while this task reads and decodes
    let writer = tokio::spawn({
        let warehouse = warehouse.clone();
        async move { warehouse.replace_partition(write).await }
    });
    let reader = async {
        let mut result = connection.read(&plan, sink).await;
        // the last rows go out before the watermark is read off them
        if let Ok(sink) = &mut result
            && let Err(e) = sink.flush().await
        {
            result = Err(e);
        }
        match result {
            Ok(sink) => {
                let watermark = sink.watermark().or(previous.clone());
                let cursor = plan.cursor.map(|i| plan.read[i].name.as_str());
                let fingerprint = plan::fingerprint(
                    snapshot_at,
                    shared.rows(),
                    cursor,
                    watermark.as_ref(),
                    plan.since.as_ref(),
                );
                let _ = fingerprint_cell.set(fingerprint);
                sink.finish().await;
                Ok(watermark)
            }
            Err(e) => {
                // the writer must fail, not commit what was read so far (it would also
                // refuse for want of a fingerprint)
                let _ = err_tx.send(Err(stream_error(&e))).await;
                Err(e)
            }
        }
    };
    let read = reader.await;
    drop(err_tx);
    let written = writer
        .await
        .map_err(|e| format!("the warehouse writer stopped: {e}"))?;
    // the reader's error is the cause, and the writer's then only "input failed" — unless
    // the writer stopped first, when its error is the cause
    let watermark = match (read, &written) {
        (Err(e), Err(w)) if e == writer_gone() => return Err(w.to_string()),
        (read, _) => read?,
    };
    let outcome = written.map_err(|e| e.to_string())?;
    report.rows = shared.rows();
    report.bytes = shared.bytes();
    report.zero_dates = shared.zero_dates();
    report.watermark = watermark.as_ref().map(Watermark::describe);
    report.table_version = Some(outcome.table_version);
    if merge {
        let fingerprint = outcome.completion.fingerprint.clone();
        let merged = warehouse
            .merge_from(
                &target,
                &write_table,
                &plan.key,
                &task,
                fingerprint,
                outcome.rows,
            )
            .await
            .map_err(|e| e.to_string())?;
        report.table_version = Some(merged.table_version);
        warehouse
            .drop_table(&write_table)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Rows that cannot be sent on: the writer stopped (its error is reported).
fn writer_gone() -> String {
    "the warehouse writer stopped".to_string()
}

/// A reader error as a stream error for the writer.
fn stream_error(message: &str) -> DataFusionError {
    DataFusionError::External(message.to_string().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db.example:5432/prod"),
            "postgres://app@db.example:5432/prod"
        );
        assert_eq!(redact("db/app.db"), "db/app.db");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_millis(500));
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(20) <= Duration::from_millis(37_500));
    }
}
