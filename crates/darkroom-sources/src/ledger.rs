//! `_ingest_ledger`: what each ingest read, per source, host and UTC hour, and per file.
//!
//! One table, partitioned by `source` and `file_date`; ingesting a (source, date) replaces its
//! rows. `record` says what a row is:
//! - `hour`: lines read, bytes, rows parsed, rows quarantined, first and last event time, for
//!   one host and one UTC hour (by event time; a quarantined line counts in the hour of the
//!   parsed line before it in its file, or in no hour (NULL) if none came before).
//! - `file`: one file's size, BLAKE3 checksum, lines, rows and status (`ok`, `duplicate`, `error`,
//!   `empty`).
//! - `missing`: an expected host (or the whole date) with no file; `detail` holds the path
//!   that was expected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use darkroom_storage::Warehouse;

use crate::Result;

pub const LEDGER_TABLE: &str = "_ingest_ledger";

/// The ledger's partition columns.
pub fn partition_columns() -> Vec<String> {
    vec!["source".into(), "file_date".into()]
}

pub fn schema() -> SchemaRef {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("record", DataType::Utf8, false),
        Field::new("host", DataType::Utf8, true),
        Field::new("hour", ts(), true),
        Field::new("file", DataType::Utf8, true),
        Field::new("lines", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("quarantined", DataType::Int64, false),
        Field::new("first_event_ts", ts(), true),
        Field::new("last_event_ts", ts(), true),
        Field::new("file_size", DataType::Int64, true),
        Field::new("checksum", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, true),
        Field::new("ingested_at", ts(), false),
        Field::new("source", DataType::Utf8, false),
        Field::new("file_date", DataType::Date32, false),
    ]))
}

/// Counters for one host and hour, or one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub lines: u64,
    pub bytes: u64,
    pub rows: u64,
    pub quarantined: u64,
    pub first_event_us: Option<i64>,
    pub last_event_us: Option<i64>,
}

impl Counts {
    pub fn add_event(&mut self, ts: i64) {
        self.first_event_us = Some(self.first_event_us.map_or(ts, |f| f.min(ts)));
        self.last_event_us = Some(self.last_event_us.map_or(ts, |l| l.max(ts)));
    }
    pub fn merge(&mut self, other: &Counts) {
        self.lines += other.lines;
        self.bytes += other.bytes;
        self.rows += other.rows;
        self.quarantined += other.quarantined;
        if let Some(f) = other.first_event_us {
            self.add_event(f);
        }
        if let Some(l) = other.last_event_us {
            self.add_event(l);
        }
    }
}

/// One ledger row before it becomes Arrow.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LedgerRecord {
    pub record: &'static str,
    pub host: Option<String>,
    pub hour_us: Option<i64>,
    pub file: Option<String>,
    pub counts: Counts,
    pub file_size: Option<u64>,
    pub checksum: Option<String>,
    pub status: String,
    pub detail: Option<String>,
}

