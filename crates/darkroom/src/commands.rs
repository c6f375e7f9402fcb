//! One function per command.

use std::io::IsTerminal;

use anyhow::{Context, Result, anyhow, bail};
use chrono::NaiveDate;
use darkroom_sources::{IngestContext, IngestReport};

use crate::cli::{Cli, Command, ExtractArgs, Format, IngestArgs};
use crate::exit;
use crate::output::{bytes, print_json, print_rows};
use crate::{progress, project};

pub async fn run(cli: Cli) -> Result<u8> {
    let explicit = cli.project.as_deref();
    match cli.command {
        Command::Demo(args) => crate::demo::demo(args).await,
        Command::Init { dir } => init(&dir),
        Command::Validate { json } => validate(explicit, json),
        Command::Ingest(args) => ingest(explicit, args).await,
        Command::Extract(args) => extract(explicit, args).await,
        Command::Query { sql, format, json } => {
            query(explicit, &sql, if json { Format::Json } else { format }).await
        }
        Command::Tables { json } => tables(explicit, json).await,
        Command::Build(args) => crate::models::build(explicit, args).await,
        Command::Compile { model, date, vars } => {
            crate::models::compile(explicit, &model, date, &vars)
        }
        Command::Docs { out, json } => crate::models::docs(explicit, out.as_deref(), json).await,
        Command::Run(args) => crate::pipeline::run(explicit, args).await,
        Command::Backfill(args) => crate::pipeline::backfill(explicit, args).await,
        Command::Schedule { runs, json } => crate::pipeline::schedule(explicit, runs, json).await,
        Command::Status { json } => crate::pipeline::status(explicit, json),
        Command::Health {
            date,
            json,
            notify,
            recheck,
            as_of,
        } => crate::health::health(explicit, date, json, notify, recheck, as_of).await,
        Command::Maintain { json } => crate::pipeline::maintain(explicit, json).await,
        Command::Metric(args) => crate::analytics::metric(explicit, args).await,
        Command::Funnel(args) => crate::analytics::funnel(explicit, args).await,
        Command::Retention(args) => crate::analytics::retention(explicit, args).await,
    }
}

fn init(dir: &std::path::Path) -> Result<u8> {
    let written = darkroom_config::write_starter(dir)
        .with_context(|| format!("cannot create a project in {}", dir.display()))?;
    println!("Created a Darkroom project in {}:", dir.display());
    for path in written {
        println!("  {}", path.display());
    }
    println!(
        "Next: edit {}/darkroom.toml, put logs where `path` says, then `darkroom -C {} validate`.",
        dir.display(),
        dir.display()
    );
    Ok(exit::OK)
}

fn validate(explicit: Option<&std::path::Path>, json: bool) -> Result<u8> {
    let dir = project::project_dir(explicit)?;
    let (project, mut problems) = darkroom_config::Project::check(&dir);
    if let Some(project) = &project {
        for d in darkroom_sources::validate(project).iter() {
            problems.push(d.clone());
        }
        // models: names, templates, settings, sources, refs and cycles (their columns are
        // checked against the warehouse by `darkroom build`)
        darkroom_models::Models::load(project, &mut problems);
        // events, dimensions, metrics, funnels and teams (models/**/*.toml)
        if let Err(d) = darkroom_analytics::Definitions::load(&project.root) {
            for x in d.iter() {
                problems.push(x.clone());
            }
        }
        // checks and reconciliations (models/**/*.toml)
        darkroom_quality::defs::QualityDefs::check(&project.root, &mut problems);
    }
    problems.sort();
    if json {
        let list: Vec<_> = problems
            .iter()
            .map(|d| {
                serde_json::json!({
                    "file": d.path.display().to_string(),
                    "line": d.line,
                    "column": d.column,
                    "message": d.message,
                })
            })
            .collect();
        print_json(&serde_json::json!({ "valid": problems.is_empty(), "problems": list }))?;
    } else if problems.is_empty() {
        println!(
            "{}: valid",
            dir.join(darkroom_config::PROJECT_FILE).display()
        );
    } else {
        eprintln!("{problems}");
        eprintln!("{} problem(s) found", problems.len());
    }
    Ok(if problems.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    })
}

