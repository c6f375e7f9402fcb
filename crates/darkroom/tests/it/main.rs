//! End-to-end tests of the `darkroom` binary: real files, a real Delta warehouse on disk or on
//! a local S3-compatible server (moto), real crashes.

mod crash;
mod harness;
mod ingest;
mod project_files;
mod query;
mod s3;
