//! Checking every model before anything runs: each is rendered and planned by DataFusion
//! against the warehouse's schemas, upstream models standing in with the schemas their own
//! plans give. A missing column, a type error or a bad setting is reported for every model at
//! once, with file and line.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use darkroom_config::{Diagnostics, Project};
use darkroom_storage::Warehouse;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::MemTable;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

use crate::model::{Materialized, Model, Strategy};
use crate::template::{RenderContext, render};
use crate::{Models, functions, template_error};

/// The columns a snapshot adds to its model's rows.
pub const VALID_FROM: &str = "valid_from";
pub const VALID_TO: &str = "valid_to";
pub const IS_CURRENT: &str = "is_current";

/// The type of `valid_from` / `valid_to`.
pub fn version_time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// What checking found: each model's planned output schema (as the warehouse will hold it)
/// and its rendered SQL.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub schemas: BTreeMap<String, SchemaRef>,
    pub sql: BTreeMap<String, String>,
    /// Each model's logical plan (unoptimised: what the SQL says), for column lineage.
    pub plans: BTreeMap<String, LogicalPlan>,
}

/// Plan every model (in build order) for `date`; problems go to `diags`.
pub async fn check(
    project: &Project,
    models: &Models,
    warehouse: &Warehouse,
    date: NaiveDate,
    vars: &BTreeMap<String, String>,
    diags: &mut Diagnostics,
) -> Checked {
    let ctx = match warehouse.private_session().await {
        Ok(ctx) => ctx,
        Err(e) => {
            diags.push(darkroom_config::Diagnostic::without_location(
                &project.root,
                format!("cannot open the warehouse to check the models: {e}"),
            ));
            return Checked::default();
        }
    };
    functions::register(&ctx);
    let mut checked = Checked::default();
    let mut failed: Vec<bool> = vec![false; models.models.len()];
    for &i in &models.graph.order {
        let model = &models.models[i];
        if models.graph.upstream[i].iter().any(|&u| failed[u]) {
            // its upstream is reported already; planning it would only repeat that
            failed[i] = true;
            continue;
        }
        if model.refs.iter().any(|(r, _)| models.get(r).is_none()) {
            // the missing model is reported by the graph; planning would only repeat it
            failed[i] = true;
            continue;
        }
        let mut ok = true;
        for (table, line) in &model.sources {
            if !ctx.table_exist(table.as_str()).unwrap_or(false) {
                ok = false;
                diags.push(model.error_at(
                    *line,
                    format!(
                        "source table `{table}` is not in the warehouse yet: ingest or \
                         extract that source first (darkroom ingest / darkroom extract)"
                    ),
                ));
            }
        }
        if !ok {
            failed[i] = true;
            continue;
        }
        let is_incremental = model.settings.materialized == Materialized::Incremental
            && warehouse.table(&model.name).await.ok().flatten().is_some();
        let render_ctx = RenderContext {
            project,
            date_from: date,
            run_date: date,
            is_incremental,
            vars: vars.clone(),
        };
        let rendered = match render(&model.name, &model.source.text, &render_ctx) {
            Ok(r) => r,
            Err(e) => {
                diags.push(model.error_at(e.line().unwrap_or(1), template_error(&e)));
                failed[i] = true;
                continue;
            }
        };
        match plan_model(&ctx, model, &rendered.sql).await {
            Ok(plan) => {
                let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
                let problems = settings_problems(model, &schema);
                if !problems.is_empty() {
                    let line = crate::call_line(&model.source.text, "config(");
                    for p in problems {
                        diags.push(model.error_at(line, format!("model `{}`: {p}", model.name)));
                    }
                    failed[i] = true;
                    continue;
                }
                let stored = stored_schema(model, &schema);
                let _ = ctx.deregister_table(model.name.as_str());
                match MemTable::try_new(Arc::clone(&stored), vec![vec![]]) {
                    Ok(t) => {
                        let _ = ctx.register_table(model.name.as_str(), Arc::new(t));
                    }
                    Err(e) => {
                        diags
                            .push(model.error_at(1, format!("cannot stand in for the model: {e}")));
                        failed[i] = true;
                        continue;
                    }
                }
                checked.schemas.insert(model.name.clone(), stored);
                checked.sql.insert(model.name.clone(), rendered.sql);
                checked.plans.insert(model.name.clone(), plan);
            }
            Err((line, message)) => {
                diags.push(model.error_at(line, message));
                failed[i] = true;
            }
        }
    }
    checked
}

/// Plan one rendered model; on failure, the line (in the template) and the message.
pub(crate) async fn plan_model(
    ctx: &SessionContext,
    model: &Model,
    sql: &str,
) -> Result<LogicalPlan, (usize, String)> {
    let state = ctx.state();
    let statement = state
        .sql_to_statement(sql, &datafusion::config::Dialect::Generic)
        .map_err(|e| locate(model, sql, &e))?;
    let is_query =
        matches!(&statement, DfStatement::Statement(s) if matches!(**s, Statement::Query(_)));
    if !is_query {
        return Err((
            1,
            "a model is one SELECT (or WITH ... SELECT) statement, nothing else".to_string(),
        ));
    }
    state
        .statement_to_plan(statement)
        .await
        .map_err(|e| locate(model, sql, &e))
}