/// `no source named `x` in darkroom.toml; sources: a, b`.
fn no_such_source<'a>(
    project: &darkroom_config::Project,
    what: &str,
    name: &str,
    names: impl Iterator<Item = &'a str>,
) -> anyhow::Error {
    let names: Vec<&str> = names.collect();
    anyhow!(
        "no {what} named `{name}` in {}; {what}s: {}",
        project.file.path.display(),
        if names.is_empty() {
            "(none)".to_string()
        } else {
            names.join(", ")
        }
    )
}

async fn extract(explicit: Option<&std::path::Path>, args: ExtractArgs) -> Result<u8> {
    let project = project::load(explicit)?;
    let sources: Vec<&darkroom_config::DatabaseSourceConfig> = match &args.source {
        None => project.databases.iter().collect(),
        Some(name) => {
            let source = project.database(name).ok_or_else(|| {
                let names = project.databases.iter().map(|s| s.name());
                no_such_source(&project, "database source", name, names)
            })?;
            vec![source]
        }
    };
    if sources.is_empty() {
        bail!(
            "{} has no database source: add a [[sources]] with kind = \"postgres\", \"mysql\" \
             or \"sqlite\"",
            project.file.path.display()
        );
    }
    if !args.tables.is_empty() && args.source.is_none() {
        bail!("--table needs a SOURCE: darkroom extract SOURCE --table T");
    }
    let warehouse = project::warehouse(&project)?;
    let (reports, failures) = extract_sources(
        &project,
        &warehouse,
        &sources,
        &args.tables,
        args.date,
        args.json,
    )
    .await;
    if args.json {
        print_json(&serde_json::json!({ "reports": reports, "errors": failures }))?;
    }
    Ok(
        if failures.is_empty() && reports.iter().all(darkroom_extract::SourceReport::is_ok) {
            exit::OK
        } else {
            exit::FAILED
        },
    )
}

/// Extract each source in turn; a source that fails (cannot connect) does not stop the others.
pub(crate) async fn extract_sources(
    project: &darkroom_config::Project,
    warehouse: &darkroom_storage::Warehouse,
    sources: &[&darkroom_config::DatabaseSourceConfig],
    tables: &[String],
    date: Option<NaiveDate>,
    quiet: bool,
) -> (Vec<darkroom_extract::SourceReport>, Vec<String>) {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for source in sources {
        let spinner = progress::RowSpinner::new(quiet);
        let options = darkroom_extract::ExtractOptions {
            tables: tables.to_vec(),
            date,
            project_root: project.root.clone(),
            on_table: Some(spinner.on_table()),
            on_table_done: Some(std::sync::Arc::new({
                let spinner = spinner.clone();
                move |t: &darkroom_extract::TableReport| {
                    spinner.done();
                    if !quiet {
                        print_table_report(t);
                    }
                }
            })),
        };
        match darkroom_extract::extract_source(warehouse, project.timezone(), source, &options)
            .await
        {
            Ok(report) => reports.push(report),
            Err(e) => {
                spinner.done();
                if !quiet {
                    eprintln!("error: {e}");
                }
                failures.push(e.to_string());
            }
        }
    }
    (reports, failures)
}

pub(crate) fn print_table_report(t: &darkroom_extract::TableReport) {
    match &t.error {
        None => {
            let mut notes = Vec::new();
            if !t.new_columns.is_empty() {
                notes.push(format!("new columns: {}", t.new_columns.join(", ")));
            }
            for (column, n) in &t.zero_dates {
                notes.push(format!("{n} zero dates in {column} stored as NULL"));
            }
            if let Some(w) = &t.watermark {
                notes.push(format!("watermark {w}"));
            }
            println!(
                "{}.{} -> {} ({}): {} rows, {}, {:.1}s{}",
                t.source,
                t.table,
                t.warehouse_table,
                t.mode,
                t.rows,
                bytes(t.bytes),
                t.seconds,
                if notes.is_empty() {
                    String::new()
                } else {
                    format!(" — {}", notes.join("; "))
                }
            );
        }
        Some(e) => eprintln!(
            "{}.{} -> {} FAILED after {:.1}s: {e}",
            t.source, t.table, t.warehouse_table, t.seconds
        ),
    }
}

