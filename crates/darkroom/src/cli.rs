//! The command line.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes: 0 done; 1 failed; 2 bad command line; 3 done, but something expected was missing \
or unreadable, or a deadline was missed (see the report); 4 another run holds the project.

Start here:
  darkroom demo                     generate the demo company and run the pipeline over it
  darkroom init my_project          write a commented starter project
  darkroom validate                 check darkroom.toml, every problem at once
  darkroom ingest web --date 2026-01-31
  darkroom tables                   what the warehouse holds
  darkroom build                    build the SQL models (models/**/*.sql)
  darkroom run                      the nightly pipeline for yesterday: extract, ingest, build, publish
  darkroom backfill --from 2026-01-01 --to 2026-01-31
  darkroom status                   what is complete, what runs, what failed, deadlines
  darkroom query \"SELECT status, count(*) FROM raw_web GROUP BY 1\"";

/// Darkroom: a self-hosted analytics warehouse in one binary.
///
/// It ingests server logs and production databases into Delta Lake tables, keeps every line
/// that does not parse, counts what it read, builds SQL models into a star schema, and
/// answers SQL.
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
    /// Generate the demo company (a photo marketplace) and run the pipeline over it.
    ///
    /// Writes a complete project into DIR: a production database (db/app.db, SQLite), the
    /// servers' logs (nginx on 3 web and 2 API hosts, JSON-lines app events; gzip, one file
    /// per host per day), darkroom.toml, the star schema's SQL models in models/, and the
    /// ground truth in truth/ (what the warehouse must contain, and every injected fault's
    /// exact effect). Then it ingests every log source for every day, extracts the database,
    /// builds the models over every day and prints what to look at next. The same seed gives
    /// the same bytes.
    #[command(after_help = DEMO_AFTER_HELP)]
    Demo(DemoArgs),

    /// Write a commented starter project into DIR (created if needed).
    Init {
        /// Where to create the project.
        dir: PathBuf,
    },

    /// Check darkroom.toml and report every problem at once, with file, line and column.
    ///
    /// Checks the file's syntax, unknown keys, ${VAR} secrets that are not set, time zones,
    /// path templates, nginx log formats and JSON timestamp formats; the SQL models; and the
    /// events, metrics, funnels and teams in models/**/*.toml. Nothing is connected to or
    /// written.
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

    /// Copy production database tables into the warehouse (raw_<source>_<table>).
    ///
    /// For a source of kind postgres, mysql or sqlite: every listed table is read inside one
    /// repeatable-read transaction (one consistent snapshot), with exact types (decimals stay
    /// decimals, timestamps become UTC). `full` tables are replaced (or kept per
    /// snapshot_date); `incremental` tables read rows past their watermark and merge them on
    /// the key. A column added at the source is added to the table and reported; a column
    /// dropped, renamed or retyped stops that table's load with the column named. A table that
    /// fails leaves its previous version untouched; the others carry on (exit code 1).
    Extract(ExtractArgs),

    /// Build the SQL models (models/**/*.sql) into the warehouse, in dependency order.
    ///
    /// Every model is first rendered and planned against the warehouse (a missing model,
    /// source or column is reported for every model at once, with file and line, and nothing
    /// runs). Then each selected model is materialised: `table` rebuilt and swapped in by one
    /// commit, `view` registered, `incremental` replaces exactly the partition of --date,
    /// `snapshot` records type-2 history. A model whose upstream failed is skipped; the others
    /// still build (exit code 1 if any failed).
    #[command(after_help = BUILD_AFTER_HELP)]
    Build(BuildArgs),

    /// Print a model's final SQL, as it runs for a date (templates rendered, refs resolved).
    Compile {
        /// The model (its file name without .sql).
        model: String,
        /// The run date the template sees (default yesterday in the project time zone).
        #[arg(long)]
        date: Option<NaiveDate>,
        /// A template variable, var('name') (repeatable): --var name=value.
        #[arg(long = "var", value_name = "NAME=VALUE")]
        vars: Vec<String>,
    },

    /// Write the model catalogue: tables, grain, owners, columns with types and docs, and
    /// lineage (model and column level) as static HTML and JSON.
    Docs {
        /// Where to write index.html and catalog.json (default: target/docs in the project).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also print the catalogue as JSON on stdout.
        #[arg(long)]
        json: bool,
    },

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

    /// Run the nightly pipeline for one night: extract, ingest, build, publish.
    ///
    /// Every source extract, log ingest and model build is a task for one date partition,
    /// run in dependency order, in parallel up to [pipeline] parallel. A task whose partition
    /// the warehouse records complete with the same input fingerprint is not run again, so a
    /// run after a crash resumes where it stopped. Earlier dates whose log files arrived or
    /// changed since they were done (late data, up to [pipeline] lookback_days back) are
    /// ingested and rebuilt too. A failed task skips what depends on it; the rest finishes;
    /// transient errors are retried with backoff. The night ends with a publish of its table
    /// versions. One run per project at a time (exit code 4 if another holds it).
    #[command(after_help = RUN_AFTER_HELP)]
    Run(RunArgs),

    /// Ingest and build a range of dates, then publish.
    ///
    /// Like `run` for every date from --from to --to, without the database extract (a
    /// database can only be read as it is now: models are rebuilt from the snapshots already
    /// in the warehouse). The dates of one model run in batches (one query per month). A
    /// snapshot model (type-2 history) already taken is not taken again: its history only
    /// moves forward.
    Backfill(BackfillArgs),

    /// Run the pipeline on a schedule: the nightly run on [pipeline] schedule and maintenance
    /// on [pipeline] maintenance (5-field cron, project time zone). Runs until stopped.
    Schedule {
        /// Stop after this many firings (for trying a schedule out).
        #[arg(long)]
        runs: Option<usize>,
        /// Print each run's report as JSON.
        #[arg(long)]
        json: bool,
    },

    /// What is complete, what runs now, what failed and why, and missed deadlines.
    ///
    /// Each table's latest complete partition, the last runs, the run in progress (and
    /// whether its process is still alive), failed tasks with their errors, and whether last
    /// night met [pipeline] deadline (exit code 3 if a deadline was missed, even when nothing
    /// ran at all). Reads the project's run history only: answers at once.
    Status {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },

    /// Can the numbers be trusted? The latest night per table and metric, incidents, degraded dates.
    ///
    /// For the night (default: the latest checked): each table and metric as ok, degraded
    /// (a check on it failed), failed (the run failed) or stale (the night is not published:
    /// readers still see an older snapshot); every open incident with its evidence and the
    /// events at stake; the dates published as degraded; alerts not delivered. Checks run
    /// after every night (declared [[check]] and [[reconcile]] entries in models/**/*.toml,
    /// and monitors learned from the ingest ledger); `error` failures block publishing.
    /// With --notify: also the dead-man check ([pipeline] deadline passed and nothing
    /// published: an incident and an alert, even if nothing ran) and a retry of alerts not
    /// yet delivered; run it from cron when `darkroom schedule` is not running.
    /// Exit code 3 when something needs a person.
    Health {
        /// The night to report on (YYYY-MM-DD).
        #[arg(long)]
        date: Option<NaiveDate>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
        /// Run the dead-man check and send undelivered alerts first.
        #[arg(long)]
        notify: bool,
        /// Evaluate the night's checks and monitors again first (over the latest table
        /// versions), updating its incidents and alerting; nothing is published.
        #[arg(long)]
        recheck: bool,
        /// With --notify: judge the deadline as of this instant (RFC 3339, e.g.
        /// 2026-03-02T07:00:00Z) instead of now.
        #[arg(long, value_name = "TIME", requires = "notify")]
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    },

    /// A metric as the project defines it, by day, week or month, sliced by its dimensions.
    ///
    /// Metrics are declared once in models/**/*.toml ([[metric]]: kind, table, filter,
    /// dimensions, owner); every number comes from that definition. Reads the latest
    /// published snapshot and says which date its data runs to. Without NAME: the metrics,
    /// by owner team.
    #[command(after_help = METRIC_AFTER_HELP)]
    Metric(MetricArgs),

    /// A funnel: persons per step, conversion, drop-off and time to convert.
    ///
    /// A declared funnel ([[funnel]] in models/**/*.toml) by NAME, or an ad hoc one with
    /// --steps over declared events. Persons (the resolved identity) enter with a first-step
    /// event dated --from..--to and reach each next step, in order, within --window of
    /// entering (ClickHouse windowFunnel semantics). Without NAME or --steps: the funnels and
    /// events.
    #[command(after_help = FUNNEL_AFTER_HELP)]
    Funnel(FunnelArgs),

    /// Retention: of the persons who did --start in a period, how many did --return N
    /// periods later.
    ///
    /// Cohorts by the first-time start event (default) or every period it recurs in
    /// (--recurring); returns on period N (default) or on-or-after (--on-or-after). Periods
    /// that have not fully elapsed are left empty, not counted.
    #[command(after_help = RETENTION_AFTER_HELP)]
    Retention(RetentionArgs),

    /// Compact small files and vacuum old ones in every table, keeping every file the newest
    /// [pipeline] keep_snapshots published snapshots need.
    Maintain {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },

    /// List the warehouse's tables: rows, files, size, partitions and Delta version.
    Tables {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

const DEMO_AFTER_HELP: &str = "\
Faults (--fault, repeatable; times and dates in the project time zone, America/Toronto):
  sender-dies:host=api-2,from=2026-02-10T14:00[,back=2026-02-13]
                                   a host's log sender dies (and delivers a late backlog)
  loss:date=2026-02-20,fraction=0.1
                                   a day loses 10% of its log lines in transit
  garble:date=2026-02-21,fraction=0.02
                                   parser regression: 2% of a day's nginx lines change format
  duplicate:host=web-1,date=2026-02-22
                                   a host's files of a day are delivered twice
  missing-day:date=2026-02-23      no log file at all for a day
  clock-skew:host=web-3,hours=5    a host's clock runs 5 hours ahead (negative: behind)
  schema-drift:change=rename|type|enum
                                   the production schema drifts (users.country renamed,
                                   photos.width becomes text, a new plan 'team')
  db-unreachable:date=2026-02-24   that night runs with the database down: its extract fails
                                   and the next publish lists the night as degraded

Example:
  darkroom demo shop --days 30 --users 2000 --fault loss:date=2026-01-20,fraction=0.1";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the project (created if needed). An earlier demo there is replaced
    /// (logs/, db/, truth/, warehouse/, models/: copy edited models elsewhere first); a
    /// folder holding anything else is refused.
    #[arg(default_value = "darkroom-demo")]
    pub dir: PathBuf,
    /// How many days to generate.
    #[arg(long, default_value_t = 90)]
    pub days: u32,
    /// About how many people sign up over the period.
    #[arg(long, default_value_t = 20_000)]
    pub users: u32,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The first day (YYYY-MM-DD, project time zone).
    #[arg(long, default_value = "2026-01-01")]
    pub start: NaiveDate,
    /// Also load the production database into a running server (postgres://... or
    /// mysql://...; existing demo tables there are replaced) and point darkroom.toml's app_db
    /// source at it. A URL with a password is not written to darkroom.toml: it reads
    /// ${APP_DB_URL} instead.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Inject a fault (repeatable); see the list below.
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<darkroom_demo::Fault>,
    /// Only generate; do not run the pipeline (ingest, extract, build).
    #[arg(long)]
    pub no_run: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
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

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// The database source (its `name` in darkroom.toml); every database source when omitted.
    pub source: Option<String>,
    /// Only this table (repeatable).
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// The date the snapshot is recorded for (snapshot_date, task ids); default yesterday in
    /// the project's time zone. The database is always read as it is now.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Print the reports as JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

const BUILD_AFTER_HELP: &str = "\
Selecting (--select, repeatable): NAME one model; NAME+ it and everything downstream; +NAME it
and everything it reads; +NAME+ both.

Examples:
  darkroom build                                  every model, for yesterday
  darkroom build --select stg_pageviews+ --date 2026-01-31
  darkroom build --target dev --select fct_events try an edit without touching shared tables";

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Models to build (NAME, NAME+, +NAME); default every model.
    #[arg(long = "select", short = 's', value_name = "MODEL")]
    pub select: Vec<String>,
    /// The run date: the partition incremental models replace, the day snapshots record.
    /// Default: yesterday in the project's time zone.
    #[arg(long, conflicts_with = "to")]
    pub date: Option<NaiveDate>,
    /// Build a range of dates (a backfill): incremental models compute every date from
    /// --from to --to, the other models build once for --to.
    #[arg(long, requires = "to")]
    pub from: Option<NaiveDate>,
    /// Last date of a range (inclusive).
    #[arg(long, requires = "from")]
    pub to: Option<NaiveDate>,
    /// Where to build: prod (the shared warehouse) or dev ([warehouse] dev_location).
    #[arg(long, value_enum, default_value_t = crate::project::Target::Prod)]
    pub target: crate::project::Target,
    /// A template variable, var('name') (repeatable): --var name=value.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

const RUN_AFTER_HELP: &str = "\
Examples:
  darkroom run                       last night (yesterday in the project time zone)
  darkroom run --date 2026-01-31     one night
  darkroom run --dry-run             what would run, and why
  darkroom run --force               run every task again, done or not";

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The night (YYYY-MM-DD, project time zone). Default: yesterday.
    #[arg(long)]
    pub date: Option<NaiveDate>,
    /// Run every task, even those already done.
    #[arg(long)]
    pub force: bool,
    /// Tasks at once (default [pipeline] parallel).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Show the plan (what would run and why); run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A template variable for the models, var('name') (repeatable): --var name=value.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Print the report as JSON; no live view.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// First date (inclusive).
    #[arg(long)]
    pub from: NaiveDate,
    /// Last date (inclusive); the night published.
    #[arg(long)]
    pub to: NaiveDate,
    /// Which tasks run: missing (not done, or their inputs changed), failed (only those
    /// that failed or were skipped before), all (everything again).
    #[arg(long, default_value = "missing", value_parser = parse_reprocess)]
    pub reprocess: darkroom_pipeline::Reprocess,
    /// Tasks at once (default [pipeline] parallel).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Show the plan; run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A template variable for the models (repeatable): --var name=value.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Print the report as JSON; no live view.
    #[arg(long)]
    pub json: bool,
}

