//! Darkroom's analytics layer: what every number anyone sees is computed by.
//!
//! - [`defs`]: events, dimensions, metrics, funnels and teams, declared once in TOML next to the
//!   models and validated at load.
//! - [`funnel`]: the window funnel search (ClickHouse's `windowFunnel` semantics, its modes,
//!   and an any-order funnel), shared by the SQL aggregate and the product funnels.
//! - [`udaf`]: `window_funnel(...)`, registered in every session by [`register`].
//! - [`funnels`], [`metrics`], [`retention`]: the reports, computed over a [`reader::Reader`]
//!   pinned to the latest published snapshot; each says the date its data runs to.

pub mod defs;
pub mod funnel;
pub mod funnels;
pub mod metrics;
pub mod reader;
pub mod retention;
pub mod udaf;

use datafusion::prelude::SessionContext;

pub use defs::Definitions;
pub use reader::{AsOf, Reader};

/// Register the analytics functions (`window_funnel`) in a session.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(udaf::window_funnel());
}

/// Why a report could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The request does not make sense (unknown name, bad dates, a property an event lacks).
    #[error("{0}")]
    Usage(String),
    /// A query over the warehouse failed.
    #[error("{what}: {message}\n  the query was: {sql}")]
    Query {
        what: String,
        message: String,
        sql: String,
    },
    #[error(transparent)]
    Storage(Box<darkroom_storage::StorageError>),
    #[error("reading query results: {0}")]
    Arrow(Box<datafusion::arrow::error::ArrowError>),
    #[error(transparent)]
    DataFusion(Box<datafusion::error::DataFusionError>),
}

impl From<darkroom_storage::StorageError> for AnalyticsError {
    fn from(e: darkroom_storage::StorageError) -> Self {
        Self::Storage(Box::new(e))
    }
}

impl From<datafusion::arrow::error::ArrowError> for AnalyticsError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Self::Arrow(Box::new(e))
    }
}

impl From<datafusion::error::DataFusionError> for AnalyticsError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::DataFusion(Box::new(e))
    }
}
