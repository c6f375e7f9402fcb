//! Postgres: `COPY (SELECT ...) TO STDOUT (FORMAT binary)`, decoded straight into Arrow
//! builders. The binary format carries every value in its exact wire form (numeric digits in
//! base 10000, timestamps in microseconds), so nothing passes through text or floats.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Buf, BytesMut};
use futures::{StreamExt, pin_mut};
use tokio_postgres::{Client, NoTls};

use crate::columns::{Builder, MAX_DECIMAL_PRECISION, Ty, naive_to_utc_micros, pow10};
use crate::plan::{Discovered, ReadColumn, SourceColumn, TablePlan, Watermark};
use crate::sink::BatchSink;

/// Microseconds from 1970-01-01 to 2000-01-01, Postgres's epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// The binary COPY signature.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// How one column's binary values are decoded.
#[derive(Debug, Clone)]
enum PgDecode {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    Text,
    Bytea,
    Date,
    Time,
    /// `timestamp` without time zone: wall-clock in the source's zone.
    Timestamp,
    TimestampTz,
    Uuid,
    Jsonb,
    Inet,
    Array(Box<PgDecode>),
}

/// Map a Postgres type (oid, typmod, typtype, typcategory) to its decoder and warehouse type.
fn map_type(oid: u32, typmod: i32, typtype: &str) -> Result<(PgDecode, Ty), String> {
    if typtype == "e" {
        return Ok((PgDecode::Text, Ty::Text));
    }
    Ok(match oid {
        16 => (PgDecode::Bool, Ty::Bool),
        21 => (PgDecode::Int2, Ty::Int16),
        23 => (PgDecode::Int4, Ty::Int32),
        20 => (PgDecode::Int8, Ty::Int64),
        26 => (PgDecode::Oid, Ty::Int64),
        700 => (PgDecode::Float4, Ty::Float32),
        701 => (PgDecode::Float8, Ty::Float64),
        1700 => {
            if typmod >= 4 {
                let precision = ((typmod - 4) >> 16) & 0xffff;
                let scale = (typmod - 4) & 0xffff;
                if precision > i32::from(MAX_DECIMAL_PRECISION) {
                    return Err(format!(
                        "precision {precision} is more than the warehouse's 38 digits"
                    ));
                }
                if scale > precision {
                    return Err(format!("scale {scale} larger than precision {precision}"));
                }
                (
                    PgDecode::Numeric,
                    Ty::Decimal(
                        u8::try_from(precision).unwrap_or(38),
                        i8::try_from(scale).unwrap_or(0),
                    ),
                )
            } else {
                // unconstrained numeric: 28 integer digits and 10 decimals; a value with more
                // decimals stops the load with its value named (never rounded)
                (PgDecode::Numeric, Ty::Decimal(38, UNCONSTRAINED_SCALE))
            }
        }
        25 | 1043 | 1042 | 19 | 18 | 142 | 114 => (PgDecode::Text, Ty::Text),
        3802 => (PgDecode::Jsonb, Ty::Text),
        17 => (PgDecode::Bytea, Ty::Binary),
        1082 => (PgDecode::Date, Ty::Date),
        1083 => (PgDecode::Time, Ty::Text),
        1114 => (PgDecode::Timestamp, Ty::Timestamp),
        1184 => (PgDecode::TimestampTz, Ty::Timestamp),
        2950 => (PgDecode::Uuid, Ty::Text),
        869 | 650 => (PgDecode::Inet, Ty::Text),
        _ => return Err("no exact warehouse type".into()),
    })
}

/// The scale given to `numeric` columns declared without one.
pub const UNCONSTRAINED_SCALE: i8 = 10;

/// A connection inside its snapshot transaction.
pub struct PgSource {
    client: Client,
    connection: tokio::task::JoinHandle<()>,
    tz: Option<chrono_tz::Tz>,
    decoders: HashMap<(String, String), PgDecode>,
}

