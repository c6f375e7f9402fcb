//! Darkroom project files turned into typed, validated configuration.
//!
//! This crate owns `darkroom.toml`: its schema (serde structs with unknown keys rejected), the
//! `${VAR}` interpolation of secrets from the environment, and validation that reports *every*
//! problem at once with file, line and column. It also owns the commented starter project that
//! `darkroom init` writes.
//!
//! It must not know how anything is run: nothing here connects, reads data or writes tables.
//! Checks that need another crate's knowledge (an nginx `log_format` compiles, a timestamp format
//! is valid) are done by that crate, which reports through [`Diagnostic`] using the spans kept
//! here.

mod alerts;
mod database;
mod diagnostics;
mod interpolate;
mod model;
mod starter;

pub use alerts::{AlertChannel, AlertsConfig, SmtpServer, smtp_server};
pub use database::{
    DatabaseKind, DatabaseSourceConfig, FullHistory, Lookback, TableConfig, TableMode,
    parse_duration,
};
pub use diagnostics::{Diagnostic, Diagnostics, SourceFile};
pub use model::{
    ClientIp, JSONL_FIELD_TYPES, JsonlSourceConfig, LogFiles, NestedMode, NginxSourceConfig,
    PipelineConfig, ProjectSection, S3Config, SourceConfig, SourceKind, WarehouseConfig,
    parse_cron,
};
pub use starter::{STARTER_TOML, write_starter};

use std::path::{Path, PathBuf};

/// The name of a project's main file.
pub const PROJECT_FILE: &str = "darkroom.toml";

/// A value's `Debug` text without the byte spans of where its parts were written in
/// darkroom.toml: what fingerprints of configuration hash, so that editing another part of
/// the file (a comment, a new section) does not change them.
pub fn fingerprint_text<T: std::fmt::Debug>(value: &T) -> String {
    let text = format!("{value:?}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("span: ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "span: ".len()..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let a = digits(after);
        let is_range = a > 0 && after[a..].starts_with("..") && digits(&after[a + 2..]) > 0;
        if !is_range {
            out.push_str("span: ");
            rest = after;
            continue;
        }
        let end = a + 2 + digits(&after[a + 2..]);
        rest = after[end..].strip_prefix(", ").unwrap_or(&after[end..]);
    }
    out.push_str(rest);
    out
}

/// A loaded project: where it lives and its validated configuration.
#[derive(Debug, Clone)]
pub struct Project {
    /// The folder holding `darkroom.toml`; relative paths in the config are relative to it.
    pub root: PathBuf,
    /// The text of `darkroom.toml`, kept so later checks can point at lines.
    pub file: SourceFile,
    pub project: ProjectSection,
    pub warehouse: WarehouseConfig,
    /// `[pipeline]`: schedule, deadline, parallelism, retries.
    pub pipeline: PipelineConfig,
    pub sources: Vec<SourceConfig>,
    /// Database sources (`kind = "postgres" | "mysql" | "sqlite"`).
    pub databases: Vec<DatabaseSourceConfig>,
    /// `[alerts]`: where incidents are sent.
    pub alerts: AlertsConfig,
}

impl Project {
    /// Load and validate the project in `root` (a folder holding `darkroom.toml`), reading
    /// `${VAR}` values from the process environment.
    pub fn load(root: &Path) -> Result<Self, Diagnostics> {
        Self::load_with_env(root, &|name| std::env::var(name).ok())
    }

    /// Like [`Project::load`], with the environment given as a lookup function (for tests).
    pub fn load_with_env(
        root: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Diagnostics> {
        let path = root.join(PROJECT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Diagnostics::single(Diagnostic::without_location(
                &path,
                format!(
                    "cannot read the project file: {e}. Run `darkroom init {}` to create one, \
                     or pass --project DIR",
                    root.display()
                ),
            ))
        })?;
        let file = SourceFile::new(path, text);
        let parsed = model::parse(&file, env)?;
        Ok(Self::from_parsed(root, file, parsed))
    }

    fn from_parsed(root: &Path, file: SourceFile, parsed: model::Parsed) -> Self {
        Self {
            root: root.to_path_buf(),
            file,
            project: parsed.project,
            warehouse: parsed.warehouse,
            pipeline: parsed.pipeline,
            sources: parsed.sources,
            databases: parsed.databases,
            alerts: parsed.alerts,
        }
    }

    /// Load whatever can be loaded, with every problem found: for `darkroom validate`, which
    /// adds the checks of other crates to the same list. The project is `None` only when the
    /// file cannot be read or its syntax is broken.
    pub fn check(root: &Path) -> (Option<Self>, Diagnostics) {
        let path = root.join(PROJECT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                return (
                    None,
                    Diagnostics::single(Diagnostic::without_location(
                        &path,
                        format!("cannot read the project file: {e}"),
                    )),
                );
            }
        };
        let file = SourceFile::new(path, text);
        let (parsed, diags) = model::parse_partial(&file, &|name| std::env::var(name).ok());
        let project = parsed.map(|parsed| Self::from_parsed(root, file, parsed));
        (project, diags)
    }

    /// Parse a project from text (no file on disk), for tests and tools.
    pub fn from_str_with_env(
        root: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Diagnostics> {
        let file = SourceFile::new(root.join(PROJECT_FILE), text.to_string());
        let parsed = model::parse(&file, env)?;
        Ok(Self::from_parsed(root, file, parsed))
    }

    /// The project's time zone (validated at load).
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.project.tz()
    }

    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name() == name)
    }

    /// The database source with this name.
    pub fn database(&self, name: &str) -> Option<&DatabaseSourceConfig> {
        self.databases.iter().find(|s| s.name() == name)
    }

    /// Find the project folder: `start` itself or the nearest parent holding `darkroom.toml`.
    pub fn discover(start: &Path) -> Option<PathBuf> {
        start
            .ancestors()
            .find(|dir| dir.join(PROJECT_FILE).is_file())
            .map(Path::to_path_buf)
    }
}
