//! Finding the models of a project and reading their settings.
//!
//! A model is one `models/**/*.sql` file holding one `SELECT`; its name is the file's stem and
//! is unique across the folder tree. Settings come from a `{{ config(...) }}` call in the file
//! (dbt's convention) and/or a TOML file beside it with the same stem (`dim_user.toml`), which
//! is also where column docs live. A key set in both places is an error, not a silent choice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use darkroom_config::{Diagnostic, Diagnostics, Project, SourceFile};
use serde::{Deserialize, Serialize};

/// The folder under the project root that holds the models.
pub const MODELS_DIR: &str = "models";

/// How a model's rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Materialized {
    /// Rebuilt from scratch on every build and swapped in by one commit.
    #[default]
    Table,
    /// Not stored: the query runs whenever the model is read.
    View,
    /// One date partition per build: the model computes the rows of the run's date, and
    /// exactly that partition is replaced.
    Incremental,
    /// A type-2 slowly changing dimension: each change of a row opens a new version.
    Snapshot,
}

impl Materialized {
    pub fn name(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::View => "view",
            Self::Incremental => "incremental",
            Self::Snapshot => "snapshot",
        }
    }
}

/// How a snapshot notices that a row changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The row's `updated_at` column moved.
    Timestamp,
    /// One of `check_cols` changed value.
    Check,
}

/// Settings as written (in `config(...)` or the TOML beside the model); every key optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    materialized: Option<Materialized>,
    partition_by: Option<String>,
    unique_key: Option<OneOrMany>,
    description: Option<String>,
    owner: Option<String>,
    grain: Option<String>,
    columns: Option<BTreeMap<String, String>>,
    strategy: Option<Strategy>,
    updated_at: Option<String>,
    check_cols: Option<Vec<String>>,
    surrogate_key: Option<String>,
    unknown_member: Option<bool>,
    rebuild_dates: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s],
            Self::Many(v) => v,
        }
    }
}

/// A model's settings, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub materialized: Materialized,
    /// The date partition column of an incremental model (default `event_date`).
    pub partition_by: Option<String>,
    /// The natural key: one row per key (tables, the current version of a snapshot).
    pub unique_key: Vec<String>,
    pub description: Option<String>,
    /// The team that owns the model.
    pub owner: Option<String>,
    /// What one row is ("one row per user per active day").
    pub grain: Option<String>,
    /// Column docs.
    pub columns: BTreeMap<String, String>,
    /// Snapshots: how changes are detected.
    pub strategy: Option<Strategy>,
    pub updated_at: Option<String>,
    pub check_cols: Vec<String>,
    /// The column holding the surrogate key (a hash of the natural key, and for a snapshot of
    /// the version's `valid_from`).
    pub surrogate_key: Option<String>,
    /// Add a row with surrogate key -1 that facts point at when their key has no row yet.
    pub unknown_member: bool,
    /// Incremental models: a query (rendered with the run's dates) returning the earlier
    /// dates a run changes — e.g. days whose anonymous events a new sign-in re-attributes.
    /// Those dates are rebuilt too, for this model and the incremental models downstream.
    pub rebuild_dates: Option<String>,
}

impl RawSettings {
    /// Merge the file header's settings with the TOML beside it; a key in both is reported.
    fn merge(self, other: Self, clash: &mut Vec<&'static str>) -> Self {
        macro_rules! pick {
            ($($field:ident),*) => {
                Self { $($field: match (self.$field, other.$field) {
                    (Some(_), Some(b)) => { clash.push(stringify!($field)); Some(b) }
                    (a, b) => a.or(b),
                },)* }
            };
        }
        pick!(
            materialized,
            partition_by,
            unique_key,
            description,
            owner,
            grain,
            columns,
            strategy,
            updated_at,
            check_cols,
            surrogate_key,
            unknown_member,
            rebuild_dates
        )
    }

