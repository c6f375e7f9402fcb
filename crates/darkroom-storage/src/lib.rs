//! The Darkroom warehouse: Delta Lake tables under one location, and the DataFusion session
//! every reader shares.
//!
//! This crate owns where tables live (a local folder or `s3://bucket/prefix`), how a partition
//! is written (it replaces exactly that partition, and the same commit records the partition as
//! complete with the fingerprint of its inputs), how tables are listed and described, and the
//! SQL session with every table registered.
//!
//! It must not know what the tables mean: sources, models and checks decide what to write;
//! this crate makes each write atomic and idempotent.

mod date_writers;
mod error;
mod evolve;
pub mod failpoint;
mod location;
mod maintain;
mod session;
mod write;

pub use error::{Result, StorageError};
pub use location::{Location, StorageSettings};
pub use maintain::{MaintainReport, SNAPSHOTS_TABLE, Snapshot};
pub use session::{QueryResult, file_session, file_table_hint, run_sql, threads_from_env};
pub use write::{
    Completion, Fingerprint, PartitionWrite, RangeWrite, WriteOutcome, ZSTD_LEVEL,
    days_since_epoch, partition_predicate, writer_properties,
};

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use deltalake::{DeltaTable, DeltaTableBuilder};
use url::Url;

/// Install the S3 handlers in delta-rs. Call once at start-up, before opening an `s3://`
/// warehouse; calling it again is harmless.
pub fn register_object_store_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| deltalake::aws::register_handlers(None));
}

/// The warehouse: a location holding Delta tables, one folder each.
#[derive(Clone)]
pub struct Warehouse {
    location: Location,
    storage_options: HashMap<String, String>,
    /// The one SQL session every reader of this warehouse shares, built on first use; a
    /// partition write re-registers its table so readers see the new version.
    shared: Arc<tokio::sync::Mutex<Option<SessionContext>>>,
    /// Tables opened before, brought up to date on the next open by reading only the commits
    /// since (replaying a Delta log from its checkpoint on every open costs far more than
    /// the small partitions a night writes).
    opened: Arc<tokio::sync::Mutex<HashMap<String, DeltaTable>>>,
    /// One writer per table at a time within this process (writes to different tables run
    /// in parallel), so concurrent ingests of several sources never race on the shared
    /// ledger's commits.
    writing: Arc<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// A warehouse read for tables this one does not hold (a development target reads the
    /// production tables it has not built itself); never written.
    fallback: Option<Box<Warehouse>>,
    /// Told of every commit that records a task complete (the orchestrator's index of
    /// completions); called after the commit, so a crash in between loses only the index
    /// entry, which the orchestrator recovers from the table.
    commit_hook: Option<CommitHook>,
}

/// Told of each commit that records tasks complete.
pub type CommitHook = Arc<dyn Fn(&CommitRecord) + Send + Sync>;

/// A commit that recorded tasks complete.
#[derive(Debug, Clone)]
pub struct CommitRecord {
    /// The warehouse location (its root URL).
    pub location: String,
    pub table: String,
    pub table_version: u64,
    /// Each task the commit recorded, with its application-transaction version and
    /// fingerprint.
    pub completions: Vec<Completion>,
}

impl std::fmt::Debug for Warehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // storage options hold credentials: never print them
        f.debug_struct("Warehouse")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What `darkroom tables` shows for one table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableInfo {
    pub name: String,
    pub version: u64,
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    pub partition_columns: Vec<String>,
    pub partitions: u64,
    pub last_partition: Option<String>,
}

impl Warehouse {
    /// Open (or prepare) the warehouse. Nothing is written until a table is.
    pub fn open(settings: StorageSettings) -> Result<Self> {
        register_object_store_handlers();
        let location = settings.location;
        if let Location::Local(path) = &location {
            std::fs::create_dir_all(path).map_err(|e| StorageError::Io {
                path: path.display().to_string(),
                source: e,
            })?;
        }
        Ok(Self {
            location,
            storage_options: settings.options,
            shared: Arc::new(tokio::sync::Mutex::new(None)),
            opened: Arc::new(tokio::sync::Mutex::new(HashMap::new())),
            writing: Arc::default(),
            fallback: None,
            commit_hook: None,
        })
    }

    /// Tell `hook` of every commit that records a task complete.
    pub fn with_commit_hook(mut self, hook: CommitHook) -> Self {
        self.commit_hook = Some(hook);
        self
    }

    /// Call the commit hook, if any, for a commit of `table` at `table_version`.
    pub(crate) fn committed(&self, table: &str, table_version: u64, completions: Vec<Completion>) {
        if let Some(hook) = &self.commit_hook {
            hook(&CommitRecord {
                location: self
                    .location
                    .root_url()
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                table: table.to_string(),
                table_version,
                completions,
            });
        }
    }

    /// Read `fallback`'s tables wherever this warehouse has no table of that name (sessions
    /// only: writes, completions and `table()` stay this warehouse's own).
    pub fn with_fallback(mut self, fallback: Warehouse) -> Self {
        self.fallback = Some(Box::new(fallback));
        self
    }

