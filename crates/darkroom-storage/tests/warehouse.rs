//! The warehouse API on a real local Delta location.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow::array::{Date32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use darkroom_storage::{PartitionWrite, RangeWrite, StorageSettings, Warehouse};
use datafusion::common::ScalarValue;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("event_date", DataType::Date32, false),
    ]))
}

fn write(table: &str, day: i32, ids: std::ops::Range<i64>, fingerprint: &str) -> PartitionWrite {
    let n = (ids.end - ids.start) as usize;
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(vec![Some("x"); n])),
            Arc::new(Date32Array::from(vec![day; n])),
        ],
    )
    .unwrap();
    PartitionWrite {
        table: table.into(),
        partition_columns: vec!["event_date".into()],
        partition: vec![("event_date".into(), ScalarValue::Date32(Some(day)))],
        schema: schema(),
        input: Box::pin(RecordBatchStreamAdapter::new(
            schema(),
            futures::stream::iter(vec![Ok(batch)]),
        )),
        task: format!("test/{table}/{day}"),
        fingerprint: fingerprint.into(),
        plain_columns: vec!["name".into()],
    }
}

async fn count(w: &Warehouse, sql: &str) -> i64 {
    let r = w.query(sql).await.unwrap();
    let col = r.batches[0].column(0);
    col.as_any().downcast_ref::<Int64Array>().unwrap().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_replaced_exactly_and_completion_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    assert!(w.table("fct_x").await.unwrap().is_none());
    assert!(
        w.completion("fct_x", "test/fct_x/100")
            .await
            .unwrap()
            .is_none()
    );

    let a = w
        .replace_partition(write("fct_x", 100, 0..10, "fp-a"))
        .await
        .unwrap();
    assert_eq!(a.rows, 10);
    assert_eq!(a.completion.txn_version, 1);
    w.replace_partition(write("fct_x", 101, 0..5, "fp-b"))
        .await
        .unwrap();
    // the shared session sees new versions after each write
    assert_eq!(count(&w, "SELECT count(*) FROM fct_x").await, 15);

    // Same partition again, other rows: replaced, not appended; the other day untouched.
    let again = w
        .replace_partition(write("fct_x", 100, 50..57, "fp-c"))
        .await
        .unwrap();
    assert_eq!(again.completion.txn_version, 2);
    assert_eq!(count(&w, "SELECT count(*) FROM fct_x").await, 12);
    assert_eq!(
        count(
            &w,
            "SELECT min(id) FROM fct_x WHERE event_date = DATE '1970-04-11'"
        )
        .await,
        50
    );

    // The completion is read back from the commit that wrote it.
    let done = w
        .completion("fct_x", "test/fct_x/100")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.fingerprint, "fp-c");
    assert_eq!(done.txn_version, 2);
    assert_eq!(done.table_version, again.table_version);
    let other = w
        .completion("fct_x", "test/fct_x/101")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.fingerprint, "fp-b");

    // Tables are listed and described from their logs.
    assert_eq!(w.list_tables().await.unwrap(), ["fct_x"]);
    let info = w.table_info("fct_x").await.unwrap().unwrap();
    assert_eq!(info.rows, 12);
    assert_eq!(info.partitions, 2);
    assert_eq!(info.partition_columns, ["event_date"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_outside_the_partition_are_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    w.replace_partition(write("t", 100, 0..3, "a"))
        .await
        .unwrap();
    let mut bad = write("t", 101, 0..3, "b");
    // claims to replace day 100 but holds rows of day 101
    bad.partition = vec![("event_date".into(), ScalarValue::Date32(Some(100)))];
    bad.task = "test/t/100".into();
    let err = w.replace_partition(bad).await.unwrap_err().to_string();
    assert!(
        err.contains("event_date = 1970-04-12") && err.contains("outside the partition"),
        "{err}"
    );
    assert_eq!(count(&w, "SELECT count(*) FROM t").await, 3);
    let mut wrong_column = write("t", 100, 0..3, "c");
    wrong_column.partition = vec![("id".into(), ScalarValue::Int64(Some(1)))];
    assert!(w.replace_partition(wrong_column).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_with_other_columns_is_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    w.replace_partition(write("t", 100, 0..3, "a"))
        .await
        .unwrap();
    let other = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("extra", DataType::Int64, true),
        Field::new("event_date", DataType::Date32, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&other),
        vec![
            Arc::new(StringArray::from(vec!["1"])),
            Arc::new(Int64Array::from(vec![Some(1)])),
            Arc::new(Date32Array::from(vec![100])),
        ],
    )
    .unwrap();
    let mut changed = write("t", 100, 0..3, "b");
    changed.schema = Arc::clone(&other);
    changed.input = Box::pin(RecordBatchStreamAdapter::new(
        other,
        futures::stream::iter(vec![Ok(batch)]),
    ));
    let err = w.replace_partition(changed).await.unwrap_err().to_string();
    assert!(
        err.contains("column `id` is long in the table but string"),
        "{err}"
    );
    assert!(err.contains("column `name` (string) is missing"), "{err}");
    assert!(
        err.contains("column `extra` (long) is not in the table"),
        "{err}"
    );
    assert_eq!(count(&w, "SELECT count(*) FROM t").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_columns_have_no_dictionary_and_no_statistics() {
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    w.replace_partition(write("t", 100, 0..1000, "a"))
        .await
        .unwrap();
    let partition = dir.path().join("t").join("event_date=1970-04-11");
    let file = std::fs::read_dir(&partition)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .expect("a data file in the partition folder");
    let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let group = reader.metadata().row_group(0);
    let column = |name: &str| {
        (0..group.num_columns())
            .map(|i| group.column(i))
            .find(|c| c.column_path().string() == name)
            .unwrap()
    };
    // `name` was declared plain; `id` keeps the defaults
    let name = column("name");
    assert!(
        !name.encodings().any(|e| e == Encoding::RLE_DICTIONARY),
        "{name:?}"
    );
    assert!(name.statistics().is_none(), "{name:?}");
    let id = column("id");
    assert!(id.statistics().is_some_and(|s| s.min_bytes_opt().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_fingerprint_is_recorded_and_an_unset_one_commits_nothing() {
    use darkroom_storage::Fingerprint;
    use std::sync::OnceLock;

    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    w.replace_partition(write("t", 100, 0..3, "a"))
        .await
        .unwrap();

    // never set: the write fails, the old partition stays
    let mut unset = write("t", 100, 0..5, "ignored");
    unset.fingerprint = Fingerprint::Deferred(Arc::new(OnceLock::new()));
    let err = w.replace_partition(unset).await.unwrap_err().to_string();
    assert!(err.contains("fingerprint"), "{err}");
    assert_eq!(count(&w, "SELECT count(*) FROM t").await, 3);

    // set by the input's producer before the input ends
    let cell = Arc::new(OnceLock::new());
    let mut deferred = write("t", 100, 0..5, "ignored");
    let setter = Arc::clone(&cell);
    let input = std::mem::replace(
        &mut deferred.input,
        Box::pin(RecordBatchStreamAdapter::new(
            schema(),
            futures::stream::empty(),
        )),
    );
    deferred.input = Box::pin(RecordBatchStreamAdapter::new(
        schema(),
        futures::StreamExt::chain(
            input,
            futures::stream::poll_fn(move |_| {
                let _ = setter.set("late".to_string());
                std::task::Poll::Ready(None)
            }),
        ),
    ));
    deferred.fingerprint = Fingerprint::Deferred(cell);
    let outcome = w.replace_partition(deferred).await.unwrap();
    assert_eq!(outcome.completion.fingerprint, "late");
    let recorded = w.completion("t", "test/t/100").await.unwrap().unwrap();
    assert_eq!(recorded.fingerprint, "late");
    assert_eq!(count(&w, "SELECT count(*) FROM t").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_table_deletes_only_that_table() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    w.replace_partition(write("keep", 100, 0..10, "fp"))
        .await
        .unwrap();
    w.replace_partition(write("_staging_x", 100, 0..5, "fp"))
        .await
        .unwrap();
    w.drop_table("_staging_x").await.unwrap();
    assert!(w.table("_staging_x").await.unwrap().is_none());
    assert_eq!(w.list_tables().await.unwrap(), vec!["keep"]);
    assert_eq!(count(&w, "SELECT count(*) FROM keep").await, 10);
    for bad in ["", "../keep", "a/b", "."] {
        assert!(w.drop_table(bad).await.is_err(), "{bad:?} refused");
    }
    assert_eq!(count(&w, "SELECT count(*) FROM keep").await, 10);
    w.drop_table("never_existed").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_compacts_and_never_removes_a_file_a_kept_snapshot_needs() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    // three small files in one partition's history, a snapshot published at version 2
    w.replace_partition(write("fct_m", 1, 0..10, "a"))
        .await
        .unwrap();
    w.replace_partition(write("fct_m", 2, 10..20, "b"))
        .await
        .unwrap();
    let night = chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
    let tables = std::collections::BTreeMap::from([("fct_m".to_string(), 2u64)]);
    let snapshot = w
        .publish(night, &tables, &[], "publish/2026-01-02", "fp")
        .await
        .unwrap();
    assert_eq!(w.snapshots(5).await.unwrap(), vec![snapshot.clone()]);
    // the next night replaces day 2 (its old file is now only needed by the snapshot)
    w.replace_partition(write("fct_m", 2, 100..105, "c"))
        .await
        .unwrap();
    w.replace_partition(write("fct_m", 3, 200..201, "d"))
        .await
        .unwrap();
    // a sum reads the files (a count may be answered from the log's statistics)
    let pinned_count = |ctx: datafusion::prelude::SessionContext| async move {
        let r = darkroom_storage::run_sql(&ctx, "SELECT sum(id) FROM fct_m")
            .await
            .unwrap();
        r.batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    };
    assert_eq!(
        pinned_count(w.pinned_session(&snapshot).await.unwrap()).await,
        190
    );

    let report = w
        .maintain("fct_m", &[2], std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.files_vacuumed, 0, "version 2 is kept: {report:?}");
    // readers of the latest version and of the kept snapshot both still read everything
    assert_eq!(count(&w, "SELECT sum(id) FROM fct_m").await, 755);
    assert_eq!(
        pinned_count(w.pinned_session(&snapshot).await.unwrap()).await,
        190
    );
    // the completions survive maintenance
    assert_eq!(
        w.completion("fct_m", "test/fct_m/2")
            .await
            .unwrap()
            .unwrap()
            .fingerprint,
        "c"
    );

    // once no snapshot keeps version 2, its files go
    let report = w
        .maintain("fct_m", &[], std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.files_vacuumed, 1, "{report:?}");
    assert!(
        w.pinned_session(&snapshot).await.is_err() || {
            let ctx = w.pinned_session(&snapshot).await.unwrap();
            darkroom_storage::run_sql(&ctx, "SELECT sum(id) FROM fct_m")
                .await
                .is_err()
        }
    );
    assert_eq!(count(&w, "SELECT sum(id) FROM fct_m").await, 755);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_compacts_the_small_files_merges_leave() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    let whole = |table: &str, ids: std::ops::Range<i64>| {
        let mut p = write(table, 1, ids, "x");
        p.partition_columns = vec![];
        p.partition = vec![];
        p
    };
    w.replace_table(whole("dim_k", 0..10)).await.unwrap();
    for (k, ids) in [(1, 10..20), (2, 20..30), (3, 30..40)] {
        let staging = format!("_staging_{k}");
        w.replace_table(whole(&staging, ids)).await.unwrap();
        w.merge_from(
            "dim_k",
            &staging,
            &["id".into()],
            "test/dim_k",
            format!("m{k}"),
            10,
        )
        .await
        .unwrap();
    }
    let before = w.table_info("dim_k").await.unwrap().unwrap();
    assert!(before.files >= 4, "{before:?}");
    let report = w
        .maintain("dim_k", &[], std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(report.files_compacted, before.files, "{report:?}");
    assert_eq!(report.files_added, 1);
    // within the retention period nothing is deleted: readers of older versions go on
    assert_eq!(report.files_vacuumed, 0);
    let after = w.table_info("dim_k").await.unwrap().unwrap();
    assert_eq!((after.files, after.rows), (1, 40));
    assert_eq!(count(&w, "SELECT count(DISTINCT id) FROM dim_k").await, 40);
    let done = w.completion("dim_k", "test/dim_k").await.unwrap().unwrap();
    assert_eq!(done.fingerprint, "m3");
}

/// Rows of (source, day) for a table partitioned by `source` then `event_date`.
fn sourced(rows: &[(&str, i32, i64)]) -> (SchemaRef, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("event_date", DataType::Date32, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .unwrap();
    (schema, batch)
}

fn dated_write(source: &str, dates: &[i32], rows: &[(&str, i32, i64)]) -> RangeWrite {
    let (schema, batch) = sourced(rows);
    let day = |d: i32| chrono::NaiveDate::from_num_days_from_ce_opt(719_163 + d).unwrap();
    RangeWrite {
        table: "ledger".into(),
        partition_column: "event_date".into(),
        fixed: vec![("source".into(), ScalarValue::Utf8(Some(source.into())))],
        dates: dates.iter().map(|d| day(*d)).collect(),
        input: Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            futures::stream::iter(vec![Ok(batch)]),
        )),
        schema,
        task_prefix: format!("ingest/{source}"),
        fingerprint: "all".into(),
        fingerprints: dates
            .iter()
            .map(|d| (day(*d), format!("fp-{source}-{d}")))
            .collect(),
        plain_columns: Vec::new(),
        free_text_columns: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_of_dates_with_a_fixed_value_replaces_exactly_those_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    // web on days 100..=103 and api on day 101, in two commits
    let first = w
        .replace_date_range(dated_write(
            "web",
            &[100, 101, 102, 103],
            &[
                ("web", 100, 1),
                ("web", 101, 2),
                ("web", 102, 3),
                ("web", 103, 4),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(first.rows, 4);
    w.replace_date_range(dated_write("api", &[101], &[("api", 101, 9)]))
        .await
        .unwrap();

    // web days 100 and 103 (not contiguous) again: 100 gets new rows, 103 none; 101 and 102
    // and api's 101 keep theirs.
    let again = w
        .replace_date_range(dated_write(
            "web",
            &[100, 103],
            &[("web", 100, 10), ("web", 100, 11)],
        ))
        .await
        .unwrap();
    let ids = |sql: &str| {
        let w = w.clone();
        let sql = sql.to_string();
        async move {
            let r = w.query(&sql).await.unwrap();
            let mut out = Vec::new();
            for b in &r.batches {
                let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                out.extend(c.values().iter().copied());
            }
            out
        }
    };
    assert_eq!(
        ids("SELECT id FROM ledger ORDER BY id").await,
        [2, 3, 9, 10, 11]
    );
    // each date is complete on its own, with its own fingerprint; day 101 still by the first
    let done = |task: &'static str| {
        let w = w.clone();
        async move { w.completion("ledger", task).await.unwrap().unwrap() }
    };
    let d100 = done("ingest/web/1970-04-11").await;
    assert_eq!(d100.fingerprint, "fp-web-100");
    assert_eq!(d100.table_version, again.table_version);
    let d101 = done("ingest/web/1970-04-12").await;
    assert_eq!(d101.table_version, first.table_version);
    assert_eq!(d101.fingerprint, "fp-web-101");
    assert_eq!(
        done("ingest/api/1970-04-12").await.fingerprint,
        "fp-api-101"
    );

    // A row of another date, or of another fixed value, commits nothing.
    let err = w
        .replace_date_range(dated_write(
            "web",
            &[100, 103],
            &[("web", 100, 20), ("web", 101, 21)],
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("event_date = 1970-04-12")
            && err.contains("2 dates from 1970-04-11 to 1970-04-14"),
        "{err}"
    );
    let err = w
        .replace_date_range(dated_write("web", &[100], &[("api", 100, 30)]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("source = api") && err.contains("source = web"),
        "{err}"
    );
    assert_eq!(
        ids("SELECT id FROM ledger ORDER BY id").await,
        [2, 3, 9, 10, 11]
    );
    // no date at all is refused too
    assert!(
        w.replace_date_range(dated_write("web", &[], &[]))
            .await
            .is_err()
    );
}

/// The Parquet column chunks of `column` in the data files under `folder`.
fn chunks(
    folder: &std::path::Path,
    column: &str,
) -> Vec<parquet::file::metadata::ColumnChunkMetaData> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut out = Vec::new();
    for file in std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
    {
        if file.extension().is_none_or(|x| x != "parquet") {
            continue;
        }
        let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
        for group in reader.metadata().row_groups() {
            out.extend(
                group
                    .columns()
                    .iter()
                    .filter(|c| c.column_path().string() == column)
                    .cloned(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_write_sends_each_date_to_its_files_and_free_text_gets_no_statistics() {
    use parquet::basic::Encoding;

    let dir = tempfile::tempdir().unwrap();
    let w = Warehouse::open(StorageSettings::local(dir.path())).unwrap();
    // an ingest's batches: each of one date, the dates one after the other; then a batch of
    // two dates (a model computing several at once)
    let batches = [
        sourced(&[("web", 100, 1), ("web", 100, 2)]).1,
        sourced(&[("web", 101, 3)]).1,
        sourced(&[("web", 102, 4), ("web", 100, 5), ("web", 102, 6)]).1,
    ];
    let mut write = dated_write("web", &[100, 101, 102], &[]);
    write.input = Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(&write.schema),
        futures::stream::iter(batches.into_iter().map(Ok)),
    ));
    // names that are no column of the files are ignored
    write.free_text_columns = vec!["source".into(), "missing".into()];
    let out = w.replace_date_range(write).await.unwrap();
    assert_eq!(out.rows, 6);
    let per_day = |day: &str| {
        let w = w.clone();
        let sql = format!("SELECT id FROM ledger WHERE event_date = DATE '{day}' ORDER BY id");
        async move {
            let r = w.query(&sql).await.unwrap();
            let mut ids = Vec::new();
            for b in &r.batches {
                let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                ids.extend(c.values().iter().copied());
            }
            ids
        }
    };
    assert_eq!(per_day("1970-04-11").await, [1, 2, 5]);
    assert_eq!(per_day("1970-04-12").await, [3]);
    assert_eq!(per_day("1970-04-13").await, [4, 6]);
    // `source` is a partition column here: its values are in the folder names, not the
    // files; `id` keeps its statistics
    let folder = dir
        .path()
        .join("ledger")
        .join("source=web")
        .join("event_date=1970-04-11");
    let ids = chunks(&folder, "id");
    assert!(!ids.is_empty());
    assert!(
        ids.iter()
            .all(|c| c.statistics().is_some_and(|s| s.min_bytes_opt().is_some()))
    );
    assert!(chunks(&folder, "source").is_empty());

    // a free-text column of a table's files: a dictionary, no statistics
    let (schema, _) = sourced(&[]);
    let schema = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .chain([Field::new("agent", DataType::Utf8, false)])
            .collect::<Vec<_>>(),
    ));
    let (_, rows) = sourced(&[("web", 100, 7), ("web", 100, 8)]);
    let mut columns = rows.columns().to_vec();
    columns.push(Arc::new(StringArray::from(vec!["curl/8", "curl/8"])));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    let mut agents = dated_write("web", &[100], &[]);
    agents.table = "agents".into();
    agents.schema = Arc::clone(&schema);
    agents.input = Box::pin(RecordBatchStreamAdapter::new(
        Arc::clone(&schema),
        futures::stream::iter(vec![Ok(batch)]),
    ));
    agents.free_text_columns = vec!["agent".into()];
    w.replace_date_range(agents).await.unwrap();
    let folder = dir
        .path()
        .join("agents")
        .join("source=web")
        .join("event_date=1970-04-11");
    let agent = chunks(&folder, "agent");
    assert_eq!(agent.len(), 1);
    assert!(agent[0].statistics().is_none(), "{:?}", agent[0]);
    assert!(
        agent[0].encodings().any(|e| e == Encoding::RLE_DICTIONARY),
        "{:?}",
        agent[0]
    );
}
