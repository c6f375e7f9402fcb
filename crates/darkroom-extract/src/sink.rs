//! Where a reader puts rows: one builder per column, cut into batches of `batch_rows`, sent to
//! the warehouse writer through a bounded channel (so a slow writer slows the reader instead
//! of filling memory).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, StringBuilder, TimestampMicrosecondArray,
};
use arrow::compute::kernels::aggregate::max;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use darkroom_config::DatabaseSourceConfig;
use datafusion::error::DataFusionError;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::Sender;

use crate::columns::{Builder, days_since_epoch};
use crate::plan::{TablePlan, Watermark};
use crate::{stream_error, writer_gone};

/// Counters shared between the reader and whoever reports on it.
#[derive(Debug)]
pub struct SinkShared {
    rows: Arc<AtomicU64>,
    bytes: AtomicU64,
    zero_dates: Mutex<BTreeMap<String, u64>>,
}

impl SinkShared {
    pub fn new(rows: Arc<AtomicU64>) -> Self {
        Self {
            rows,
            bytes: AtomicU64::new(0),
            zero_dates: Mutex::new(BTreeMap::new()),
        }
    }
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    pub fn zero_dates(&self) -> BTreeMap<String, u64> {
        self.zero_dates
            .lock()
            .map(|z| z.clone())
            .unwrap_or_default()
    }
}

type Batch = Result<RecordBatch, DataFusionError>;

/// The builders of one table's load.
pub struct BatchSink {
    pub builders: Vec<Builder>,
    plan: Arc<TablePlan>,
    salt: Option<String>,
    extracted_at: i64,
    snapshot_date: Option<i32>,
    tx: Sender<Batch>,
    shared: Arc<SinkShared>,
    pending: usize,
    bytes: u64,
    zero_dates: Vec<u64>,
    watermark: Option<Watermark>,
}

impl std::fmt::Debug for BatchSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchSink")
            .field("table", &self.plan.table)
            .finish_non_exhaustive()
    }
}

impl BatchSink {
    pub fn new(
        plan: &TablePlan,
        source: &DatabaseSourceConfig,
        extracted_at: i64,
        snapshot_date: Option<NaiveDate>,
        tx: Sender<Batch>,
        shared: Arc<SinkShared>,
    ) -> Self {
        let builders = plan
            .read
            .iter()
            .map(|c| Builder::new(&c.ty, plan.batch_rows))
            .collect();
        Self {
            builders,
            plan: Arc::new(plan.clone()),
            salt: source.hash_salt.clone(),
            extracted_at,
            snapshot_date: snapshot_date.map(days_since_epoch),
            tx,
            shared,
            pending: 0,
            bytes: 0,
            zero_dates: vec![0; plan.read.len()],
            watermark: None,
        }
    }

    pub fn plan(&self) -> &TablePlan {
        &self.plan
    }

    /// Count bytes read from the database.
    pub fn add_bytes(&mut self, n: usize) {
        self.bytes += n as u64;
    }

    /// A MySQL zero date in column `i`, stored as NULL.
    pub fn zero_date(&mut self, i: usize) {
        self.zero_dates[i] += 1;
        self.builders[i].push_null();
    }

    /// One row is complete; true when a batch is full and must be flushed.
    #[must_use]
    pub fn end_row(&mut self) -> bool {
        self.pending += 1;
        self.pending >= self.plan.batch_rows
    }

    /// Send the rows so far to the writer (waiting while it is busy).
    pub async fn flush(&mut self) -> Result<(), String> {
        if self.pending == 0 {
            return Ok(());
        }
        let batch = self.take_batch()?;
        self.tx.send(Ok(batch)).await.map_err(|_| writer_gone())
    }

    /// [`BatchSink::flush`] from a thread outside the async runtime (SQLite).
    pub fn flush_blocking(&mut self) -> Result<(), String> {
        if self.pending == 0 {
            return Ok(());
        }
        let batch = self.take_batch()?;
        self.tx.blocking_send(Ok(batch)).map_err(|_| writer_gone())
    }

    /// The last rows; the stream ends when the sink is dropped.
    pub async fn finish(mut self) {
        if let Err(e) = self.flush().await {
            let _ = self.tx.send(Err(stream_error(&e))).await;
        }
    }

