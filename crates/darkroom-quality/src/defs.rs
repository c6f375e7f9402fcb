//! Checks and reconciliations declared beside the models, in `models/**/*.toml`:
//!
//! ```toml
//! [[check]]
//! table = "fct_events"
//! kind = "not_null"              # not_null | unique | relationships | accepted_values |
//!                                # row_count | freshness | schema | sql
//! columns = ["user_id", "event_ts"]
//! date_column = "event_date"     # only the night's partition (else the whole table)
//! severity = "error"             # error blocks publishing; warn (default) reports
//!
//! [[reconcile]]
//! name = "signups"
//! left = "SELECT count(*) FROM raw_web WHERE request_path = '/signup' AND event_date = {date}"
//! right = "SELECT count(*) FROM fct_events WHERE event_type = 'signup' AND event_date = {date}"
//! tolerance = 0.02               # relative difference allowed
//! ```
//!
//! Every problem is reported at once, with file, line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use darkroom_config::{Diagnostic, Diagnostics, SourceFile};
use serde::Deserialize;
use toml::Spanned;

use crate::Severity;

/// One declared check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub table: String,
    pub kind: CheckKind,
    /// Only rows of the night's date (`date_column = DATE 'night'`).
    pub date_column: Option<String>,
    /// An extra SQL filter on the rows checked.
    pub filter: Option<String>,
    pub severity: Severity,
    pub description: String,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    NotNull {
        columns: Vec<String>,
    },
    Unique {
        columns: Vec<String>,
    },
    /// Every non-null `column` exists as `to_column` in `to`.
    Relationships {
        column: String,
        to: String,
        to_column: String,
    },
    AcceptedValues {
        column: String,
        values: Vec<String>,
    },
    RowCount {
        min: Option<u64>,
        max: Option<u64>,
    },
    /// The newest `column` (a timestamp or a date) is no older than `max_age_hours` at the end
    /// of the night (its last instant in the project's time zone).
    Freshness {
        column: String,
        max_age_hours: f64,
    },
    /// The table has these columns with these types (`bigint`, `double`, `text`, `date`,
    /// `timestamp`, `boolean`, `decimal`); with `exact`, no others.
    Schema {
        columns: BTreeMap<String, String>,
        exact: bool,
    },
    /// Rows returned are failures (`{date}` is the night, as a SQL date).
    Sql {
        sql: String,
    },
    /// Every row satisfies the expression.
    Expression {
        expression: String,
    },
}

impl CheckKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::NotNull { .. } => "not_null",
            Self::Unique { .. } => "unique",
            Self::Relationships { .. } => "relationships",
            Self::AcceptedValues { .. } => "accepted_values",
            Self::RowCount { .. } => "row_count",
            Self::Freshness { .. } => "freshness",
            Self::Schema { .. } => "schema",
            Self::Sql { .. } => "sql",
            Self::Expression { .. } => "expression",
        }
    }
}

/// Two numbers that should agree, each from a query (`{date}` is the night as a SQL date).
#[derive(Debug, Clone, PartialEq)]
pub struct Reconcile {
    pub name: String,
    pub description: String,
    pub left_label: String,
    pub left: String,
    pub right_label: String,
    pub right: String,
    /// Relative difference allowed, of the larger number.
    pub tolerance: f64,
    /// Differences up to this many are always allowed (small days).
    pub min_difference: u64,
    /// `left` counts what the logs kept of what `right` (the source of truth) recorded:
    /// pooled over every such reconciliation, left / right estimates the share of the day's
    /// log lines that arrived, and so the events at stake (`log_completeness`).
    pub completeness: bool,
    pub severity: Severity,
    pub origin: Origin,
}

/// Where a definition was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: usize,
}

/// Every check and reconciliation of a project.
#[derive(Debug, Clone, Default)]
pub struct QualityDefs {
    pub checks: Vec<Check>,
    pub reconciles: Vec<Reconcile>,
}