fn dates(args: &IngestArgs) -> Result<Vec<NaiveDate>> {
    match (args.date, args.from, args.to) {
        (Some(d), _, _) => Ok(vec![d]),
        (None, Some(from), Some(to)) => {
            if to < from {
                bail!("--to {to} is before --from {from}");
            }
            Ok(from.iter_days().take_while(|d| *d <= to).collect())
        }
        _ => bail!("give --date D, or --from A --to B"),
    }
}

async fn ingest(explicit: Option<&std::path::Path>, args: IngestArgs) -> Result<u8> {
    let project = project::load(explicit)?;
    let sources: Vec<_> = if args.all {
        project.sources.iter().collect()
    } else {
        let name = args.source.as_deref().unwrap_or_default();
        let source = project.source(name).ok_or_else(|| {
            let names = project.sources.iter().map(|s| s.name());
            no_such_source(&project, "source", name, names)
        })?;
        vec![source]
    };
    let names: Vec<String> = sources.iter().map(|s| s.name().to_owned()).collect();
    let (reports, failures) =
        ingest_dates(&project, &names, &dates(&args)?, args.json, !args.json).await?;
    if args.json {
        print_json(&serde_json::json!({ "reports": reports, "errors": failures }))?;
    }
    Ok(if !failures.is_empty() {
        exit::FAILED
    } else if reports.iter().all(IngestReport::is_ok) {
        exit::OK
    } else {
        exit::INCOMPLETE
    })
}

/// Ingests `sources` (by name) for each of `dates`, printing each report when `print`.
/// Returns the reports and the failures (a failed date does not stop the others).
async fn ingest_dates(
    project: &darkroom_config::Project,
    sources: &[String],
    dates: &[NaiveDate],
    quiet: bool,
    print: bool,
) -> Result<(Vec<IngestReport>, Vec<String>)> {
    let warehouse = project::warehouse(project)?;
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for name in sources {
        let (r, f) = ingest_source_dates(
            project,
            &warehouse,
            name,
            dates,
            progress::reporter(quiet),
            |report| {
                if print {
                    print_report(report);
                }
            },
        )
        .await?;
        if print {
            for message in &f {
                eprintln!("error: {message}");
            }
        }
        reports.extend(r);
        failures.extend(f);
    }
    Ok((reports, failures))
}

/// Ingests one source for each of `dates` (a batch of dates at a time), calling `done` after
/// each date. A failed date does not stop the others: it is returned as a message.
async fn ingest_source_dates(
    project: &darkroom_config::Project,
    warehouse: &darkroom_storage::Warehouse,
    name: &str,
    dates: &[NaiveDate],
    progress: std::sync::Arc<dyn darkroom_sources::Progress>,
    mut done: impl FnMut(&IngestReport),
) -> Result<(Vec<IngestReport>, Vec<String>)> {
    let Some(source) = project.source(name) else {
        bail!("no source named `{name}`");
    };
    let ctx = IngestContext {
        project,
        warehouse,
        remote_options: project::s3_options(project),
        progress,
    };
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    darkroom_sources::ingest_dates(&ctx, source, dates, |date, outcome| match outcome {
        Ok(report) => {
            done(&report);
            reports.push(report);
        }
        Err(e) => failures.push(format!("{name} {date}: {e}")),
    })
    .await;
    Ok((reports, failures))
}

/// Ingests every source of the project for each of `dates`, the sources in parallel (one
/// task each; writes to the shared ledger take turns), with one progress bar on a terminal.
pub(crate) async fn ingest_all_parallel(
    project: &darkroom_config::Project,
    dates: &[NaiveDate],
    quiet: bool,
) -> Result<(Vec<IngestReport>, Vec<String>)> {
    let warehouse = project::warehouse(project)?;
    let total = (project.sources.len() * dates.len()) as u64;
    let bar = if quiet || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:>24} [{bar:30}] {pos}/{len} days, eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("ingesting the logs");
        bar
    };
    let mut tasks = tokio::task::JoinSet::new();
    for source in &project.sources {
        let (project, warehouse, bar) = (project.clone(), warehouse.clone(), bar.clone());
        let (name, dates) = (source.name().to_owned(), dates.to_vec());
        tasks.spawn(async move {
            ingest_source_dates(
                &project,
                &warehouse,
                &name,
                &dates,
                std::sync::Arc::new(darkroom_sources::NoProgress),
                |_| bar.inc(1),
            )
            .await
        });
    }
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (r, f) = joined.context("an ingest task stopped")??;
        reports.extend(r);
        failures.extend(f);
    }
    bar.finish_and_clear();
    reports.sort_by(|a, b| (&a.source, a.file_date).cmp(&(&b.source, b.file_date)));
    failures.sort();
    Ok((reports, failures))
}

