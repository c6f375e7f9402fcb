//! Storage errors, each naming the table or location it concerns.

/// Errors from the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The configured location cannot be used.
    #[error("invalid warehouse location `{location}`: {reason}")]
    InvalidLocation { location: String, reason: String },

    /// A Delta Lake operation failed on a table.
    #[error("table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },

    /// Listing or reading the object store failed.
    #[error("warehouse storage at {location}: {source}")]
    ObjectStore {
        location: String,
        #[source]
        source: object_store::Error,
    },

    /// Planning or running a query failed.
    #[error("{context}: {source}")]
    DataFusion {
        context: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    /// A local file or folder could not be used.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// The data given to a partition write does not belong to that partition.
    #[error("table {table}: {message}")]
    InvalidWrite { table: String, message: String },
}

impl StorageError {
    pub(crate) fn delta(table: &str, source: deltalake::DeltaTableError) -> Self {
        Self::Delta {
            table: table.to_string(),
            source,
        }
    }

    pub(crate) fn datafusion(
        context: impl Into<String>,
        source: datafusion::error::DataFusionError,
    ) -> Self {
        Self::DataFusion {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
