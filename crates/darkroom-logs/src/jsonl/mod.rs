//! JSON-lines application event logs into typed Arrow batches.
//!
//! Each line is one JSON object. One key holds the event time and becomes `event_ts` (UTC) and
//! `event_date` (in the project time zone); the declared fields become typed columns; every
//! other key is kept, as one compact JSON object, in `attributes`, so nothing in the line is
//! lost. The line is parsed once with serde_json into a tree that borrows its strings from
//! the input, so a typical event costs a handful of small allocations.
//!
//! Output columns: `event_ts`, `event_date`, the declared fields in order, `attributes`, `line`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::parser::{LineError, LogParser, ParseOptions};

mod json;
mod time;

use json::*;
use time::*;

/// Longest value quoted in an error message, in characters.
const QUOTE_MAX_CHARS: usize = 80;
/// `NaiveDate::num_days_from_ce` of 1970-01-01, the epoch of Arrow's `Date32`.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;
/// Column names the parser itself produces; a declared field may not take one.
const RESERVED_COLUMNS: [&str; 4] = ["event_ts", "event_date", "attributes", "line"];

/// How the timestamp field is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampFormat {
    /// An RFC 3339 string; a space may replace the `T` (`2024-01-02 03:04:05.123Z`), and the
    /// offset may be `Z` or `+hh:mm`.
    Rfc3339,
    /// Seconds since the Unix epoch, as a number (may be fractional) or a string holding one.
    UnixSeconds,
    /// Milliseconds since the Unix epoch.
    UnixMillis,
    /// Microseconds since the Unix epoch.
    UnixMicros,
    /// A chrono strftime pattern. Without an offset in the pattern (`%z`) the time is read in
    /// [`ParseOptions::timezone`]; a time repeated by a DST change is read as the earlier one,
    /// a time skipped by one with the offset in force before the change.
    Strftime(String),
}

impl FromStr for TimestampFormat {
    type Err = JsonlError;

    /// `rfc3339`, `unix_s`, `unix_ms`, `unix_us`, or a strftime pattern (anything with a `%`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rfc3339" => Ok(Self::Rfc3339),
            "unix_s" => Ok(Self::UnixSeconds),
            "unix_ms" => Ok(Self::UnixMillis),
            "unix_us" => Ok(Self::UnixMicros),
            pattern if pattern.contains('%') => {
                strftime_items(pattern)?;
                Ok(Self::Strftime(pattern.to_owned()))
            }
            other => Err(JsonlError::UnknownTimestampFormat(other.to_owned())),
        }
    }
}

impl fmt::Display for TimestampFormat {
    /// Describes the format for error messages, with an example.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rfc3339 => {
                f.write_str("RFC 3339, like 2024-01-02T03:04:05Z or 2024-01-02 03:04:05.123+01:00")
            }
            Self::UnixSeconds => f.write_str("Unix seconds, like 1704164645 or 1704164645.123"),
            Self::UnixMillis => f.write_str("Unix milliseconds, like 1704164645123"),
            Self::UnixMicros => f.write_str("Unix microseconds, like 1704164645123456"),
            Self::Strftime(pattern) => write!(f, "the strftime pattern `{pattern}`"),
        }
    }
}

/// What happens to nested objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NestedMode {
    /// `{"a":{"b":1}}` is read as the key `a_b`: a declared field may be given as the dotted
    /// path (`a.b`) or the flattened name (`a_b`), and undeclared nested keys are stored
    /// flattened in `attributes`. Keys that flatten to the same name are all kept in
    /// `attributes`; for a declared field the last one is read.
    #[default]
    Flatten,
    /// Declared fields are reached by dotted path only; undeclared nested objects stay nested
    /// inside `attributes`.
    Json,
}

