//! The model catalogue (`darkroom docs`): every model's grain, owner, description, columns
//! with types and docs, what it reads and what reads it, and column lineage traced through
//! DataFusion's logical plan — written as `catalog.json` and a static `index.html`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use darkroom_config::{Diagnostics, Project};
use darkroom_storage::Warehouse;
use datafusion::common::Column;
use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use serde::Serialize;

use crate::Models;
use crate::check::check;

/// The catalogue.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub project: String,
    pub generated_at: String,
    pub models: Vec<ModelDoc>,
    /// Problems that kept a model's columns from being known (they are listed without them).
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelDoc {
    pub name: String,
    pub path: String,
    pub materialized: &'static str,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub grain: Option<String>,
    pub partition_by: Option<String>,
    pub unique_key: Vec<String>,
    /// Models this one reads.
    pub reads_models: Vec<String>,
    /// Raw tables this one reads.
    pub reads_sources: Vec<String>,
    /// Models that read this one.
    pub read_by: Vec<String>,
    pub columns: Vec<ColumnDoc>,
    /// The SQL as it runs (for yesterday's date).
    pub sql: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDoc {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    pub doc: Option<String>,
    /// The table columns this column is computed from (`table.column`), where the plan shows
    /// them; empty for columns a snapshot adds or computed from no column.
    pub lineage: Vec<String>,
}

/// Build the catalogue: models are checked (planned) against the warehouse for their columns.
pub async fn catalog(project: &Project, models: &Models, warehouse: &Warehouse) -> Catalog {
    let mut diags = Diagnostics::default();
    let date = crate::build::default_date(project);
    let checked = check(
        project,
        models,
        warehouse,
        date,
        &BTreeMap::new(),
        &mut diags,
    )
    .await;
    let mut docs = Vec::new();
    for &i in &models.graph.order {
        let m = &models.models[i];
        let lineage = checked
            .plans
            .get(&m.name)
            .map(column_lineage)
            .unwrap_or_default();
        let columns = checked
            .schemas
            .get(&m.name)
            .map(|schema| {
                schema
                    .fields()
                    .iter()
                    .enumerate()
                    .map(|(k, f)| ColumnDoc {
                        name: f.name().clone(),
                        data_type: f.data_type().to_string(),
                        nullable: f.is_nullable(),
                        doc: m.settings.columns.get(f.name()).cloned(),
                        lineage: lineage
                            .get(f.name())
                            .or_else(|| lineage.get(&k.to_string()))
                            .map(|s| s.iter().cloned().collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        docs.push(ModelDoc {
            name: m.name.clone(),
            path: m
                .path
                .strip_prefix(&project.root)
                .unwrap_or(&m.path)
                .display()
                .to_string(),
            materialized: m.settings.materialized.name(),
            description: m.settings.description.clone(),
            owner: m.settings.owner.clone(),
            grain: m.settings.grain.clone(),
            partition_by: m.settings.partition_by.clone(),
            unique_key: m.settings.unique_key.clone(),
            reads_models: models.graph.upstream[i]
                .iter()
                .map(|&u| models.models[u].name.clone())
                .collect(),
            reads_sources: m
                .sources
                .iter()
                .map(|(s, _)| s.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            read_by: models.graph.downstream[i]
                .iter()
                .map(|&d| models.models[d].name.clone())
                .collect(),
            columns,
            sql: checked.sql.get(&m.name).cloned(),
        });
    }
    Catalog {
        project: project.project.name.clone(),
        generated_at: chrono::Utc::now().to_rfc3339(),
        models: docs,
        problems: diags.iter().map(ToString::to_string).collect(),
    }
}

/// For each output column of a plan (by name), the base-table columns it is computed from.
pub fn column_lineage(plan: &LogicalPlan) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (i, field) in plan.schema().fields().iter().enumerate() {
        let mut found = BTreeSet::new();
        trace(plan, i, &mut found, 0);
        out.insert(field.name().clone(), found);
    }
    out
}

/// Follow output column `index` of `plan` down to table scans.
fn trace(plan: &LogicalPlan, index: usize, found: &mut BTreeSet<String>, depth: usize) {
    if depth > 64 {
        return;
    }
    let exprs_into = |expr: &Expr, input: &LogicalPlan, found: &mut BTreeSet<String>| {
        for c in expr.column_refs() {
            if let Some(k) = index_in(input, c) {
                trace(input, k, found, depth + 1);
            }
        }
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            let field = scan.projected_schema.field(index);
            found.insert(format!("{}.{}", scan.table_name.table(), field.name()));
        }
        LogicalPlan::Projection(p) => {
            if let Some(e) = p.expr.get(index) {
                exprs_into(e, &p.input, found);
            }
        }
        LogicalPlan::Aggregate(a) => {
            let groups = a.group_expr.len();
            let e = if index < groups {
                a.group_expr.get(index)
            } else {
                a.aggr_expr.get(index - groups)
            };
            if let Some(e) = e {
                exprs_into(e, &a.input, found);
            }
        }
        LogicalPlan::Window(w) => {
            let inputs = w.input.schema().fields().len();
            if index < inputs {
                trace(&w.input, index, found, depth + 1);
            } else if let Some(e) = w.window_expr.get(index - inputs) {
                exprs_into(e, &w.input, found);
            }
        }
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                    if index < left {
                        trace(&j.left, index, found, depth + 1);
                    }
                }
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
                    trace(&j.right, index, found, depth + 1);
                }
                _ if index < left => trace(&j.left, index, found, depth + 1),
                _ => trace(&j.right, index - left, found, depth + 1),
            }
        }
        LogicalPlan::Union(u) => {
            for input in &u.inputs {
                trace(input, index, found, depth + 1);
            }
        }
        other => {
            // Filter, Sort, Limit, SubqueryAlias, Distinct, Repartition ...: same columns
            let inputs = other.inputs();
            if let [input] = inputs.as_slice()
                && input.schema().fields().len() == other.schema().fields().len()
            {
                trace(input, index, found, depth + 1);
            }
        }
    }
}

fn index_in(plan: &LogicalPlan, column: &Column) -> Option<usize> {
    plan.schema().index_of_column(column).ok()
}

/// Write `catalog.json` and `index.html` into `dir`.
pub fn write(catalog: &Catalog, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(catalog).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("catalog.json"), json)?;
    std::fs::write(dir.join("index.html"), html(catalog))?;
    Ok(())
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(catalog: &Catalog) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} — models</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:70em}}\
         table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}}\
         code,pre{{background:#f5f5f5}}pre{{padding:.5em;overflow:auto}}.meta{{color:#555}}</style></head><body>\
         <h1>{} — model catalogue</h1><p class=\"meta\">generated {}</p><ul>",
        esc(&catalog.project),
        esc(&catalog.project),
        esc(&catalog.generated_at)
    ));
    for m in &catalog.models {
        out.push_str(&format!(
            "<li><a href=\"#{0}\">{0}</a> <span class=\"meta\">{1}</span></li>",
            esc(&m.name),
            m.materialized
        ));
    }
    out.push_str("</ul>");
    if !catalog.problems.is_empty() {
        out.push_str("<h2>Problems</h2><ul>");
        for p in &catalog.problems {
            out.push_str(&format!("<li>{}</li>", esc(p)));
        }
        out.push_str("</ul>");
    }
    let links = |names: &[String]| -> String {
        if names.is_empty() {
            return "—".into();
        }
        names
            .iter()
            .map(|n| format!("<a href=\"#{0}\">{0}</a>", esc(n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for m in &catalog.models {
        out.push_str(&format!(
            "<h2 id=\"{}\">{}</h2><p>{}</p><p class=\"meta\">{} · {} · owner: {} · grain: {}{}</p>\
             <p>reads: {} {}<br>read by: {}</p>",
            esc(&m.name),
            esc(&m.name),
            esc(m.description.as_deref().unwrap_or("")),
            esc(&m.path),
            m.materialized,
            esc(m.owner.as_deref().unwrap_or("—")),
            esc(m.grain.as_deref().unwrap_or("—")),
            m.partition_by
                .as_deref()
                .map(|p| format!(" · partitioned by {}", esc(p)))
                .unwrap_or_default(),
            links(&m.reads_models),
            m.reads_sources
                .iter()
                .map(|s| format!("<code>{}</code>", esc(s)))
                .collect::<Vec<_>>()
                .join(", "),
            links(&m.read_by),
        ));
        out.push_str("<table><tr><th>column</th><th>type</th><th>doc</th><th>from</th></tr>");
        for c in &m.columns {
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.name),
                esc(&c.data_type),
                if c.nullable { "" } else { " not null" },
                esc(c.doc.as_deref().unwrap_or("")),
                esc(&c.lineage.join(", "))
            ));
        }
        out.push_str("</table>");
        if let Some(sql) = &m.sql {
            out.push_str(&format!(
                "<details><summary>SQL</summary><pre>{}</pre></details>",
                esc(sql)
            ));
        }
    }
    out.push_str("</body></html>\n");
    out
}
