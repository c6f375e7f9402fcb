//! `darkroom`: the one binary. Command-line parsing and wiring only; the work happens in the
//! library crates.

mod analytics;
mod cli;
mod commands;
mod demo;
mod demo_db;
mod health;
mod models;
mod output;
mod pipeline;
mod progress;
mod project;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, documented in `darkroom --help`.
pub mod exit {
    /// Everything asked was done.
    pub const OK: u8 = 0;
    /// The command failed; nothing (more) was done.
    pub const FAILED: u8 = 1;
    /// The command line could not be understood (clap's own code).
    pub const USAGE: u8 = 2;
    /// The work was done but something expected was missing or unreadable (a host's log file,
    /// a corrupt file): read the report.
    pub const INCOMPLETE: u8 = 3;
    /// Another run or backfill holds the project; nothing was done.
    pub const LOCKED: u8 = 4;
}

/// mimalloc instead of the system allocator: ingest allocates and frees large column buffers
/// for every batch, and glibc returns them to the kernel each time (a page fault per 4 KiB on
/// the next batch); mimalloc keeps and reuses them. DataFusion's own CLI does the same.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // rustls can see two crypto providers (ring and aws-lc-rs) through different crates;
    // choose one before anything opens a connection. An error means one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("darkroom");
    // DARKROOM_THREADS=N: how many threads queries use (default: one per core)
    if let Some(n) = darkroom_storage::threads_from_env() {
        builder.worker_threads(n);
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("darkroom: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::from(exit::OK);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(exit::FAILED)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,darkroom=info",
        2 => "debug",
        _ => "trace",
    };
    // delta-rs warns on every write that it keeps no statistics for binary columns (the
    // quarantine's raw bytes): expected, and not the user's concern.
    // A merge warns that delta-rs derived a metric it did not collect: internal bookkeeping.
    // Vacuum warns that keeping the versions of published snapshots is an experimental API:
    // it is the one `darkroom maintain` relies on, and tested.
    let default = format!(
        "{default},deltalake_core::writer::stats=error,deltalake_core::operations::merge=error,\
         deltalake_core::operations::vacuum=error"
    );
    let filter = tracing_subscriber::EnvFilter::try_from_env("DARKROOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
