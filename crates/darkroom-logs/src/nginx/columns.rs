//! Where the values go: Arrow builders plus the values read from the current line, which are
//! appended only once the whole line has parsed.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_schema::{ArrowError, DataType, TimeUnit};

use super::builders::{PrimColumn, TextColumn};

use super::format::Kind;

/// Text bytes reserved per row and text column before the first batch shows the real size.
const INITIAL_BYTES_PER_VALUE: usize = 24;

/// Bytes of the current line (`scratch == false`) or of the parser's scratch text, which holds
/// unescaped and masked values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub scratch: bool,
    pub start: usize,
    pub end: usize,
}

impl Span {
    #[inline(always)]
    pub(crate) fn line(start: usize, end: usize) -> Self {
        Self {
            scratch: false,
            start,
            end,
        }
    }

    /// The bytes of the span.
    #[inline(always)]
    pub(crate) fn get<'a>(&self, line: &'a [u8], scratch: &'a [u8]) -> &'a [u8] {
        let text = if self.scratch { scratch } else { line };
        text.get(self.start..self.end).unwrap_or_default()
    }
}

/// A request line read from the current line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestParts {
    pub text: Span,
    /// Offsets (within `text`) of the spaces around the target, when the text is
    /// `METHOD SP TARGET SP PROTOCOL`.
    pub spaces: Option<(usize, usize)>,
}

type Int64Column = PrimColumn<Int64Type>;

/// Where one output column comes from.
#[derive(Debug, Clone, Copy)]
enum Out {
    Text(usize),
    Int64(usize),
    Float64(usize),
    Status,
    Timestamp,
    Date,
    Method,
    Path,
    Protocol,
    Line,
}

/// The columns of a format, grouped by type so that appending a row is a few tight loops
/// rather than a dispatch per field, plus the values pending for the current line.
pub(crate) struct Columns {
    text: Vec<TextColumn>,
    pub text_pending: Vec<Option<Span>>,
    int64: Vec<Int64Column>,
    pub int64_pending: Vec<Option<i64>>,
    float64: Vec<PrimColumn<Float64Type>>,
    pub float64_pending: Vec<Option<f64>>,
    status: Option<PrimColumn<Int32Type>>,
    pub status_pending: i32,
    time: Option<(PrimColumn<TimestampMicrosecondType>, PrimColumn<Date32Type>)>,
    pub time_pending: (i64, i32),
    request: Option<[TextColumn; 3]>,
    pub request_pending: RequestParts,
    lines: Int64Column,
    order: Vec<Out>,
}

fn text_column(rows: usize) -> TextColumn {
    TextColumn::new(rows, rows * INITIAL_BYTES_PER_VALUE)
}

impl Columns {
    /// Columns for `kinds` (in format order), `rows` per batch. Returns the columns and, for
    /// each field, its index among the columns of its type.
    pub(crate) fn new(kinds: &[Kind], rows: usize) -> (Self, Vec<usize>) {
        let mut c = Self {
            text: Vec::new(),
            text_pending: Vec::new(),
            int64: Vec::new(),
            int64_pending: Vec::new(),
            float64: Vec::new(),
            float64_pending: Vec::new(),
            status: None,
            status_pending: 0,
            time: None,
            time_pending: (0, 0),
            request: None,
            request_pending: RequestParts::default(),
            lines: PrimColumn::new(rows, DataType::Int64),
            order: Vec::new(),
        };
        let mut slots = Vec::with_capacity(kinds.len());
        for kind in kinds {
            let slot = match kind {
                Kind::RemoteAddr | Kind::Text => {
                    c.text.push(text_column(rows));
                    c.text_pending.push(None);
                    c.order.push(Out::Text(c.text.len() - 1));
                    c.text.len() - 1
                }
                Kind::Int64 => {
                    c.int64.push(PrimColumn::new(rows, DataType::Int64));
                    c.int64_pending.push(None);
                    c.order.push(Out::Int64(c.int64.len() - 1));
                    c.int64.len() - 1
                }
                Kind::Float64 => {
                    c.float64.push(PrimColumn::new(rows, DataType::Float64));
                    c.float64_pending.push(None);
                    c.order.push(Out::Float64(c.float64.len() - 1));
                    c.float64.len() - 1
                }
                // A format has at most one column of each of these names.
                Kind::Status => {
                    c.status = Some(PrimColumn::new(rows, DataType::Int32));
                    c.order.push(Out::Status);
                    0
                }
                Kind::Time(_) => {
                    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
                    c.time = Some((
                        PrimColumn::new(rows, ts),
                        PrimColumn::new(rows, DataType::Date32),
                    ));
                    c.order.extend([Out::Timestamp, Out::Date]);
                    0
                }
                Kind::Request => {
                    c.request = Some([
                        TextColumn::new(rows, rows * 4),
                        text_column(rows),
                        TextColumn::new(rows, rows * 8),
                    ]);
                    c.order.extend([Out::Method, Out::Path, Out::Protocol]);
                    0
                }
            };
            slots.push(slot);
        }
        c.order.push(Out::Line);
        (c, slots)
    }