/// The Arrow type of a declared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Text. Numbers and booleans are stored as their JSON text.
    Utf8,
    /// An integer; a string holding one (`"42"`) and an integral float (`42.0`) are accepted.
    Int64,
    /// A number, or a string holding one.
    Float64,
    /// `true` or `false` (also as strings).
    Boolean,
    /// An RFC 3339 string, stored as `Timestamp(Microsecond, "UTC")`.
    Timestamp,
    /// Any value, stored as compact JSON text.
    Json,
}

impl FieldType {
    fn data_type(self) -> DataType {
        match self {
            Self::Utf8 | Self::Json => DataType::Utf8,
            Self::Int64 => DataType::Int64,
            Self::Float64 => DataType::Float64,
            Self::Boolean => DataType::Boolean,
            Self::Timestamp => utc_micros(),
        }
    }

    /// What a value must look like, for error messages.
    fn expectation(self) -> &'static str {
        match self {
            Self::Utf8 => "string (a string, number or boolean)",
            Self::Int64 => "int64 (an integer, or a string holding one)",
            Self::Float64 => "float64 (a number, or a string holding one)",
            Self::Boolean => "bool (true or false)",
            Self::Timestamp => "timestamp (an RFC 3339 string like 2024-01-02T03:04:05Z)",
            Self::Json => "json (any value)",
        }
    }
}

impl FromStr for FieldType {
    type Err = JsonlError;

    /// `string`, `int64`, `float64`, `bool`, `timestamp` or `json`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "string" => Ok(Self::Utf8),
            "int64" => Ok(Self::Int64),
            "float64" => Ok(Self::Float64),
            "bool" => Ok(Self::Boolean),
            "timestamp" => Ok(Self::Timestamp),
            "json" => Ok(Self::Json),
            other => Err(JsonlError::UnknownFieldType(other.to_owned())),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Utf8 => "string",
            Self::Int64 => "int64",
            Self::Float64 => "float64",
            Self::Boolean => "bool",
            Self::Timestamp => "timestamp",
            Self::Json => "json",
        })
    }
}

/// How to read one kind of JSON-lines log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlOptions {
    /// The key holding the event time; a dotted path (`meta.ts`) reaches into nested objects.
    pub timestamp_field: String,
    /// How the event time is written.
    pub timestamp_format: TimestampFormat,
    /// What happens to nested objects.
    pub nested: NestedMode,
    /// Declared columns, in order. A dotted path (`context.device.os`) reaches into nested
    /// objects; the column is named after the path with `.` replaced by `_`.
    pub fields: Vec<(String, FieldType)>,
}

/// Why [`JsonlOptions`] (or a format or type name) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonlError {
    /// A field type name that is not one of the known ones.
    #[error(
        "unknown field type `{0}`: expected one of string, int64, float64, bool, timestamp, json"
    )]
    UnknownFieldType(String),
    /// A timestamp format that is neither a known name nor a strftime pattern.
    #[error(
        "unknown timestamp format `{0}`: expected rfc3339, unix_s, unix_ms, unix_us, or a \
         strftime pattern such as `%Y-%m-%d %H:%M:%S`"
    )]
    UnknownTimestampFormat(String),
    /// A strftime pattern chrono cannot use.
    #[error(
        "invalid strftime pattern `{0}`: see \
         https://docs.rs/chrono/latest/chrono/format/strftime/ for the specifiers"
    )]
    InvalidStrftime(String),
    /// An empty path or one with an empty segment (`a..b`, `.a`).
    #[error(
        "invalid field path `{0}`: use key names separated by single dots, like `context.device.os`"
    )]
    InvalidPath(String),
    /// Two declared fields map to the same column.
    #[error(
        "fields `{first}` and `{second}` would both become column `{column}`; declare only one"
    )]
    DuplicateColumn {
        /// The shared column name.
        column: String,
        /// The first field declared.
        first: String,
        /// The second field declared.
        second: String,
    },
    /// A declared field would take a column the parser produces itself.
    #[error(
        "field `{field}` would become column `{column}`, which the parser always produces; \
         leave it undeclared and it is kept in `attributes`"
    )]
    ReservedColumn {
        /// The declared path.
        field: String,
        /// The column it maps to.
        column: String,
    },
    /// One declared path lies inside another.
    #[error("field `{inner}` lies inside field `{outer}`; declare one or the other")]
    Overlap {
        /// The enclosing path.
        outer: String,
        /// The path inside it.
        inner: String,
    },
    /// The timestamp field is also declared as a field.
    #[error(
        "`{0}` is the timestamp field and is always stored as `event_ts`; remove it from the fields"
    )]
    TimestampDeclared(String),
}

