//! End-to-end tests of the `darkroom` binary: real files, a real Delta warehouse on disk or on
//! a local S3-compatible server (moto), real crashes.

// test code: a panic is a failed test
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analytics;
mod crash;
mod demo;
mod extract;
mod harness;
mod ingest;
mod models;
mod pipeline;
mod project_files;
mod query;
mod s3;
mod trust;
