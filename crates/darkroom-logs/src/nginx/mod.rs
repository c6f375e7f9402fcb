//! nginx access logs: a [`NginxFormat`] compiled from a `log_format` string, and the
//! [`NginxParser`] that turns lines of that format into typed Arrow columns.
//!
//! The hot path scans bytes with `memchr`, allocates nothing per line, checks UTF-8 once per
//! line (a line of ASCII needs no per-field check) and only decodes nginx escapes in lines that
//! contain a backslash.

mod columns;
mod fields;
mod format;
mod scan;
mod time;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, SchemaRef, TimeUnit};

use self::columns::{PrimColumn, TextColumn};
use self::fields::{IpMasker, NumberError, decode_escapes, is_escaped, parse_float, parse_int, split_request};
pub use self::format::{COMBINED, COMMON, FormatError, NginxFormat};
use self::format::{End, FieldSpec, Kind, TimeKind};
use self::scan::{find_byte, starts_with};
use self::time::Clock;
use crate::{LineError, LogParser, ParseOptions};

/// Text bytes reserved per row and text column before the first batch shows the real size.
const INITIAL_BYTES_PER_VALUE: usize = 24;

/// Where the values of one format variable go.
enum Sink {
    Addr(TextColumn),
    Text(TextColumn),
    Time {
        kind: TimeKind,
        ts: PrimColumn<TimestampMicrosecondType>,
        date: PrimColumn<Date32Type>,
    },
    Request {
        method: TextColumn,
        path: TextColumn,
        protocol: TextColumn,
    },
    Status(PrimColumn<Int32Type>),
    Int64(PrimColumn<Int64Type>),
    Float64(PrimColumn<Float64Type>),
}

impl Sink {
    fn new(kind: Kind, rows: usize) -> Self {
        let text = || TextColumn::new(rows, rows * INITIAL_BYTES_PER_VALUE);
        match kind {
            Kind::RemoteAddr => Sink::Addr(text()),
            Kind::Text => Sink::Text(text()),
            Kind::Time(kind) => Sink::Time {
                kind,
                ts: PrimColumn::new(
                    rows,
                    false,
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                ),
                date: PrimColumn::new(rows, false, DataType::Date32),
            },
            Kind::Request => Sink::Request {
                method: TextColumn::new(rows, rows * 4),
                path: text(),
                protocol: TextColumn::new(rows, rows * 8),
            },
            Kind::Status => Sink::Status(PrimColumn::new(rows, false, DataType::Int32)),
            Kind::Int64 => Sink::Int64(PrimColumn::new(rows, true, DataType::Int64)),
            Kind::Float64 => Sink::Float64(PrimColumn::new(rows, true, DataType::Float64)),
        }
    }

    fn truncate(&mut self, rows: usize) {
        match self {
            Sink::Addr(c) | Sink::Text(c) => c.truncate(rows),
            Sink::Time { ts, date, .. } => {
                ts.truncate(rows);
                date.truncate(rows);
            }
            Sink::Request {
                method,
                path,
                protocol,
            } => {
                method.truncate(rows);
                path.truncate(rows);
                protocol.truncate(rows);
            }
            Sink::Status(c) => c.truncate(rows),
            Sink::Int64(c) => c.truncate(rows),
            Sink::Float64(c) => c.truncate(rows),
        }
    }

    fn finish(&mut self, out: &mut Vec<ArrayRef>) -> Result<(), ArrowError> {
        match self {
            Sink::Addr(c) | Sink::Text(c) => out.push(c.finish()?),
            Sink::Time { ts, date, .. } => {
                out.push(ts.finish()?);
                out.push(date.finish()?);
            }
            Sink::Request {
                method,
                path,
                protocol,
            } => {
                out.push(method.finish()?);
                out.push(path.finish()?);
                out.push(protocol.finish()?);
            }
            Sink::Status(c) => out.push(c.finish()?),
            Sink::Int64(c) => out.push(c.finish()?),
            Sink::Float64(c) => out.push(c.finish()?),
        }
        Ok(())
    }
}