/// Reads JSON-lines event logs into batches; see the [module documentation](self).
pub struct JsonlParser {
    schema: SchemaRef,
    timezone: Tz,
    timestamp_path: String,
    timestamp_format: TimestampFormat,
    timestamp: TimestampReader,
    /// Declared fields; slot 0 of a line is the timestamp, slot `i + 1` is `fields[i]`.
    fields: Vec<DeclaredField>,
    lookup: Lookup,
    columns: Columns,
    rows: usize,
    /// The `event_date` of the last UTC minute seen.
    date_cache: Option<(i64, i32)>,
    /// Reused per line: the `attributes` text and the flattened key being built.
    attributes: String,
    key_buf: String,
}

impl fmt::Debug for JsonlParser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlParser")
            .field("schema", &self.schema)
            .field("timezone", &self.timezone)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

struct DeclaredField {
    path: String,
    ty: FieldType,
}

/// Where a key of the line goes: by flattened name, or down a tree of dotted paths.
enum Lookup {
    Flat(KeyMap<usize>),
    Tree(PathNode),
}

/// Declared keys are few and fixed, so a simple fast hash is safe: a line cannot grow the map.
type KeyMap<V> = HashMap<String, V, BuildHasherDefault<KeyHasher>>;

/// The FxHash mixing step (as in rustc), eight bytes at a time.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(SEED);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(SEED);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Default)]
struct PathNode {
    slot: Option<usize>,
    children: KeyMap<PathNode>,
}

enum TimestampReader {
    Rfc3339,
    Unix { micros_per_unit: i64 },
    Strftime(Vec<Item<'static>>),
}

struct Columns {
    event_ts: TimestampMicrosecondBuilder,
    event_date: Date32Builder,
    fields: Vec<FieldBuilder>,
    attributes: StringBuilder,
    line: Int64Builder,
}

enum FieldBuilder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl JsonlParser {
    /// Checks the options and builds a parser.
    pub fn new(options: JsonlOptions, parse: ParseOptions) -> Result<Self, JsonlError> {
        let mut paths = vec![split_path(&options.timestamp_field)?];
        let mut column_of: HashMap<String, String> = HashMap::new();
        for (path, _) in &options.fields {
            let segments = split_path(path)?;
            let column = segments.join("_");
            if RESERVED_COLUMNS.contains(&column.as_str()) {
                return Err(JsonlError::ReservedColumn {
                    field: path.clone(),
                    column,
                });
            }
            if let Some(first) = column_of.insert(column.clone(), path.clone()) {
                return Err(JsonlError::DuplicateColumn {
                    column,
                    first,
                    second: path.clone(),
                });
            }
            paths.push(segments);
        }
        check_disjoint(&paths, &options.timestamp_field, options.nested)?;

        let lookup = match options.nested {
            NestedMode::Flatten => Lookup::Flat(
                paths
                    .iter()
                    .enumerate()
                    .map(|(slot, segments)| (segments.join("_"), slot))
                    .collect(),
            ),
            NestedMode::Json => {
                let mut root = PathNode::default();
                for (slot, segments) in paths.iter().enumerate() {
                    let mut node = &mut root;
                    for segment in segments {
                        node = node.children.entry((*segment).to_owned()).or_default();
                    }
                    node.slot = Some(slot);
                }
                Lookup::Tree(root)
            }
        };
        let timestamp = match &options.timestamp_format {
            TimestampFormat::Rfc3339 => TimestampReader::Rfc3339,
            TimestampFormat::UnixSeconds => TimestampReader::Unix {
                micros_per_unit: 1_000_000,
            },
            TimestampFormat::UnixMillis => TimestampReader::Unix {
                micros_per_unit: 1_000,
            },
            TimestampFormat::UnixMicros => TimestampReader::Unix { micros_per_unit: 1 },
            TimestampFormat::Strftime(pattern) => {
                TimestampReader::Strftime(strftime_items(pattern)?)
            }
        };

        let mut schema_fields = vec![
            Field::new("event_ts", utc_micros(), false),
            Field::new("event_date", DataType::Date32, false),
        ];
        schema_fields.extend(
            options
                .fields
                .iter()
                .map(|(path, ty)| Field::new(path.replace('.', "_"), ty.data_type(), true)),
        );
        schema_fields.push(Field::new("attributes", DataType::Utf8, true));
        schema_fields.push(Field::new("line", DataType::Int64, false));

        let fields: Vec<DeclaredField> = options
            .fields
            .into_iter()
            .map(|(path, ty)| DeclaredField { path, ty })
            .collect();
        let capacity = parse.batch_size.clamp(1, 1 << 20);
        Ok(Self {
            schema: Arc::new(Schema::new(schema_fields)),
            timezone: parse.timezone,
            timestamp_path: options.timestamp_field,
            timestamp_format: options.timestamp_format,
            timestamp,
            columns: Columns::new(&fields, capacity),
            fields,
            lookup,
            rows: 0,
            date_cache: None,
            attributes: String::new(),
            key_buf: String::new(),
        })
    }