pub(crate) fn print_report(r: &IngestReport) {
    let t = &r.totals;
    println!(
        "{} {}: {} — {} files, {} lines ({}), {} rows, {} quarantined, {:.1}s",
        r.source,
        r.file_date,
        r.status,
        r.files.len(),
        t.lines,
        bytes(t.bytes),
        t.rows,
        t.quarantined,
        r.seconds
    );
    for f in &r.files {
        if f.status != "ok" {
            println!(
                "  {} {} [{}]: {}",
                f.host,
                f.path,
                f.status,
                f.detail.as_deref().unwrap_or("")
            );
        }
    }
    for m in &r.missing {
        match &m.host {
            Some(h) => println!(
                "  missing: host {h} has no file (expected {})",
                m.expected_path
            ),
            None => println!(
                "  missing: no file at all for this date (expected {})",
                m.expected_path
            ),
        }
    }
    if t.quarantined > 0 {
        println!(
            "  {} lines kept in {}: darkroom query \"SELECT line, reason FROM {} WHERE file_date = DATE '{}' LIMIT 20\"",
            t.quarantined, r.quarantine_table, r.quarantine_table, r.file_date
        );
    }
}

async fn query(explicit: Option<&std::path::Path>, sql: &str, format: Format) -> Result<u8> {
    // Outside any project, files can still be queried by their path (as with DuckDB).
    let outside = explicit.is_none()
        && std::env::current_dir()
            .map(|cwd| darkroom_config::Project::discover(&cwd).is_none())
            .unwrap_or(false);
    let ctx = if outside {
        let ctx = darkroom_storage::file_session();
        darkroom_models::functions::register(&ctx);
        ctx
    } else {
        let project = project::load(explicit)?;
        let warehouse = project::warehouse(&project)?;
        // the models' views and functions are there too; a model with a problem is left out
        // (`darkroom build` reports it)
        let mut ignored = darkroom_config::Diagnostics::default();
        let models = darkroom_models::Models::load(&project, &mut ignored);
        // with the models' functions, window_funnel among them
        darkroom_models::build::prepare_session(&project, &models, &warehouse).await?
    };
    let result = darkroom_storage::run_sql(&ctx, sql).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("not found") && text.contains("table") {
            anyhow!("{text}\nhint: {}", darkroom_storage::file_table_hint())
        } else {
            anyhow!(text)
        }
    })?;
    print_rows(&result, format)?;
    Ok(exit::OK)
}

async fn tables(explicit: Option<&std::path::Path>, json: bool) -> Result<u8> {
    let project = project::load(explicit)?;
    let warehouse = project::warehouse(&project)?;
    let mut infos = Vec::new();
    for name in warehouse.list_tables().await? {
        if let Some(info) = warehouse.table_info(&name).await? {
            infos.push(info);
        }
    }
    if json {
        print_json(&infos)?;
        return Ok(exit::OK);
    }
    if infos.is_empty() {
        println!(
            "The warehouse at {} has no tables yet: ingest a source first (darkroom ingest --help).",
            warehouse.location()
        );
        return Ok(exit::OK);
    }
    println!(
        "{:<28} {:>12} {:>7} {:>10} {:>10} {:<16} {:>8}",
        "table", "rows", "files", "size", "partitions", "last partition", "version"
    );
    for t in infos {
        println!(
            "{:<28} {:>12} {:>7} {:>10} {:>10} {:<16} {:>8}",
            t.name,
            t.rows,
            t.files,
            bytes(t.bytes),
            t.partitions,
            t.last_partition.as_deref().unwrap_or("-"),
            t.version
        );
    }
    Ok(exit::OK)
}
