//! Where each format variable's values go: Arrow builders plus the value read from the current
//! line, which is appended only once the whole line has parsed.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::builder::{
    Date32Builder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};

use super::format::{Kind, TimeKind};

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
        Self { scratch: false, start, end }
    }

    /// The text of the span. Spans always start and end on character boundaries (next to ASCII
    /// literals or line ends), so the empty fallback is never taken.
    #[inline(always)]
    pub(crate) fn get<'a>(&self, line: &'a str, scratch: &'a str) -> &'a str {
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

/// The builders of one variable and the value pending for the current line.
pub(crate) enum Sink {
    Addr {
        col: StringBuilder,
        pending: Span,
    },
    Text {
        col: StringBuilder,
        pending: Option<Span>,
    },
    Time {
        kind: TimeKind,
        ts: TimestampMicrosecondBuilder,
        date: Date32Builder,
        pending: (i64, i32),
    },
    Request {
        method: StringBuilder,
        path: StringBuilder,
        protocol: StringBuilder,
        pending: RequestParts,
    },
    Status {
        col: Int32Builder,
        pending: i32,
    },
    Int64 {
        col: Int64Builder,
        pending: Option<i64>,
    },
    Float64 {
        col: Float64Builder,
        pending: Option<f64>,
    },
}

fn timestamps(rows: usize) -> TimestampMicrosecondBuilder {
    TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC")
}

/// Replaces `col` with an empty builder sized like it and returns the finished array.
fn finish_text(col: &mut StringBuilder, rows: usize) -> ArrayRef {
    let bytes = col.values_slice().len();
    let mut full = std::mem::replace(col, StringBuilder::with_capacity(rows, bytes));
    Arc::new(full.finish())
}

impl Sink {
    pub(crate) fn new(kind: Kind, rows: usize) -> Self {
        let text = || StringBuilder::with_capacity(rows, rows * INITIAL_BYTES_PER_VALUE);
        match kind {
            Kind::RemoteAddr => Sink::Addr {
                col: text(),
                pending: Span::default(),
            },
            Kind::Text => Sink::Text {
                col: text(),
                pending: None,
            },
            Kind::Time(kind) => Sink::Time {
                kind,
                ts: timestamps(rows),
                date: Date32Builder::with_capacity(rows),
                pending: (0, 0),
            },
            Kind::Request => Sink::Request {
                method: StringBuilder::with_capacity(rows, rows * 4),
                path: text(),
                protocol: StringBuilder::with_capacity(rows, rows * 8),
                pending: RequestParts::default(),
            },
            Kind::Status => Sink::Status {
                col: Int32Builder::with_capacity(rows),
                pending: 0,
            },
            Kind::Int64 => Sink::Int64 {
                col: Int64Builder::with_capacity(rows),
                pending: None,
            },
            Kind::Float64 => Sink::Float64 {
                col: Float64Builder::with_capacity(rows),
                pending: None,
            },
        }
    }

    /// Appends the pending value.
    #[inline(always)]
    pub(crate) fn append(&mut self, line: &str, scratch: &str) {
        match self {
            Sink::Addr { col, pending } => col.append_value(pending.get(line, scratch)),
            Sink::Text { col, pending } => match pending {
                Some(span) => col.append_value(span.get(line, scratch)),
                None => col.append_null(),
            },
            Sink::Time { ts, date, pending, .. } => {
                ts.append_value(pending.0);
                date.append_value(pending.1);
            }
            Sink::Request {
                method,
                path,
                protocol,
                pending,
            } => {
                let text = pending.text.get(line, scratch);
                match pending.spaces.and_then(|(a, b)| {
                    Some((text.get(..a)?, text.get(a + 1..b)?, text.get(b + 1..)?))
                }) {
                    Some((m, p, v)) => {
                        method.append_value(m);
                        path.append_value(p);
                        protocol.append_value(v);
                    }
                    None => {
                        method.append_null();
                        path.append_value(text);
                        protocol.append_null();
                    }
                }
            }
            Sink::Status { col, pending } => col.append_value(*pending),
            Sink::Int64 { col, pending } => col.append_option(*pending),
            Sink::Float64 { col, pending } => col.append_option(*pending),
        }
    }

    /// Bytes the text columns of this sink already hold (the largest, for request lines).
    #[inline(always)]
    pub(crate) fn text_bytes(&self) -> usize {
        match self {
            Sink::Addr { col, .. } | Sink::Text { col, .. } => col.values_slice().len(),
            Sink::Request {
                method,
                path,
                protocol,
                ..
            } => method
                .values_slice()
                .len()
                .max(path.values_slice().len())
                .max(protocol.values_slice().len()),
            _ => 0,
        }
    }

    /// Appends this sink's arrays to `out` and starts empty builders of the same size.
    pub(crate) fn finish(&mut self, rows: usize, out: &mut Vec<ArrayRef>) {
        match self {
            Sink::Addr { col, .. } | Sink::Text { col, .. } => out.push(finish_text(col, rows)),
            Sink::Time { ts, date, .. } => {
                out.push(Arc::new(std::mem::replace(ts, timestamps(rows)).finish()));
                out.push(Arc::new(
                    std::mem::replace(date, Date32Builder::with_capacity(rows)).finish(),
                ));
            }
            Sink::Request {
                method,
                path,
                protocol,
                ..
            } => {
                out.push(finish_text(method, rows));
                out.push(finish_text(path, rows));
                out.push(finish_text(protocol, rows));
            }
            Sink::Status { col, .. } => {
                out.push(Arc::new(std::mem::replace(col, Int32Builder::with_capacity(rows)).finish()));
            }
            Sink::Int64 { col, .. } => {
                out.push(Arc::new(std::mem::replace(col, Int64Builder::with_capacity(rows)).finish()));
            }
            Sink::Float64 { col, .. } => {
                out.push(Arc::new(
                    std::mem::replace(col, Float64Builder::with_capacity(rows)).finish(),
                ));
            }
        }
    }
}