    /// The largest cursor value read.
    pub fn watermark(&self) -> Option<Watermark> {
        self.watermark.clone()
    }

    fn take_batch(&mut self) -> Result<RecordBatch, String> {
        let rows = self.pending;
        let schema = Arc::clone(&self.plan.schema);
        let mut columns: Vec<Option<ArrayRef>> = vec![None; schema.fields().len()];
        for (i, b) in self.builders.iter_mut().enumerate() {
            let array = b.finish();
            if array.len() != rows {
                return Err(format!(
                    "internal error: column `{}` has {} values for {rows} rows",
                    self.plan.read[i].name,
                    array.len()
                ));
            }
            let c = &self.plan.read[i];
            if self.plan.cursor == Some(i) {
                self.watermark = max_watermark(self.watermark.take(), &array);
            }
            let array = if c.hashed {
                hash_column(&array, self.salt.as_deref().unwrap_or_default())
                    .map_err(|e| format!("cannot hash column `{}`: {e}", c.name))?
            } else {
                array
            };
            columns[self.plan.positions[i]] = Some(array);
        }
        columns[self.plan.extracted_at] = Some(Arc::new(
            TimestampMicrosecondArray::from(vec![self.extracted_at; rows]).with_timezone("UTC"),
        ));
        if let (Some(i), Some(d)) = (self.plan.snapshot_date, self.snapshot_date) {
            columns[i] = Some(Arc::new(Date32Array::from(vec![d; rows])));
        }
        // columns of the warehouse table the source no longer sends cannot happen (drift
        // stops the load), so every slot is filled; a gap is an internal error
        let columns: Vec<ArrayRef> = columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                c.ok_or_else(|| {
                    format!(
                        "internal error: no values for column `{}`",
                        schema.field(i).name()
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let batch = RecordBatch::try_new(schema, columns)
            .map_err(|e| format!("internal error building a batch: {e}"))?;
        self.pending = 0;
        self.shared.rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.shared.bytes.fetch_add(self.bytes, Ordering::Relaxed);
        self.bytes = 0;
        if self.zero_dates.iter().any(|z| *z > 0)
            && let Ok(mut z) = self.shared.zero_dates.lock()
        {
            for (i, n) in self.zero_dates.iter_mut().enumerate() {
                if *n > 0 {
                    *z.entry(self.plan.read[i].name.clone()).or_default() += *n;
                    *n = 0;
                }
            }
        }
        Ok(batch)
    }
}

fn max_watermark(current: Option<Watermark>, array: &ArrayRef) -> Option<Watermark> {
    let found = match array.data_type() {
        DataType::Timestamp(..) => array
            .as_primitive_opt::<TimestampMicrosecondType>()
            .and_then(max)
            .map(Watermark::Timestamp),
        DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            cast_with_options(array, &DataType::Int64, &CastOptions::default())
                .ok()
                .and_then(|a| a.as_primitive_opt::<Int64Type>().and_then(max))
                .map(Watermark::Int)
        }
        _ => None,
    };
    match (current, found) {
        (Some(Watermark::Int(a)), Some(Watermark::Int(b))) => Some(Watermark::Int(a.max(b))),
        (Some(Watermark::Timestamp(a)), Some(Watermark::Timestamp(b))) => {
            Some(Watermark::Timestamp(a.max(b)))
        }
        (a, b) => b.or(a),
    }
}

/// Each value's text form, salted and hashed: hex SHA-256 of `salt` + value. NULL stays NULL.
fn hash_column(array: &ArrayRef, salt: &str) -> Result<ArrayRef, String> {
    let text = cast_with_options(array, &DataType::Utf8, &CastOptions::default())
        .map_err(|e| e.to_string())?;
    let text = text.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(text.len(), text.len() * 64);
    for v in text.iter() {
        match v {
            None => out.append_null(),
            Some(v) => {
                let mut h = Sha256::new();
                h.update(salt.as_bytes());
                h.update(v.as_bytes());
                out.append_value(hex::encode(h.finalize()));
            }
        }
    }
    Ok(Arc::new(out.finish()))
}