    /// Bytes already held by text column `slot`.
    #[inline(always)]
    pub(crate) fn text_bytes(&self, slot: usize) -> usize {
        self.text.get(slot).map_or(0, TextColumn::bytes)
    }

    /// Bytes already held by the fullest request column (each gets at most the request).
    #[inline(always)]
    pub(crate) fn request_bytes(&self) -> usize {
        self.request.as_ref().map_or(0, |[method, path, protocol]| {
            method.bytes().max(path.bytes()).max(protocol.bytes())
        })
    }

    /// Appends the pending values as one row; cannot fail.
    #[inline(always)]
    pub(crate) fn append(&mut self, line: &[u8], scratch: &[u8], line_number: i64) {
        for (col, pending) in self.text.iter_mut().zip(&self.text_pending) {
            match pending {
                Some(span) => col.push(span.get(line, scratch)),
                None => col.push_null(),
            }
        }
        for (col, pending) in self.int64.iter_mut().zip(&self.int64_pending) {
            col.push_option(*pending);
        }
        for (col, pending) in self.float64.iter_mut().zip(&self.float64_pending) {
            col.push_option(*pending);
        }
        if let Some(col) = &mut self.status {
            col.push(self.status_pending);
        }
        if let Some((ts, date)) = &mut self.time {
            ts.push(self.time_pending.0);
            date.push(self.time_pending.1);
        }
        if let Some([method, path, protocol]) = &mut self.request {
            let parts = &self.request_pending;
            let text = parts.text.get(line, scratch);
            let split = parts
                .spaces
                .and_then(|(a, b)| Some((text.get(..a)?, text.get(a + 1..b)?, text.get(b + 1..)?)));
            match split {
                Some((m, p, v)) => {
                    method.push(m);
                    path.push(p);
                    protocol.push(v);
                }
                None => {
                    method.push_null();
                    path.push(text);
                    protocol.push_null();
                }
            }
        }
        self.lines.push(line_number);
    }

    /// The arrays of the rows appended so far, in schema order; the columns start again empty.
    pub(crate) fn finish(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        let text = self
            .text
            .iter_mut()
            .map(TextColumn::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let int64 = self
            .int64
            .iter_mut()
            .map(PrimColumn::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let float64 = self
            .float64
            .iter_mut()
            .map(PrimColumn::finish)
            .collect::<Result<Vec<_>, _>>()?;
        let status = self.status.as_mut().map(PrimColumn::finish).transpose()?;
        let time = match &mut self.time {
            Some((ts, date)) => Some((ts.finish()?, date.finish()?)),
            None => None,
        };
        let request = match &mut self.request {
            Some([m, p, v]) => Some([m.finish()?, p.finish()?, v.finish()?]),
            None => None,
        };
        let lines = self.lines.finish()?;
        Ok(self
            .order
            .iter()
            .filter_map(|out| {
                let array = match *out {
                    Out::Text(i) => text.get(i),
                    Out::Int64(i) => int64.get(i),
                    Out::Float64(i) => float64.get(i),
                    Out::Status => status.as_ref(),
                    Out::Timestamp => time.as_ref().map(|t| &t.0),
                    Out::Date => time.as_ref().map(|t| &t.1),
                    Out::Method => request.as_ref().map(|r| &r[0]),
                    Out::Path => request.as_ref().map(|r| &r[1]),
                    Out::Protocol => request.as_ref().map(|r| &r[2]),
                    Out::Line => Some(&lines),
                };
                array.map(Arc::clone)
            })
            .collect())
    }
}