fn pg_error(e: &tokio_postgres::Error) -> String {
    // `Display` of a server error is only its severity; say what the server said
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

/// Quote one identifier (a column).
fn quote_ident(name: &str) -> String {
    crate::plan::quote_ident(name, '"')
}

/// Quote a table name (or `schema.name`).
fn quote(name: &str) -> String {
    crate::plan::quote_table(name, '"')
}

impl PgSource {
    pub async fn connect(url: &str, tz: chrono_tz::Tz) -> Result<Self, String> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| pg_error(&e))?;
        let connection = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres connection ended");
            }
        });
        client
            .batch_execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL TIME ZONE 'UTC'",
            )
            .await
            .map_err(|e| pg_error(&e))?;
        Ok(Self {
            client,
            connection,
            tz: (tz != chrono_tz::UTC).then_some(tz),
            decoders: HashMap::new(),
        })
    }

    /// Run a SAVEPOINT statement.
    pub async fn savepoint(&mut self, statement: &str) -> Result<(), String> {
        self.client
            .batch_execute(statement)
            .await
            .map_err(|e| pg_error(&e))
    }

    pub async fn close(self) {
        let _ = self.client.batch_execute("ROLLBACK").await;
        drop(self.client);
        let _ = self.connection.await;
    }

    pub async fn discover(&mut self, table: &str) -> Result<Discovered, String> {
        let quoted = quote(table);
        let exists = self
            .client
            .query_one("SELECT to_regclass($1)::oid::int8", &[&quoted])
            .await
            .map_err(|e| pg_error(&e))?;
        let oid: Option<i64> = exists.get(0);
        if oid.is_none() {
            return Err(format!(
                "table {table} does not exist in the database (or the user cannot see it)"
            ));
        }
        let rows = self
            .client
            .query(
                "SELECT a.attname::text,
                        format_type(a.atttypid, a.atttypmod),
                        bt.oid::int8,
                        CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
                        bt.typtype::text,
                        bt.typcategory::text,
                        et.oid::int8,
                        et.typtype::text
                   FROM pg_attribute a
                   JOIN pg_type t ON t.oid = a.atttypid
                   JOIN pg_type bt
                     ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END
                   LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
                  WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
                  ORDER BY a.attnum",
                &[&quoted],
            )
            .await
            .map_err(|e| pg_error(&e))?;
        let mut columns = Vec::new();
        for row in rows {
            let name: String = row.get(0);
            let db_type: String = row.get(1);
            let oid = u32::try_from(row.get::<_, i64>(2)).unwrap_or(0);
            let typmod: i32 = row.get(3);
            let typtype: String = row.get(4);
            let category: String = row.get(5);
            let elem_oid: Option<i64> = row.get(6);
            let elem_type: Option<String> = row.get(7);
            let mapped = if category == "A" {
                let elem = u32::try_from(elem_oid.unwrap_or(0)).unwrap_or(0);
                map_type(elem, typmod, elem_type.as_deref().unwrap_or("b")).and_then(|(d, t)| {
                    match t {
                        Ty::List(_) => Err("nested arrays".into()),
                        t => Ok((PgDecode::Array(Box::new(d)), Ty::List(Box::new(t)))),
                    }
                })
            } else {
                map_type(oid, typmod, &typtype)
            };
            let ty = mapped.map(|(decode, ty)| {
                self.decoders
                    .insert((table.to_string(), name.clone()), decode);
                ty
            });
            columns.push(SourceColumn { name, db_type, ty });
        }
        let pk = self
            .client
            .query(
                "SELECT a.attname::text
                   FROM pg_index i
                   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                  WHERE i.indrelid = to_regclass($1) AND i.indisprimary
                  ORDER BY array_position(i.indkey::int2[], a.attnum)",
                &[&quoted],
            )
            .await
            .map_err(|e| pg_error(&e))?;
        Ok(Discovered {
            columns,
            primary_key: pk.iter().map(|r| r.get(0)).collect(),
        })
    }

    fn literal(&self, table: &str, column: &ReadColumn, value: &Watermark) -> String {
        match value {
            Watermark::Int(v) => v.to_string(),
            Watermark::Timestamp(us) => {
                let utc = chrono::DateTime::from_timestamp_micros(*us).unwrap_or_default();
                // by the base type: a domain over timestamptz has its own name
                let with_zone = matches!(
                    self.decoders.get(&(table.to_string(), column.name.clone())),
                    Some(PgDecode::TimestampTz)
                );
                if with_zone {
                    format!("'{}'::timestamptz", utc.format("%Y-%m-%d %H:%M:%S%.6f+00"))
                } else {
                    let local = match self.tz {
                        Some(tz) => utc.with_timezone(&tz).naive_local(),
                        None => utc.naive_utc(),
                    };
                    format!("'{}'::timestamp", local.format("%Y-%m-%d %H:%M:%S%.6f"))
                }
            }
        }
    }

    pub async fn read(
        &mut self,
        plan: &TablePlan,
        mut sink: BatchSink,
    ) -> Result<BatchSink, String> {
        let decoders: Vec<PgDecode> = plan
            .read
            .iter()
            .map(|c| {
                self.decoders
                    .get(&(plan.table.clone(), c.name.clone()))
                    .cloned()
                    .ok_or_else(|| format!("internal error: no decoder for column {}", c.name))
            })
            .collect::<Result<_, _>>()?;
        let columns: Vec<String> = plan.read.iter().map(|c| quote_ident(&c.name)).collect();
        let sql = format!(
            "COPY (SELECT {} FROM {}{}) TO STDOUT (FORMAT binary)",
            columns.join(", "),
            quote(&plan.table),
            plan.where_clause(quote_ident, |c, v| self.literal(&plan.table, c, v))
        );
        tracing::debug!(%sql, "postgres copy");
        let stream = self
            .client
            .copy_out(sql.as_str())
            .await
            .map_err(|e| format!("table {}: {}", plan.table, pg_error(&e)))?;
        pin_mut!(stream);
        let mut decoder = CopyDecoder {
            decoders,
            tz: self.tz,
            header_done: false,
            finished: false,
            row: 0,
        };
        let mut carry = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                format!(
                    "table {}: the connection failed after {} rows: {}",
                    plan.table,
                    decoder.row,
                    pg_error(&e)
                )
            })?;
            sink.add_bytes(chunk.len());
            // rows are decoded straight from the message; only a row cut between messages
            // is copied, to be completed by the next one
            let mut rest: &[u8] = if carry.is_empty() {
                &chunk
            } else {
                carry.extend_from_slice(&chunk);
                &carry
            };
            let mut consumed = 0;
            loop {
                let used = decoder
                    .decode(rest, &mut sink)
                    .map_err(|e| format!("table {}: {e}", plan.table))?;
                rest = &rest[used.consumed..];
                consumed += used.consumed;
                if !used.flush {
                    break;
                }
                sink.flush().await?;
            }
            if carry.is_empty() {
                carry.extend_from_slice(&chunk[consumed..]);
            } else {
                carry.advance(consumed);
            }
        }
        if !decoder.finished || !carry.is_empty() {
            return Err(format!(
                "table {}: the COPY stream ended early, after {} rows",
                plan.table, decoder.row
            ));
        }
        Ok(sink)
    }
}

