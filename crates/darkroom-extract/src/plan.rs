//! What one table's load reads and writes: the columns in warehouse order, the output schema,
//! the schema-drift verdict, and the incremental bound.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use darkroom_config::{DatabaseSourceConfig, Lookback, TableConfig, TableMode};
use serde_json::json;

use crate::columns::{Ty, timestamp_type};
use crate::{EXTRACTED_AT, SNAPSHOT_DATE};

/// A column as the database describes it.
#[derive(Debug, Clone)]
pub struct SourceColumn {
    pub name: String,
    /// The database's own name for the type, for messages (`numeric(12,2)`, `tinyint(1)`).
    pub db_type: String,
    /// The warehouse type, or why there is none.
    pub ty: Result<Ty, String>,
}

/// A table as the database describes it.
#[derive(Debug, Clone)]
pub struct Discovered {
    pub columns: Vec<SourceColumn>,
    pub primary_key: Vec<String>,
}

/// The lower bound of an incremental read: `cursor >= value`.
#[derive(Debug, Clone)]
pub struct Since {
    pub column: String,
    pub value: Watermark,
}

/// The largest cursor value loaded so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watermark {
    Int(i64),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
}

impl Watermark {
    pub fn describe(&self) -> String {
        match self {
            Self::Int(v) => v.to_string(),
            Self::Timestamp(us) => chrono::DateTime::from_timestamp_micros(*us)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .unwrap_or_else(|| us.to_string()),
        }
    }

    /// The watermark recorded in a load's fingerprint, if it was taken on `cursor` (after the
    /// cursor changes, the next load starts over).
    pub fn from_fingerprint(fingerprint: &str, cursor: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(fingerprint).ok()?;
        if v.get("cursor")?.as_str()? != cursor {
            return None;
        }
        let w = v.get("watermark")?;
        let value = w.get("value")?.as_i64()?;
        match w.get("type")?.as_str()? {
            "int" => Some(Self::Int(value)),
            "timestamp" => Some(Self::Timestamp(value)),
            _ => None,
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Self::Int(v) => json!({"type": "int", "value": v}),
            Self::Timestamp(v) => json!({"type": "timestamp", "value": v, "utc": self.describe()}),
        }
    }
}

/// The fingerprint a load records: when the snapshot was taken, the rows, the watermark.
pub fn fingerprint(
    snapshot_at: chrono::DateTime<chrono::Utc>,
    rows: u64,
    cursor: Option<&str>,
    watermark: Option<&Watermark>,
    since: Option<&Since>,
) -> String {
    json!({
        "snapshot_at": snapshot_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "rows": rows,
        "cursor": cursor,
        "watermark": watermark.map(Watermark::json),
        "since": since.map(|s| s.value.json()),
    })
    .to_string()
}

/// One output column read from the database.
#[derive(Debug, Clone)]
pub struct ReadColumn {
    pub name: String,
    pub db_type: String,
    /// The type values are decoded as (before hashing).
    pub ty: Ty,
    /// Replaced by a salted SHA-256 before writing.
    pub hashed: bool,
}

/// One table's load.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// The table in the database.
    pub table: String,
    /// Columns read, in the order of the output schema's first columns... see `positions`.
    pub read: Vec<ReadColumn>,
    /// The output schema (warehouse order).
    pub schema: SchemaRef,
    /// For each read column, its index in `schema`.
    pub positions: Vec<usize>,
    /// Index in `schema` of `_extracted_at` and of `snapshot_date` (if present).
    pub extracted_at: usize,
    pub snapshot_date: Option<usize>,
    /// Columns the warehouse table lacks and gets now.
    pub new_columns: Vec<String>,
    pub filter: Option<String>,
    pub since: Option<Since>,
    /// Index in `read` of the cursor column (incremental).
    pub cursor: Option<usize>,
    /// Merge key (incremental).
    pub key: Vec<String>,
    pub batch_rows: usize,
}

/// Types compared as Delta stores them (string kinds and list element names differ in
/// Arrow but not in the table).
fn normalize(t: &DataType) -> String {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => "Utf8".into(),
        DataType::BinaryView | DataType::LargeBinary => "Binary".into(),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("List({})", normalize(f.data_type()))
        }
        DataType::Timestamp(unit, Some(_)) => format!("Timestamp({unit:?}, UTC)"),
        other => format!("{other:?}"),
    }
}

/// A type as a reader would write it, for messages.
fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "text".into(),
        DataType::Binary | DataType::BinaryView | DataType::LargeBinary => "binary".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "int8 (byte)".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::List(f) => format!("array of {}", type_name(f.data_type())),
        other => format!("{other}"),
    }
}

