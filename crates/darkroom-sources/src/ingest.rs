//! Ingesting (source, file_date)s: find the files, recognise duplicates, parse every line,
//! and write three tables — `raw_<source>` (parsed rows), `_quarantine_<source>` (lines that did
//! not parse, byte-exact) and `_ingest_ledger` (what was read) — each by replacing exactly the
//! dates ingested. Several dates are ingested as one batch: one pass over their files and one
//! commit per table, which records each date complete on its own.
//!
//! Parsing runs on its own thread and streams batches to the two table writers through bounded
//! channels, so memory stays bounded whatever the file size. A writer only commits after the
//! parser says it reached the end; a parser that stops early (error or panic) makes both writes
//! fail, so a partial day is never committed. The ledger is written last: an ingest is done when
//! its ledger commit exists.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use chrono::NaiveDate;
use darkroom_config::{Project, SourceConfig};
use darkroom_logs::{LineReader, LogParser};
use darkroom_storage::{RangeWrite, Warehouse};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::discover::{FoundFile, PathTemplate};
use crate::files::{LocalFile, ReadHash, checksum_file, localize, open_decoded};
use crate::ledger::{self, Counts, LedgerRecord};
use crate::quarantine::{self, QuarantineBuilder};
use crate::{Result, SourceError, date_to_days, parsers};

const HOUR_US: i64 = 3_600_000_000;
/// Flush quarantined lines once they hold this many bytes.
const QUARANTINE_FLUSH_BYTES: usize = 8 << 20;

/// Shows progress of long work; the CLI draws a bar, tests and `--json` use [`NoProgress`].
pub trait Progress: Send + Sync {
    /// Work on `label` starts; `total` bytes will be counted into the returned counter.
    fn begin(&self, label: &str, total: u64) -> Arc<AtomicU64>;
    fn end(&self);
}

/// Progress that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _label: &str, _total: u64) -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(0))
    }
    fn end(&self) {}
}

/// What an ingest needs.
pub struct IngestContext<'a> {
    pub project: &'a Project,
    pub warehouse: &'a Warehouse,
    /// Object-store options for `s3://` log paths (endpoint, region, credentials).
    pub remote_options: HashMap<String, String>,
    pub progress: Arc<dyn Progress>,
}

/// One file's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub host: String,
    pub path: String,
    pub size: u64,
    pub checksum: String,
    /// `ok`, `empty`, `duplicate` or `error`.
    pub status: String,
    pub detail: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// An expected file that is not there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Missing {
    /// The host, or `None` when the date has no file at all.
    pub host: Option<String>,
    pub expected_path: String,
}

/// The outcome of ingesting one (source, date).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestReport {
    pub source: String,
    pub file_date: NaiveDate,
    /// `ok`; `incomplete` (a host missing, a file unreadable, or every file a duplicate of
    /// one already loaded; the rest was loaded); `missing` (no file at all: nothing was
    /// replaced).
    pub status: String,
    pub files: Vec<FileReport>,
    pub missing: Vec<Missing>,
    pub totals: Counts,
    pub raw_table: String,
    pub raw_version: Option<u64>,
    pub quarantine_table: String,
    pub quarantine_version: Option<u64>,
    pub ledger_version: u64,
    pub fingerprint: String,
    /// Seconds the ingest took: the date's share when it was ingested in a batch of dates.
    pub seconds: f64,
}