struct CopyDecoder {
    decoders: Vec<PgDecode>,
    tz: Option<chrono_tz::Tz>,
    header_done: bool,
    finished: bool,
    row: u64,
}

struct Used {
    consumed: usize,
    flush: bool,
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

impl CopyDecoder {
    /// Decode every complete row in `data`; stop early when a batch is full (the caller
    /// flushes it, then calls again with the rest).
    fn decode(&mut self, data: &[u8], sink: &mut BatchSink) -> Result<Used, String> {
        let mut pos = 0;
        if !self.header_done {
            if data.len() < SIGNATURE.len() + 8 {
                return Ok(Used {
                    consumed: 0,
                    flush: false,
                });
            }
            if &data[..SIGNATURE.len()] != SIGNATURE {
                return Err("the COPY stream has no binary signature".into());
            }
            let ext = usize::try_from(be_i32(&data[SIGNATURE.len() + 4..])).unwrap_or(0);
            let header = SIGNATURE.len() + 8 + ext;
            if data.len() < header {
                return Ok(Used {
                    consumed: 0,
                    flush: false,
                });
            }
            pos = header;
            self.header_done = true;
        }
        let n = self.decoders.len();
        let mut flush = false;
        while !flush && pos + 2 <= data.len() {
            let fields = be_i16(&data[pos..]);
            if fields == -1 {
                self.finished = true;
                pos += 2;
                break;
            }
            if usize::try_from(fields).ok() != Some(n) {
                return Err(format!(
                    "row {} has {fields} fields, expected {n}",
                    self.row + 1
                ));
            }
            // is the whole row here?
            let mut end = pos + 2;
            let mut complete = true;
            for _ in 0..n {
                if end + 4 > data.len() {
                    complete = false;
                    break;
                }
                let len = be_i32(&data[end..]);
                end += 4 + usize::try_from(len.max(0)).unwrap_or(0);
                if end > data.len() {
                    complete = false;
                    break;
                }
            }
            if !complete {
                break;
            }
            let mut at = pos + 2;
            self.row += 1;
            for i in 0..n {
                let len = be_i32(&data[at..]);
                at += 4;
                let builder = &mut sink.builders[i];
                if len < 0 {
                    builder.push_null();
                    continue;
                }
                let value = &data[at..at + len as usize];
                at += len as usize;
                decode_value(&self.decoders[i], value, builder, self.tz).map_err(|e| {
                    format!(
                        "row {} read, column `{}` ({}): {e}",
                        self.row,
                        sink.plan().read[i].name,
                        sink.plan().read[i].db_type
                    )
                })?;
            }
            pos = end;
            flush = sink.end_row();
        }
        Ok(Used {
            consumed: pos,
            flush,
        })
    }
}

fn need(value: &[u8], n: usize) -> Result<(), String> {
    if value.len() < n {
        Err(format!(
            "a value of {} bytes where {n} were expected",
            value.len()
        ))
    } else {
        Ok(())
    }
}

fn decode_value(
    decode: &PgDecode,
    v: &[u8],
    b: &mut Builder,
    tz: Option<chrono_tz::Tz>,
) -> Result<(), String> {
    match decode {
        PgDecode::Bool => {
            need(v, 1)?;
            b.push_bool(v[0] != 0)
        }
        PgDecode::Int2 => {
            need(v, 2)?;
            b.push_i64(i64::from(be_i16(v)))
        }
        PgDecode::Int4 => {
            need(v, 4)?;
            b.push_i64(i64::from(be_i32(v)))
        }
        PgDecode::Int8 => {
            need(v, 8)?;
            b.push_i64(be_i64(v))
        }
        PgDecode::Oid => {
            need(v, 4)?;
            b.push_i64(i64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]])))
        }
        PgDecode::Float4 => {
            need(v, 4)?;
            b.push_f32(f32::from_bits(u32::from_be_bytes([v[0], v[1], v[2], v[3]])))
        }
        PgDecode::Float8 => {
            need(v, 8)?;
            b.push_f64(f64::from_bits(be_i64(v) as u64))
        }
        PgDecode::Numeric => decode_numeric(v, b),
        PgDecode::Text => b.push_str(std::str::from_utf8(v).map_err(|e| e.to_string())?),
        PgDecode::Jsonb => {
            need(v, 1)?;
            if v[0] != 1 {
                return Err(format!("unknown jsonb format version {}", v[0]));
            }
            b.push_str(std::str::from_utf8(&v[1..]).map_err(|e| e.to_string())?)
        }
        PgDecode::Bytea => b.push_bytes(v),
        PgDecode::Date => {
            need(v, 4)?;
            let d = be_i32(v);
            if d == i32::MAX || d == i32::MIN {
                return Err("the date is ±infinity, which the warehouse cannot hold".into());
            }
            b.push_date(d + PG_EPOCH_DAYS)
        }
        PgDecode::Time => {
            need(v, 8)?;
            let us = be_i64(v);
            let (s, frac) = (us / 1_000_000, us % 1_000_000);
            let text = if frac == 0 {
                format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
            } else {
                format!("{:02}:{:02}:{:02}.{frac:06}", s / 3600, s / 60 % 60, s % 60)
            };
            b.push_str(&text)
        }
        PgDecode::TimestampTz | PgDecode::Timestamp => {
            need(v, 8)?;
            let t = be_i64(v);
            if t == i64::MAX || t == i64::MIN {
                return Err("the timestamp is ±infinity, which the warehouse cannot hold".into());
            }
            let utc = t
                .checked_add(PG_EPOCH_MICROS)
                .ok_or("the timestamp is beyond what the warehouse can hold")?;
            match (decode, tz) {
                (PgDecode::Timestamp, Some(tz)) => {
                    let naive = chrono::DateTime::from_timestamp_micros(utc)
                        .ok_or("timestamp out of range")?
                        .naive_utc();
                    b.push_timestamp(naive_to_utc_micros(naive, Some(tz))?)
                }
                _ => b.push_timestamp(utc),
            }
        }
        PgDecode::Uuid => {
            need(v, 16)?;
            // 8-4-4-4-12 lowercase hex, written in place (no allocation per value)
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut out = [0u8; 36];
            let mut at = 0;
            for (i, byte) in v[..16].iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    out[at] = b'-';
                    at += 1;
                }
                out[at] = HEX[usize::from(byte >> 4)];
                out[at + 1] = HEX[usize::from(byte & 0xf)];
                at += 2;
            }
            b.push_str(std::str::from_utf8(&out).map_err(|e| e.to_string())?)
        }
        PgDecode::Inet => {
            need(v, 4)?;
            let (family, bits, cidr, n) = (v[0], v[1], v[2], usize::from(v[3]));
            need(v, 4 + n)?;
            let addr = &v[4..4 + n];
            let (text, max) = match (family, n) {
                (2, 4) => (
                    Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
                    32,
                ),
                (3, 16) => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(addr);
                    (Ipv6Addr::from(a).to_string(), 128)
                }
                _ => return Err(format!("unknown inet family {family}")),
            };
            if cidr != 0 || bits != max {
                b.push_str(&format!("{text}/{bits}"))
            } else {
                b.push_str(&text)
            }
        }
        PgDecode::Array(elem) => {
            need(v, 12)?;
            let ndim = be_i32(v);
            if ndim == 0 {
                return b.end_list();
            }
            if ndim != 1 {
                return Err(format!(
                    "a {ndim}-dimensional array: only one-dimensional arrays are supported"
                ));
            }
            need(v, 20)?;
            let count = usize::try_from(be_i32(&v[12..])).unwrap_or(0);
            let mut at = 20;
            let values = b.list_values().ok_or("internal error: not a list column")?;
            for _ in 0..count {
                need(v, at + 4)?;
                let len = be_i32(&v[at..]);
                at += 4;
                if len < 0 {
                    values.push_null();
                    continue;
                }
                let len = len as usize;
                need(v, at + len)?;
                decode_value(elem, &v[at..at + len], values, tz)?;
                at += len;
            }
            b.end_list()
        }
    }
}

