//! nginx access logs: a [`NginxFormat`] compiled from a `log_format` string, and the
//! [`NginxParser`] that turns lines of that format into typed Arrow columns.
//!
//! Each line is parsed in two phases. The first finds every field with byte scans (eight bytes
//! at a time, see `scan`), types numbers and timestamps and unescapes text into a scratch
//! string; anything wrong stops it with a [`LineError`] before a builder is touched. The second
//! appends the line's values to the Arrow builders and cannot fail, so a rejected line leaves
//! no trace. UTF-8 is validated once per line; nothing is allocated per line.

mod builders;
mod columns;
mod fields;
mod format;
mod scan;
mod time;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};

use self::columns::{Columns, RequestParts, Span};
pub use self::fields::IpMasker;
use self::fields::{
    NumberError, decode_escapes, is_escaped, parse_float, parse_int, split_request,
};
pub use self::format::{COMBINED, COMMON, FormatError, NginxFormat};
use self::format::{End, FieldSpec, Kind};
use self::scan::{ascii_and_backslash, find_byte, starts_with};
use self::time::Clock;
use crate::{LineError, LogParser, ParseOptions};

/// Parses lines of one [`NginxFormat`] into Arrow columns.
pub struct NginxParser {
    format: NginxFormat,
    /// Formats a line that does not match `format` is tried against, in order (a logging
    /// change that writes some lines differently); each gives the same columns.
    alternates: Vec<NginxFormat>,
    schema: SchemaRef,
    columns: Columns,
    /// For each field, its index among the columns of its type.
    slots: Vec<usize>,
    rows: usize,
    clock: Clock,
    ip: IpMasker,
    /// Unescaped and masked values of the current line.
    scratch: String,
    /// Bytes being unescaped, before their UTF-8 check.
    unescaped: Vec<u8>,
}

/// What the first phase needs to know about the whole line.
struct LineCtx<'a> {
    line: &'a [u8],
    /// The first byte that is not valid UTF-8, if any.
    bad_utf8: Option<usize>,
    /// The line holds a backslash, so fields may need unescaping.
    escapes: bool,
}

impl NginxParser {
    /// A parser for `format`; `options.batch_size` sizes the builders.
    pub fn new(format: NginxFormat, options: ParseOptions) -> Self {
        let rows = options.batch_size.clamp(1, 1 << 20);
        let kinds: Vec<Kind> = format.fields.iter().map(|f| f.kind).collect();
        let (columns, slots) = Columns::new(&kinds, rows);
        Self {
            schema: format.schema(),
            columns,
            slots,
            rows: 0,
            clock: Clock::new(options.timezone),
            ip: IpMasker::new(options.ip_policy),
            scratch: String::new(),
            unescaped: Vec::new(),
            format,
            alternates: Vec::new(),
        }
    }

    /// Also accept lines in these formats (tried in order when a line does not match the
    /// main one). Each must give the same columns as the main format: the same variables in
    /// the same order, where the time may be written another way (`$time_iso8601` for
    /// `$time_local`) and the literal text between them may differ.
    pub fn with_alternates(mut self, alternates: Vec<NginxFormat>) -> Result<Self, String> {
        for a in &alternates {
            check_alternate(&self.format, a)?;
        }
        self.alternates = alternates;
        Ok(self)
    }

    /// The format this parser reads.
    pub fn format(&self) -> &NginxFormat {
        &self.format
    }

    /// Phase one with the main format, then each alternate: the first that reads the line
    /// wins; when none does, the main format's error is the one reported.
    fn read_fields(&mut self, ctx: &LineCtx<'_>) -> Result<(), LineError> {
        let mut state = Phase {
            slots: &self.slots,
            columns: &mut self.columns,
            clock: &mut self.clock,
            ip: &mut self.ip,
            scratch: &mut self.scratch,
            unescaped: &mut self.unescaped,
        };
        let first = state.read(&self.format, ctx);
        if first.is_err() {
            for alternate in &self.alternates {
                if state.read(alternate, ctx).is_ok() {
                    return Ok(());
                }
            }
        }
        first
    }
}