fn parse_reprocess(s: &str) -> Result<darkroom_pipeline::Reprocess, String> {
    s.parse()
}

const METRIC_AFTER_HELP: &str = "\
Examples:
  darkroom metric                                   the metrics, by owner team
  darkroom metric signups --from 2026-01-01 --to 2026-03-31 --grain week --by platform
  darkroom metric dau --from 2026-03-01 --to 2026-03-31 --csv
  darkroom metric stickiness --grain month --json

Without --from/--to: the 30 days up to the last published night.";

const FUNNEL_AFTER_HELP: &str = "\
Examples:
  darkroom funnel                                   the funnels and events
  darkroom funnel activation --from 2026-01-01 --to 2026-03-17
  darkroom funnel creator --by platform --attribution signup
  darkroom funnel --steps visit,signup,purchase --window 7d --mode strict_increase
  darkroom funnel buyer --exclude cancel:signup:purchase --json

Modes (ClickHouse windowFunnel): default; strict_deduplication (a repeated step ends the
chain); strict_increase (strictly later timestamps) — combinable, comma-separated; or
any_order. Events at the same instant are ordered by step number. strict_order (nothing else
between steps) needs every event a person did: use it in SQL,
  darkroom query \"SELECT window_funnel('strict_order', INTERVAL '1 day', ts, ...) ...\"";