/// Postgres `numeric` in binary: ndigits, weight, sign, dscale, then base-10000 digits, the
/// first worth 10000^weight. Rescaled to the column's scale without losing a digit.
fn decode_numeric(v: &[u8], b: &mut Builder) -> Result<(), String> {
    need(v, 8)?;
    let ndigits = usize::try_from(be_i16(v)).map_err(|_| "negative digit count")?;
    let weight = i32::from(be_i16(&v[2..]));
    let sign = u16::from_be_bytes([v[4], v[5]]);
    need(v, 8 + 2 * ndigits)?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("NaN cannot be stored in a decimal column".into()),
        _ => return Err("±Infinity cannot be stored in a decimal column".into()),
    }
    let Builder::Decimal { scale, .. } = b else {
        return Err("internal error: numeric into a non-decimal column".into());
    };
    let scale = i32::from(*scale);
    // value * 10^scale, group by group; a group below the scale must hold only zeros there
    let mut acc: i128 = 0;
    let mut lost = false;
    let overflow = || "the value has more than 38 digits".to_string();
    for i in 0..ndigits {
        let digit = i128::from(be_i16(&v[8 + 2 * i..]));
        let exp = 4 * (weight - i32::try_from(i).unwrap_or(0)) + scale;
        let term = if exp >= 0 {
            pow10(exp.unsigned_abs())
                .and_then(|m| digit.checked_mul(m))
                .ok_or_else(overflow)?
        } else {
            let d = pow10(exp.unsigned_abs()).unwrap_or(i128::MAX);
            if digit % d != 0 {
                lost = true;
            }
            digit / d
        };
        acc = acc.checked_add(term).ok_or_else(overflow)?;
    }
    if lost {
        return Err(format!(
            "the value has more decimal places than the column's scale {scale}"
        ));
    }
    let value = if sign == 0x4000 { -acc } else { acc };
    b.push_decimal_unscaled(value, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: &[i16], weight: i16, negative: bool) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(ndigits.len() as i16).to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        v.extend_from_slice(&0u16.to_be_bytes());
        for d in ndigits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numerics_decode_exactly() {
        use arrow::array::{Array, Decimal128Array};
        let mut b = Builder::new(&Ty::Decimal(12, 2), 4);
        // 1234.5 = [1234, 5000] weight 0
        decode_numeric(&numeric(&[1234, 5000], 0, false), &mut b).unwrap();
        // -0.01 = [100] weight -1
        decode_numeric(&numeric(&[100], -1, true), &mut b).unwrap();
        // 0.001 has too many decimals for scale 2
        assert!(decode_numeric(&numeric(&[10], -1, false), &mut b).is_err());
        let a = b.finish();
        let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(a.value(0), 123_450);
        assert_eq!(a.value(1), -1);
    }
}