/// The state phase one writes into.
struct Phase<'p> {
    slots: &'p [usize],
    columns: &'p mut Columns,
    clock: &'p mut Clock,
    ip: &'p mut IpMasker,
    scratch: &'p mut String,
    unescaped: &'p mut Vec<u8>,
}

impl Phase<'_> {
    /// Find and type every field of `format`, leaving the values pending in `columns`.
    fn read(&mut self, format: &NginxFormat, ctx: &LineCtx<'_>) -> Result<(), LineError> {
        let line = ctx.line;
        self.scratch.clear();
        let prefix = format.prefix.as_slice();
        if !starts_with(line, prefix) {
            let at = line.iter().zip(prefix).take_while(|(a, b)| a == b).count();
            let first = format.fields.first().map(|f| f.var.as_str());
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
        for (spec, &slot) in format.fields.iter().zip(self.slots) {
            let end = field_end(line, pos, spec, ctx.escapes)?;
            let field = Field {
                ctx,
                spec,
                start: pos,
                end,
            };
            field.read(
                slot,
                self.columns,
                self.clock,
                self.ip,
                self.scratch,
                self.unescaped,
            )?;
            pos = end + spec.term.bytes.len();
        }
        Ok(())
    }
}

/// An alternate format must fill the same columns through the same slots.
fn check_alternate(main: &NginxFormat, alternate: &NginxFormat) -> Result<(), String> {
    let same_kinds = main.fields.len() == alternate.fields.len()
        && main.fields.iter().zip(&alternate.fields).all(|(a, b)| {
            let time = |k: Kind| matches!(k, Kind::Time(_));
            (a.var == b.var || (time(a.kind) && time(b.kind)))
                && std::mem::discriminant(&a.kind) == std::mem::discriminant(&b.kind)
        });
    if same_kinds && main.schema() == alternate.schema() {
        Ok(())
    } else {
        let vars = |f: &NginxFormat| {
            f.fields
                .iter()
                .map(|x| format!("${}", x.var))
                .collect::<Vec<_>>()
                .join(" ")
        };
        Err(format!(
            "an alternate format must log the same variables in the same order as the main \
             one (the time may be $time_local or $time_iso8601): main has {}, alternate has {}",
            vars(main),
            vars(alternate)
        ))
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
        let (ascii, escapes) = ascii_and_backslash(line);
        // A line of ASCII is UTF-8 without further checks.
        let bad_utf8 = if ascii {
            None
        } else {
            std::str::from_utf8(line).err().map(|e| e.valid_up_to())
        };
        let ctx = LineCtx {
            line,
            bad_utf8,
            escapes,
        };
        self.read_fields(&ctx)?;
        if let Some(at) = bad_utf8 {
            // Phase one reports invalid UTF-8 in the field that holds it; this is a safety net.
            return Err(utf8_error(line, at, None));
        }
        // Phase two: nothing below can fail.
        let number = i64::try_from(line_number).unwrap_or(i64::MAX);
        self.columns.append(line, self.scratch.as_bytes(), number);
        self.rows += 1;
        Ok(())
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn finish_batch(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        RecordBatch::try_new(Arc::clone(&self.schema), self.columns.finish()?)
    }

    fn free_text_columns(&self) -> Vec<String> {
        self.format.free_text_columns()
    }
}

/// Describes the bytes found where something else was expected: up to `want` bytes (at least
/// one), escaped, or "end of line".
fn found(rest: &[u8], want: usize) -> String {
    if rest.is_empty() {
        return "end of line".to_owned();
    }
    let n = want.clamp(1, 40).min(rest.len());
    let more = if n < rest.len() && want > 40 {
        "..."
    } else {
        ""
    };
    format!("'{}{more}'", rest[..n].escape_ascii())
}

fn utf8_error(line: &[u8], at: usize, var: Option<&str>) -> LineError {
    let byte = line.get(at).copied().unwrap_or_default();
    let place = var.map(|v| format!(" in ${v}")).unwrap_or_default();
    LineError::at(
        at,
        var,
        format!("invalid UTF-8 (byte 0x{byte:02X}){place}; text columns must be UTF-8"),
    )
}

/// The end (exclusive) of the field starting at `pos`.
#[inline(always)]
fn field_end(line: &[u8], pos: usize, spec: &FieldSpec, escapes: bool) -> Result<usize, LineError> {
    let term = &spec.term;
    let Some(&first) = term.bytes.first() else {
        return Ok(line.len());
    };
    match spec.end {
        End::Rest => Ok(line.len()),
        End::Suffix => match line.len().checked_sub(term.bytes.len()) {
            Some(end)
                if end >= pos
                    && term.is_at(line, end)
                    && !(spec.quoted && escapes && is_escaped(line, pos, end)) =>
            {
                Ok(end)
            }
            _ => Err(missing_literal(line, spec)),
        },
        End::Search => {
            if let Some(width) = spec.width
                && term.is_at(line, pos + width)
            {
                return Ok(pos + width);
            }
            if spec.strict {
                let end = find_byte(first, &line[pos..]).map_or(line.len(), |i| pos + i);
                if term.is_at(line, end) {
                    return Ok(end);
                }
                let reason = format!(
                    "expected '{}' after ${}, found {}",
                    term.bytes.escape_ascii(),
                    spec.var,
                    found(&line[end..], term.bytes.len())
                );
                return Err(LineError::at(end, Some(&spec.var), reason));
            }
            let mut from = pos;
            while let Some(i) = find_byte(first, &line[from..]) {
                let at = from + i;
                if term.is_at(line, at) && !(spec.quoted && escapes && is_escaped(line, pos, at)) {
                    return Ok(at);
                }
                from = at + 1;
            }
            Err(missing_literal(line, spec))
        }
    }
}

#[cold]
fn missing_literal(line: &[u8], spec: &FieldSpec) -> LineError {
    let closing = if spec.quoted { "the closing " } else { "" };
    LineError::at(
        line.len(),
        Some(&spec.var),
        format!(
            "expected {closing}'{}' after ${}, found end of line \
             (is the line truncated or in another format?)",
            spec.term.bytes.escape_ascii(),
            spec.var
        ),
    )
}

/// One field of the current line.
struct Field<'a> {
    ctx: &'a LineCtx<'a>,
    spec: &'a FieldSpec,
    start: usize,
    end: usize,
}

