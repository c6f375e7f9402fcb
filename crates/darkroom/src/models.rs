//! `darkroom build`, `compile` and `docs`: the SQL models.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use chrono::NaiveDate;
use darkroom_config::{Diagnostics, Project};
use darkroom_models::build::{BuildError, default_date};
use darkroom_models::{BuildOptions, Models};

use crate::cli::BuildArgs;
use crate::exit;
use crate::output::print_json;
use crate::{progress, project};

/// `--var name=value` pairs.
pub fn parse_vars(vars: &[String]) -> Result<BTreeMap<String, String>> {
    vars.iter()
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| anyhow!("--var {v}: write NAME=VALUE"))
        })
        .collect()
}

/// Load the project's models; any problem stops here with every problem listed.
pub fn load_models(project: &Project) -> Result<Models> {
    let mut diags = Diagnostics::default();
    let models = Models::load(project, &mut diags);
    if !diags.is_empty() {
        diags.sort();
        bail!("{diags}\n{} problem(s) in the models", diags.len());
    }
    Ok(models)
}

/// Print the problems of a build that cannot start (as JSON under --json).
fn report_invalid(diags: &Diagnostics, json: bool) -> Result<u8> {
    if json {
        print_json(&serde_json::json!({
            "valid": false,
            "problems": diags.iter().map(|d| serde_json::json!({
                "file": d.path.display().to_string(),
                "line": d.line,
                "message": d.message,
            })).collect::<Vec<_>>(),
        }))?;
    } else {
        eprintln!("{diags}");
        eprintln!(
            "{} problem(s) in the models; nothing was built",
            diags.len()
        );
    }
    Ok(exit::FAILED)
}

pub async fn build(explicit: Option<&Path>, args: BuildArgs) -> Result<u8> {
    let project = project::load(explicit)?;
    let mut diags = Diagnostics::default();
    let models = Models::load(&project, &mut diags);
    if models.models.is_empty() && diags.is_empty() {
        bail!(
            "no models in {}: write one SELECT per file, e.g. models/stg_users.sql",
            project.root.join("models").display()
        );
    }
    let warehouse = project::target_warehouse(&project, args.target)?;
    let options = BuildOptions {
        date: args.date.or(args.to),
        from: args.from,
        select: args.select.clone(),
        vars: parse_vars(&args.vars)?,
    };
    if !diags.is_empty() {
        // the models that did load are planned too, so every problem is listed at once
        let date = options.date.unwrap_or_else(|| default_date(&project));
        darkroom_models::check(
            &project,
            &models,
            &warehouse,
            date,
            &options.vars,
            &mut diags,
        )
        .await;
        diags.sort();
        return report_invalid(&diags, args.json);
    }
    let spinner = progress::Spinner::new(args.json);
    let on_model = |name: &str| spinner.show(&format!("building {name}"));
    let report = darkroom_models::build(&project, &models, &warehouse, &options, &on_model).await;
    spinner.done();
    let report = match report {
        Ok(r) => r,
        Err(BuildError::Invalid(d)) => return report_invalid(&d, args.json),
        Err(e) => return Err(e.into()),
    };
    if args.json {
        print_json(&report)?;
    } else {
        let dates = if report.from == report.date {
            report.date.to_string()
        } else {
            format!("{} to {}", report.from, report.date)
        };
        println!("Built models for {dates} into {}:", warehouse.location());
        for m in &report.models {
            let rows = m.rows.map(|r| format!("{r} rows")).unwrap_or_default();
            let part = m
                .partition
                .as_deref()
                .map(|p| format!(" [{p}]"))
                .unwrap_or_default();
            println!(
                "  {:<8} {:<28} {:<11} {:>14}{} {:.1}s",
                m.status, m.model, m.materialized, rows, part, m.seconds
            );
            if let Some(s) = &m.snapshot {
                println!(
                    "           versions: {} new, {} changed, {} deleted, {} reopened, {} unchanged",
                    s.new, s.changed, s.deleted, s.reopened, s.unchanged
                );
            }
            for (column, n) in &m.unknown_keys {
                println!(
                    "           {n} rows have {column} = -1 (no dimension row yet): kept, \
                     pointing at the unknown member"
                );
            }
            if let Some(e) = &m.error {
                for line in e.lines() {
                    println!("           {line}");
                }
            }
        }
        println!(
            "{} built, {} failed, {} skipped",
            report.models.iter().filter(|m| m.status == "built").count(),
            report.failed(),
            report.skipped()
        );
    }
    Ok(if report.failed() + report.skipped() > 0 {
        exit::FAILED
    } else {
        exit::OK
    })
}

pub fn compile(
    explicit: Option<&Path>,
    name: &str,
    date: Option<NaiveDate>,
    vars: &[String],
) -> Result<u8> {
    let project = project::load(explicit)?;
    let models = load_models(&project)?;
    let Some(model) = models.get(name) else {
        let names: Vec<&str> = models.models.iter().map(|m| m.name.as_str()).collect();
        bail!(
            "no model named `{name}`; models: {}",
            if names.is_empty() {
                "(none)".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    let date = date.unwrap_or_else(|| default_date(&project));
    let ctx = darkroom_models::RenderContext {
        project: &project,
        date_from: date,
        run_date: date,
        is_incremental: false,
        vars: parse_vars(vars)?,
    };
    let rendered = darkroom_models::render(&model.name, &model.source.text, &ctx).map_err(|e| {
        anyhow!(
            "{}:{}: {}",
            model.path.display(),
            e.line().unwrap_or(1),
            darkroom_models::template::describe_error(&e)
        )
    })?;
    print!("{}", rendered.sql);
    if !rendered.sql.ends_with('\n') {
        println!();
    }
    Ok(exit::OK)
}

pub async fn docs(explicit: Option<&Path>, out: Option<&Path>, json: bool) -> Result<u8> {
    let project = project::load(explicit)?;
    let models = load_models(&project)?;
    let warehouse = project::warehouse(&project)?;
    let out = out.map_or_else(
        || project.root.join("target").join("docs"),
        Path::to_path_buf,
    );
    let catalog = darkroom_models::docs::catalog(&project, &models, &warehouse).await;
    darkroom_models::docs::write(&catalog, &out)?;
    if json {
        print_json(&catalog)?;
    } else {
        println!(
            "Wrote the catalogue of {} models to {} (index.html, catalog.json)",
            catalog.models.len(),
            out.display()
        );
    }
    Ok(exit::OK)
}