    /// Reads the timestamp value as microseconds since the epoch, or says why it cannot.
    fn read_timestamp(&self, value: &Val<'_>) -> Result<i64, String> {
        let expected = || self.describe_format();
        let micros = match (&self.timestamp, value) {
            (TimestampReader::Rfc3339, Val::Str(s)) => parse_rfc3339(s)
                .map_err(|why| format!("cannot read {} as {} ({why})", quote(value), expected()))?,
            (TimestampReader::Strftime(items), Val::Str(s)) => {
                parse_strftime(items, s, self.timezone).map_err(|why| {
                    format!("cannot read {} as {} ({why})", quote(value), expected())
                })?
            }
            (TimestampReader::Unix { micros_per_unit }, _) => {
                unix_to_micros(value, *micros_per_unit)
                    .ok_or_else(|| format!("cannot read {} as {}", quote(value), expected()))?
            }
            (_, _) => {
                return Err(format!(
                    "expected a string in {}, found {} {}",
                    expected(),
                    value.kind(),
                    quote(value)
                ));
            }
        };
        if DateTime::from_timestamp_micros(micros).is_none() {
            return Err(format!(
                "{} is outside the supported range of dates",
                quote(value)
            ));
        }
        Ok(micros)
    }

    /// The expected timestamp format, for error messages.
    fn describe_format(&self) -> String {
        match &self.timestamp_format {
            TimestampFormat::Strftime(pattern) => format!(
                "the strftime pattern `{pattern}` (read in {} unless it has an offset)",
                self.timezone
            ),
            other => other.to_string(),
        }
    }

    /// `event_date` as days since the epoch; event times arrive nearly sorted, so the date of
    /// the last UTC minute is remembered.
    fn event_date(&mut self, micros: i64) -> Option<i32> {
        let minute = micros.div_euclid(60_000_000);
        if let Some((cached_minute, date)) = self.date_cache
            && cached_minute == minute
        {
            return Some(date);
        }
        let local = DateTime::from_timestamp_micros(micros)?.with_timezone(&self.timezone);
        let date = local.date_naive().num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE;
        self.date_cache = Some((minute, date));
        Some(date)
    }
}

impl LogParser for JsonlParser {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn push_line(&mut self, line: &[u8], line_number: u64) -> Result<(), LineError> {
        // A byte-order mark is tolerated at the start of a line (in practice, of a file).
        let (body, base) = match line.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) => (rest, 3),
            None => (line, 0),
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(LineError::at(
                0,
                None,
                "empty line: expected one JSON object per line",
            ));
        }
        let value = parse_json(body).map_err(|error| json_error(body, base, &error))?;
        let Val::Obj(entries) = &value else {
            let start = body
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(0);
            return Err(LineError::at(
                base + start,
                None,
                format!(
                    "expected a JSON object per line, found {} {}",
                    value.kind(),
                    quote(&value)
                ),
            ));
        };

