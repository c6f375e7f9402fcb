//! MySQL and MariaDB: rows streamed over the text protocol (each value arrives as the server's
//! exact text, parsed here without rounding), inside one consistent-snapshot transaction.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value};

use crate::columns::{MAX_DECIMAL_PRECISION, Ty};
use crate::plan::{Discovered, ReadColumn, SourceColumn, TablePlan, Watermark};
use crate::sink::BatchSink;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MyDecode {
    /// Parsed from text by the column's type.
    Text,
    /// `tinyint(1)`: 0 or 1.
    TinyBool,
    /// `bit(1)`: one byte.
    Bit,
    Binary,
    /// `date`: zero dates become NULL.
    Date,
    /// `datetime`: wall-clock in the source's zone; zero dates become NULL.
    DateTime,
    /// `timestamp`: the session runs in UTC; zero dates become NULL.
    Timestamp,
}

fn map_type(
    data_type: &str,
    column_type: &str,
    precision: Option<u32>,
    scale: Option<u32>,
) -> Result<(MyDecode, Ty), String> {
    let unsigned = column_type.contains("unsigned");
    Ok(match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") && !unsigned => {
            (MyDecode::TinyBool, Ty::Bool)
        }
        "tinyint" => (MyDecode::Text, if unsigned { Ty::Int16 } else { Ty::Int8 }),
        "smallint" => (MyDecode::Text, if unsigned { Ty::Int32 } else { Ty::Int16 }),
        "mediumint" => (MyDecode::Text, Ty::Int32),
        "int" | "integer" => (MyDecode::Text, if unsigned { Ty::Int64 } else { Ty::Int32 }),
        "bigint" => (
            MyDecode::Text,
            if unsigned {
                Ty::Decimal(20, 0)
            } else {
                Ty::Int64
            },
        ),
        "decimal" | "numeric" => {
            let p = precision.unwrap_or(10);
            let s = scale.unwrap_or(0);
            if p > u32::from(MAX_DECIMAL_PRECISION) {
                return Err(format!(
                    "precision {p} is more than the warehouse's 38 digits"
                ));
            }
            (
                MyDecode::Text,
                Ty::Decimal(u8::try_from(p).unwrap_or(38), i8::try_from(s).unwrap_or(0)),
            )
        }
        "float" => (MyDecode::Text, Ty::Float32),
        "double" | "real" => (MyDecode::Text, Ty::Float64),
        "bit" if column_type == "bit(1)" => (MyDecode::Bit, Ty::Bool),
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "enum" | "set"
        | "json" | "uuid" | "inet4" | "inet6" | "time" => (MyDecode::Text, Ty::Text),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            (MyDecode::Binary, Ty::Binary)
        }
        "date" => (MyDecode::Date, Ty::Date),
        "datetime" => (MyDecode::DateTime, Ty::Timestamp),
        "timestamp" => (MyDecode::Timestamp, Ty::Timestamp),
        "year" => (MyDecode::Text, Ty::Int16),
        _ => return Err("no exact warehouse type".into()),
    })
}

pub struct MySource {
    conn: Conn,
    tz: Option<chrono_tz::Tz>,
    decoders: HashMap<(String, String), MyDecode>,
}

fn my_error(e: &mysql_async::Error) -> String {
    e.to_string()
}

/// Quote one identifier (a column).
fn quote_ident(name: &str) -> String {
    crate::plan::quote_ident(name, '`')
}

/// Quote a table name (or `schema.name`).
fn quote(name: &str) -> String {
    crate::plan::quote_table(name, '`')
}

fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i) {
        Some(Value::Bytes(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(Value::Int(v)) => Some(v.to_string()),
        Some(Value::UInt(v)) => Some(v.to_string()),
        _ => None,
    }
}

/// `0000-00-00`, or a date with a zero month or day, which MySQL allows and nothing else can
/// hold.
fn is_zero_date(v: &[u8]) -> bool {
    v.len() >= 10 && (&v[0..4] == b"0000" || &v[5..7] == b"00" || &v[8..10] == b"00")
}

impl MySource {
    pub async fn connect(url: &str, tz: chrono_tz::Tz) -> Result<Self, String> {
        let url = url
            .strip_prefix("mariadb://")
            .map_or_else(|| url.to_string(), |rest| format!("mysql://{rest}"));
        let opts = Opts::from_url(&url).map_err(|e| format!("invalid URL: {e}"))?;
        let mut conn = Conn::new(opts).await.map_err(|e| my_error(&e))?;
        for statement in [
            "SET NAMES utf8mb4",
            // `timestamp` values arrive in UTC; `datetime` values as written
            "SET SESSION time_zone = '+00:00'",
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        ] {
            conn.query_drop(statement).await.map_err(|e| my_error(&e))?;
        }
        Ok(Self {
            conn,
            tz: (tz != chrono_tz::UTC).then_some(tz),
            decoders: HashMap::new(),
        })
    }

    pub async fn close(mut self) {
        let _ = self.conn.query_drop("ROLLBACK").await;
        let _ = self.conn.disconnect().await;
    }

    pub async fn discover(&mut self, table: &str) -> Result<Discovered, String> {
        // table names are validated identifiers (letters, digits, `_`), safe as literals
        let (schema, name) = match table.split_once('.') {
            Some((s, n)) => (format!("'{s}'"), n.to_string()),
            None => ("DATABASE()".to_string(), table.to_string()),
        };
        let rows: Vec<Row> = self
            .conn
            .query(format!(
                "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, \
                        CAST(NUMERIC_PRECISION AS CHAR), CAST(NUMERIC_SCALE AS CHAR) \
                   FROM information_schema.COLUMNS \
                  WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = '{name}' \
                  ORDER BY ORDINAL_POSITION"
            ))
            .await
            .map_err(|e| my_error(&e))?;
        if rows.is_empty() {
            return Err(format!(
                "table {table} does not exist in the database (or the user cannot see it)"
            ));
        }
        let mut columns = Vec::new();
        for row in &rows {
            let column = text(row, 0).unwrap_or_default();
            let data_type = text(row, 1).unwrap_or_default().to_ascii_lowercase();
            let column_type = text(row, 2).unwrap_or_default().to_ascii_lowercase();
            let precision = text(row, 3).and_then(|p| p.parse().ok());
            let scale = text(row, 4).and_then(|s| s.parse().ok());
            let ty = map_type(&data_type, &column_type, precision, scale).map(|(d, t)| {
                self.decoders.insert((table.to_string(), column.clone()), d);
                t
            });
            columns.push(SourceColumn {
                name: column,
                db_type: column_type,
                ty,
            });
        }
        let pk: Vec<Row> = self
            .conn
            .query(format!(
                "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
                  WHERE TABLE_SCHEMA = {schema} AND TABLE_NAME = '{name}' \
                    AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION"
            ))
            .await
            .map_err(|e| my_error(&e))?;
        Ok(Discovered {
            columns,
            primary_key: pk.iter().filter_map(|r| text(r, 0)).collect(),
        })
    }

    fn literal(&self, column: &ReadColumn, value: &Watermark) -> String {
        match value {
            Watermark::Int(v) => v.to_string(),
            Watermark::Timestamp(us) => {
                let utc = chrono::DateTime::from_timestamp_micros(*us).unwrap_or_default();
                let wall = match (column.db_type.starts_with("datetime"), self.tz) {
                    (true, Some(tz)) => utc.with_timezone(&tz).naive_local(),
                    _ => utc.naive_utc(),
                };
                format!("'{}'", wall.format("%Y-%m-%d %H:%M:%S%.6f"))
            }
        }
    }

    pub async fn read(
        &mut self,
        plan: &TablePlan,
        mut sink: BatchSink,
    ) -> Result<BatchSink, String> {
        let decoders: Vec<MyDecode> = plan
            .read
            .iter()
            .map(|c| {
                self.decoders
                    .get(&(plan.table.clone(), c.name.clone()))
                    .copied()
                    .ok_or_else(|| format!("internal error: no decoder for column {}", c.name))
            })
            .collect::<Result<_, _>>()?;
        let columns: Vec<String> = plan.read.iter().map(|c| quote_ident(&c.name)).collect();
        let where_clause = plan.where_clause(quote_ident, |c, v| self.literal(c, v));
        let sql = format!(
            "SELECT {} FROM {}{where_clause}",
            columns.join(", "),
            quote(&plan.table),
        );
        tracing::debug!(%sql, "mysql select");
        let tz = self.tz;
        let table = plan.table.clone();
        let mut result = self
            .conn
            .query_iter(sql)
            .await
            .map_err(|e| format!("table {table}: {}", my_error(&e)))?;
        let mut row_number = 0u64;
        loop {
            let row = result.next().await.map_err(|e| {
                format!(
                    "table {table}: the connection failed after {row_number} rows: {}",
                    my_error(&e)
                )
            })?;
            let Some(row) = row else { break };
            row_number += 1;
            for (i, decode) in decoders.iter().enumerate() {
                let value: &[u8] = match row.as_ref(i) {
                    None | Some(Value::NULL) => {
                        sink.builders[i].push_null();
                        continue;
                    }
                    Some(Value::Bytes(b)) => b,
                    Some(other) => {
                        return Err(format!(
                            "table {table}, row {row_number} read, column `{}`: unexpected value {other:?}",
                            plan.read[i].name
                        ));
                    }
                };
                sink.add_bytes(value.len());
                let b = &mut sink.builders[i];
                let result = match decode {
                    MyDecode::Binary => b.push_bytes(value),
                    MyDecode::Bit => b.push_bool(value.first().copied().unwrap_or(0) != 0),
                    MyDecode::Date | MyDecode::DateTime | MyDecode::Timestamp
                        if is_zero_date(value) =>
                    {
                        sink.zero_date(i);
                        continue;
                    }
                    _ => match std::str::from_utf8(value) {
                        Err(e) => Err(format!("not valid UTF-8 ({e})")),
                        Ok(t) => match decode {
                            MyDecode::TinyBool => match t {
                                "0" => b.push_bool(false),
                                "1" => b.push_bool(true),
                                other => Err(format!(
                                    "`{other}` in a tinyint(1) column read as boolean: only 0 \
                                     and 1 are booleans; declare the column tinyint(4) to keep \
                                     its numbers"
                                )),
                            },
                            MyDecode::DateTime => b.push_text(t, tz),
                            _ => b.push_text(t, None),
                        },
                    },
                };
                result.map_err(|e| {
                    format!(
                        "table {table}, row {row_number} read, column `{}` ({}): {e}",
                        plan.read[i].name, plan.read[i].db_type
                    )
                })?;
            }
            if sink.end_row() {
                sink.flush().await?;
            }
        }
        drop(result);
        Ok(sink)
    }
}
