//! Darkroom's SQL models.
//!
//! A project's `models/**/*.sql` files are Jinja templates of one `SELECT` each, reading
//! other models with `{{ ref('name') }}` and raw tables with `{{ source('app_db', 'users') }}`.
//! [`Models::load`] finds them, reads their settings and builds the dependency graph;
//! [`check`] plans every model with DataFusion against the warehouse's schemas, so a missing
//! column is reported for every model at once, with file and line, before anything runs;
//! [`build`] materialises them (table, view, incremental by date, SCD2 snapshot).

pub mod build;
pub mod check;
pub mod docs;
pub mod functions;
pub mod graph;
pub mod model;
pub mod snapshot;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use darkroom_config::{Diagnostic, Diagnostics, Project, SourceFile};

pub use build::{BuildOptions, BuildReport, Builder, Fingerprints, ModelReport, build};
pub use check::check;
pub use graph::Graph;
pub use model::{Materialized, Model, Settings, Strategy};
pub use template::{RenderContext, Rendered, render};

/// Every model of a project, and the graph between them.
#[derive(Debug, Clone, Default)]
pub struct Models {
    pub models: Vec<Model>,
    pub graph: Graph,
}

impl Models {
    /// Find and read every model. Problems (bad names, duplicate names, template errors,
    /// settings, unknown sources, missing refs, cycles) are all collected in `diags`, each with
    /// file and line; models with problems of their own are left out.
    pub fn load(project: &Project, diags: &mut Diagnostics) -> Self {
        let files = match model::model_files(&project.root) {
            Ok(f) => f,
            Err(e) => {
                diags.push(Diagnostic::without_location(
                    &project.root.join(model::MODELS_DIR),
                    format!("cannot list the models: {e}"),
                ));
                return Self::default();
            }
        };
        let mut models: Vec<Model> = Vec::new();
        let mut seen: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
        let probe_date = discovery_date(project);
        for path in files {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !model::valid_name(&name) {
                diags.push(Diagnostic::without_location(
                    &path,
                    format!(
                        "`{name}` cannot name a model: use lowercase letters, digits and _ \
                         (it becomes a table name)"
                    ),
                ));
                continue;
            }
            if let Some(first) = seen.get(&name) {
                diags.push(Diagnostic::without_location(
                    &path,
                    format!(
                        "a second model named `{name}` (the first is {}); model names are \
                         unique across models/",
                        first.display()
                    ),
                ));
                continue;
            }
            seen.insert(name.clone(), path.clone());
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    diags.push(Diagnostic::without_location(
                        &path,
                        format!("cannot read: {e}"),
                    ));
                    continue;
                }
            };
            let source = SourceFile::new(path.clone(), text);
            if let Some(m) = read_model(project, name, source, probe_date, diags) {
                models.push(m);
            }
        }
        let graph = Graph::new(&models, diags);
        Self { models, graph }
    }

    /// The model with this name.
    pub fn get(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Every warehouse table the models read through `source(...)`.
    pub fn source_tables(&self) -> BTreeSet<&str> {
        self.models
            .iter()
            .flat_map(|m| m.sources.iter().map(|(t, _)| t.as_str()))
            .collect()
    }
}

/// The date templates are rendered for when only their dependencies and settings are wanted.
fn discovery_date(project: &Project) -> NaiveDate {
    build::default_date(project)
}

fn read_model(
    project: &Project,
    name: String,
    source: SourceFile,
    date: NaiveDate,
    diags: &mut Diagnostics,
) -> Option<Model> {
    let path = source.path.clone();
    let ctx = RenderContext {
        project,
        date_from: date,
        run_date: date,
        is_incremental: false,
        vars: BTreeMap::new(),
    };
    let at = |line: Option<usize>, message: String| Diagnostic {
        path: path.clone(),
        line: Some(line.unwrap_or(1)),
        column: None,
        message,
    };
    let rendered = match template::render(&name, &source.text, &ctx) {
        Ok(r) => r,
        Err(e) => {
            diags.push(at(e.line(), template_error(&e)));
            return None;
        }
    };
    let mut ok = true;
    let mut sources = Vec::new();
    for (call, resolved) in &rendered.sources {
        let line = call_line(&source.text, call);
        match resolved {
            Ok(table) => sources.push((table.clone(), line)),
            Err(message) => {
                ok = false;
                diags.push(at(Some(line), format!("{call}: {message}")));
            }
        }
    }
    let refs = rendered
        .refs
        .iter()
        .map(|r| (r.clone(), call_line(&source.text, &format!("ref('{r}')"))))
        .collect();
    let header_line = call_line(&source.text, "config(");
    let header = if rendered.config.is_empty() {
        model::RawSettings::default()
    } else {
        match serde_json::from_value(serde_json::Value::Object(rendered.config.clone())) {
            Ok(raw) => raw,
            Err(e) => {
                diags.push(at(Some(header_line), format!("config(...): {e}")));
                return None;
            }
        }
    };
    let toml_path = path.with_extension("toml");
    let beside = if toml_path.is_file() {
        Some(model::read_settings_file(&toml_path, diags)?)
    } else {
        None
    };
    let settings = model::settle(&name, header, header_line, beside, &path, diags)?;
    if !ok {
        return None;
    }
    Some(Model {
        name,
        path,
        source,
        settings_path: toml_path.is_file().then_some(toml_path),
        settings,
        refs,
        sources,
    })
}

pub(crate) use template::describe_error as template_error;

/// The 1-based line of the first call like `ref('x')` in a template (quotes and spaces as the
/// author wrote them), or 1.
pub(crate) fn call_line(text: &str, call: &str) -> usize {
    let normalize = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| if c == '"' { '\'' } else { c })
            .collect()
    };
    let wanted = normalize(call);
    let head = call.split('(').next().unwrap_or(call);
    for (n, line) in text.lines().enumerate() {
        if normalize(line).contains(&wanted) {
            return n + 1;
        }
    }
    // the call spans lines: settle for the line where it starts
    for (n, line) in text.lines().enumerate() {
        if line.contains(&format!("{head}(")) {
            return n + 1;
        }
    }
    1
}