        let mut slots: Vec<Option<Slot<'_>>> = vec![None; self.fields.len() + 1];
        self.attributes.clear();
        self.attributes.push('{');
        let mut empty = true;
        match &self.lookup {
            Lookup::Flat(map) => {
                self.key_buf.clear();
                walk_flat(
                    map,
                    entries,
                    &mut self.key_buf,
                    false,
                    &mut slots,
                    &mut self.attributes,
                    &mut empty,
                );
            }
            Lookup::Tree(root) => {
                walk_tree(root, entries, &mut slots, &mut self.attributes, &mut empty)
            }
        }
        self.attributes.push('}');

        let field_error = |slot: Slot<'_>, name: &str, reason: String| {
            LineError::at(base + value_offset(body, slot), Some(name), reason)
        };
        let Some(ts_slot) = slots[0].filter(|slot| !matches!(slot.value, Val::Null)) else {
            let what = if slots[0].is_some() {
                "is null"
            } else {
                "is missing"
            };
            return Err(LineError::at(
                base,
                Some(&self.timestamp_path),
                format!(
                    "timestamp field `{}` {what}: every event needs its time (check timestamp_field)",
                    self.timestamp_path
                ),
            ));
        };
        let micros = self.read_timestamp(ts_slot.value).map_err(|reason| {
            field_error(
                ts_slot,
                &self.timestamp_path,
                format!("timestamp field `{}`: {reason}", self.timestamp_path),
            )
        })?;
        let date = self.event_date(micros).ok_or_else(|| {
            field_error(
                ts_slot,
                &self.timestamp_path,
                "timestamp outside the supported range of dates".into(),
            )
        })?;

        let mut cells = Vec::with_capacity(self.fields.len());
        for (field, slot) in self.fields.iter().zip(&slots[1..]) {
            let cell = match slot {
                None => Cell::Null,
                Some(slot) => convert(field.ty, slot.value).map_err(|()| {
                    let reason = format!(
                        "field `{}`: expected {}, found {} {}",
                        field.path,
                        field.ty.expectation(),
                        slot.value.kind(),
                        quote(slot.value)
                    );
                    field_error(*slot, &field.path, reason)
                })?,
            };
            cells.push(cell);
        }

        // Nothing can fail from here on: the row is appended whole.
        let columns = &mut self.columns;
        columns.event_ts.append_value(micros);
        columns.event_date.append_value(date);
        for (builder, cell) in columns.fields.iter_mut().zip(cells) {
            builder.append(cell);
        }
        if empty {
            columns.attributes.append_null();
        } else {
            columns.attributes.append_value(&self.attributes);
        }
        columns
            .line
            .append_value(i64::try_from(line_number).unwrap_or(i64::MAX));
        self.rows += 1;
        Ok(())
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn finish_batch(&mut self) -> Result<RecordBatch, ArrowError> {
        let columns = &mut self.columns;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        arrays.push(Arc::new(columns.event_ts.finish().with_timezone("UTC")));
        arrays.push(Arc::new(columns.event_date.finish()));
        arrays.extend(columns.fields.iter_mut().map(FieldBuilder::finish));
        arrays.push(Arc::new(columns.attributes.finish()));
        arrays.push(Arc::new(columns.line.finish()));
        self.rows = 0;
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
    }
}

