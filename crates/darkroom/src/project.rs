//! Finding and loading the project, and opening its warehouse.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use darkroom_config::Project;
use darkroom_storage::{Location, StorageSettings, Warehouse};

/// The project folder: `--project`, else the current folder or a parent holding darkroom.toml.
pub fn project_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    Project::discover(&cwd).ok_or_else(|| {
        anyhow!(
            "no darkroom.toml in {} or any parent folder: run `darkroom init DIR` to create a \
             project, or pass --project DIR",
            cwd.display()
        )
    })
}

/// Load and validate the project; every problem is listed in the error.
pub fn load(explicit: Option<&Path>) -> Result<Project> {
    let dir = project_dir(explicit)?;
    let project = Project::load(&dir).map_err(|d| {
        anyhow!(
            "{d}\n{} problem(s) in the project; `darkroom validate` lists them too",
            d.len()
        )
    })?;
    let parser_problems = darkroom_sources::validate(&project);
    if !parser_problems.is_empty() {
        return Err(anyhow!("{parser_problems}"));
    }
    Ok(project)
}

/// S3 options for the project: `[warehouse.s3]` values, else the `AWS_*` environment.
pub fn s3_options(project: &Project) -> HashMap<String, String> {
    darkroom_pipeline::runner::s3_options(project)
}

/// Open the project's warehouse. Every commit that records a task complete is also indexed
/// in the project's run history (`.darkroom/state.db`), which `darkroom run` and `status`
/// read instead of the Delta logs.
pub fn warehouse(project: &Project) -> Result<Warehouse> {
    let store = darkroom_pipeline::Store::open_project(&project.root)?;
    Ok(darkroom_pipeline::runner::open_warehouse(
        project,
        Some(&store),
    )?)
}

/// Where `darkroom build` writes: the shared warehouse, or a development one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Target {
    /// The warehouse everyone reads.
    #[default]
    Prod,
    /// `[warehouse] dev_location` (default `warehouse-dev`): models are built there and read
    /// the production tables they do not build themselves.
    Dev,
}

/// Open the warehouse a target builds into. A dev warehouse reads production tables it does
/// not hold itself.
pub fn target_warehouse(project: &Project, target: Target) -> Result<Warehouse> {
    let prod = warehouse(project)?;
    if target == Target::Prod {
        return Ok(prod);
    }
    let text = match &project.warehouse.dev_location {
        Some(l) => l.get_ref().clone(),
        None => match prod.location() {
            Location::Local(_) => "warehouse-dev".to_string(),
            Location::Remote(_) => {
                return Err(anyhow!(
                    "--target dev needs [warehouse] dev_location in {} for an S3 warehouse \
                     (e.g. \"s3://bucket/dev\")",
                    project.file.path.display()
                ));
            }
        },
    };
    let location = Location::parse(&text, &project.root)?;
    if location.to_string() == prod.location().to_string() {
        return Err(anyhow!(
            "[warehouse] dev_location is the production location ({location}); a development \
             target must build somewhere else"
        ));
    }
    let options = match location {
        Location::Remote(_) => s3_options(project),
        Location::Local(_) => HashMap::new(),
    };
    Ok(Warehouse::open(StorageSettings { location, options })?.with_fallback(prod))
}
