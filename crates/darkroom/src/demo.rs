//! `darkroom demo`: generate the photo-marketplace company, then run what the project can
//! run over it — ingest every log source, extract the database, and the pipeline over every
//! day — and say what to look at next.
//!
//! The pipeline normally runs as one backfill of the whole period. A `db-unreachable` fault
//! is enacted for real: the period is built up to the night before, that night runs as a
//! nightly run whose database cannot be reached (its extract fails, nothing is published,
//! the alert names the task), and the days after it are built by a backfill again, so the
//! last night publishes with the failed one listed as degraded.

use std::collections::BTreeSet;
use std::io::IsTerminal;

use anyhow::{Context, Result, anyhow};
use chrono::NaiveDate;
use darkroom_config::{DatabaseKind, Project};
use darkroom_sources::IngestReport;

use crate::cli::DemoArgs;
use crate::commands::{extract_sources, ingest_all_parallel, print_report, print_table_report};
use crate::exit;
use crate::output::print_json;
use crate::project;

/// One pipeline run of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The dates from `from` to `to`, as `darkroom backfill` builds them.
    Backfill { from: NaiveDate, to: NaiveDate },
    /// One nightly run (`darkroom run --date D`) while the database cannot be reached.
    Unreachable { night: NaiveDate },
}

/// The runs that build `first..=last`: one backfill, cut around each night the database is
/// down.
fn steps(first: NaiveDate, last: NaiveDate, down: &BTreeSet<NaiveDate>) -> Vec<Step> {
    let mut out = Vec::new();
    let mut next = first;
    for &night in down.iter().filter(|d| (first..=last).contains(*d)) {
        if let Some(before) = night.pred_opt().filter(|b| *b >= next) {
            out.push(Step::Backfill {
                from: next,
                to: before,
            });
        }
        out.push(Step::Unreachable { night });
        match night.succ_opt() {
            Some(after) => next = after,
            None => return out,
        }
    }
    if next <= last {
        out.push(Step::Backfill {
            from: next,
            to: last,
        });
    }
    out
}

/// The project as it is during a night its database cannot be reached: every database
/// source points where nothing answers. Retries are skipped (a real night would retry the
/// connection and the task for some minutes first).
fn unreachable(project: &Project) -> Project {
    let mut down = project.clone();
    for db in &mut down.databases {
        db.url = match db.kind {
            DatabaseKind::Sqlite => "db/unreachable/app.db".to_string(),
            // the discard port: the connection is refused at once
            DatabaseKind::Postgres => "postgres://demo@127.0.0.1:9/app".to_string(),
            DatabaseKind::Mysql => "mysql://demo@127.0.0.1:9/app".to_string(),
        };
        db.retries = 0;
    }
    down.pipeline.retries = 0;
    down
}