impl Columns {
    fn new(fields: &[DeclaredField], capacity: usize) -> Self {
        let fields = fields
            .iter()
            .map(|field| match field.ty {
                FieldType::Utf8 | FieldType::Json => {
                    FieldBuilder::Utf8(StringBuilder::with_capacity(capacity, capacity * 16))
                }
                FieldType::Int64 => FieldBuilder::Int64(Int64Builder::with_capacity(capacity)),
                FieldType::Float64 => {
                    FieldBuilder::Float64(Float64Builder::with_capacity(capacity))
                }
                FieldType::Boolean => {
                    FieldBuilder::Boolean(BooleanBuilder::with_capacity(capacity))
                }
                FieldType::Timestamp => {
                    FieldBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(capacity))
                }
            })
            .collect();
        Self {
            event_ts: TimestampMicrosecondBuilder::with_capacity(capacity),
            event_date: Date32Builder::with_capacity(capacity),
            fields,
            attributes: StringBuilder::with_capacity(capacity, capacity * 64),
            line: Int64Builder::with_capacity(capacity),
        }
    }
}

/// One converted field value, waiting until the whole line has been read.
enum Cell<'v> {
    Null,
    Str(&'v str),
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Ts(i64),
}

impl FieldBuilder {
    fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (Self::Utf8(b), Cell::Str(s)) => b.append_value(s),
            (Self::Utf8(b), Cell::Text(s)) => b.append_value(s),
            (Self::Int64(b), Cell::Int(v)) => b.append_value(v),
            (Self::Timestamp(b), Cell::Ts(v)) => b.append_value(v),
            (Self::Float64(b), Cell::Float(v)) => b.append_value(v),
            (Self::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            // `convert` only makes cells that fit the field's builder, so only `Null` gets here.
            (Self::Utf8(b), _) => b.append_null(),
            (Self::Int64(b), _) => b.append_null(),
            (Self::Timestamp(b), _) => b.append_null(),
            (Self::Float64(b), _) => b.append_null(),
            (Self::Boolean(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish().with_timezone("UTC")),
        }
    }
}

/// Converts a declared field's value; `Err` means the value has the wrong type.
fn convert<'v>(ty: FieldType, value: &'v Val<'v>) -> Result<Cell<'v>, ()> {
    if let Val::Null = value {
        return Ok(Cell::Null);
    }
    match (ty, value) {
        (FieldType::Json, _) => {
            let mut text = String::new();
            write_json(&mut text, value);
            Ok(Cell::Text(text))
        }
        (FieldType::Utf8, Val::Str(s)) => Ok(Cell::Str(s)),
        (FieldType::Utf8, Val::Bool(_) | Val::I64(_) | Val::U64(_) | Val::F64(_)) => {
            let mut text = String::new();
            write_json(&mut text, value);
            Ok(Cell::Text(text))
        }
        (FieldType::Int64, Val::I64(v)) => Ok(Cell::Int(*v)),
        (FieldType::Int64, Val::U64(v)) => i64::try_from(*v).map(Cell::Int).map_err(drop),
        (FieldType::Int64, Val::F64(v)) => integral_f64(*v).map(Cell::Int).ok_or(()),
        (FieldType::Int64, Val::Str(s)) => s.parse().map(Cell::Int).map_err(drop),
        (FieldType::Float64, Val::I64(v)) => Ok(Cell::Float(*v as f64)),
        (FieldType::Float64, Val::U64(v)) => Ok(Cell::Float(*v as f64)),
        (FieldType::Float64, Val::F64(v)) => Ok(Cell::Float(*v)),
        (FieldType::Float64, Val::Str(s)) => s.parse().map(Cell::Float).map_err(drop),
        (FieldType::Boolean, Val::Bool(v)) => Ok(Cell::Bool(*v)),
        (FieldType::Boolean, Val::Str(s)) => match s.as_ref() {
            "true" => Ok(Cell::Bool(true)),
            "false" => Ok(Cell::Bool(false)),
            _ => Err(()),
        },
        (FieldType::Timestamp, Val::Str(s)) => parse_rfc3339(s).map(Cell::Ts).map_err(drop),
        _ => Err(()),
    }
}