/// Facts about the whole line, computed once so fields can skip work.
#[derive(Clone, Copy)]
struct LineFacts {
    /// Every byte is ASCII, so every field is valid UTF-8 without checking.
    ascii: bool,
    /// The line holds a backslash, so fields may need unescaping.
    escapes: bool,
}

/// Parses lines of one [`NginxFormat`] into Arrow columns.
pub struct NginxParser {
    format: NginxFormat,
    schema: SchemaRef,
    sinks: Vec<Sink>,
    line_numbers: PrimColumn<Int64Type>,
    rows: usize,
    clock: Clock,
    ip: IpMasker,
    /// Unescaped field bytes, reused.
    scratch: Vec<u8>,
}

impl NginxParser {
    /// A parser for `format`; `options.batch_size` sizes the builders.
    pub fn new(format: NginxFormat, options: ParseOptions) -> Self {
        let rows = options.batch_size.clamp(1, 1 << 20);
        Self {
            schema: format.schema(),
            sinks: format.fields.iter().map(|f| Sink::new(f.kind, rows)).collect(),
            line_numbers: PrimColumn::new(rows, false, DataType::Int64),
            rows: 0,
            clock: Clock::new(options.timezone),
            ip: IpMasker::new(options.ip_policy),
            scratch: Vec::new(),
            format,
        }
    }

    /// The format this parser reads.
    pub fn format(&self) -> &NginxFormat {
        &self.format
    }

    fn parse_fields(&mut self, line: &[u8]) -> Result<(), LineError> {
        let facts = LineFacts {
            ascii: line.is_ascii(),
            escapes: memchr::memchr(b'\\', line).is_some(),
        };
        let prefix = self.format.prefix.as_slice();
        if !starts_with(line, prefix) {
            let at = line.iter().zip(prefix).take_while(|(a, b)| a == b).count();
            let first = self.format.fields.first().map(|f| f.var.as_str());
            return Err(LineError::at(
                at,
                first,
                format!(
                    "expected '{}' before ${}, found {}",
                    prefix.escape_ascii(),
                    first.unwrap_or_default(),
                    found(&line[at..], prefix.len() - at)
                ),
            ));
        }
        let mut pos = prefix.len();
        for (spec, sink) in self.format.fields.iter().zip(self.sinks.iter_mut()) {
            let end = field_end(line, pos, spec, facts)?;
            let value = FieldValue {
                bytes: &line[pos..end],
                at: pos,
                spec,
                facts,
            };
            value.push(sink, &mut self.clock, &mut self.ip, &mut self.scratch)?;
            pos = end + spec.term.len();
        }
        Ok(())
    }
}

impl LogParser for NginxParser {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn push_line(&mut self, line: &[u8], line_number: u64) -> Result<(), LineError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Err(LineError::at(0, None, "empty line"));
        }
        match self.parse_fields(line) {
            Ok(()) => {
                self.line_numbers
                    .push(i64::try_from(line_number).unwrap_or(i64::MAX));
                self.rows += 1;
                Ok(())
            }
            Err(e) => {
                for sink in &mut self.sinks {
                    sink.truncate(self.rows);
                }
                Err(e)
            }
        }
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn finish_batch(&mut self) -> Result<RecordBatch, ArrowError> {
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for sink in &mut self.sinks {
            sink.finish(&mut columns)?;
        }
        columns.push(self.line_numbers.finish()?);
        self.rows = 0;
        RecordBatch::try_new(Arc::clone(&self.schema), columns)
    }
}

/// Describes the bytes found where something else was expected: up to `want` bytes (at least
/// one), escaped, or "end of line".
fn found(rest: &[u8], want: usize) -> String {
    if rest.is_empty() {
        return "end of line".to_owned();
    }
    let n = want.clamp(1, 40).min(rest.len());
    let more = if n < rest.len() && want > 40 { "..." } else { "" };
    format!("'{}{more}'", rest[..n].escape_ascii())
}

