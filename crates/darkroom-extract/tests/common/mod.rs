//! Shared by the extraction tests: real servers (see `servers`) and a warehouse to load into.

#![allow(dead_code)]

mod servers;

pub use servers::*;

/// A warehouse in a temporary folder, and the project settings around a source.
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub warehouse: darkroom_storage::Warehouse,
}

impl Bench {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let warehouse = darkroom_storage::Warehouse::open(
            darkroom_storage::StorageSettings::local(dir.path().join("warehouse")),
        )
        .expect("warehouse");
        Self { dir, warehouse }
    }

    /// A database source parsed from `[[sources]]` TOML (the `[project]` header is added).
    pub fn source(&self, toml: &str) -> darkroom_config::DatabaseSourceConfig {
        let text = format!("[project]\nname = \"t\"\n\n{toml}");
        let project = darkroom_config::Project::from_str_with_env(self.dir.path(), &text, &|v| {
            (v == "PII_SALT").then(|| "pepper-for-tests".to_string())
        })
        .unwrap_or_else(|e| panic!("bad test config: {e}"));
        project
            .databases
            .into_iter()
            .next()
            .expect("one database source")
    }

    pub async fn extract(
        &self,
        source: &darkroom_config::DatabaseSourceConfig,
    ) -> darkroom_extract::SourceReport {
        self.try_extract(source).await.expect("extract")
    }

    pub async fn try_extract(
        &self,
        source: &darkroom_config::DatabaseSourceConfig,
    ) -> Result<darkroom_extract::SourceReport, darkroom_extract::ExtractError> {
        let options = darkroom_extract::ExtractOptions {
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 26),
            project_root: self.dir.path().to_path_buf(),
            ..Default::default()
        };
        darkroom_extract::extract_source(&self.warehouse, chrono_tz::UTC, source, &options).await
    }

    /// Rows of a query, each value as text (NULL as `NULL`).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        use arrow::util::display::array_value_to_string;
        let result = self
            .warehouse
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut out = Vec::new();
        for batch in &result.batches {
            for r in 0..batch.num_rows() {
                out.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| {
                            if c.is_null(r) {
                                "NULL".to_string()
                            } else {
                                array_value_to_string(c, r).unwrap_or_default()
                            }
                        })
                        .collect(),
                );
            }
        }
        out
    }

    pub async fn version(&self, table: &str) -> Option<u64> {
        self.warehouse
            .table_info(table)
            .await
            .expect("table info")
            .map(|t| t.version)
    }
}

/// The one table report of a single-table source.
pub fn only(report: &darkroom_extract::SourceReport) -> &darkroom_extract::TableReport {
    assert_eq!(report.tables.len(), 1, "{report:#?}");
    &report.tables[0]
}

pub fn loaded(report: &darkroom_extract::SourceReport) {
    for t in &report.tables {
        assert!(
            t.status == darkroom_extract::TableStatus::Loaded,
            "{} failed: {:?}",
            t.table,
            t.error
        );
    }
}

use arrow::array::Array as _;
