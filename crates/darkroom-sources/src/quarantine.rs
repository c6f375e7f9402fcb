//! `_quarantine_<source>`: every line that did not parse, byte for byte, with where and why.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, Date32Array, Int32Builder, Int64Builder, RecordBatch,
    StringArray, StringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Partition column of the quarantine table.
pub const PARTITION_COLUMN: &str = "file_date";

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("host", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("column", DataType::Int32, true),
        Field::new("field", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        // The line exactly as read (without its '\n'; a '\r' before it is kept).
        Field::new("raw", DataType::Binary, false),
        Field::new("file_date", DataType::Date32, false),
    ]))
}

/// Collects quarantined lines of one file into batches.
pub struct QuarantineBuilder {
    host: String,
    file: String,
    days: i32,
    line: Int64Builder,
    column: Int32Builder,
    field: StringBuilder,
    reason: StringBuilder,
    raw: BinaryBuilder,
    bytes: usize,
}

impl QuarantineBuilder {
    pub fn new(host: &str, file: &str, days: i32) -> Self {
        Self {
            host: host.to_string(),
            file: file.to_string(),
            days,
            line: Int64Builder::new(),
            column: Int32Builder::new(),
            field: StringBuilder::new(),
            reason: StringBuilder::new(),
            raw: BinaryBuilder::new(),
            bytes: 0,
        }
    }

    pub fn push(
        &mut self,
        line: u64,
        column: Option<usize>,
        field: Option<&str>,
        reason: &str,
        raw: &[u8],
    ) {
        self.line.append_value(line as i64);
        self.column
            .append_option(column.map(|c| i32::try_from(c).unwrap_or(i32::MAX)));
        self.field.append_option(field);
        self.reason.append_value(reason);
        self.raw.append_value(raw);
        self.bytes += raw.len() + reason.len();
    }

    pub fn len(&self) -> usize {
        self.line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Buffered bytes, to flush before memory grows.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    pub fn finish(&mut self) -> Result<RecordBatch, arrow::error::ArrowError> {
        let n = self.len();
        self.bytes = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![self.host.as_str(); n])),
            Arc::new(StringArray::from(vec![self.file.as_str(); n])),
            Arc::new(self.line.finish()),
            Arc::new(self.column.finish()),
            Arc::new(self.field.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(Date32Array::from(vec![self.days; n])),
        ];
        RecordBatch::try_new(schema(), columns)
    }
}