/// Build the ledger batch for one (source, file_date).
pub fn to_batch(
    source: &str,
    file_date: NaiveDate,
    ingested_at_us: i64,
    records: &[LedgerRecord],
) -> Result<RecordBatch> {
    let n = records.len();
    let s = |f: &dyn Fn(&LedgerRecord) -> Option<String>| -> ArrayRef {
        Arc::new(records.iter().map(f).collect::<StringArray>())
    };
    let i = |f: &dyn Fn(&LedgerRecord) -> Option<i64>| -> ArrayRef {
        Arc::new(records.iter().map(f).collect::<Int64Array>())
    };
    let ts = |f: &dyn Fn(&LedgerRecord) -> Option<i64>| -> ArrayRef {
        Arc::new(
            records
                .iter()
                .map(f)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let days = crate::date_to_days(file_date);
    let columns: Vec<ArrayRef> = vec![
        s(&|r| Some(r.record.to_string())),
        s(&|r| r.host.clone()),
        ts(&|r| r.hour_us),
        s(&|r| r.file.clone()),
        i(&|r| Some(r.counts.lines as i64)),
        i(&|r| Some(r.counts.bytes as i64)),
        i(&|r| Some(r.counts.rows as i64)),
        i(&|r| Some(r.counts.quarantined as i64)),
        ts(&|r| r.counts.first_event_us),
        ts(&|r| r.counts.last_event_us),
        i(&|r| r.file_size.map(|v| v as i64)),
        s(&|r| r.checksum.clone()),
        s(&|r| Some(r.status.clone())),
        s(&|r| r.detail.clone()),
        ts(&|_| Some(ingested_at_us)),
        Arc::new(StringArray::from(vec![source; n])),
        Arc::new(Date32Array::from(vec![days; n])),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// What earlier ingests recorded that this one needs: file checksums of other dates (to
/// recognise a file delivered twice) and the hosts seen on each date (to notice one missing).
#[derive(Debug, Default)]
pub struct History {
    /// checksum -> (file_date, path) of an `ok` file on another date.
    pub checksums: BTreeMap<String, (NaiveDate, String)>,
    /// Sizes of those files: a file of another size cannot be one of them.
    pub sizes: BTreeSet<u64>,
    /// (file_date, host) of every `ok` file on another date.
    pub hosts: BTreeSet<(NaiveDate, String)>,
}

/// How many dates back a host counts as expected: one with an `ok` file in the 7 dates
/// before a date is reported missing on that date when it has no file.
pub const RECENT_DAYS: u64 = 7;

impl History {
    /// Hosts with an `ok` file in the [`RECENT_DAYS`] dates before `date`.
    pub fn recent_hosts(&self, date: NaiveDate) -> BTreeSet<&str> {
        let from = date - chrono::Days::new(RECENT_DAYS);
        self.hosts
            .iter()
            .filter(|(d, _)| *d >= from && *d < date)
            .map(|(_, h)| h.as_str())
            .collect()
    }
}

/// Read the ledger history of a source, leaving out `dates` (those being ingested again).
pub async fn history(
    warehouse: &Warehouse,
    source: &str,
    dates: &BTreeSet<NaiveDate>,
) -> Result<History> {
    let mut out = History::default();
    if warehouse.table(LEDGER_TABLE).await?.is_none() {
        return Ok(out);
    }
    let ctx = warehouse.session().await?;
    let source_sql = source.replace('\'', "''");
    let others = if dates.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = dates.iter().map(|d| format!("DATE '{d}'")).collect();
        format!("AND file_date NOT IN ({})", list.join(", "))
    };
    let sql = format!(
        "SELECT checksum, CAST(file_date AS VARCHAR) AS d, file, host, file_size \
         FROM {LEDGER_TABLE} \
         WHERE source = '{source_sql}' AND record = 'file' AND status = 'ok' {others}"
    );
    let result = darkroom_storage::run_sql(&ctx, &sql).await?;
    for batch in &result.batches {
        use arrow::array::{Array, AsArray};
        // Strings may come back as Utf8View; read every column as plain Utf8.
        let text = |i: usize| -> Result<StringArray> {
            let cast = arrow::compute::cast(batch.column(i), &DataType::Utf8)?;
            Ok(cast.as_string::<i32>().clone())
        };
        let (checksum, day, file, host) = (text(0)?, text(1)?, text(2)?, text(3)?);
        let size = arrow::compute::cast(batch.column(4), &DataType::Int64)?;
        let size = size.as_primitive::<arrow::datatypes::Int64Type>();
        for row in 0..batch.num_rows() {
            let Ok(d) = day.value(row).parse::<NaiveDate>() else {
                continue;
            };
            if !checksum.is_null(row) {
                out.checksums
                    .entry(checksum.value(row).to_string())
                    .or_insert((d, file.value(row).to_string()));
            }
            if size.is_valid(row) {
                out.sizes.insert(size.value(row).unsigned_abs());
            }
            if host.is_valid(row) {
                out.hosts.insert((d, host.value(row).to_string()));
            }
        }
    }
    Ok(out)
}