    /// Register the fallback's tables that this warehouse does not hold.
    async fn register_fallback(&self, ctx: &SessionContext, own: &[String]) -> Result<()> {
        if let Some(fallback) = &self.fallback {
            for name in fallback.list_tables().await? {
                if own.contains(&name) {
                    continue;
                }
                if let Some(table) = fallback.table(&name).await? {
                    fallback.register(ctx, &name, &table).await?;
                }
            }
        }
        Ok(())
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The URL of a table's folder.
    pub fn table_url(&self, name: &str) -> Result<Url> {
        self.location.child_url(name)
    }

    fn builder(&self, name: &str) -> Result<DeltaTableBuilder> {
        let url = self.table_url(name)?;
        Ok(DeltaTableBuilder::from_url(url)
            .map_err(|e| StorageError::delta(name, e))?
            .with_storage_options(self.storage_options.clone()))
    }

    /// Open a table at its latest version; `None` if it does not exist yet.
    pub async fn table(&self, name: &str) -> Result<Option<DeltaTable>> {
        let known = self.opened.lock().await.get(name).cloned();
        if let Some(mut table) = known {
            // Only the commits since (by this process or another) are read.
            match table.update_incremental(None).await {
                Ok(()) => {
                    self.opened
                        .lock()
                        .await
                        .insert(name.to_owned(), table.clone());
                    return Ok(Some(table));
                }
                // e.g. the table was deleted and created again: open it afresh
                Err(e) => {
                    tracing::debug!(table = name, error = %e, "reopening table");
                    self.opened.lock().await.remove(name);
                }
            }
        }
        let mut table = self
            .builder(name)?
            .build()
            .map_err(|e| StorageError::delta(name, e))?;
        let exists = table
            .verify_deltatable_existence()
            .await
            .map_err(|e| StorageError::delta(name, e))?;
        if !exists {
            return Ok(None);
        }
        table
            .load()
            .await
            .map_err(|e| StorageError::delta(name, e))?;
        self.opened
            .lock()
            .await
            .insert(name.to_owned(), table.clone());
        Ok(Some(table))
    }

    /// The lock a writer of `name` holds from reading the table's state to its commit.
    pub(crate) fn write_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(name.to_owned()).or_default())
    }

    /// A table handle that may not exist yet (for creating it with a first write).
    pub(crate) fn table_handle(&self, name: &str) -> Result<DeltaTable> {
        self.builder(name)?
            .build()
            .map_err(|e| StorageError::delta(name, e))
    }

    /// Names of every Delta table in the warehouse, sorted.
    pub async fn list_tables(&self) -> Result<Vec<String>> {
        let root = self.location.root_url()?;
        let store = DeltaTableBuilder::from_url(root)
            .map_err(|e| StorageError::delta("<warehouse>", e))?
            .with_storage_options(self.storage_options.clone())
            .build_storage()
            .map_err(|e| StorageError::delta("<warehouse>", e))?
            .object_store(None);
        let listing =
            store
                .list_with_delimiter(None)
                .await
                .map_err(|e| StorageError::ObjectStore {
                    location: self.location.to_string(),
                    source: e,
                })?;
        let mut names = BTreeSet::new();
        for prefix in listing.common_prefixes {
            let Some(name) = prefix.filename().map(str::to_string) else {
                continue;
            };
            let log = prefix.clone().join("_delta_log");
            let mut entries = store.list(Some(&log));
            use futures::StreamExt;
            if let Some(Ok(_)) = entries.next().await {
                names.insert(name);
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Rows, files, bytes and partitions of a table, from its Delta log (no data scanned).
    pub async fn table_info(&self, name: &str) -> Result<Option<TableInfo>> {
        let Some(table) = self.table(name).await? else {
            return Ok(None);
        };
        let state = table.snapshot().map_err(|e| StorageError::delta(name, e))?;
        let partition_columns = state.metadata().partition_columns().to_vec();
        let batch = state
            .add_actions_table(true)
            .map_err(|e| StorageError::delta(name, e))?;
        let info = session::summarize_add_actions(name, state.version(), partition_columns, &batch);
        Ok(Some(info))
    }

    /// The shared SQL session: every warehouse table registered under its name (at its latest
    /// version), and file paths accepted in `FROM` (`SELECT * FROM 'data/x.parquet'`). Every
    /// reader uses this one session; clones of it share its state.
    pub async fn session(&self) -> Result<SessionContext> {
        let mut shared = self.shared.lock().await;
        if let Some(ctx) = shared.as_ref() {
            return Ok(ctx.clone());
        }
        let ctx = self.private_session().await?;
        *shared = Some(ctx.clone());
        Ok(ctx)
    }

    /// A session of its own, not shared with other readers: every warehouse table registered
    /// at its latest version. For work that registers names of its own (planning models
    /// against their future schemas) without showing them to anyone else.
    pub async fn private_session(&self) -> Result<SessionContext> {
        let ctx = session::new_context();
        let own = self.list_tables().await?;
        for name in &own {
            if let Some(table) = self.table(name).await? {
                self.register(&ctx, name, &table).await?;
            }
        }
        self.register_fallback(&ctx, &own).await?;
        Ok(ctx)
    }

    /// After a write: show the table's new version to the shared session, if one was built.
    pub(crate) async fn refresh_shared(&self, name: &str) -> Result<()> {
        let shared = self.shared.lock().await;
        if let Some(ctx) = shared.as_ref()
            && let Some(table) = self.table(name).await?
        {
            let _ = ctx.deregister_table(name);
            self.register(ctx, name, &table).await?;
        }
        Ok(())
    }

    /// Register one table in a session.
    pub async fn register(
        &self,
        ctx: &SessionContext,
        name: &str,
        table: &DeltaTable,
    ) -> Result<()> {
        table
            .update_datafusion_session(&ctx.state())
            .map_err(|e| StorageError::delta(name, e))?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| StorageError::DataFusion {
                context: format!("opening table {name}"),
                source: e,
            })?;
        ctx.register_table(name, Arc::clone(&provider))
            .map_err(|e| StorageError::DataFusion {
                context: format!("registering table {name}"),
                source: e,
            })?;
        Ok(())
    }
}