impl TablePlan {
    pub fn new(
        source: &DatabaseSourceConfig,
        table: &TableConfig,
        discovered: &Discovered,
        existing: Option<&Schema>,
        watermark: Option<&Watermark>,
    ) -> Result<Self, String> {
        let name = table.name();
        let mut problems = Vec::new();
        for c in table.exclude.iter().chain(&table.hash) {
            if !discovered.columns.iter().any(|d| &d.name == c) {
                problems.push(format!("column `{c}` (in exclude or hash) does not exist"));
            }
        }
        let mut read = Vec::new();
        for c in &discovered.columns {
            if table.exclude.contains(&c.name) {
                continue;
            }
            if c.name == EXTRACTED_AT || c.name == SNAPSHOT_DATE {
                problems.push(format!(
                    "column `{}` has the name of a column darkroom adds to every row; exclude \
                     it, or rename it in a view",
                    c.name
                ));
                continue;
            }
            match &c.ty {
                Ok(ty) => read.push(ReadColumn {
                    name: c.name.clone(),
                    db_type: c.db_type.clone(),
                    ty: ty.clone(),
                    hashed: table.hash.contains(&c.name),
                }),
                Err(why) => problems.push(format!(
                    "column `{}` has type {}, which the warehouse cannot hold exactly ({why}); \
                     add it to `exclude`, or cast it in a view",
                    c.name, c.db_type
                )),
            }
        }
        let out_type = |c: &ReadColumn| {
            if c.hashed {
                DataType::Utf8
            } else {
                c.ty.arrow()
            }
        };

        // the warehouse's columns first, in its order; new source columns after them
        let mut fields: Vec<Field> = Vec::new();
        let mut new_columns = Vec::new();
        if let Some(existing) = existing {
            for f in existing.fields() {
                if f.name() == EXTRACTED_AT {
                    fields.push(Field::new(EXTRACTED_AT, timestamp_type(), true));
                    continue;
                }
                if f.name() == SNAPSHOT_DATE {
                    fields.push(Field::new(SNAPSHOT_DATE, DataType::Date32, true));
                    continue;
                }
                match read.iter().find(|c| c.name == *f.name()) {
                    None => {
                        let why = if table.exclude.contains(f.name()) {
                            "is now excluded"
                        } else {
                            "was dropped or renamed at the source"
                        };
                        problems.push(format!(
                            "column `{}` ({}) {why}; the warehouse table keeps it, so this \
                             load stops here",
                            f.name(),
                            type_name(f.data_type())
                        ));
                    }
                    Some(c) => {
                        let now = out_type(c);
                        if normalize(&now) != normalize(f.data_type()) {
                            problems.push(format!(
                                "column `{}` changed type: {} in the warehouse, now {} ({} at \
                                 the source)",
                                f.name(),
                                type_name(f.data_type()),
                                type_name(&now),
                                c.db_type
                            ));
                        }
                        fields.push(Field::new(f.name(), now, true));
                    }
                }
            }
            for c in &read {
                if existing.field_with_name(&c.name).is_err() {
                    new_columns.push(c.name.clone());
                    fields.push(Field::new(&c.name, out_type(c), true));
                }
            }
        } else {
            for c in &read {
                fields.push(Field::new(&c.name, out_type(c), true));
            }
            fields.push(Field::new(EXTRACTED_AT, timestamp_type(), true));
            if matches!(
                table.mode,
                TableMode::Full {
                    history: darkroom_config::FullHistory::Snapshot
                }
            ) {
                fields.push(Field::new(SNAPSHOT_DATE, DataType::Date32, true));
            }
        }
        let mut meta_missing = |meta: &str| {
            if !fields.iter().any(|f| f.name() == meta) {
                problems.push(format!(
                    "the warehouse table has no `{meta}` column: it was not written by \
                     `darkroom extract` with this configuration"
                ));
            }
        };
        meta_missing(EXTRACTED_AT);
        let snapshot_mode = matches!(
            table.mode,
            TableMode::Full {
                history: darkroom_config::FullHistory::Snapshot
            }
        );
        if snapshot_mode {
            meta_missing(SNAPSHOT_DATE);
        }

        let (cursor, since, key) = match &table.mode {
            TableMode::Full { .. } => (None, None, Vec::new()),
            TableMode::Incremental { cursor, lookback } => {
                let index = read.iter().position(|c| &c.name == cursor);
                let mut since = None;
                match index.map(|i| &read[i]) {
                    None => problems.push(format!(
                        "cursor column `{cursor}` is not among the columns read"
                    )),
                    Some(c) if c.hashed => {
                        problems.push(format!("cursor column `{cursor}` cannot be hashed"));
                    }
                    Some(c) => match (&c.ty, watermark, lookback) {
                        (Ty::Int16 | Ty::Int32 | Ty::Int64, w, l) => {
                            if let Some(Lookback::Seconds(_)) = l {
                                problems.push(format!(
                                    "cursor `{cursor}` is an integer: give `lookback` as a \
                                     number of ids, not a duration"
                                ));
                            }
                            if let Some(Watermark::Int(v)) = w {
                                let back = match l {
                                    Some(Lookback::Count(n)) => *n,
                                    _ => 0,
                                };
                                since = Some(Since {
                                    column: cursor.clone(),
                                    value: Watermark::Int(v.saturating_sub(back)),
                                });
                            }
                        }
                        (Ty::Timestamp, w, l) => {
                            if let Some(Lookback::Count(_)) = l {
                                problems.push(format!(
                                    "cursor `{cursor}` is a timestamp: give `lookback` as a \
                                     duration such as \"6h\""
                                ));
                            }
                            if let Some(Watermark::Timestamp(v)) = w {
                                let back = match l {
                                    Some(Lookback::Seconds(s)) => s.saturating_mul(1_000_000),
                                    _ => 0,
                                };
                                since = Some(Since {
                                    column: cursor.clone(),
                                    value: Watermark::Timestamp(v.saturating_sub(back)),
                                });
                            }
                        }
                        (other, ..) => problems.push(format!(
                            "cursor column `{cursor}` must be an integer or a timestamp, not {}",
                            type_name(&other.arrow())
                        )),
                    },
                }
                let key = if table.key.is_empty() {
                    discovered.primary_key.clone()
                } else {
                    table.key.clone()
                };
                if key.is_empty() {
                    problems.push(
                        "an incremental table needs a key to merge on: the table has no \
                         primary key, so set `key = [\"id\"]`"
                            .to_string(),
                    );
                }
                for k in &key {
                    if !read.iter().any(|c| &c.name == k) {
                        problems.push(format!("key column `{k}` is not among the columns read"));
                    }
                }
                (index, since, key)
            }
        };

        if !problems.is_empty() {
            return Err(format!("table {name}: {}", problems.join("; ")));
        }
        let schema = Arc::new(Schema::new(fields));
        let positions = read
            .iter()
            .map(|c| schema.index_of(&c.name).unwrap_or(usize::MAX))
            .collect();
        let extracted_at = schema.index_of(EXTRACTED_AT).unwrap_or(usize::MAX);
        let snapshot_date = schema.index_of(SNAPSHOT_DATE).ok();
        Ok(Self {
            table: name.to_string(),
            read,
            schema,
            positions,
            extracted_at,
            snapshot_date,
            new_columns,
            filter: table.filter.clone(),
            since,
            cursor,
            key,
            batch_rows: source.batch_rows,
        })
    }