/// The end (exclusive) of the field starting at `pos`.
#[inline]
fn field_end(line: &[u8], pos: usize, spec: &FieldSpec, facts: LineFacts) -> Result<usize, LineError> {
    let term = spec.term.as_slice();
    let Some(&first) = term.first() else {
        return Ok(line.len());
    };
    let missing = || {
        let what = if spec.quoted { "the closing" } else { "" };
        LineError::at(
            line.len(),
            Some(&spec.var),
            format!(
                "expected {what}{}'{}' after ${}, found end of line (is the line truncated or in another format?)",
                if what.is_empty() { "" } else { " " },
                term.escape_ascii(),
                spec.var
            ),
        )
    };
    match spec.end {
        End::EndOfLine => Ok(line.len()),
        End::Suffix => {
            let end = line.len().checked_sub(term.len()).filter(|&e| e >= pos);
            match end {
                Some(end)
                    if starts_with(&line[end..], term)
                        && !(spec.quoted && facts.escapes && is_escaped(line, pos, end)) =>
                {
                    Ok(end)
                }
                _ => Err(missing()),
            }
        }
        End::Search => {
            if let Some(width) = spec.width
                && line.get(pos + width..).is_some_and(|rest| starts_with(rest, term))
            {
                return Ok(pos + width);
            }
            if spec.strict {
                let end = find_byte(first, &line[pos..]).map_or(line.len(), |i| pos + i);
                if starts_with(&line[end..], term) {
                    return Ok(end);
                }
                let reason = format!(
                    "expected '{}' after ${}, found {}",
                    term.escape_ascii(),
                    spec.var,
                    found(&line[end..], term.len())
                );
                return Err(LineError::at(end, Some(&spec.var), reason));
            }
            let mut from = pos;
            while let Some(i) = find_byte(first, &line[from..]) {
                let at = from + i;
                if starts_with(&line[at..], term)
                    && !(spec.quoted && facts.escapes && is_escaped(line, pos, at))
                {
                    return Ok(at);
                }
                from = at + 1;
            }
            Err(missing())
        }
    }
}

/// One field's bytes and where they are, ready to be typed and appended.
struct FieldValue<'a> {
    bytes: &'a [u8],
    /// Offset of `bytes` in the line.
    at: usize,
    spec: &'a FieldSpec,
    facts: LineFacts,
}