pub(crate) async fn demo(args: DemoArgs) -> Result<u8> {
    let database = match &args.db {
        Some(url) => crate::demo_db::kind(url)?,
        None => darkroom_demo::DemoDatabase::Sqlite,
    };
    let opts = darkroom_demo::DemoOptions {
        dir: args.dir.clone(),
        days: args.days,
        users: args.users,
        seed: args.seed,
        start: args.start,
        faults: args.faults.clone(),
        database,
    };
    if !args.json {
        eprintln!(
            "Generating the demo company into {} ({} days from {}, about {} users, seed {})...",
            opts.dir.display(),
            opts.days,
            opts.start,
            opts.users,
            opts.seed
        );
    }
    let spinner = if args.json || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_message("simulating the company day by day, writing logs and truth");
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        spinner
    };
    let generated = {
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || darkroom_demo::generate(&opts))
            .await
            .context("the demo generator stopped")?
    };
    spinner.finish_and_clear();
    let generated = generated?;
    let dir = opts.dir.display().to_string();
    if !args.json {
        println!(
            "Wrote {dir}: {} people, {} users, {} log files ({} lines), {} and truth/ in {:.1}s",
            generated.persons,
            generated.users,
            generated.log_files,
            generated.log_lines,
            generated.database.display(),
            generated.seconds
        );
    }
    if let Some(url) = &args.db {
        let started = std::time::Instant::now();
        let rows = crate::demo_db::load(&generated.database, url).await?;
        let setting = darkroom_demo::url_setting(url);
        darkroom_demo::write_project_file(&opts, &setting)?;
        if !args.json {
            println!(
                "Loaded the database into {} ({rows} rows) in {:.1}s{}",
                darkroom_extract::redact(url),
                started.elapsed().as_secs_f64(),
                if setting.starts_with("${") {
                    "; darkroom.toml reads its URL from APP_DB_URL: export it to extract again"
                } else {
                    ""
                }
            );
        }
    }
    let down: BTreeSet<NaiveDate> = opts
        .faults
        .iter()
        .filter_map(|f| match f {
            darkroom_demo::Fault::DbUnreachable { date } => Some(*date),
            _ => None,
        })
        .collect();
    let mut code = exit::OK;
    let mut ingested = serde_json::Value::Null;
    if !args.no_run {
        let project = match &args.db {
            None => project::load(Some(&opts.dir))?,
            // the URL the user gave, for a darkroom.toml that reads it from APP_DB_URL
            Some(url) => Project::load_with_env(&opts.dir, &|name| {
                if name == "APP_DB_URL" {
                    Some(url.clone())
                } else {
                    std::env::var(name).ok()
                }
            })
            .map_err(|d| anyhow!("{d}"))?,
        };
        let started = std::time::Instant::now();
        let (first, last) = (opts.start, opts.end());
        let in_period = |r: &IngestReport| (first..=last).contains(&r.file_date);
        let (reports, failures) =
            ingest_all_parallel(&project, &generated.file_dates, args.json).await?;
        let mut per_source: std::collections::BTreeMap<&str, (u64, u64, u64, usize)> =
            std::collections::BTreeMap::new();
        for r in &reports {
            let e = per_source.entry(r.source.as_str()).or_default();
            e.0 += r.totals.rows;
            e.1 += r.totals.quarantined;
            e.2 += r.totals.lines;
            e.3 += usize::from(!r.is_ok() && in_period(r));
        }
        if !args.json {
            println!(
                "Ingested every log source for every day in {:.1}s:",
                started.elapsed().as_secs_f64()
            );
            for (source, (rows, quarantined, lines, not_ok)) in &per_source {
                println!(
                    "  raw_{source:<4} {rows:>10} rows from {lines} lines, {quarantined} quarantined, {not_ok} day(s) incomplete"
                );
            }
            for f in &failures {
                eprintln!("error: {f}");
            }
            for r in reports.iter().filter(|r| !r.is_ok() && in_period(r)) {
                print_report(r);
            }
            for r in reports
                .iter()
                .filter(|r| !in_period(r) && r.totals.rows > 0)
            {
                println!(
                    "  (raw_{} {}: {} rows written by a skewed clock, outside the generated days)",
                    r.source, r.file_date, r.totals.rows
                );
            }
        }
        // Beyond the generated days only a skewed host has files: the others' are not missing.
        let incomplete: Vec<String> = reports
            .iter()
            .filter(|r| !r.is_ok() && in_period(r))
            .map(|r| format!("{} {}", r.source, r.file_date))
            .collect();
        // the production database, as of the last generated day
        let extract_started = std::time::Instant::now();
        let warehouse = project::warehouse(&project)?;
        let databases: Vec<_> = project.databases.iter().collect();
        let (extracts, extract_failures) =
            extract_sources(&project, &warehouse, &databases, &[], Some(last), true).await;
        let mut failures = failures;
        failures.extend(extract_failures);
        for t in extracts.iter().flat_map(|r| &r.tables) {
            if let Some(e) = &t.error {
                failures.push(format!("{}.{}: {e}", t.source, t.table));
            }
        }
        if !args.json {
            let tables: Vec<_> = extracts.iter().flat_map(|r| &r.tables).collect();
            println!(
                "Extracted {} database tables ({} rows) in {:.1}s: {}",
                tables.len(),
                tables.iter().map(|t| t.rows).sum::<u64>(),
                extract_started.elapsed().as_secs_f64(),
                tables
                    .iter()
                    .map(|t| t.warehouse_table.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for t in tables.iter().filter(|t| t.error.is_some()) {
                print_table_report(t);
            }
        }
        // the pipeline over every generated day: the orchestrator finds every ingest done
        // (same files, same fingerprints), builds the models (each incremental model's
        // dates in batches) and publishes the last night
        let mut runs = Vec::new();
        if failures.is_empty() {
            for step in steps(first, last, &down) {
                let (run, step_failures) = run_step(&project, &warehouse, step, args.json).await?;
                runs.push(run);
                failures.extend(step_failures);
            }
        }
        if !args.json {
            // the runs' reports above count the tasks skipped after a failure
            for f in failures
                .iter()
                .filter(|f| f.starts_with("build/") && !f.contains(": skipped "))
            {
                eprintln!("error: {f}");
            }
        }
        code = if !failures.is_empty() {
            exit::FAILED
        } else if incomplete.is_empty() {
            exit::OK
        } else {
            exit::INCOMPLETE
        };
        // `pipeline` is the run that published last (or tried to); `runs` lists them all
        let built = runs.last().cloned().unwrap_or(serde_json::Value::Null);
        ingested = serde_json::json!({ "reports": reports.len(), "errors": failures,
            "incomplete": incomplete, "extract": extracts, "pipeline": built, "runs": runs });
    }
    if args.json {
        print_json(&serde_json::json!({ "demo": generated, "ingest": ingested }))?;
    } else {
        print_next(&dir, &down);
    }
    Ok(code)
}

/// Runs one step of the demo's pipeline; returns its report and the tasks that failed.
async fn run_step(
    project: &Project,
    warehouse: &darkroom_storage::Warehouse,
    step: Step,
    json: bool,
) -> Result<(serde_json::Value, Vec<String>)> {
    // what to run, as what kind of run, against which project, and how to name it
    let (request, kind, down, args, described) = match step {
        Step::Backfill { from, to } => (
            darkroom_pipeline::Request::Backfill { from, to },
            "demo",
            None,
            serde_json::json!({"command": "demo", "from": from, "to": to}),
            serde_json::json!({"backfill": {"from": from, "to": to}}),
        ),
        Step::Unreachable { night } => {
            if !json {
                println!(
                    "The night of {night} runs with the production database unreachable (the \
                     injected db-unreachable fault; retries skipped):"
                );
            }
            (
                darkroom_pipeline::Request::Run { night },
                "run",
                Some(unreachable(project)),
                serde_json::json!({"command": "demo", "date": night, "fault": "db-unreachable"}),
                serde_json::json!({"run": night, "database": "unreachable"}),
            )
        }
    };
    let project = down.as_ref().unwrap_or(project);
    let options = darkroom_pipeline::RunOptions {
        kind: kind.into(),
        request,
        reprocess: darkroom_pipeline::Reprocess::Missing,
        force: false,
        parallel: None,
        dry_run: false,
        vars: Default::default(),
        args,
    };
    let store = darkroom_pipeline::Store::open_project(&project.root)?;
    let observer = crate::pipeline::LazyLive::new(json);
    let clock: std::sync::Arc<dyn darkroom_pipeline::Clock> =
        std::sync::Arc::new(darkroom_pipeline::SystemClock);
    let mut failures = Vec::new();
    let report = match darkroom_pipeline::run(
        project, &store, warehouse, &options, clock, &observer,
    )
    .await
    {
        Ok(outcome) => {
            observer.finish();
            if !json {
                crate::pipeline::print_outcome(&outcome, false)?;
            }
            for t in outcome
                .summary
                .iter()
                .flat_map(|s| &s.tasks)
                .filter(|t| t.status == "failed" || t.status == "skipped")
            {
                failures.push(format!(
                    "{}: {} {}",
                    t.task,
                    t.status,
                    t.error.as_deref().unwrap_or("")
                ));
            }
            let summary = outcome.summary.as_ref();
            serde_json::json!({
                "run_id": outcome.run_id,
                "request": described,
                "ok": outcome.ok(),
                "stages": summary.map(crate::pipeline::stages_json),
                "seconds": summary.map(|s| s.seconds),
            })
        }
        // e.g. an injected schema drift: the models no longer match the database
        Err(e) => {
            failures.push(format!("pipeline: {e}"));
            serde_json::Value::Null
        }
    };
    Ok((report, failures))
}

fn print_next(dir: &str, down: &BTreeSet<NaiveDate>) {
    println!(
        "\nNext:\n  darkroom -C {dir} tables\n  darkroom -C {dir} query \"SELECT * FROM mart_daily_kpis ORDER BY event_date DESC LIMIT 7\"\n  darkroom -C {dir} status          # what is complete, the runs, the published night\n  darkroom -C {dir} health          # can the numbers be trusted? (try the demo with --fault)\n  darkroom -C {dir} metric          # the metrics each team owns; then e.g. metric dau --grain week\n  darkroom -C {dir} funnel activation --by platform   # visitor -> ... -> paid subscriber\n  darkroom -C {dir} docs            # the star schema: grain, columns, lineage\n  darkroom -C {dir} query \"SELECT event_date, count(*) AS page_views, count(DISTINCT cookie_vid) AS visitors FROM raw_web GROUP BY 1 ORDER BY 1 DESC LIMIT 7\"\n  darkroom -C {dir} query \"SELECT * FROM _ingest_ledger WHERE record = 'missing'\"\n  darkroom -C {dir} query \"SELECT plan, count(*) FROM raw_app_db_subscriptions GROUP BY 1\"\n  cat {dir}/truth/README.md      # what the warehouse must contain"
    );
    for night in down {
        println!(
            "  darkroom -C {dir} run --date {night}   # the night the database was down, run \
             again now that it answers"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn steps_cut_the_backfill_around_each_night_the_database_is_down() {
        let (first, last) = (d("2026-01-01"), d("2026-01-31"));
        let none = BTreeSet::new();
        assert_eq!(
            steps(first, last, &none),
            [Step::Backfill {
                from: first,
                to: last
            }]
        );
        let down: BTreeSet<_> = [d("2026-01-10"), d("2026-01-11"), d("2026-01-31")].into();
        assert_eq!(
            steps(first, last, &down),
            [
                Step::Backfill {
                    from: first,
                    to: d("2026-01-09")
                },
                Step::Unreachable {
                    night: d("2026-01-10")
                },
                Step::Unreachable {
                    night: d("2026-01-11")
                },
                Step::Backfill {
                    from: d("2026-01-12"),
                    to: d("2026-01-30")
                },
                Step::Unreachable { night: last },
            ]
        );
        let down: BTreeSet<_> = [first].into();
        assert_eq!(
            steps(first, last, &down),
            [
                Step::Unreachable { night: first },
                Step::Backfill {
                    from: d("2026-01-02"),
                    to: last
                }
            ]
        );
    }
}