    fn validate(self, model: &str) -> Result<Settings, Vec<String>> {
        let materialized = self.materialized.unwrap_or_default();
        let mut problems = Vec::new();
        let unique_key = self.unique_key.map(OneOrMany::into_vec).unwrap_or_default();
        let check_cols = self.check_cols.unwrap_or_default();
        let mut partition_by = self.partition_by;
        match materialized {
            Materialized::Incremental => {
                partition_by.get_or_insert_with(|| "event_date".to_string());
            }
            _ if partition_by.is_some() => problems.push(format!(
                "partition_by is for incremental models; `{model}` is a {}",
                materialized.name()
            )),
            _ => {}
        }
        let strategy = self.strategy;
        if materialized == Materialized::Snapshot {
            if unique_key.is_empty() {
                problems.push(
                    "a snapshot needs unique_key: the column(s) naming one row of the source"
                        .to_string(),
                );
            }
            match (strategy, &self.updated_at, check_cols.is_empty()) {
                (None, _, _) => problems.push(
                    "a snapshot needs strategy = 'timestamp' (with updated_at) or 'check' (with \
                     check_cols)"
                        .to_string(),
                ),
                (Some(Strategy::Timestamp), None, _) => {
                    problems.push("strategy 'timestamp' needs updated_at = 'COLUMN'".to_string())
                }
                (Some(Strategy::Check), _, true) => problems.push(
                    "strategy 'check' needs check_cols = ['COLUMN', ...] (or ['all'])".to_string(),
                ),
                _ => {}
            }
        } else if strategy.is_some() || self.updated_at.is_some() || !check_cols.is_empty() {
            problems.push(format!(
                "strategy, updated_at and check_cols are for snapshots; `{model}` is a {}",
                materialized.name()
            ));
        }
        let mut surrogate_key = self.surrogate_key;
        if materialized == Materialized::Snapshot && surrogate_key.is_none() {
            let base = model.strip_prefix("dim_").unwrap_or(model);
            surrogate_key = Some(format!("{base}_key"));
        }
        let unknown_member = self.unknown_member.unwrap_or(false);
        if unknown_member && surrogate_key.is_none() {
            problems.push(
                "unknown_member needs surrogate_key = 'COLUMN' (the key facts point at)"
                    .to_string(),
            );
        }
        if unknown_member && matches!(materialized, Materialized::View | Materialized::Incremental)
        {
            problems.push(format!(
                "unknown_member is for dimensions materialised as table or snapshot, not {}",
                materialized.name()
            ));
        }
        if self.rebuild_dates.is_some() && materialized != Materialized::Incremental {
            problems.push(format!(
                "rebuild_dates is for incremental models; `{model}` is a {}",
                materialized.name()
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Settings {
            materialized,
            partition_by,
            unique_key,
            description: self.description,
            owner: self.owner,
            grain: self.grain,
            columns: self.columns.unwrap_or_default(),
            strategy,
            updated_at: self.updated_at,
            check_cols,
            surrogate_key,
            unknown_member,
            rebuild_dates: self.rebuild_dates,
        })
    }
}

/// A model as found on disk, before it is rendered for a date.
#[derive(Debug, Clone)]
pub struct Model {
    /// The file stem: what `ref('name')` names and the warehouse table it builds.
    pub name: String,
    /// The `.sql` file.
    pub path: PathBuf,
    /// The template text.
    pub source: SourceFile,
    /// The TOML beside the model, if any.
    pub settings_path: Option<PathBuf>,
    pub settings: Settings,
    /// Models this one reads (`ref`), with the line of the call.
    pub refs: Vec<(String, usize)>,
    /// Warehouse tables this one reads through `source(...)`, with the line of the call.
    pub sources: Vec<(String, usize)>,
}

impl Model {
    /// A diagnostic for this model's file at a line.
    pub fn error_at(&self, line: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: self.path.clone(),
            line: Some(line.max(1)),
            column: None,
            message: message.into(),
        }
    }
}

/// Every `.sql` file under `models/`, sorted by path.
pub(crate) fn model_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let dir = root.join(MODELS_DIR);
    if !dir.is_dir() {
        return Ok(files);
    }
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "sql") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A model name must be a plain lowercase SQL identifier: it names a warehouse table.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 120
}

/// Read the TOML settings beside a model.
pub(crate) fn read_settings_file(
    path: &Path,
    diags: &mut Diagnostics,
) -> Option<(RawSettings, SourceFile)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            diags.push(Diagnostic::without_location(
                path,
                format!("cannot read: {e}"),
            ));
            return None;
        }
    };
    let file = SourceFile::new(path.to_path_buf(), text);
    match toml::from_str::<RawSettings>(&file.text) {
        Ok(raw) => Some((raw, file)),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            diags.push(file.error(span, e.message().to_string()));
            None
        }
    }
}

/// Combine header and TOML settings and validate them; problems go to `diags`.
pub(crate) fn settle(
    name: &str,
    header: RawSettings,
    header_line: usize,
    beside: Option<(RawSettings, SourceFile)>,
    sql_path: &Path,
    diags: &mut Diagnostics,
) -> Option<Settings> {
    let (raw, toml_path) = match beside {
        Some((toml, file)) => {
            let mut clash = Vec::new();
            let merged = header.merge(toml, &mut clash);
            for key in clash {
                diags.push(Diagnostic {
                    path: sql_path.to_path_buf(),
                    line: Some(header_line),
                    column: None,
                    message: format!(
                        "`{key}` is set both here and in {}; keep one",
                        file.path.display()
                    ),
                });
            }
            (merged, Some(file.path))
        }
        None => (header, None),
    };
    match raw.validate(name) {
        Ok(s) => Some(s),
        Err(problems) => {
            for p in problems {
                diags.push(Diagnostic {
                    path: toml_path.clone().unwrap_or_else(|| sql_path.to_path_buf()),
                    line: if toml_path.is_some() {
                        None
                    } else {
                        Some(header_line)
                    },
                    column: None,
                    message: format!("model `{name}`: {p}"),
                });
            }
            None
        }
    }
}

/// The raw table a `source(name[, table])` call names, or why it names none.
pub fn resolve_source(
    project: &Project,
    source: &str,
    table: Option<&str>,
) -> Result<String, String> {
    if let Some(db) = project.database(source) {
        let Some(table) = table else {
            let tables: Vec<&str> = db.tables.iter().map(|t| t.name()).collect();
            return Err(format!(
                "source `{source}` is a database: name its table, source('{source}', 'TABLE'); \
                 its tables: {}",
                tables.join(", ")
            ));
        };
        return match db.table(table) {
            Some(t) => Ok(db.raw_table(t)),
            None => {
                let tables: Vec<&str> = db.tables.iter().map(|t| t.name()).collect();
                Err(format!(
                    "source `{source}` has no table `{table}` in darkroom.toml; its tables: {}",
                    tables.join(", ")
                ))
            }
        };
    }
    if let Some(logs) = project.source(source) {
        return match table {
            None => Ok(logs.raw_table()),
            Some("quarantine") => Ok(logs.quarantine_table()),
            Some(other) => Err(format!(
                "source `{source}` is a log source: source('{source}') reads raw_{source}, \
                 source('{source}', 'quarantine') its quarantine; there is no `{other}`"
            )),
        };
    }
    let mut names: Vec<&str> = project.sources.iter().map(|s| s.name()).collect();
    names.extend(project.databases.iter().map(|d| d.name()));
    Err(format!(
        "no source named `{source}` in darkroom.toml (sources: {})",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    ))
}
