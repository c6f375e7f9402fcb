//! SQLite: the file opened read-only, every table read inside one read transaction (one
//! snapshot), on a blocking thread. Columns are typed by their declared type; a stored value
//! that does not fit its column's declared type (SQLite allows it) stops the load with the row
//! and value named, never a silent cast.

use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::columns::{Builder, MAX_DECIMAL_PRECISION, Ty, parse_timestamp};
use crate::plan::{Discovered, ReadColumn, SourceColumn, TablePlan, Watermark};
use crate::sink::BatchSink;

pub struct LiteSource {
    conn: Option<Connection>,
    tz: Option<chrono_tz::Tz>,
}

/// The scale of `NUMERIC`/`DECIMAL` columns declared without one.
const UNCONSTRAINED_SCALE: i8 = 10;

fn map_type(declared: &str) -> Result<Ty, String> {
    let t = declared.trim().to_ascii_uppercase();
    if t.is_empty() {
        return Err("no declared type, so values may be of any kind; declare one".into());
    }
    if t.contains("BOOL") {
        return Ok(Ty::Bool);
    }
    if t.contains("INT") {
        return Ok(Ty::Int64);
    }
    if t.starts_with("DECIMAL") || t.starts_with("NUMERIC") {
        let args = t
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .map(|(inside, _)| inside.to_string());
        return match args {
            None => Ok(Ty::Decimal(MAX_DECIMAL_PRECISION, UNCONSTRAINED_SCALE)),
            Some(inside) => {
                let mut parts = inside.split(',').map(|p| p.trim().parse::<u8>());
                let p = parts.next().and_then(Result::ok);
                let s = parts.next().map_or(Some(0), Result::ok);
                match (p, s) {
                    (Some(p), Some(s)) if (1..=MAX_DECIMAL_PRECISION).contains(&p) && s <= p => {
                        Ok(Ty::Decimal(p, i8::try_from(s).unwrap_or(0)))
                    }
                    _ => Err("precision above 38 digits or an invalid scale".into()),
                }
            }
        };
    }
    if t.contains("DATETIME") || t.contains("TIMESTAMP") {
        return Ok(Ty::Timestamp);
    }
    if t == "DATE" {
        return Ok(Ty::Date);
    }
    if t == "TIME" {
        return Ok(Ty::Text);
    }
    if ["CHAR", "CLOB", "TEXT", "JSON", "UUID"]
        .iter()
        .any(|k| t.contains(k))
    {
        return Ok(Ty::Text);
    }
    if t.contains("BLOB") {
        return Ok(Ty::Binary);
    }
    if ["REAL", "FLOA", "DOUB"].iter().any(|k| t.contains(k)) {
        return Ok(Ty::Float64);
    }
    Err("no exact warehouse type".into())
}

/// Quote one identifier (a column).
fn quote_ident(name: &str) -> String {
    crate::plan::quote_ident(name, '"')
}

/// Quote a table name (or `schema.name`).
fn quote(name: &str) -> String {
    crate::plan::quote_table(name, '"')
}

/// The database file a URL names: `sqlite://PATH` or a path, relative to the project.
fn path_of(url: &str, root: &Path) -> PathBuf {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    }
}

fn blocking_error(e: tokio::task::JoinError) -> String {
    format!("internal error: the SQLite thread failed: {e}")
}

impl LiteSource {
    pub async fn open(url: &str, root: &Path, tz: chrono_tz::Tz) -> Result<Self, String> {
        let path = path_of(url, root);
        let conn = tokio::task::spawn_blocking(move || {
            if !path.is_file() {
                return Err(format!("{}: no such database file", path.display()));
            }
            let conn = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
            conn.busy_timeout(std::time::Duration::from_secs(30))
                .map_err(|e| e.to_string())?;
            // one read transaction for every table: a single snapshot
            conn.execute_batch("BEGIN")
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(conn)
        })
        .await
        .map_err(blocking_error)??;
        Ok(Self {
            conn: Some(conn),
            tz: (tz != chrono_tz::UTC).then_some(tz),
        })
    }