fn strftime_items(pattern: &str) -> Result<Vec<Item<'static>>, JsonlError> {
    StrftimeItems::new(pattern)
        .parse_to_owned()
        .map_err(|_| JsonlError::InvalidStrftime(pattern.to_owned()))
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn split_path(path: &str) -> Result<Vec<&str>, JsonlError> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(JsonlError::InvalidPath(path.to_owned()));
    }
    Ok(segments)
}

/// Rejects a path that lies inside another (`a` and `a.b`), or the timestamp declared again.
fn check_disjoint(
    paths: &[Vec<&str>],
    timestamp: &str,
    nested: NestedMode,
) -> Result<(), JsonlError> {
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            let same = a == b || (nested == NestedMode::Flatten && a.join("_") == b.join("_"));
            if i == 0 && same {
                return Err(JsonlError::TimestampDeclared(timestamp.to_owned()));
            }
            let (outer, inner) = if a.len() <= b.len() { (a, b) } else { (b, a) };
            if inner.starts_with(outer) {
                return Err(JsonlError::Overlap {
                    outer: outer.join("."),
                    inner: inner.join("."),
                });
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Walking the parsed line: declared values into slots, everything else into `attributes`.

/// A declared key found in the line: its name as written (to point at it in errors) and value.
#[derive(Clone, Copy)]
struct Slot<'v> {
    key: &'v str,
    value: &'v Val<'v>,
}

/// Flatten mode: each key is known by its path joined with `_`; objects that are not declared
/// fields are walked into, everything else undeclared is written to `out`.
fn walk_flat<'v>(
    map: &KeyMap<usize>,
    entries: &'v [(Cow<'v, str>, Val<'v>)],
    name: &mut String,
    name_escaped: bool,
    slots: &mut [Option<Slot<'v>>],
    out: &mut String,
    empty: &mut bool,
) {
    for (key, value) in entries {
        let prefix_len = name.len();
        if prefix_len > 0 {
            name.push('_');
        }
        name.push_str(key);
        let name_escaped = name_escaped || matches!(key, Cow::Owned(_));
        if let Some(&slot) = map.get(name.as_str()) {
            slots[slot] = Some(Slot { key, value });
        } else if let Val::Obj(inner) = value
            && !inner.is_empty()
        {
            walk_flat(map, inner, name, name_escaped, slots, out, empty);
        } else {
            write_key(out, name, name_escaped, empty);
            write_json(out, value);
        }
        name.truncate(prefix_len);
    }
}

/// Json mode: keys are followed down the tree of declared paths; what is left of an object
/// after its declared keys are taken out is written to `out`, still nested.
fn walk_tree<'v>(
    node: &PathNode,
    entries: &'v [(Cow<'v, str>, Val<'v>)],
    slots: &mut [Option<Slot<'v>>],
    out: &mut String,
    empty: &mut bool,
) {
    for (key, value) in entries {
        match (node.children.get(key.as_ref()), value) {
            (
                Some(PathNode {
                    slot: Some(slot), ..
                }),
                _,
            ) => slots[*slot] = Some(Slot { key, value }),
            (Some(child), Val::Obj(inner)) if !inner.is_empty() => {
                let mark = out.len();
                let mut inner_empty = true;
                write_key(out, key, matches!(key, Cow::Owned(_)), empty);
                out.push('{');
                walk_tree(child, inner, slots, out, &mut inner_empty);
                if inner_empty {
                    // Every key inside was declared: leave no empty object behind.
                    out.truncate(mark);
                    *empty = mark <= 1;
                } else {
                    out.push('}');
                }
            }
            _ => {
                write_key(out, key, matches!(key, Cow::Owned(_)), empty);
                write_json(out, value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