#[derive(Deserialize)]
struct FileDefs {
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    reconcile: Vec<Spanned<RawReconcile>>,
    // the analytics layer's (see darkroom_analytics::defs)
    #[serde(default, rename = "event")]
    _event: serde::de::IgnoredAny,
    #[serde(default, rename = "dimension")]
    _dimension: serde::de::IgnoredAny,
    #[serde(default, rename = "metric")]
    _metric: serde::de::IgnoredAny,
    #[serde(default, rename = "funnel")]
    _funnel: serde::de::IgnoredAny,
    #[serde(default, rename = "team")]
    _team: serde::de::IgnoredAny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: Option<Spanned<String>>,
    table: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    columns: Option<Spanned<toml::Value>>,
    column: Option<Spanned<String>>,
    values: Option<Vec<toml::Value>>,
    to: Option<String>,
    to_column: Option<String>,
    min: Option<Spanned<i64>>,
    max: Option<Spanned<i64>>,
    max_age_hours: Option<Spanned<f64>>,
    #[serde(default)]
    exact: bool,
    sql: Option<String>,
    expression: Option<String>,
    date_column: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    severity: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReconcile {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    left: String,
    #[serde(default)]
    left_label: Option<String>,
    right: String,
    #[serde(default)]
    right_label: Option<String>,
    tolerance: Spanned<f64>,
    #[serde(default)]
    min_difference: u64,
    #[serde(default)]
    completeness: bool,
    severity: Option<Spanned<String>>,
}

/// The SQL type names a `schema` check may use, and the Arrow types they accept.
pub const SCHEMA_TYPES: &[&str] = &[
    "bigint",
    "int",
    "smallint",
    "double",
    "float",
    "text",
    "date",
    "timestamp",
    "boolean",
    "decimal",
    "binary",
];

impl QualityDefs {
    /// Every definitions file under `models/`.
    pub fn load(project_root: &Path) -> Result<Self, Diagnostics> {
        let mut diags = Diagnostics::default();
        let defs = Self::check(project_root, &mut diags);
        diags.into_result().map(|()| defs)
    }

    /// Load, adding every problem to `diags` (for `darkroom validate`).
    pub fn check(project_root: &Path, diags: &mut Diagnostics) -> Self {
        let mut sources = Vec::new();
        for path in darkroom_analytics::defs::definition_files(project_root) {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push(SourceFile::new(path, text)),
                Err(e) => diags.push(Diagnostic::without_location(
                    &path,
                    format!("cannot read definitions: {e}"),
                )),
            }
        }
        Self::from_sources(&sources, diags)
    }

    pub fn from_sources(sources: &[SourceFile], diags: &mut Diagnostics) -> Self {
        let mut defs = Self::default();
        let mut names = BTreeSet::new();
        for file in sources {
            let raw = match toml::from_str::<FileDefs>(&file.text) {
                Ok(raw) => raw,
                Err(e) => {
                    // the analytics loader reports the same syntax error; keep one
                    if !diags.iter().any(|d| d.path == file.path) {
                        diags.push(file.error(e.span().unwrap_or(0..0), e.message().to_string()));
                    }
                    continue;
                }
            };
            for c in &raw.check {
                if let Some(check) = convert_check(file, c, diags) {
                    if !names.insert(format!("check:{}", check.name)) {
                        diags.push(file.error(
                            c.span(),
                            format!(
                                "a check named `{}` is declared twice: give one a `name`",
                                check.name
                            ),
                        ));
                    }
                    defs.checks.push(check);
                }
            }
            for r in &raw.reconcile {
                if let Some(rec) = convert_reconcile(file, r, diags) {
                    if !names.insert(format!("reconcile:{}", rec.name)) {
                        diags.push(file.error(
                            r.get_ref().name.span(),
                            format!("a reconciliation named `{}` is declared twice", rec.name),
                        ));
                    }
                    defs.reconciles.push(rec);
                }
            }
        }
        defs
    }

