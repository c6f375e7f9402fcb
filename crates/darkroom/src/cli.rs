//! The command line.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes: 0 done; 1 failed; 2 bad command line; 3 done, but something expected was missing \
or unreadable (see the report).

Start here:
  darkroom init my_project          write a commented starter project
  darkroom validate                 check darkroom.toml, every problem at once
  darkroom ingest web --date 2026-01-31
  darkroom tables                   what the warehouse holds
  darkroom query \"SELECT status, count(*) FROM raw_web GROUP BY 1\"";

/// Darkroom: a self-hosted analytics warehouse in one binary.
///
/// It ingests server logs (and, soon, production databases) into Delta Lake tables, keeps
/// every line that does not parse, counts what it read, and answers SQL.
#[derive(Debug, Parser)]
#[command(name = "darkroom", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The project folder (holding darkroom.toml). Default: the current folder or the nearest
    /// parent with a darkroom.toml.
    #[arg(short = 'C', long = "project", global = true, env = "DARKROOM_PROJECT")]
    pub project: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug). DARKROOM_LOG=... overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter project into DIR (created if needed).
    Init {
        /// Where to create the project.
        dir: PathBuf,
    },

    /// Check darkroom.toml and report every problem at once, with file, line and column.
    ///
    /// Checks the file's syntax, unknown keys, ${VAR} secrets that are not set, time zones,
    /// path templates, nginx log formats and JSON timestamp formats. Nothing is connected to
    /// or written.
    Validate {
        /// Print the problems (or none) as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Ingest a log source for one date or a range of dates.
    ///
    /// Finds the source's files for each date (path template with {date} and {host}), parses
    /// every line into raw_<source> (partitioned by file_date), keeps every line that does not
    /// parse byte for byte in _quarantine_<source>, and records what was read per host and
    /// hour in _ingest_ledger. Re-ingesting a date replaces exactly that date. A host or date
    /// with no file is reported by name and expected path, and the command exits with 3.
    Ingest(IngestArgs),

    /// Run one SQL statement over the warehouse and print the rows.
    ///
    /// Every warehouse table is available by name. A Parquet, CSV or JSON-lines file can be
    /// queried by its path in quotes: SELECT * FROM 'data/events.parquet'.
    Query {
        /// The SQL statement.
        sql: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
    },

    /// List the warehouse's tables: rows, files, size, partitions and Delta version.
    Tables {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The source to ingest (its `name` in darkroom.toml).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub source: Option<String>,
    /// Ingest every source.
    #[arg(long)]
    pub all: bool,
    /// One date (YYYY-MM-DD), in the project's time zone.
    #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
    pub date: Option<NaiveDate>,
    /// First date of a range (inclusive).
    #[arg(long, requires = "to")]
    pub from: Option<NaiveDate>,
    /// Last date of a range (inclusive).
    #[arg(long, requires = "from")]
    pub to: Option<NaiveDate>,
    /// Print the reports as JSON (one array) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}