impl FieldValue<'_> {
    fn error(&self, offset: usize, reason: String) -> LineError {
        LineError::at(self.at + offset, Some(&self.spec.var), reason)
    }

    #[inline]
    fn push(
        &self,
        sink: &mut Sink,
        clock: &mut Clock,
        ip: &mut IpMasker,
        scratch: &mut Vec<u8>,
    ) -> Result<(), LineError> {
        let bytes = self.bytes;
        match sink {
            Sink::Text(col) => {
                if bytes == b"-" {
                    col.push_null();
                    return Ok(());
                }
                let text = self.text(scratch)?;
                self.room(col, text.len())?;
                col.push(text);
            }
            Sink::Addr(col) => {
                if bytes.is_empty() {
                    return Err(self.error(0, "expected a client address, found nothing".to_owned()));
                }
                self.check_utf8(bytes)?;
                let stored = ip.apply(bytes).map_err(|why| {
                    self.error(0, format!("'{}' {why}", bytes.escape_ascii()))
                })?;
                self.room(col, stored.len())?;
                col.push(stored);
            }
            Sink::Time { kind, ts, date } => {
                let (micros, day) = clock.parse(*kind, bytes).map_err(|(offset, what)| {
                    self.error(
                        offset,
                        format!("expected {what} in ${}, found {}", self.spec.var, found(bytes.get(offset..).unwrap_or_default(), 1)),
                    )
                })?;
                ts.push(micros);
                date.push(day);
            }
            Sink::Request {
                method,
                path,
                protocol,
            } => {
                let mut text = bytes;
                if self.facts.escapes && memchr::memchr(b'\\', bytes).is_some() {
                    scratch.clear();
                    decode_escapes(bytes, scratch);
                    // A TLS handshake sent to the HTTP port decodes to binary: keep the escaped
                    // text, which is what nginx wrote, rather than reject the line.
                    if std::str::from_utf8(scratch).is_ok() {
                        text = scratch;
                    }
                }
                if text.as_ptr() == bytes.as_ptr() {
                    self.check_utf8(bytes)?;
                }
                self.room(path, text.len())?;
                self.room(method, text.len())?;
                self.room(protocol, text.len())?;
                match split_request(text) {
                    Some((space1, space2, _)) => {
                        method.push(&text[..space1]);
                        path.push(&text[space1 + 1..space2]);
                        protocol.push(&text[space2 + 1..]);
                    }
                    None => {
                        method.push_null();
                        path.push(text);
                        protocol.push_null();
                    }
                }
            }
            Sink::Status(col) => {
                let status = parse_int(bytes)
                    .map_err(|e| self.number_error(e, "an HTTP status code"))
                    .and_then(|v| {
                        i32::try_from(v).map_err(|_| self.number_error(NumberError::TooLarge, ""))
                    })?;
                col.push(status);
            }
            Sink::Int64(col) => {
                if bytes == b"-" {
                    col.push_null();
                } else {
                    col.push(parse_int(bytes).map_err(|e| self.number_error(e, "a whole number"))?);
                }
            }
            Sink::Float64(col) => {
                if bytes == b"-" {
                    col.push_null();
                } else {
                    col.push(parse_float(bytes).map_err(|e| self.number_error(e, "a number of seconds"))?);
                }
            }
        }
        Ok(())
    }

    /// The field as UTF-8 text, unescaped when it contains a backslash.
    #[inline]
    fn text<'s>(&'s self, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], LineError> {
        let bytes = self.bytes;
        if !self.facts.escapes || memchr::memchr(b'\\', bytes).is_none() {
            self.check_utf8(bytes)?;
            return Ok(bytes);
        }
        scratch.clear();
        decode_escapes(bytes, scratch);
        if let Err(e) = std::str::from_utf8(scratch) {
            let bad = scratch[e.valid_up_to()];
            return Err(self.error(
                0,
                format!("${} unescapes to invalid UTF-8 (byte 0x{bad:02X}); text columns must be UTF-8", self.spec.var),
            ));
        }
        Ok(scratch)
    }

    #[inline]
    fn check_utf8(&self, bytes: &[u8]) -> Result<(), LineError> {
        if self.facts.ascii {
            return Ok(());
        }
        std::str::from_utf8(bytes).map(|_| ()).map_err(|e| {
            let bad = bytes[e.valid_up_to()];
            self.error(
                e.valid_up_to(),
                format!("invalid UTF-8 (byte 0x{bad:02X}) in ${}; text columns must be UTF-8", self.spec.var),
            )
        })
    }

    #[inline]
    fn room(&self, col: &TextColumn, len: usize) -> Result<(), LineError> {
        if col.has_room(len) {
            Ok(())
        } else {
            Err(self.error(
                0,
                format!(
                    "the batch already holds 2 GiB of ${} text; use a smaller batch_size",
                    self.spec.var
                ),
            ))
        }
    }

    fn number_error(&self, e: NumberError, what: &str) -> LineError {
        let shown = found(self.bytes, 40);
        match e {
            NumberError::NotANumber => {
                self.error(0, format!("expected {what} in ${}, found {shown}", self.spec.var))
            }
            NumberError::TooLarge => self.error(
                0,
                format!("${} value {shown} is out of range", self.spec.var),
            ),
        }
    }
}