    /// Checks referring to tables the warehouse will not have: every table must be a model
    /// or an existing warehouse table.
    pub fn unknown_tables(&self, known: &BTreeSet<String>) -> Vec<(&Check, String)> {
        let mut out = Vec::new();
        for c in &self.checks {
            let mut tables = vec![c.table.clone()];
            if let CheckKind::Relationships { to, .. } = &c.kind {
                tables.push(to.clone());
            }
            for t in tables {
                if !known.contains(&t) {
                    out.push((c, t));
                }
            }
        }
        out
    }
}

fn severity(
    file: &SourceFile,
    s: &Option<Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<Severity> {
    match s {
        None => Some(Severity::Warn),
        Some(s) => match s.get_ref().as_str() {
            "error" => Some(Severity::Error),
            "warn" => Some(Severity::Warn),
            other => {
                diags.push(file.error(
                    s.span(),
                    format!("unknown severity `{other}`: use error (blocks publishing) or warn"),
                ));
                None
            }
        },
    }
}

fn string_list(v: &toml::Value) -> Option<Vec<String>> {
    match v {
        toml::Value::String(s) => Some(vec![s.clone()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn convert_check(
    file: &SourceFile,
    c: &Spanned<RawCheck>,
    diags: &mut Diagnostics,
) -> Option<Check> {
    let (span, raw) = (c.span(), c.get_ref());
    let before = diags.len();
    let mut err = |span: Range<usize>, msg: String| diags.push(file.error(span, msg));
    let kind_name = raw.kind.get_ref().as_str();
    let need = |what: &str| format!("a `{kind_name}` check needs `{what}`");
    let column = || raw.column.as_ref().map(|c| c.get_ref().clone());
    let columns = || -> Option<Vec<String>> {
        raw.columns
            .as_ref()
            .and_then(|v| string_list(v.get_ref()))
            .filter(|v| !v.is_empty())
            .or_else(|| column().map(|c| vec![c]))
    };
    let kind = match kind_name {
        "not_null" | "unique" => match columns() {
            Some(cols) if kind_name == "not_null" => Some(CheckKind::NotNull { columns: cols }),
            Some(cols) => Some(CheckKind::Unique { columns: cols }),
            None => {
                err(span.clone(), need("columns = [\"...\"]"));
                None
            }
        },
        "relationships" => match (column(), &raw.to) {
            (Some(column), Some(to)) => Some(CheckKind::Relationships {
                to_column: raw.to_column.clone().unwrap_or_else(|| column.clone()),
                column,
                to: to.clone(),
            }),
            _ => {
                err(
                    span.clone(),
                    need("column = \"...\" and to = \"dim_table\""),
                );
                None
            }
        },
        "accepted_values" => {
            let values: Option<Vec<String>> = raw.values.as_ref().map(|vs| {
                vs.iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            });
            match (column(), values) {
                (Some(column), Some(values)) if !values.is_empty() => {
                    Some(CheckKind::AcceptedValues { column, values })
                }
                _ => {
                    err(span.clone(), need("column = \"...\" and values = [...]"));
                    None
                }
            }
        }
        "row_count" => {
            let bound = |b: &Option<Spanned<i64>>, err: &mut dyn FnMut(Range<usize>, String)| {
                b.as_ref().and_then(|b| match u64::try_from(*b.get_ref()) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        err(b.span(), "a row count bound cannot be negative".into());
                        None
                    }
                })
            };
            let min = bound(&raw.min, &mut err);
            let max = bound(&raw.max, &mut err);
            if min.is_none() && max.is_none() {
                err(span.clone(), need("min or max"));
                None
            } else if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                err(span.clone(), format!("min {a} is more than max {b}"));
                None
            } else {
                Some(CheckKind::RowCount { min, max })
            }
        }
        "freshness" => match (column(), &raw.max_age_hours) {
            (Some(column), Some(h)) if *h.get_ref() > 0.0 && h.get_ref().is_finite() => {
                Some(CheckKind::Freshness {
                    column,
                    max_age_hours: *h.get_ref(),
                })
            }
            (_, Some(h)) if h.get_ref().is_nan() || *h.get_ref() <= 0.0 => {
                err(h.span(), "max_age_hours must be more than 0".into());
                None
            }
            _ => {
                err(span.clone(), need("column = \"...\" and max_age_hours = N"));
                None
            }
        },
        "schema" => {
            let table = raw.columns.as_ref().and_then(|v| match v.get_ref() {
                toml::Value::Table(t) => Some(t),
                _ => None,
            });
            match table {
                Some(t) if !t.is_empty() => {
                    let mut columns = BTreeMap::new();
                    for (k, v) in t {
                        let ty = v.as_str().unwrap_or_default().to_ascii_lowercase();
                        if !SCHEMA_TYPES.contains(&ty.as_str()) {
                            err(
                                raw.columns.as_ref().map_or(span.clone(), Spanned::span),
                                format!(
                                    "column `{k}`: unknown type `{v}`; use one of {}",
                                    SCHEMA_TYPES.join(", ")
                                ),
                            );
                        }
                        columns.insert(k.clone(), ty);
                    }
                    Some(CheckKind::Schema {
                        columns,
                        exact: raw.exact,
                    })
                }
                _ => {
                    err(span.clone(), need("columns = { name = \"type\", ... }"));
                    None
                }
            }
        }
        "sql" => match (&raw.sql, &raw.expression) {
            (Some(sql), None) => Some(CheckKind::Sql { sql: sql.clone() }),
            (None, Some(e)) => Some(CheckKind::Expression {
                expression: e.clone(),
            }),
            _ => {
                err(
                    span.clone(),
                    "a `sql` check needs `sql = \"SELECT ... (rows returned are failures)\"` or \
                     `expression = \"... (true for every good row)\"`, not both"
                        .into(),
                );
                None
            }
        },
        other => {
            err(
                raw.kind.span(),
                format!(
                    "unknown check kind `{other}`: use not_null, unique, relationships, \
                     accepted_values, row_count, freshness, schema or sql"
                ),
            );
            None
        }
    };
    let severity = severity(file, &raw.severity, diags);
    if diags.len() > before {
        return None;
    }
    let kind = kind?;
    let table = raw.table.get_ref().clone();
    let name = raw.name.as_ref().map_or_else(
        || {
            let mut n = format!("{table}_{}", kind.name());
            match &kind {
                CheckKind::NotNull { columns } | CheckKind::Unique { columns } => {
                    n.push('_');
                    n.push_str(&columns.join("_"));
                }
                CheckKind::Relationships { column, .. }
                | CheckKind::AcceptedValues { column, .. }
                | CheckKind::Freshness { column, .. } => {
                    n.push('_');
                    n.push_str(column);
                }
                _ => {}
            }
            n
        },
        |n| n.get_ref().clone(),
    );
    Some(Check {
        name,
        table,
        kind,
        date_column: raw.date_column.clone(),
        filter: raw.filter.clone(),
        severity: severity?,
        description: raw.description.clone(),
        origin: Origin {
            path: file.path.clone(),
            line: file.line_col(span.start).0,
        },
    })
}

fn convert_reconcile(
    file: &SourceFile,
    r: &Spanned<RawReconcile>,
    diags: &mut Diagnostics,
) -> Option<Reconcile> {
    let (span, raw) = (r.span(), r.get_ref());
    let tol = *raw.tolerance.get_ref();
    if !(0.0..=1.0).contains(&tol) {
        diags.push(file.error(
            raw.tolerance.span(),
            format!("tolerance {tol} is not a fraction between 0 and 1 (0.02 for 2%)"),
        ));
        return None;
    }
    for (side, sql) in [("left", &raw.left), ("right", &raw.right)] {
        if !sql.trim_start().to_ascii_lowercase().starts_with("select")
            && !sql.trim_start().to_ascii_lowercase().starts_with("with")
        {
            diags.push(file.error(
                span.clone(),
                format!("`{side}` must be a query returning one number (SELECT ...)"),
            ));
            return None;
        }
    }
    Some(Reconcile {
        name: raw.name.get_ref().clone(),
        description: raw.description.clone(),
        left_label: raw.left_label.clone().unwrap_or_else(|| "left".into()),
        left: raw.left.clone(),
        right_label: raw.right_label.clone().unwrap_or_else(|| "right".into()),
        right: raw.right.clone(),
        tolerance: tol,
        min_difference: raw.min_difference,
        completeness: raw.completeness,
        severity: severity(file, &raw.severity, diags)?,
        origin: Origin {
            path: file.path.clone(),
            line: file.line_col(span.start).0,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn load(text: &str) -> (QualityDefs, Vec<String>) {
        let mut diags = Diagnostics::default();
        let file = SourceFile::new("models/checks.toml".into(), text.into());
        let defs = QualityDefs::from_sources(&[file], &mut diags);
        (defs, diags.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn every_kind_loads() {
        let (defs, errs) = load(
            r#"
[[metric]]
name = "ignored_here"

[[check]]
table = "fct_events"
kind = "not_null"
columns = ["user_id", "event_ts"]
date_column = "event_date"
severity = "error"

[[check]]
table = "dim_user"
kind = "unique"
column = "user_id"

[[check]]
table = "fct_events"
kind = "relationships"
column = "user_key"
to = "dim_user"

[[check]]
table = "raw_app_db_subscriptions"
kind = "accepted_values"
column = "plan"
values = ["basic", "pro"]

[[check]]
table = "fct_events"
kind = "row_count"
min = 1
date_column = "event_date"

[[check]]
table = "fct_events"
kind = "freshness"
column = "event_ts"
max_age_hours = 6

[[check]]
table = "raw_app_db_users"
kind = "schema"
columns = { id = "bigint", country = "text" }

[[check]]
name = "no_negative_sales"
table = "fct_events"
kind = "sql"
expression = "amount IS NULL OR amount >= 0"

[[reconcile]]
name = "signups"
left = "SELECT 1"
right = "SELECT 1"
tolerance = 0.02
"#,
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(defs.checks.len(), 8);
        assert_eq!(defs.checks[0].name, "fct_events_not_null_user_id_event_ts");
        assert_eq!(defs.checks[0].severity, Severity::Error);
        assert_eq!(defs.checks[1].severity, Severity::Warn);
        assert_eq!(
            defs.checks[2].kind,
            CheckKind::Relationships {
                column: "user_key".into(),
                to: "dim_user".into(),
                to_column: "user_key".into()
            }
        );
        assert_eq!(defs.checks[0].origin.line, 5);
        assert_eq!(defs.reconciles.len(), 1);
    }

    #[test]
    fn every_problem_with_its_line() {
        let (_, errs) = load(
            r#"[[check]]
table = "t"
kind = "nope"

[[check]]
table = "t"
kind = "not_null"

[[check]]
table = "t"
kind = "row_count"
min = 5
max = 2
severity = "fatal"

[[reconcile]]
name = "x"
left = "SELECT 1"
right = "DROP TABLE t"
tolerance = 2
"#,
        );
        let all = errs.join("\n");
        assert!(
            all.contains(":3:") && all.contains("unknown check kind `nope`"),
            "{all}"
        );
        assert!(all.contains("a `not_null` check needs `columns"), "{all}");
        assert!(all.contains("min 5 is more than max 2"), "{all}");
        assert!(all.contains("unknown severity `fatal`"), "{all}");
        assert!(all.contains("tolerance 2"), "{all}");
        // an unknown key stops serde for its file: reported with where it is
        let (_, errs) = load("[[check]]\ntable = \"t\"\nkind = \"unique\"\ncolums = [\"a\"]\n");
        assert!(errs[0].contains("colums"), "{errs:?}");
    }
}