const RETENTION_AFTER_HELP: &str = "\
Examples:
  darkroom retention --start signup --return daily_active --period week --periods 8
  darkroom retention --start visit --return visit --recurring --on-or-after --by platform";

#[derive(Debug, Args)]
pub struct MetricArgs {
    /// The metric's name; omit to list the metrics.
    pub name: Option<String>,
    /// First date (inclusive, project time zone). Default: 29 days before --to.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last date (inclusive). Default: the last published night.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Period length: day, week (from Monday) or month.
    #[arg(long, default_value = "day")]
    pub grain: String,
    /// Slice by a dimension the metric declares (repeatable).
    #[arg(long = "by", value_name = "DIM")]
    pub by: Vec<String>,
    /// Print as JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print as CSV.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct FunnelArgs {
    /// A declared funnel's name; omit with --steps for an ad hoc funnel, or to list them.
    #[arg(conflicts_with = "steps")]
    pub name: Option<String>,
    /// Ad hoc steps: declared event names, comma-separated (event[where SQL] filters a step:
    /// "visit,signup[platform = 'ios'],purchase").
    #[arg(long, value_name = "EVENTS")]
    pub steps: Option<String>,
    /// First entry date (inclusive, project time zone). Default: --to minus 29 days.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last entry date (inclusive). Default: the last published night minus the window.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Conversion window from the first step: 30m, 12h, 14d, 2w. Default: the funnel's, or 14d.
    #[arg(long)]
    pub window: Option<String>,
    /// Search mode(s), comma-separated (see below). Default: the funnel's, or default.
    #[arg(long)]
    pub mode: Option<String>,
    /// Break down by an event property (e.g. platform).
    #[arg(long, value_name = "PROPERTY")]
    pub by: Option<String>,
    /// The step whose property value a person is counted under (default: the first step).
    #[arg(long, value_name = "STEP")]
    pub attribution: Option<String>,
    /// An exclusion: EVENT:STEP_A:STEP_B — a person who does EVENT after STEP_A and before
    /// STEP_B leaves the funnel there (repeatable).
    #[arg(long = "exclude", value_name = "EVENT:A:B")]
    pub exclude: Vec<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// The event that puts a person in a cohort.
    #[arg(long)]
    pub start: String,
    /// The event that counts as coming back.
    #[arg(long = "return", value_name = "EVENT")]
    pub return_event: String,
    /// First cohort date (inclusive). Default: --to minus 8 periods.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last cohort date (inclusive). Default: the last published night.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// day, week or month.
    #[arg(long, default_value = "week")]
    pub period: String,
    /// Periods after the cohort's to report.
    #[arg(long, default_value_t = 8)]
    pub periods: u32,
    /// Cohorts by every period the start event happens in (default: by the first time).
    #[arg(long)]
    pub recurring: bool,
    /// Count a return in period N or any later one (unbounded), not only in period N.
    #[arg(long)]
    pub on_or_after: bool,
    /// Break down by a property of the start event.
    #[arg(long, value_name = "PROPERTY")]
    pub by: Option<String>,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}