    pub async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = tokio::task::spawn_blocking(move || {
                let _ = conn.execute_batch("ROLLBACK");
            })
            .await;
        }
    }

    async fn with_conn<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let conn = self
            .conn
            .take()
            .ok_or("internal error: the SQLite connection was lost")?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = f(&conn);
            (conn, result)
        })
        .await
        .map_err(blocking_error)?;
        self.conn = Some(conn);
        result
    }

    pub async fn discover(&mut self, table: &str) -> Result<Discovered, String> {
        let table = table.to_string();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare(&format!("PRAGMA table_info({})", quote(&table)))
                .map_err(|e| e.to_string())?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                        r.get::<_, i64>(5)?,
                    ))
                })
                .map_err(|e| e.to_string())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            if rows.is_empty() {
                return Err(format!("table {table} does not exist in the database"));
            }
            let mut pk: Vec<(i64, String)> = rows
                .iter()
                .filter(|(_, _, pk)| *pk > 0)
                .map(|(name, _, pk)| (*pk, name.clone()))
                .collect();
            pk.sort();
            Ok(Discovered {
                columns: rows
                    .into_iter()
                    .map(|(name, declared, _)| SourceColumn {
                        ty: map_type(&declared),
                        name,
                        db_type: if declared.is_empty() {
                            "(none)".into()
                        } else {
                            declared
                        },
                    })
                    .collect(),
                primary_key: pk.into_iter().map(|(_, n)| n).collect(),
            })
        })
        .await
    }

    fn literal(tz: Option<chrono_tz::Tz>, value: &Watermark) -> String {
        match value {
            Watermark::Int(v) => v.to_string(),
            Watermark::Timestamp(us) => {
                // SQLite compares the stored text, which may be written in another zone
                // (`Z`, an offset) or without a time: a day earlier than the bound is read
                // too, whatever the form (the rows read again are merged, never duplicated)
                let utc = chrono::DateTime::from_timestamp_micros(*us).unwrap_or_default()
                    - chrono::Duration::days(1);
                let wall = match tz {
                    Some(tz) => utc.with_timezone(&tz).naive_local(),
                    None => utc.naive_utc(),
                };
                format!("'{}'", wall.format("%Y-%m-%d"))
            }
        }
    }

    pub async fn read(&mut self, plan: &TablePlan, sink: BatchSink) -> Result<BatchSink, String> {
        let tz = self.tz;
        let columns: Vec<String> = plan.read.iter().map(|c| quote_ident(&c.name)).collect();
        let where_clause = plan.where_clause(quote, |_: &ReadColumn, v| Self::literal(tz, v));
        let sql = format!(
            "SELECT {} FROM {}{where_clause}",
            columns.join(", "),
            quote(&plan.table)
        );
        tracing::debug!(%sql, "sqlite select");
        let table = plan.table.clone();
        self.with_conn(move |conn| read_rows(conn, &sql, &table, tz, sink))
            .await
    }
}

fn read_rows(
    conn: &Connection,
    sql: &str,
    table: &str,
    tz: Option<chrono_tz::Tz>,
    mut sink: BatchSink,
) -> Result<BatchSink, String> {
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| format!("table {table}: {e}"))?;
    let n = stmt.column_count();
    let mut rows = stmt.query([]).map_err(|e| format!("table {table}: {e}"))?;
    let mut row_number = 0u64;
    while let Some(row) = rows.next().map_err(|e| format!("table {table}: {e}"))? {
        row_number += 1;
        for i in 0..n {
            let value = row.get_ref(i).map_err(|e| format!("table {table}: {e}"))?;
            let b = &mut sink.builders[i];
            let (result, size) = push(b, value, tz);
            sink.add_bytes(size);
            result.map_err(|e| {
                let c = &sink.plan().read[i];
                format!(
                    "table {table}, row {row_number} read, column `{}` ({}): {e}",
                    c.name, c.db_type
                )
            })?;
        }
        if sink.end_row() {
            sink.flush_blocking()?;
        }
    }
    Ok(sink)
}

fn push(
    b: &mut Builder,
    value: ValueRef<'_>,
    tz: Option<chrono_tz::Tz>,
) -> (Result<(), String>, usize) {
    match value {
        ValueRef::Null => {
            b.push_null();
            (Ok(()), 0)
        }
        ValueRef::Integer(v) => (
            match b {
                Builder::Text(_)
                | Builder::Timestamp(_)
                | Builder::Date(_)
                | Builder::Binary(_) => Err(format!(
                    "the integer {v} is stored in a column of another type"
                )),
                _ => b.push_i64(v),
            },
            8,
        ),
        ValueRef::Real(v) => (
            match b {
                Builder::Float64(_) | Builder::Float32(_) | Builder::Decimal { .. } => {
                    b.push_f64(v)
                }
                _ => Err(format!(
                    "the real number {v} is stored in a column of another type"
                )),
            },
            8,
        ),
        ValueRef::Text(t) => (
            match std::str::from_utf8(t) {
                Err(e) => Err(format!("not valid UTF-8 ({e})")),
                Ok(text) => match b {
                    Builder::Timestamp(_) => {
                        parse_timestamp(text, tz).and_then(|us| b.push_timestamp(us))
                    }
                    Builder::Binary(_) => {
                        Err(format!("the text `{text}` is stored in a BLOB column"))
                    }
                    _ => b.push_text(text, tz),
                },
            },
            t.len(),
        ),
        ValueRef::Blob(v) => (
            match b {
                Builder::Binary(_) => b.push_bytes(v),
                _ => Err(format!(
                    "a blob of {} bytes is stored in a column of another type",
                    v.len()
                )),
            },
            v.len(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::map_type;
    use crate::columns::Ty;

    #[test]
    fn declared_types_map_exactly() {
        assert_eq!(map_type("INTEGER"), Ok(Ty::Int64));
        assert_eq!(map_type("DECIMAL(10, 2)"), Ok(Ty::Decimal(10, 2)));
        assert_eq!(map_type("DATETIME"), Ok(Ty::Timestamp));
        assert_eq!(map_type("varchar(20)"), Ok(Ty::Text));
        assert_eq!(map_type("BOOLEAN"), Ok(Ty::Bool));
        assert!(map_type("").is_err());
        assert!(map_type("DECIMAL(50,2)").is_err());
    }
}