    /// `WHERE ...` (filter and incremental bound), or empty; `quote` quotes an identifier and
    /// `literal` renders the bound in the database's dialect.
    pub fn where_clause(
        &self,
        quote: impl Fn(&str) -> String,
        literal: impl Fn(&ReadColumn, &Watermark) -> String,
    ) -> String {
        let mut parts = Vec::new();
        if let Some(f) = &self.filter {
            parts.push(format!("({f})"));
        }
        if let (Some(since), Some(i)) = (&self.since, self.cursor) {
            parts.push(format!(
                "{} >= {}",
                quote(&since.column),
                literal(&self.read[i], &since.value)
            ));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", parts.join(" AND "))
        }
    }
}

/// One identifier (a column) in quotes `q` (`"` or a backtick), the quote doubled inside.
pub fn quote_ident(name: &str, q: char) -> String {
    let doubled: String = [q, q].iter().collect();
    format!("{q}{}{q}", name.replace(q, &doubled))
}

/// A table name, or `schema.name`, each part quoted with `q`.
pub fn quote_table(name: &str, q: char) -> String {
    name.split('.')
        .map(|p| quote_ident(p, q))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::{quote_ident, quote_table};

    #[test]
    fn identifiers_are_quoted_whole_and_tables_by_part() {
        assert_eq!(quote_ident("a.b", '"'), "\"a.b\"");
        assert_eq!(quote_ident("we\"ird", '"'), "\"we\"\"ird\"");
        assert_eq!(quote_table("public.users", '`'), "`public`.`users`");
    }
}
