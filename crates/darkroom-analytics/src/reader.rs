//! What every analytics result reads: the latest published snapshot of the warehouse (never
//! half a night), and the date its data runs to.

use chrono::NaiveDate;
use darkroom_storage::{Warehouse, run_sql};
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::AnalyticsError;

/// Which version of the warehouse a result was computed from.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AsOf {
    /// The night of the published snapshot: its data runs to this date. `None` when nothing
    /// has been published yet and the latest table versions were read.
    pub night: Option<NaiveDate>,
    /// When it was published (RFC 3339, UTC).
    pub published_at: Option<String>,
    /// Dates the snapshot lists as degraded: numbers touching them may be wrong.
    pub degraded: Vec<NaiveDate>,
    /// `published snapshot` or `latest versions (nothing published yet)`.
    pub source: String,
}

impl AsOf {
    /// One line for people: "data through 2026-03-31 (published snapshot)".
    pub fn describe(&self) -> String {
        let mut s = match self.night {
            Some(n) => format!("data through {n} ({})", self.source),
            None => format!("data as of the {}", self.source),
        };
        if !self.degraded.is_empty() {
            let dates: Vec<String> = self.degraded.iter().map(ToString::to_string).collect();
            s.push_str(&format!("; degraded dates: {}", dates.join(", ")));
        }
        s
    }

    /// The degraded dates between `from` and `to`.
    pub fn degraded_between(&self, from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
        self.degraded
            .iter()
            .copied()
            .filter(|d| *d >= from && *d <= to)
            .collect()
    }
}

/// A session pinned to the latest published snapshot, with the analytics functions.
#[derive(Clone)]
pub struct Reader {
    pub ctx: SessionContext,
    pub as_of: AsOf,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("as_of", &self.as_of)
            .finish()
    }
}

impl Reader {
    /// Pin to the newest snapshot; with none published, read the latest versions and say so.
    pub async fn open(warehouse: &Warehouse) -> Result<Self, AnalyticsError> {
        let snapshots = warehouse.snapshots(1).await?;
        let (ctx, as_of) = match snapshots.into_iter().next() {
            Some(s) => {
                let ctx = warehouse.pinned_session(&s).await?;
                let published_at = chrono::DateTime::from_timestamp_micros(s.published_at_us)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                (
                    ctx,
                    AsOf {
                        night: Some(s.night),
                        published_at,
                        degraded: s.degraded,
                        source: "published snapshot".into(),
                    },
                )
            }
            None => (
                warehouse.private_session().await?,
                AsOf {
                    night: None,
                    published_at: None,
                    degraded: Vec::new(),
                    source: "latest versions (nothing published yet)".into(),
                },
            ),
        };
        crate::register(&ctx);
        Ok(Self { ctx, as_of })
    }

    /// Run a query; errors name what was being computed.
    pub async fn sql(&self, what: &str, sql: &str) -> Result<Vec<RecordBatch>, AnalyticsError> {
        run_sql(&self.ctx, sql)
            .await
            .map(|r| r.batches)
            .map_err(|e| AnalyticsError::Query {
                what: what.to_string(),
                message: e.to_string(),
                sql: sql.to_string(),
            })
    }
}