impl Field<'_> {
    #[inline(always)]
    fn bytes(&self) -> &[u8] {
        &self.ctx.line[self.start..self.end]
    }

    #[cold]
    fn error(&self, offset: usize, reason: String) -> LineError {
        LineError::at(self.start + offset, Some(&self.spec.var), reason)
    }

    /// Types the field and stores it as the pending value of its column.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        slot: usize,
        columns: &mut Columns,
        clock: &mut Clock,
        ip: &mut IpMasker,
        scratch: &mut String,
        unescaped: &mut Vec<u8>,
    ) -> Result<(), LineError> {
        let bytes = self.bytes();
        match self.spec.kind {
            Kind::Text => {
                let pending = if bytes == b"-" {
                    None
                } else {
                    self.check_utf8()?;
                    let span = self.text(scratch, unescaped)?;
                    self.check_room(columns.text_bytes(slot), span.end - span.start)?;
                    Some(span)
                };
                columns.text_pending[slot] = pending;
            }
            Kind::RemoteAddr => {
                if bytes.is_empty() {
                    return Err(self.error(0, "expected a client address, found nothing".into()));
                }
                self.check_utf8()?;
                let span = match ip.apply(bytes) {
                    Ok(None) => Span::line(self.start, self.end),
                    Ok(Some(masked)) => push_scratch(scratch, masked),
                    Err(why) => {
                        return Err(self.error(0, format!("'{}' {why}", bytes.escape_ascii())));
                    }
                };
                self.check_room(columns.text_bytes(slot), span.end - span.start)?;
                columns.text_pending[slot] = Some(span);
            }
            Kind::Time(kind) => {
                columns.time_pending = clock.parse(kind, bytes).map_err(|(offset, what)| {
                    let rest = bytes.get(offset..).unwrap_or_default();
                    self.error(
                        offset,
                        format!(
                            "expected {what} in ${}, found {}",
                            self.spec.var,
                            found(rest, 1)
                        ),
                    )
                })?;
            }
            Kind::Request => {
                self.check_utf8()?;
                let mut text = Span::line(self.start, self.end);
                if self.ctx.escapes && memchr::memchr(b'\\', bytes).is_some() {
                    unescaped.clear();
                    decode_escapes(bytes, unescaped);
                    // A TLS handshake sent to the HTTP port unescapes to binary: keep the text
                    // nginx wrote rather than reject the line.
                    if let Ok(decoded) = std::str::from_utf8(unescaped) {
                        text = push_scratch(scratch, decoded);
                    }
                }
                let request = if text.scratch {
                    &scratch.as_bytes()[text.start..text.end]
                } else {
                    bytes
                };
                self.check_room(columns.request_bytes(), request.len())?;
                columns.request_pending = RequestParts {
                    text,
                    spaces: split_request(request),
                };
            }
            Kind::Status => {
                let v =
                    parse_int(bytes).map_err(|e| self.number_error(e, "an HTTP status code"))?;
                columns.status_pending =
                    i32::try_from(v).map_err(|_| self.number_error(NumberError::TooLarge, ""))?;
            }
            Kind::Int64 => {
                columns.int64_pending[slot] = if bytes == b"-" {
                    None
                } else {
                    Some(parse_int(bytes).map_err(|e| self.number_error(e, "a whole number"))?)
                };
            }
            Kind::Float64 => {
                columns.float64_pending[slot] = if bytes == b"-" {
                    None
                } else {
                    Some(
                        parse_float(bytes)
                            .map_err(|e| self.number_error(e, "a number of seconds"))?,
                    )
                };
            }
        }
        Ok(())
    }

    /// Invalid UTF-8 is reported in the first field that holds it.
    #[inline(always)]
    fn check_utf8(&self) -> Result<(), LineError> {
        match self.ctx.bad_utf8 {
            Some(at) if at < self.end => Err(utf8_error(self.ctx.line, at, Some(&self.spec.var))),
            _ => Ok(()),
        }
    }

    /// The field as text: a span of the line, or of `scratch` when it had to be unescaped.
    #[inline(always)]
    fn text(&self, scratch: &mut String, unescaped: &mut Vec<u8>) -> Result<Span, LineError> {
        let bytes = self.bytes();
        if !self.ctx.escapes || memchr::memchr(b'\\', bytes).is_none() {
            return Ok(Span::line(self.start, self.end));
        }
        unescaped.clear();
        decode_escapes(bytes, unescaped);
        match std::str::from_utf8(unescaped) {
            Ok(text) => Ok(push_scratch(scratch, text)),
            Err(e) => {
                let byte = unescaped[e.valid_up_to()];
                Err(self.error(
                    0,
                    format!(
                        "${} unescapes to invalid UTF-8 (byte 0x{byte:02X}); text columns must be UTF-8",
                        self.spec.var
                    ),
                ))
            }
        }
    }

    #[inline(always)]
    fn check_room(&self, held: usize, len: usize) -> Result<(), LineError> {
        if held + len <= i32::MAX as usize {
            return Ok(());
        }
        Err(self.error(
            0,
            format!(
                "the batch already holds 2 GiB of ${} text; use a smaller batch_size",
                self.spec.var
            ),
        ))
    }

    #[cold]
    fn number_error(&self, e: NumberError, what: &str) -> LineError {
        let shown = found(self.bytes(), 40);
        match e {
            NumberError::NotANumber => self.error(
                0,
                format!("expected {what} in ${}, found {shown}", self.spec.var),
            ),
            NumberError::TooLarge => self.error(
                0,
                format!("${} value {shown} is out of range", self.spec.var),
            ),
        }
    }
}

fn push_scratch(scratch: &mut String, text: &str) -> Span {
    let start = scratch.len();
    scratch.push_str(text);
    Span {
        scratch: true,
        start,
        end: scratch.len(),
    }
}
