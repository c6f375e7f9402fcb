//! Darkroom sources: getting data from where it is made into the warehouse's raw tables.
//!
//! This crate owns log ingestion: finding a source's files for a date (path templates with
//! `{date}`/`{host}`, globs, local or S3, plain or gzip), recognising files delivered twice,
//! parsing every line with the source's parser, and writing `raw_<source>`, the byte-exact
//! `_quarantine_<source>` and the `_ingest_ledger`, each by replacing exactly that date.
//!
//! It must not know what happens downstream (models, checks, publishing) and does not parse
//! lines itself: `darkroom-logs` does.

mod discover;
mod files;
mod ingest;
pub mod ledger;
mod parsers;
pub mod quarantine;
mod remote;

pub use discover::{FileLocation, FoundFile, PathTemplate};
pub use ingest::{
    FileReport, IngestContext, IngestReport, Missing, NoProgress, Progress, ingest_date,
    ingest_dates, listing_fingerprints,
};
pub use parsers::{build_parser, validate};
pub use remote::s3_store;

use std::path::Path;

use chrono::NaiveDate;

/// Errors from ingesting a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source's configuration cannot be used (a bad format string, timestamp format...).
    #[error("source {source_name}: {message}")]
    Config {
        source_name: String,
        message: String,
    },

    /// The path template cannot be used.
    #[error("path `{template}`: {message}")]
    Template { template: String, message: String },

    /// A local file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A remote file could not be listed or read.
    #[error("{location}: {source}")]
    Remote {
        location: String,
        #[source]
        source: object_store::Error,
    },

    /// Writing a table failed.
    #[error(transparent)]
    Storage(Box<darkroom_storage::StorageError>),

    /// Building Arrow data failed (a bug: please report it).
    #[error("internal error building rows: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// Something that should not happen; please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<darkroom_storage::StorageError> for SourceError {
    fn from(e: darkroom_storage::StorageError) -> Self {
        Self::Storage(Box::new(e))
    }
}

impl SourceError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = SourceError> = std::result::Result<T, E>;

/// Days since 1970-01-01, as Arrow's Date32 stores them.
pub fn date_to_days(date: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from((date - epoch).num_days()).unwrap_or(i32::MAX)
}
