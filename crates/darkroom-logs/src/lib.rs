//! Turning log bytes into typed Arrow batches, line by line, with an exact error for every line
//! that does not parse.
//!
//! This crate owns line splitting ([`lines::LineReader`]), the nginx access-log parser
//! ([`nginx::NginxParser`], compiled from an nginx `log_format`), the JSON-lines parser
//! ([`jsonl`]) and the [`LogParser`] contract they share. It must not know about files, storage
//! or configuration files: callers hand it any `std::io::Read` (already decompressed) and the
//! options, and receive `RecordBatch`es plus a [`LineError`] per rejected line, which they
//! quarantine byte-exact.

pub mod jsonl;
pub mod lines;
pub mod nginx;
mod parser;

pub use lines::{Line, LineReader};
pub use nginx::{FormatError, IpMasker, NginxFormat, NginxParser};
pub use parser::{DEFAULT_BATCH_SIZE, IpPolicy, LineError, LogParser, ParseOptions};