impl IngestReport {
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Ingest one date of one source.
pub async fn ingest_date(
    ctx: &IngestContext<'_>,
    source: &SourceConfig,
    date: NaiveDate,
) -> Result<IngestReport> {
    let found = find_files(ctx, &template_of(source), date).await?;
    let mut reports = ingest_batch(ctx, source, vec![(date, found)]).await?;
    reports
        .pop()
        .ok_or_else(|| SourceError::Internal(format!("the ingest of {date} made no report")))
}

/// At most this many dates are ingested in one batch (one commit per table).
const BATCH_DATES: usize = 31;
/// A batch also stops growing once its files hold this many bytes: every date of a batch
/// keeps a Parquet writer open until the batch ends.
const BATCH_BYTES: u64 = 1 << 30;

/// Ingest several dates of one source, as if one at a time in date order, but a batch of
/// dates at once: one pass over their files and one commit per table for the batch, where one
/// date at a time makes three commits per date. `done` gets each date's outcome as its batch
/// ends. A batch that fails is ingested again one date at a time, so an error stops only its
/// own date.
///
/// Within a batch, a file with the bytes of a file of an earlier date is a duplicate of it,
/// and a host with a file on one of the 7 dates before is expected, just as when the earlier
/// dates were ingested first.
pub async fn ingest_dates(
    ctx: &IngestContext<'_>,
    source: &SourceConfig,
    dates: &[NaiveDate],
    mut done: impl FnMut(NaiveDate, Result<IngestReport>),
) {
    let dates: Vec<NaiveDate> = dates
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let template = template_of(source);
    let mut found: Vec<(NaiveDate, Result<Vec<FoundFile>>)> = Vec::new();
    let listed = if template.as_str().starts_with("s3://") {
        None
    } else {
        let (t, root, d) = (template.clone(), ctx.project.root.clone(), dates.clone());
        tokio::task::spawn_blocking(move || crate::discover::find_local_dates(&t, &root, &d))
            .await
            .ok()
            .and_then(Result::ok)
    };
    for &d in &dates {
        match listed.as_ref().and_then(|l| l.get(&d)) {
            Some(files) => found.push((d, Ok(files.clone()))),
            None => found.push((d, find_files(ctx, &template, d).await)),
        }
    }
    let mut batch: Vec<(NaiveDate, Vec<FoundFile>)> = Vec::new();
    let mut bytes = 0u64;
    let mut found = found.into_iter();
    loop {
        let next = found.next();
        let size = match &next {
            Some((_, Ok(files))) => files.iter().map(|f| f.size).sum(),
            _ => 0,
        };
        let full = batch.len() >= BATCH_DATES || (bytes + size > BATCH_BYTES && bytes > 0);
        if !batch.is_empty() && (full || !matches!(next, Some((_, Ok(_))))) {
            ingest_batch_or_each(ctx, source, std::mem::take(&mut batch), &mut done).await;
            bytes = 0;
        }
        match next {
            None => break,
            Some((d, Err(e))) => done(d, Err(e)),
            Some((d, Ok(files))) => {
                bytes += size;
                batch.push((d, files));
            }
        }
    }
}

/// [`ingest_batch`], then one date at a time if the batch fails.
async fn ingest_batch_or_each(
    ctx: &IngestContext<'_>,
    source: &SourceConfig,
    batch: Vec<(NaiveDate, Vec<FoundFile>)>,
    done: &mut impl FnMut(NaiveDate, Result<IngestReport>),
) {
    if batch.len() > 1 {
        match ingest_batch(ctx, source, batch.clone()).await {
            Ok(reports) => {
                for r in reports {
                    done(r.file_date, Ok(r));
                }
                return;
            }
            Err(e) => tracing::warn!(
                "{}: ingesting {} dates at once failed ({e}); one date at a time instead",
                source.name(),
                batch.len()
            ),
        }
    }
    for (d, files) in batch {
        let outcome = ingest_batch(ctx, source, vec![(d, files)])
            .await
            .and_then(|mut r| {
                r.pop().ok_or_else(|| {
                    SourceError::Internal(format!("the ingest of {d} made no report"))
                })
            });
        done(d, outcome);
    }
}

fn template_of(source: &SourceConfig) -> PathTemplate {
    PathTemplate::new(
        source.files.path.get_ref(),
        source.files.date_format.get_ref(),
    )
}

/// One date of a batch while it is ingested.
struct DateWork {
    date: NaiveDate,
    /// The fingerprint of the date's inputs (see [`listing_of`]).
    listing: String,
    found_hosts: BTreeSet<String>,
    no_file: bool,
    /// Reports of the files not parsed (duplicates), then of those parsed.
    reports: Vec<FileReport>,
    /// The files to parse.
    files: Vec<LocalFile>,
}

/// Ingest the dates of `batch` (in date order, each with the files found for it): parse
/// every file once, then replace the dates in `raw_<source>` and `_quarantine_<source>` in
/// one commit each, then in the ledger. Fails as a whole: nothing of a failed batch is
/// recorded complete.
async fn ingest_batch(
    ctx: &IngestContext<'_>,
    source: &SourceConfig,
    batch: Vec<(NaiveDate, Vec<FoundFile>)>,
) -> Result<Vec<IngestReport>> {
    let started = Instant::now();
    let name = source.name().to_string();
    let template = template_of(source);
    let base = fingerprint_base(source, ctx.project);
    let dates: BTreeSet<NaiveDate> = batch.iter().map(|(d, _)| *d).collect();
    let history = ledger::history(ctx.warehouse, &name, &dates).await?;

    // Fetch remote files and recognise duplicates. A duplicate has the size of another file
    // (of this batch, or loaded on another date): only such files are hashed before parsing;
    // the rest are hashed by the reader that parses them. The first delivery (by date, then
    // as listed) is loaded; later ones are duplicates of it.
    let spool = tempfile::tempdir().map_err(|e| SourceError::io(Path::new("<tmp>"), e))?;
    let mut work = Vec::new();
    let mut size_count: BTreeMap<u64, usize> = BTreeMap::new();
    for (date, found) in batch {
        let listing = listing_of(&base, &found);
        let found_hosts = found.iter().map(|f| f.host.clone()).collect();
        let no_file = found.is_empty();
        let mut files = Vec::new();
        for f in found {
            let f = localize(f, spool.path()).await?;
            *size_count.entry(f.size).or_default() += 1;
            files.push(f);
        }
        work.push(DateWork {
            date,
            listing,
            found_hosts,
            no_file,
            reports: Vec::new(),
            files,
        });
    }
    // checksum -> (date, path) of the files of this batch loaded so far.
    let mut seen: BTreeMap<String, (NaiveDate, String)> = BTreeMap::new();
    for w in &mut work {
        let mut keep = Vec::new();
        for mut f in std::mem::take(&mut w.files) {
            let possible_duplicate = f.size > 0
                && (size_count.get(&f.size).is_some_and(|n| *n > 1)
                    || history.sizes.contains(&f.size));
            if !possible_duplicate {
                keep.push(f);
                continue;
            }
            f.checksum_now().await?;
            let checksum = f.checksum.clone().unwrap_or_default();
            let path = f.found.location.display();
            let duplicate_of = seen
                .get(&checksum)
                .or_else(|| history.checksums.get(&checksum))
                .map(|(d, p)| {
                    if *d == w.date {
                        p.clone()
                    } else {
                        format!("{p} (file_date {d})")
                    }
                });
            if let Some(original) = duplicate_of {
                w.reports.push(FileReport {
                    host: f.found.host.clone(),
                    path,
                    size: f.size,
                    checksum,
                    status: "duplicate".into(),
                    detail: Some(format!("same bytes as {original}; not counted again")),
                    counts: Counts::default(),
                });
                continue;
            }
            seen.insert(checksum, (w.date, path));
            keep.push(f);
        }
        w.files = keep;
    }

    // Parse the dates that have files; a date whose every file is a duplicate (or that has
    // none) keeps what its raw and quarantine partitions hold.
    let parse_dates: BTreeSet<NaiveDate> = work
        .iter()
        .filter(|w| !w.files.is_empty())
        .map(|w| w.date)
        .collect();
    let mut versions = None;
    let mut hours = BTreeMap::new();
    if !parse_dates.is_empty() {
        let fingerprints = work
            .iter()
            .filter(|w| parse_dates.contains(&w.date))
            .map(|w| (w.date, w.listing.clone()))
            .collect();
        let files = work
            .iter_mut()
            .flat_map(|w| {
                let date = w.date;
                std::mem::take(&mut w.files)
                    .into_iter()
                    .map(move |f| (date, f))
            })
            .collect();
        let parser = parsers::build_parser(source, ctx.project.timezone())?;
        let (outcome, written) =
            parse_and_write(ctx, source, &parse_dates, fingerprints, parser, files).await?;
        for (date, report) in outcome.files {
            if let Some(w) = work.iter_mut().find(|w| w.date == date) {
                w.reports.push(report);
            }
        }
        hours = outcome.hours;
        versions = Some(written);
    }

    // Expected hosts: configured ones and those with a loaded file in the week before (as
    // the ledger has it, or earlier in this batch).
    let mut loaded = history;
    let mut records = BTreeMap::new();
    let mut missing_of = BTreeMap::new();
    for w in &mut work {
        w.reports
            .sort_by(|a, b| (&a.host, &a.path).cmp(&(&b.host, &b.path)));
        let mut missing = Vec::new();
        if w.no_file {
            missing.push(Missing {
                host: None,
                expected_path: display_pattern(ctx.project, &template, w.date, None),
            });
        }
        let expected: BTreeSet<String> = source
            .files
            .hosts
            .iter()
            .map(String::as_str)
            .chain(loaded.recent_hosts(w.date))
            .map(str::to_string)
            .collect();
        for host in expected.difference(&w.found_hosts) {
            missing.push(Missing {
                host: Some(host.clone()),
                expected_path: display_pattern(ctx.project, &template, w.date, Some(host)),
            });
        }
        for r in w.reports.iter().filter(|r| r.status == "ok") {
            loaded.hosts.insert((w.date, r.host.clone()));
        }
        let date_hours = hours.remove(&w.date).unwrap_or_default();
        records.insert(w.date, build_ledger(&w.reports, &date_hours, &missing));
        missing_of.insert(w.date, missing);
    }
    // The ledger is written last: an ingest is done when its ledger commit exists.
    let fingerprints: BTreeMap<NaiveDate, String> =
        work.iter().map(|w| (w.date, w.listing.clone())).collect();
    let ledger_version = write_ledger(ctx, &name, &fingerprints, &records).await?;
    let seconds = started.elapsed().as_secs_f64() / work.len().max(1) as f64;
    Ok(work
        .into_iter()
        .map(|w| {
            let parsed = versions.filter(|_| parse_dates.contains(&w.date));
            IngestReport::new(
                source,
                w.date,
                w.reports,
                missing_of.remove(&w.date).unwrap_or_default(),
                parsed,
                ledger_version,
                w.listing,
                seconds,
            )
        })
        .collect())
}

impl IngestReport {
    #[allow(clippy::too_many_arguments)]
    fn new(
        source: &SourceConfig,
        date: NaiveDate,
        files: Vec<FileReport>,
        missing: Vec<Missing>,
        versions: Option<(u64, u64)>,
        ledger_version: u64,
        fingerprint: String,
        seconds: f64,
    ) -> Self {
        let mut totals = Counts::default();
        for f in &files {
            totals.merge(&f.counts);
        }
        let status = if files.is_empty() {
            "missing"
        } else if versions.is_none()
            || !missing.is_empty()
            || files.iter().any(|f| f.status == "error")
        {
            "incomplete"
        } else {
            "ok"
        };
        Self {
            source: source.name().to_string(),
            file_date: date,
            status: status.to_string(),
            files,
            missing,
            totals,
            raw_table: source.raw_table(),
            raw_version: versions.map(|v| v.0),
            quarantine_table: source.quarantine_table(),
            quarantine_version: versions.map(|v| v.1),
            ledger_version,
            fingerprint,
            seconds,
        }
    }
}

fn display_pattern(
    project: &Project,
    template: &PathTemplate,
    date: NaiveDate,
    host: Option<&str>,
) -> String {
    let filled = template.fill(date, host);
    if filled.contains("://") || Path::new(&filled).is_absolute() {
        filled
    } else {
        project.root.join(filled).display().to_string()
    }
}

async fn find_files(
    ctx: &IngestContext<'_>,
    template: &PathTemplate,
    date: NaiveDate,
) -> Result<Vec<FoundFile>> {
    let text = template.as_str();
    if let Some(rest) = text.strip_prefix("s3://") {
        let (bucket, key_template) = rest.split_once('/').ok_or_else(|| SourceError::Template {
            template: text.to_string(),
            message: "an s3:// path needs a bucket and a key: s3://bucket/logs/{date}.log".into(),
        })?;
        let store = crate::remote::s3_store(bucket, &ctx.remote_options)?;
        crate::discover::find_remote(
            template,
            store,
            &format!("s3://{bucket}"),
            key_template,
            date,
        )
        .await
    } else {
        crate::discover::find_local(template, &ctx.project.root, date)
    }
}

/// What the fingerprint of an ingest covers besides its files: the code and the settings that
/// decide how lines are read.
fn fingerprint_base(source: &SourceConfig, project: &Project) -> String {
    format!(
        "{}\n{}\n{}\n{}",
        env!("CARGO_PKG_VERSION"),
        source.kind_name(),
        darkroom_config::fingerprint_text(&source.kind),
        project.timezone().name()
    )
}

/// The fingerprint of an ingest, known before any file is read: its base and every file
/// found (host, path, size, last modified). A file that arrives late, grows or is replaced
/// changes it, so the date is no longer done; the files' content checksums are in the
/// ledger.
fn listing_of(base: &str, files: &[FoundFile]) -> String {
    let mut h = Sha256::new();
    h.update(base);
    for f in files {
        h.update(format!(
            "\n{}\t{}\t{}\t{}",
            f.host,
            f.location.display(),
            f.size,
            f.modified.unwrap_or_default()
        ));
    }
    hex::encode(h.finalize())
}

/// The fingerprint an ingest of `source` would record now for each of `dates` (see
/// [`ingest_date`]): what the orchestrator compares with the recorded one to tell whether a
/// date is done. A local source's folders are walked once for all the dates.
pub async fn listing_fingerprints(
    ctx: &IngestContext<'_>,
    source: &SourceConfig,
    dates: &[NaiveDate],
) -> Result<BTreeMap<NaiveDate, String>> {
    let template = PathTemplate::new(
        source.files.path.get_ref(),
        source.files.date_format.get_ref(),
    );
    let base = fingerprint_base(source, ctx.project);
    if template.as_str().starts_with("s3://") {
        let mut out = BTreeMap::new();
        for &d in dates {
            out.insert(d, listing_of(&base, &find_files(ctx, &template, d).await?));
        }
        return Ok(out);
    }
    let root = ctx.project.root.clone();
    let dates = dates.to_vec();
    let found = tokio::task::spawn_blocking(move || {
        crate::discover::find_local_dates(&template, &root, &dates)
    })
    .await
    .map_err(|e| SourceError::Internal(format!("listing files: {e}")))??;
    Ok(found
        .into_iter()
        .map(|(d, files)| (d, listing_of(&base, &files)))
        .collect())
}

/// What the parser thread produced.
struct ParseOutcome {
    /// Each file's report, with its date.
    files: Vec<(NaiveDate, FileReport)>,
    /// date -> (host, UTC hour start in µs or None) -> counts.
    hours: BTreeMap<NaiveDate, HourCounts>,
}

/// (host, UTC hour start in µs or None) -> counts.
type HourCounts = BTreeMap<(String, Option<i64>), Counts>;

enum Msg {
    Batch(RecordBatch),
    Done,
}

/// A stream over a channel that ends cleanly only after `Done`.
fn channel_stream(schema: SchemaRef, rx: mpsc::Receiver<Msg>) -> SendableRecordBatchStream {
    let stream = futures::stream::unfold((rx, false), |(mut rx, finished)| async move {
        if finished {
            return None;
        }
        match rx.recv().await {
            Some(Msg::Batch(b)) => Some((Ok(b), (rx, false))),
            Some(Msg::Done) => None,
            None => Some((
                Err(DataFusionError::Execution(
                    "the log parser stopped before the end of its input; nothing was committed"
                        .into(),
                )),
                (rx, true),
            )),
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// The raw table's schema: the parser's columns, then lineage (`host`, `file`) and the
/// partition column `file_date`. A parsed column that would clash is prefixed with `log_`.
fn raw_schema(parser: &dyn LogParser) -> (SchemaRef, Vec<usize>) {
    let parsed = parser.schema();
    let mut fields: Vec<Field> = parsed
        .fields()
        .iter()
        .map(|f| {
            let name = raw_name(f.name());
            if &name == f.name() {
                f.as_ref().clone()
            } else {
                f.as_ref().clone().with_name(name)
            }
        })
        .collect();
    let ts_index = parsed
        .index_of("event_ts")
        .map_or_else(|_| Vec::new(), |i| vec![i]);
    fields.push(Field::new("host", DataType::Utf8, false));
    fields.push(Field::new("file", DataType::Utf8, false));
    fields.push(Field::new("file_date", DataType::Date32, false));
    (Arc::new(Schema::new(fields)), ts_index)
}

/// The raw table's name for a parsed column: `log_<name>` for one that would clash with a
/// lineage column.
fn raw_name(column: &str) -> String {
    if matches!(column, "host" | "file" | "file_date") {
        format!("log_{column}")
    } else {
        column.to_owned()
    }
}

/// One fingerprint standing for several dates' own.
fn combined(fingerprints: &BTreeMap<NaiveDate, String>) -> String {
    if fingerprints.len() == 1
        && let Some(only) = fingerprints.values().next()
    {
        return only.clone();
    }
    let mut h = Sha256::new();
    for (d, f) in fingerprints {
        h.update(format!("{d}\t{f}\n"));
    }
    hex::encode(h.finalize())
}

/// Parse `files` (in date order) on a thread of their own while the raw and quarantine
/// tables are written from what it sends: each replaces `dates` in one commit. Returns what
/// was parsed and the two table versions.
async fn parse_and_write(
    ctx: &IngestContext<'_>,
    source: &SourceConfig,
    dates: &BTreeSet<NaiveDate>,
    fingerprints: BTreeMap<NaiveDate, String>,
    parser: Box<dyn LogParser>,
    files: Vec<(NaiveDate, LocalFile)>,
) -> Result<(ParseOutcome, (u64, u64))> {
    let (schema, ts_index) = raw_schema(parser.as_ref());
    let free_text: Vec<String> = parser
        .free_text_columns()
        .into_iter()
        .map(|c| raw_name(&c))
        .collect();
    let Some(&ts_col) = ts_index.first() else {
        return Err(SourceError::Internal(
            "parser has no event_ts column".into(),
        ));
    };
    let (raw_tx, raw_rx) = mpsc::channel::<Msg>(2);
    let (q_tx, q_rx) = mpsc::channel::<Msg>(2);
    let total: u64 = files.iter().map(|(_, f)| f.size).sum();
    let label = match (dates.first(), dates.last()) {
        (Some(a), Some(b)) if a != b => format!("{} {a}..{b}", source.name()),
        (Some(a), _) => format!("{} {a}", source.name()),
        _ => source.name().to_string(),
    };
    let counter = ctx.progress.begin(&label, total);

    let producer_schema = Arc::clone(&schema);
    let ip = parsers::post_parse_ip(source)
        .and_then(|(column, masker)| Some((schema.index_of(&column).ok()?, masker)));
    let producer = tokio::task::spawn_blocking(move || {
        let mut p = Producer {
            ip,
            parser,
            schema: producer_schema,
            ts_col,
            raw_tx,
            q_tx,
            hours: BTreeMap::new(),
        };
        // On error `p` is dropped without sending `Done`: both writers then fail rather than
        // commit a partial day.
        p.run(files, &counter).map(|files| ParseOutcome {
            files,
            hours: std::mem::take(&mut p.hours),
        })
    });

    let write =
        |table: String, column: &str, schema: SchemaRef, rx, plain: &str, free| RangeWrite {
            table,
            partition_column: column.into(),
            fixed: Vec::new(),
            dates: dates.clone(),
            input: channel_stream(Arc::clone(&schema), rx),
            schema,
            task_prefix: format!("ingest/{}", source.name()),
            fingerprint: combined(&fingerprints),
            fingerprints: fingerprints.clone(),
            plain_columns: vec![plain.into()],
            free_text_columns: free,
        };
    let raw_write = ctx.warehouse.replace_date_range(write(
        source.raw_table(),
        "file_date",
        Arc::clone(&schema),
        raw_rx,
        "line",
        free_text,
    ));
    let q_write = ctx.warehouse.replace_date_range(write(
        source.quarantine_table(),
        quarantine::PARTITION_COLUMN,
        quarantine::schema(),
        q_rx,
        "raw",
        Vec::new(),
    ));
    let (raw, quarantined, produced) = tokio::join!(raw_write, q_write, producer);
    ctx.progress.end();
    let produced =
        produced.map_err(|e| SourceError::Internal(format!("log parser thread failed: {e}")))?;
    let outcome = produced?;
    let raw = raw?;
    let quarantined = quarantined?;
    Ok((outcome, (raw.table_version, quarantined.table_version)))
}

struct Producer {
    /// A parsed column of client IPs to mask (jsonl `client_ip_field`), and how.
    ip: Option<(usize, darkroom_logs::IpMasker)>,
    parser: Box<dyn LogParser>,
    schema: SchemaRef,
    ts_col: usize,
    raw_tx: mpsc::Sender<Msg>,
    q_tx: mpsc::Sender<Msg>,
    hours: BTreeMap<NaiveDate, HourCounts>,
}

/// Per-file state while parsing.
struct FileState {
    host: String,
    path: String,
    /// The file's date, and as days since the epoch.
    date: NaiveDate,
    days: i32,
    counts: Counts,
    /// Raw length (with terminator) of each parsed row of the pending batch.
    row_bytes: Vec<u64>,
    /// Quarantined lines of the pending batch: (parsed rows before it, raw length).
    pending_quarantine: Vec<(usize, u64)>,
    last_hour: Option<i64>,
    /// The constant lineage columns (`host`, `file`, `file_date`), built once per file at the
    /// largest batch length seen and sliced (without copying) for each batch.
    lineage: Option<[ArrayRef; 3]>,
}

impl Producer {
    /// Parse every file (with its date), then end both inputs.
    fn run(
        &mut self,
        files: Vec<(NaiveDate, LocalFile)>,
        counter: &Arc<AtomicU64>,
    ) -> Result<Vec<(NaiveDate, FileReport)>> {
        let mut reports = Vec::new();
        for (date, f) in files {
            reports.push((date, self.parse_file(date, &f, counter)?));
        }
        self.send_raw(Msg::Done)?;
        self.send_q(Msg::Done)?;
        Ok(reports)
    }

    fn send_raw(&self, msg: Msg) -> Result<()> {
        self.raw_tx
            .blocking_send(msg)
            .map_err(|_| SourceError::Internal("the raw table writer stopped".into()))
    }

    fn send_q(&self, msg: Msg) -> Result<()> {
        self.q_tx
            .blocking_send(msg)
            .map_err(|_| SourceError::Internal("the quarantine writer stopped".into()))
    }

    fn parse_file(
        &mut self,
        date: NaiveDate,
        f: &LocalFile,
        counter: &Arc<AtomicU64>,
    ) -> Result<FileReport> {
        let path = f.found.location.display();
        let days = date_to_days(date);
        let mut state = FileState {
            host: f.found.host.clone(),
            path: path.clone(),
            date,
            days,
            counts: Counts::default(),
            row_bytes: Vec::new(),
            pending_quarantine: Vec::new(),
            last_hour: None,
            lineage: None,
        };
        let mut quarantine = QuarantineBuilder::new(&f.found.host, &path, days);
        let mut error = None;
        let hash = ReadHash::default();
        let reader = open_decoded(&f.local, Arc::clone(counter), hash.clone())?;
        let mut lines = LineReader::new(reader);
        let batch_size = darkroom_logs::DEFAULT_BATCH_SIZE;
        loop {
            match lines.next_line() {
                Ok(Some(line)) => {
                    let len = line.raw.len() as u64 + u64::from(line.terminated);
                    match self.parser.push_line(line.text, line.number) {
                        Ok(()) => state.row_bytes.push(len),
                        Err(e) => {
                            let reason = if line.terminated {
                                e.reason.clone()
                            } else {
                                format!(
                                    "{} (this last line has no newline: the file may have been \
                                     cut while being written)",
                                    e.reason
                                )
                            };
                            quarantine.push(
                                line.number,
                                Some(e.column),
                                e.field.as_deref(),
                                &reason,
                                line.raw,
                            );
                            state.pending_quarantine.push((self.parser.len(), len));
                            if quarantine.buffered_bytes() >= QUARANTINE_FLUSH_BYTES {
                                let batch = quarantine.finish()?;
                                self.send_q(Msg::Batch(batch))?;
                            }
                        }
                    }
                    if self.parser.len() >= batch_size {
                        self.flush(&mut state)?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!(
                        "cannot read past line {}: {e} (corrupt or truncated file?); the {} lines \
                         before were loaded",
                        state.counts.lines
                            + state.row_bytes.len() as u64
                            + state.pending_quarantine.len() as u64,
                        state.counts.lines
                            + state.row_bytes.len() as u64
                            + state.pending_quarantine.len() as u64,
                    ));
                    break;
                }
            }
        }
        self.flush(&mut state)?;
        if !quarantine.is_empty() {
            let batch = quarantine.finish()?;
            self.send_q(Msg::Batch(batch))?;
        }
        let (status, detail) = match error {
            Some(e) => ("error", Some(e)),
            None if state.counts.lines == 0 => ("empty", Some("the file holds no lines".into())),
            None => ("ok", None),
        };
        drop(lines);
        // The reader hashed the file as it went; a file not read to its end (a read error, or
        // one that grew meanwhile) is hashed again in full.
        let checksum = match f
            .checksum
            .clone()
            .or_else(|| hash.checksum_of_whole(f.size))
        {
            Some(c) => c,
            None => checksum_file(&f.local)?.1,
        };
        Ok(FileReport {
            host: state.host,
            path,
            size: f.size,
            checksum,
            status: status.into(),
            detail,
            counts: state.counts,
        })
    }

    fn flush(&mut self, state: &mut FileState) -> Result<()> {
        if self.parser.is_empty() && state.pending_quarantine.is_empty() {
            return Ok(());
        }
        let batch = self.parser.finish_batch()?;
        let n = batch.num_rows();
        let ts = batch
            .column(self.ts_col)
            .as_primitive_opt::<TimestampMicrosecondType>()
            .cloned();
        let mut pending = std::mem::take(&mut state.pending_quarantine)
            .into_iter()
            .peekable();
        let row_bytes = std::mem::take(&mut state.row_bytes);
        // Counted per hour of this batch, then added to the host's hours: one lookup (and one
        // copy of the host name) per hour, not per line.
        let mut hours: BTreeMap<Option<i64>, Counts> = BTreeMap::new();
        for i in 0..=n {
            while let Some(&(before, len)) = pending.peek() {
                if before != i {
                    break;
                }
                pending.next();
                let c = hours.entry(state.last_hour).or_default();
                c.lines += 1;
                c.bytes += len;
                c.quarantined += 1;
                state.counts.lines += 1;
                state.counts.bytes += len;
                state.counts.quarantined += 1;
            }
            if i == n {
                break;
            }
            let t = ts.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i));
            let hour = t.map(|t| t.div_euclid(HOUR_US) * HOUR_US);
            let len = row_bytes.get(i).copied().unwrap_or(0);
            let c = hours.entry(hour).or_default();
            c.lines += 1;
            c.bytes += len;
            c.rows += 1;
            state.counts.lines += 1;
            state.counts.bytes += len;
            state.counts.rows += 1;
            if let Some(t) = t {
                c.add_event(t);
                state.counts.add_event(t);
            }
            state.last_hour = hour.or(state.last_hour);
        }
        let host_hours = self.hours.entry(state.date).or_default();
        for (hour, counts) in hours {
            host_hours
                .entry((state.host.clone(), hour))
                .or_default()
                .merge(&counts);
        }
        if n > 0 {
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            if let Some((index, masker)) = &mut self.ip
                && let Some(column) = columns.get_mut(*index)
            {
                *column = mask_ips(column, masker)?;
            }
            if state.lineage.as_ref().is_none_or(|l| l[0].len() < n) {
                // Built at the first batch's length: later batches of a file are no longer.
                let len = n;
                state.lineage = Some([
                    Arc::new(StringArray::new_repeated(&state.host, len)),
                    Arc::new(StringArray::new_repeated(&state.path, len)),
                    Arc::new(Date32Array::from(vec![state.days; len])),
                ]);
            }
            if let Some(lineage) = &state.lineage {
                columns.extend(lineage.iter().map(|c| c.slice(0, n)));
            }
            let out = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
            self.send_raw(Msg::Batch(out))?;
        }
        Ok(())
    }
}

/// Mask every address of a string column. A value that is not an address becomes NULL: an
/// unmasked value is never written.
fn mask_ips(column: &ArrayRef, masker: &mut darkroom_logs::IpMasker) -> Result<ArrayRef> {
    let text = arrow::compute::cast(column, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let masked: StringArray = text
        .iter()
        .map(|v| {
            v.and_then(|addr| match masker.apply(addr.as_bytes()) {
                Ok(Some(m)) => Some(m.to_string()),
                Ok(None) => Some(addr.to_string()),
                Err(_) => None,
            })
        })
        .collect();
    Ok(arrow::compute::cast(&masked, column.data_type())?)
}

fn build_ledger(
    files: &[FileReport],
    hours: &BTreeMap<(String, Option<i64>), Counts>,
    missing: &[Missing],
) -> Vec<LedgerRecord> {
    let mut records = Vec::new();
    for ((host, hour), counts) in hours {
        records.push(LedgerRecord {
            record: "hour",
            host: Some(host.clone()),
            hour_us: *hour,
            file: None,
            counts: counts.clone(),
            file_size: None,
            checksum: None,
            status: "ok".into(),
            detail: None,
        });
    }
    for f in files {
        records.push(LedgerRecord {
            record: "file",
            host: Some(f.host.clone()),
            hour_us: None,
            file: Some(f.path.clone()),
            counts: f.counts.clone(),
            file_size: Some(f.size),
            checksum: Some(f.checksum.clone()),
            status: f.status.clone(),
            detail: f.detail.clone(),
        });
    }
    for m in missing {
        records.push(LedgerRecord {
            record: "missing",
            host: m.host.clone(),
            hour_us: None,
            file: None,
            counts: Counts::default(),
            file_size: None,
            checksum: None,
            status: "missing".into(),
            detail: Some(format!("no file matching {}", m.expected_path)),
        });
    }
    records
}

/// Replace the ledger rows of every date of `records` in one commit.
async fn write_ledger(
    ctx: &IngestContext<'_>,
    source: &str,
    fingerprints: &BTreeMap<NaiveDate, String>,
    records: &BTreeMap<NaiveDate, Vec<LedgerRecord>>,
) -> Result<u64> {
    let now = chrono::Utc::now().timestamp_micros();
    let batches = records
        .iter()
        .map(|(date, r)| {
            ledger::to_batch(source, *date, now, r).map_err(|e| DataFusionError::External(e.into()))
        })
        .collect::<Vec<_>>();
    let schema = ledger::schema();
    let input: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(&schema),
        futures::stream::iter(batches),
    ));
    let outcome = ctx
        .warehouse
        .replace_date_range(RangeWrite {
            table: ledger::LEDGER_TABLE.into(),
            partition_column: "file_date".into(),
            fixed: vec![("source".into(), ScalarValue::Utf8(Some(source.to_string())))],
            dates: records.keys().copied().collect(),
            schema,
            input,
            task_prefix: format!("ingest/{source}"),
            fingerprint: combined(fingerprints),
            fingerprints: fingerprints.clone(),
            plain_columns: Vec::new(),
            free_text_columns: Vec::new(),
        })
        .await?;
    Ok(outcome.table_version)
}
