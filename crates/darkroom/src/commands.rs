//! One function per command.

use anyhow::{Context, Result, anyhow, bail};
use chrono::NaiveDate;
use darkroom_sources::{IngestContext, IngestReport};

use crate::cli::{Cli, Command, Format, IngestArgs};
use crate::exit;
use crate::output::{bytes, print_json, print_rows};
use crate::{progress, project};

pub async fn run(cli: Cli) -> Result<u8> {
    let explicit = cli.project.as_deref();
    match cli.command {
        Command::Init { dir } => init(&dir),
        Command::Validate { json } => validate(explicit, json),
        Command::Ingest(args) => ingest(explicit, args).await,
        Command::Query { sql, format, json } => {
            query(explicit, &sql, if json { Format::Json } else { format }).await
        }
        Command::Tables { json } => tables(explicit, json).await,
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
    let warehouse = project::warehouse(&project)?;
    let sources: Vec<_> = if args.all {
        project.sources.iter().collect()
    } else {
        let name = args.source.as_deref().unwrap_or_default();
        let source = project.source(name).ok_or_else(|| {
            let names: Vec<&str> = project.sources.iter().map(|s| s.name()).collect();
            anyhow!(
                "no source named `{name}` in {}; sources: {}",
                project.file.path.display(),
                if names.is_empty() {
                    "(none)".to_string()
                } else {
                    names.join(", ")
                }
            )
        })?;
        vec![source]
    };
    let ctx = IngestContext {
        project: &project,
        warehouse: &warehouse,
        remote_options: project::s3_options(&project),
        progress: progress::reporter(args.json),
    };
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for source in sources {
        for date in dates(&args)? {
            match darkroom_sources::ingest_date(&ctx, source, date).await {
                Ok(report) => {
                    if !args.json {
                        print_report(&report);
                    }
                    reports.push(report);
                }
                Err(e) => {
                    let message = format!("{} {date}: {e}", source.name());
                    if !args.json {
                        eprintln!("error: {message}");
                    }
                    failures.push(message);
                }
            }
        }
    }
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

fn print_report(r: &IngestReport) {
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
    let project = project::load(explicit)?;
    let warehouse = project::warehouse(&project)?;
    let result = warehouse.query(sql).await.map_err(|e| {
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