/// The template line a DataFusion error points at, and the error as text.
fn locate(model: &Model, sql: &str, e: &DataFusionError) -> (usize, String) {
    let rendered_line = e
        .iter()
        .find_map(|e| e.diagnostic().and_then(|d| d.span))
        .map(|s| s.start.line as usize)
        .or_else(|| line_in_message(&e.to_string()));
    let message = e.find_root().to_string();
    let message = message
        .strip_prefix("Error during planning: ")
        .or_else(|| message.strip_prefix("Schema error: "))
        .unwrap_or(&message)
        .to_string();
    let template_lines = model.source.text.lines().count();
    let rendered_lines = sql.lines().count();
    match rendered_line {
        // the render kept the lines where they were: the line is the template's
        Some(l) if template_lines == rendered_lines => (l, message),
        Some(l) => (
            crate::call_line(&model.source.text, "select"),
            format!(
                "{message} (line {l} of the compiled SQL: darkroom compile {})",
                model.name
            ),
        ),
        None => (1, message),
    }
}

/// `... at Line: 3, Column: 8` in a parser error.
fn line_in_message(text: &str) -> Option<usize> {
    let at = text.find("Line: ")?;
    let digits: String = text[at + 6..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Settings that name columns the model does not have, or types that cannot work.
fn settings_problems(model: &Model, schema: &Schema) -> Vec<String> {
    let s = &model.settings;
    let mut problems = Vec::new();
    let has = |c: &str| schema.field_with_name(c).is_ok();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let missing = |what: &str, c: &str| {
        format!(
            "{what} `{c}` is not a column of the model (its columns: {})",
            columns.join(", ")
        )
    };
    if let Some(p) = &s.partition_by {
        match schema.field_with_name(p) {
            Err(_) => problems.push(missing("partition_by", p)),
            Ok(f) if f.data_type() != &DataType::Date32 => problems.push(format!(
                "partition_by `{p}` is {}; a date partition column must be a DATE",
                f.data_type()
            )),
            Ok(_) => {}
        }
    }
    for k in &s.unique_key {
        if !has(k) {
            problems.push(missing("unique_key", k));
        }
    }
    if s.strategy == Some(Strategy::Timestamp)
        && let Some(u) = &s.updated_at
    {
        match schema.field_with_name(u) {
            Err(_) => problems.push(missing("updated_at", u)),
            Ok(f) if !matches!(f.data_type(), DataType::Timestamp(..) | DataType::Date32) => {
                problems.push(format!(
                    "updated_at `{u}` is {}; it must be a timestamp",
                    f.data_type()
                ));
            }
            Ok(_) => {}
        }
    }
    for c in &s.check_cols {
        if c != "all" && !has(c) {
            problems.push(missing("check_cols", c));
        }
    }
    if s.materialized == Materialized::Snapshot {
        for added in [VALID_FROM, VALID_TO, IS_CURRENT]
            .into_iter()
            .chain(s.surrogate_key.as_deref())
        {
            if has(added) {
                problems.push(format!(
                    "a snapshot adds the column `{added}` itself; the model must not have one"
                ));
            }
        }
    } else if s.unknown_member
        && let Some(k) = &s.surrogate_key
    {
        match schema.field_with_name(k) {
            Err(_) => problems.push(missing("surrogate_key", k)),
            Ok(f) if f.data_type() != &DataType::Int64 => problems.push(format!(
                "surrogate_key `{k}` is {}; use surrogate_key(...) (a BIGINT)",
                f.data_type()
            )),
            Ok(_) => {}
        }
    }
    for c in s.columns.keys() {
        let added = s.materialized == Materialized::Snapshot
            && ([VALID_FROM, VALID_TO, IS_CURRENT].contains(&c.as_str())
                || s.surrogate_key.as_deref() == Some(c.as_str()));
        if !has(c) && !added {
            problems.push(format!(
                "column `{c}` is documented but the model has no such column"
            ));
        }
    }
    problems
}

/// The schema the warehouse holds for a model: a snapshot's rows gain the surrogate key and
/// the version columns.
pub(crate) fn stored_schema(model: &Model, schema: &SchemaRef) -> SchemaRef {
    if model.settings.materialized != Materialized::Snapshot {
        return Arc::clone(schema);
    }
    let key = model.settings.surrogate_key.clone().unwrap_or_default();
    let mut fields = vec![Arc::new(Field::new(key, DataType::Int64, false))];
    fields.extend(schema.fields().iter().cloned());
    fields.push(Arc::new(Field::new(VALID_FROM, version_time_type(), true)));
    fields.push(Arc::new(Field::new(VALID_TO, version_time_type(), true)));
    fields.push(Arc::new(Field::new(IS_CURRENT, DataType::Boolean, false)));
    Arc::new(Schema::new(fields))
}
