//! Changing a table in place: adding columns (schema evolution) and merging rows on a key.
//!
//! Both are single Delta commits. Adding a column only changes the table's metadata: no data
//! file is read or rewritten, and rows written before read the new column as NULL. A merge
//! rewrites only the files holding matched rows, and records the task's application
//! transaction and fingerprint in the same commit, like a partition write.

use datafusion::arrow::datatypes::{Field, SchemaRef};
use datafusion::logical_expr::{Expr, col};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructField, Transaction};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use serde_json::json;

use crate::write::{Completion, WriteOutcome, app_id, writer_properties};
use crate::{Result, StorageError, Warehouse, failpoint};

impl Warehouse {
    /// The Arrow schema of a table, or `None` when it does not exist.
    pub async fn arrow_schema(&self, name: &str) -> Result<Option<SchemaRef>> {
        let Some(table) = self.table(name).await? else {
            return Ok(None);
        };
        let state = table.snapshot().map_err(|e| StorageError::delta(name, e))?;
        Ok(Some(state.snapshot().arrow_schema()))
    }

    /// Delete a table and every file under it (for scratch tables such as a merge's staged
    /// rows). Nothing happens when it does not exist.
    pub async fn drop_table(&self, name: &str) -> Result<()> {
        // the table's own folder only: an empty or nested name could reach the warehouse root
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(StorageError::InvalidWrite {
                table: name.to_string(),
                message: "not a table name; nothing was deleted".into(),
            });
        }
        let lock = self.write_lock(name);
        let _writing = lock.lock().await;
        let handle = self.table_handle(name)?;
        let store = handle.object_store();
        let paths: Vec<_> = store
            .list(None)
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|e| StorageError::ObjectStore {
                location: name.to_string(),
                source: e,
            })?;
        for path in paths {
            store
                .delete(&path)
                .await
                .map_err(|e| StorageError::ObjectStore {
                    location: format!("{name}/{path}"),
                    source: e,
                })?;
        }
        self.opened.lock().await.remove(name);
        if let Some(ctx) = self.shared.lock().await.as_ref() {
            let _ = ctx.deregister_table(name);
        }
        Ok(())
    }

    /// Add nullable columns at the end of a table, in one metadata-only commit.
    pub async fn add_columns(&self, name: &str, fields: &[Field]) -> Result<u64> {
        let lock = self.write_lock(name);
        let _writing = lock.lock().await;
        let table = self
            .table(name)
            .await?
            .ok_or_else(|| StorageError::InvalidWrite {
                table: name.to_string(),
                message: "cannot add columns: the table does not exist".into(),
            })?;
        let mut kernel_fields = Vec::with_capacity(fields.len());
        for f in fields {
            let nullable = f.clone().with_nullable(true);
            let field: StructField =
                (&nullable)
                    .try_into_kernel()
                    .map_err(|e| StorageError::InvalidWrite {
                        table: name.to_string(),
                        message: format!("column `{}` has a type Delta cannot hold: {e}", f.name()),
                    })?;
            kernel_fields.push(field);
        }
        let table = table
            .add_columns()
            .with_fields(kernel_fields)
            .await
            .map_err(|e| StorageError::delta(name, e))?;
        let version = table.version().unwrap_or_default();
        self.refresh_shared(name).await?;
        Ok(version)
    }

    /// Upsert the rows of table `staging` into table `target` on `key`: a target row whose key
    /// matches is replaced by the staged row, a staged row with a new key is inserted. One
    /// commit, which also records `task` complete with `fingerprint` and `rows` (the staged
    /// rows, known to whoever staged them).
    ///
    /// Both tables must have the same columns; the staged rows must be unique on `key`.
    pub async fn merge_from(
        &self,
        target: &str,
        staging: &str,
        key: &[String],
        task: &str,
        fingerprint: String,
        rows: u64,
    ) -> Result<WriteOutcome> {
        let invalid = |message: String| StorageError::InvalidWrite {
            table: target.to_string(),
            message,
        };
        if key.is_empty() {
            return Err(invalid("a merge needs a key".into()));
        }
        let lock = self.write_lock(target);
        let _writing = lock.lock().await;
        let table = self
            .table(target)
            .await?
            .ok_or_else(|| invalid("cannot merge: the table does not exist".into()))?;
        let source_table = self
            .table(staging)
            .await?
            .ok_or_else(|| invalid(format!("cannot merge: staging table {staging} is missing")))?;
        let state = table
            .snapshot()
            .map_err(|e| StorageError::delta(target, e))?
            .clone();
        let txn_version = state
            .transaction_version(table.log_store().as_ref(), app_id(task))
            .await
            .map_err(|e| StorageError::delta(target, e))?
            .unwrap_or(0)
            + 1;
        let columns: Vec<String> = state
            .snapshot()
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();

        let ctx = crate::session::new_context();
        self.register(&ctx, staging, &source_table).await?;
        let source = ctx
            .table(staging)
            .await
            .map_err(|e| StorageError::datafusion(format!("reading table {staging}"), e))?;
        let quoted = |prefix: &str, c: &str| col(format!("{prefix}.\"{c}\""));
        let predicate = key
            .iter()
            .map(|k| quoted("target", k).eq(quoted("source", k)))
            .reduce(Expr::and)
            .ok_or_else(|| invalid("a merge needs a key".into()))?;
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new(app_id(task), txn_version))
            .with_metadata([(
                "darkroom".to_string(),
                json!({
                    "task": task,
                    "merge_key": key,
                    "fingerprint": fingerprint,
                    "txn_version": txn_version,
                    "rows": rows,
                }),
            )]);
        failpoint::hit("merge.before_commit", target);
        let update_columns = columns.clone();
        let insert_columns = columns;
        let (merged, _metrics) = table
            .merge(source, predicate)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_writer_properties(writer_properties())
            .with_commit_properties(properties)
            .when_matched_update(|update| {
                update_columns.iter().fold(update, |u, c| {
                    u.update(format!("\"{c}\""), quoted("source", c))
                })
            })
            .and_then(|m| {
                m.when_not_matched_insert(|insert| {
                    insert_columns.iter().fold(insert, |i, c| {
                        i.set(format!("\"{c}\""), quoted("source", c))
                    })
                })
            })
            .map_err(|e| StorageError::delta(target, e))?
            .await
            .map_err(|e| StorageError::delta(target, e))?;
        let table_version = merged.version().unwrap_or_default();
        self.refresh_shared(target).await?;
        let completion = Completion {
            task: task.to_string(),
            txn_version,
            table_version,
            fingerprint,
        };
        self.committed(target, table_version, vec![completion.clone()]);
        Ok(WriteOutcome {
            table: target.to_string(),
            table_version,
            rows,
            completion,
        })
    }
}
