//! The contract every line parser implements, and the options they share.

use std::fmt;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

/// Default number of rows per [`RecordBatch`].
pub const DEFAULT_BATCH_SIZE: usize = 65_536;

/// What to do with client IP addresses before they are stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IpPolicy {
    /// Store the address as logged.
    #[default]
    Keep,
    /// Zero the host bits: keep the first `v4_prefix` bits of an IPv4 address and the first
    /// `v6_prefix` bits of an IPv6 address (for example 24 and 48).
    Truncate {
        /// Bits of an IPv4 address to keep (0..=32).
        v4_prefix: u8,
        /// Bits of an IPv6 address to keep (0..=128).
        v6_prefix: u8,
    },
    /// Replace the address with the first 16 bytes (32 hex characters) of
    /// `SHA-256(salt || address)`.
    Hash {
        /// Secret salt prepended to the address before hashing.
        salt: Vec<u8>,
    },
}

/// Options shared by every parser.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// The project time zone: `event_date` is the date of `event_ts` in this zone.
    pub timezone: chrono_tz::Tz,
    /// How client IP addresses are stored.
    pub ip_policy: IpPolicy,
    /// Rows per batch; the caller calls `finish_batch` when `len()` reaches it.
    pub batch_size: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            timezone: chrono_tz::UTC,
            ip_policy: IpPolicy::Keep,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// Why one line could not be parsed. The caller quarantines the raw line with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based byte column where parsing went wrong.
    pub column: usize,
    /// The format variable being parsed (without `$`), if any.
    pub field: Option<String>,
    /// A sentence a person can act on.
    pub reason: String,
}

impl LineError {
    /// An error at byte offset `offset` (0-based) in the line.
    pub fn at(offset: usize, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            column: offset + 1,
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "column {} (${}): {}", self.column, field, self.reason),
            None => write!(f, "column {}: {}", self.column, self.reason),
        }
    }
}

impl std::error::Error for LineError {}

/// A streaming parser: lines in, typed Arrow batches out.
pub trait LogParser: Send {
    /// The schema of every batch this parser produces.
    fn schema(&self) -> SchemaRef;

    /// Parse one line (without its newline) and append it to the batch being built.
    /// On `Err` nothing is appended.
    fn push_line(&mut self, line: &[u8], line_number: u64) -> Result<(), LineError>;

    /// Rows parsed since the last `finish_batch`.
    fn len(&self) -> usize;

    /// True when no rows are pending.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take the rows parsed so far as one [`RecordBatch`] with exactly `schema()`;
    /// the parser is empty afterwards.
    fn finish_batch(&mut self) -> Result<RecordBatch, ArrowError>;

    /// Text columns whose values vary freely from line to line (a request path, a user
    /// agent, a client address): min/max statistics over them never prune a file or a page
    /// and cost time to compute, so the warehouse writes them without.
    fn free_text_columns(&self) -> Vec<String> {
        Vec::new()
    }
}
