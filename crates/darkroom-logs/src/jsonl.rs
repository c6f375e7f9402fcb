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

/// `v` as an `i64` if it is a whole number within range.
fn integral_f64(v: f64) -> Option<i64> {
    // 2^63 is exactly representable; every f64 below it in magnitude with no fraction fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v)).then_some(v as i64)
}

/// Unix time in some unit (a number, or a string holding one) as microseconds.
fn unix_to_micros(value: &Val<'_>, micros_per_unit: i64) -> Option<i64> {
    let float = |v: f64| {
        let micros = (v * micros_per_unit as f64).round();
        integral_f64(micros)
    };
    match value {
        Val::I64(v) => v.checked_mul(micros_per_unit),
        Val::U64(v) => i64::try_from(*v).ok()?.checked_mul(micros_per_unit),
        Val::F64(v) => float(*v),
        Val::Str(s) => match s.parse::<i64>() {
            Ok(v) => v.checked_mul(micros_per_unit),
            Err(_) => float(s.parse().ok()?),
        },
        _ => None,
    }
}

fn parse_rfc3339(s: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|dt| dt.timestamp_micros())
        .map_err(|e| e.to_string())
}

fn parse_strftime(items: &[Item<'static>], s: &str, timezone: Tz) -> Result<i64, String> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, s, items.iter()).map_err(|e| e.to_string())?;
    let utc = if parsed.offset().is_some() {
        parsed.to_datetime().map_err(|e| e.to_string())?.to_utc()
    } else if parsed.timestamp().is_some() {
        parsed
            .to_datetime_with_timezone(&Utc)
            .map_err(|e| e.to_string())?
    } else {
        let naive = parsed
            .to_naive_datetime_with_offset(0)
            .map_err(|e| e.to_string())?;
        localize(timezone, naive).ok_or_else(|| format!("{naive} does not exist in {timezone}"))?
    };
    Ok(utc.timestamp_micros())
}

/// A wall-clock time in `timezone` as a UTC instant. A time repeated when clocks go back is
/// the earlier instant; a time skipped when they go forward is read with the offset in force
/// just before the change (02:30 on a spring-forward night is 03:30 daylight time).
fn localize(timezone: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match timezone.from_local_datetime(&naive) {
        MappedLocalTime::Single(dt) | MappedLocalTime::Ambiguous(dt, _) => Some(dt.to_utc()),
        MappedLocalTime::None => {
            let before = naive.checked_sub_signed(TimeDelta::days(1))?;
            let offset = timezone.offset_from_utc_datetime(&before).fix();
            Some(naive.checked_sub_offset(offset)?.and_utc())
        }
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

/// Writes `,"key":` (no comma before the first key of an object). Only a key that had
/// escapes in the line (an owned one) can need escaping again; see [`Val::Str`].
fn write_key(out: &mut String, key: &str, escape: bool, empty: &mut bool) {
    if !*empty {
        out.push(',');
    }
    *empty = false;
    if escape {
        write_json_str(out, key);
    } else {
        out.push('"');
        out.push_str(key);
        out.push('"');
    }
    out.push(':');
}

/// Compact JSON, as serde_json writes it.
fn write_json(out: &mut String, value: &Val<'_>) {
    match value {
        Val::Null => out.push_str("null"),
        Val::Bool(true) => out.push_str("true"),
        Val::Bool(false) => out.push_str("false"),
        Val::I64(v) => {
            let _ = write!(out, "{v}");
        }
        Val::U64(v) => {
            let _ = write!(out, "{v}");
        }
        // Shortest text that reads back to the same float; always valid JSON for finite values.
        Val::F64(v) => {
            let _ = write!(out, "{v:?}");
        }
        Val::Str(Cow::Borrowed(s)) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        Val::Str(Cow::Owned(s)) => write_json_str(out, s),
        Val::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Val::Obj(entries) => {
            out.push('{');
            let mut empty = true;
            for (key, item) in entries {
                write_key(out, key, matches!(key, Cow::Owned(_)), &mut empty);
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `byte` is ASCII, so `i` is a character boundary.
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// `value` as compact JSON, cut to [`QUOTE_MAX_CHARS`] characters, for error messages.
fn quote(value: &Val<'_>) -> String {
    let mut text = String::new();
    write_json(&mut text, value);
    match text.char_indices().nth(QUOTE_MAX_CHARS) {
        Some((cut, _)) => {
            text.truncate(cut);
            text.push('…');
            text
        }
        None => text,
    }
}

/// 0-based offset of a slot's value in the line. The parsed tree keeps no positions, so the
/// key is searched for and the value after it compared; the first match is reported.
fn value_offset(body: &[u8], slot: Slot<'_>) -> usize {
    let mut needle = String::new();
    write_json_str(&mut needle, slot.key);
    let mut from = 0;
    while let Some(found) = memchr::memmem::find(&body[from..], needle.as_bytes()) {
        let mut at = from + found + needle.len();
        while body.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        if body.get(at) == Some(&b':') {
            at += 1;
            while body.get(at).is_some_and(u8::is_ascii_whitespace) {
                at += 1;
            }
            let mut values =
                serde_json::Deserializer::from_slice(&body[at..]).into_iter::<Val<'_>>();
            if let Some(Ok(candidate)) = values.next()
                && candidate == *slot.value
            {
                return at;
            }
        }
        from += found + 1;
    }
    0
}

// ---------------------------------------------------------------------------------------------
// A JSON value whose strings borrow from the line where no escapes were decoded.

#[derive(Debug, PartialEq)]
enum Val<'a> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    /// Borrowed when the line had no escapes in it. serde_json rejects raw control
    /// characters, so a borrowed string never needs escaping when written back.
    Str(Cow<'a, str>),
    Arr(Vec<Val<'a>>),
    /// Keys in line order; with a repeated key the last one is the one read.
    Obj(Vec<(Cow<'a, str>, Val<'a>)>),
}

impl Val<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::I64(_) | Self::U64(_) | Self::F64(_) => "number",
            Self::Str(_) => "string",
            Self::Arr(_) => "array",
            Self::Obj(_) => "object",
        }
    }
}

fn parse_json(body: &[u8]) -> Result<Val<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = Val::deserialize(&mut deserializer)?;
    // Trailing whitespace (a stray `\r` included) is fine; anything else is not.
    deserializer.end()?;
    Ok(value)
}

/// A serde_json error as a line error: its column, or the first byte that is not UTF-8 if
/// that comes earlier (serde_json reports a bad string at its end).
fn json_error(body: &[u8], base: usize, error: &serde_json::Error) -> LineError {
    let json_column = error.column().max(1);
    if let Err(utf8) = std::str::from_utf8(body)
        && utf8.valid_up_to() < json_column
    {
        let at = utf8.valid_up_to();
        return LineError::at(
            base + at,
            None,
            format!(
                "not valid UTF-8 (byte 0x{:02x}): the file may be in another encoding such as Latin-1",
                body[at]
            ),
        );
    }
    let message = error.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map_or(message.as_str(), |(head, _)| head);
    let hint = if error.is_eof() {
        "; the line may be truncated"
    } else {
        ""
    };
    LineError::at(
        base + json_column - 1,
        None,
        format!("not valid JSON: {message}{hint}"),
    )
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Val::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Val::I64(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Val::U64(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Val::F64(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Val::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Val::Arr(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            entries.push((key, map.next_value()?));
        }
        Ok(Val::Obj(entries))
    }
}

/// Deserializes an object key, borrowing it when it has no escapes (serde's own
/// `Cow<str>` always copies).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
    use chrono::NaiveDate;

    use super::*;

    fn options(fields: &[(&str, FieldType)]) -> JsonlOptions {
        JsonlOptions {
            timestamp_field: "ts".into(),
            timestamp_format: TimestampFormat::Rfc3339,
            nested: NestedMode::Flatten,
            fields: fields.iter().map(|(p, t)| ((*p).to_owned(), *t)).collect(),
        }
    }

    fn parser(options: JsonlOptions) -> JsonlParser {
        JsonlParser::new(options, ParseOptions::default()).unwrap()
    }

    fn toronto(options: JsonlOptions) -> JsonlParser {
        let parse = ParseOptions {
            timezone: chrono_tz::America::Toronto,
            ..ParseOptions::default()
        };
        JsonlParser::new(options, parse).unwrap()
    }

    fn error(p: &mut JsonlParser, line: &[u8]) -> LineError {
        let err = p.push_line(line, 7).unwrap_err();
        assert!(p.is_empty(), "nothing may be appended on error");
        err
    }

    fn one_row(p: &mut JsonlParser, line: &str) -> RecordBatch {
        p.push_line(line.as_bytes(), 1).unwrap();
        let batch = p.finish_batch().unwrap();
        assert_eq!(batch.num_rows(), 1);
        batch
    }

    fn utc(batch: &RecordBatch) -> String {
        let micros = batch
            .column_by_name("event_ts")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .value(0);
        DateTime::from_timestamp_micros(micros)
            .unwrap()
            .to_rfc3339()
    }

    fn date(batch: &RecordBatch) -> NaiveDate {
        let days = batch
            .column_by_name("event_date")
            .unwrap()
            .as_primitive::<Date32Type>()
            .value(0);
        NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE).unwrap()
    }

    fn text(batch: &RecordBatch, column: &str) -> Option<String> {
        let array = batch.column_by_name(column).unwrap().as_string::<i32>();
        array.is_valid(0).then(|| array.value(0).to_owned())
    }

    fn int(batch: &RecordBatch, column: &str) -> Option<i64> {
        let array = batch
            .column_by_name(column)
            .unwrap()
            .as_primitive::<Int64Type>();
        array.is_valid(0).then(|| array.value(0))
    }

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    const TS: &str = r#""ts":"2024-01-02T03:04:05Z""#;

    #[test]
    fn schema_has_time_fields_attributes_and_line() {
        let p = parser(options(&[
            ("user_id", FieldType::Int64),
            ("context.device.os", FieldType::Utf8),
        ]));
        let names: Vec<_> = p
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "event_ts",
                "event_date",
                "user_id",
                "context_device_os",
                "attributes",
                "line"
            ]
        );
        assert_eq!(p.schema().field(0).data_type(), &utc_micros());
        assert_eq!(p.schema().field(1).data_type(), &DataType::Date32);
    }

    #[test]
    fn empty_line_is_an_error() {
        let mut p = parser(options(&[]));
        for line in [&b""[..], b"   ", b"\r"] {
            let err = error(&mut p, line);
            assert_eq!(err.column, 1);
            assert!(err.reason.contains("empty line"), "{}", err.reason);
        }
    }

    #[test]
    fn invalid_json_reports_serde_column() {
        let mut p = parser(options(&[]));
        let line = format!(r#"{{{TS},"a":}}"#);
        let err = error(&mut p, line.as_bytes());
        assert_eq!(err.column, line.len(), "points at the closing brace");
        assert!(
            err.reason.starts_with("not valid JSON: expected value"),
            "{}",
            err.reason
        );
        assert!(!err.reason.contains("line 1"), "{}", err.reason);

        let truncated = format!(r#"{{{TS},"a":"abc"#);
        let err = error(&mut p, truncated.as_bytes());
        assert!(err.reason.contains("truncated"), "{}", err.reason);

        let err = error(&mut p, format!("{{{TS}}} trailing").as_bytes());
        assert!(err.reason.contains("trailing characters"), "{}", err.reason);
    }

    #[test]
    fn non_object_is_an_error() {
        let mut p = parser(options(&[]));
        let err = error(&mut p, b"[1,2]");
        assert_eq!(err.column, 1);
        assert_eq!(
            err.reason,
            "expected a JSON object per line, found array [1,2]"
        );
        let err = error(&mut p, br#"  "hello""#);
        assert_eq!(err.column, 3);
        assert!(
            err.reason.contains(r#"found string "hello""#),
            "{}",
            err.reason
        );
    }

    #[test]
    fn missing_or_null_timestamp_is_an_error() {
        let mut p = parser(options(&[]));
        let err = error(&mut p, br#"{"time":"2024-01-02T03:04:05Z"}"#);
        assert_eq!(err.field.as_deref(), Some("ts"));
        assert!(err.reason.contains("`ts` is missing"), "{}", err.reason);
        let err = error(&mut p, br#"{"ts":null}"#);
        assert!(err.reason.contains("`ts` is null"), "{}", err.reason);
    }

    #[test]
    fn unparseable_timestamp_quotes_value_and_format() {
        let mut p = parser(options(&[]));
        let line = br#"{"a":1, "ts": "02/01/2024 03:04"}"#;
        let err = error(&mut p, line);
        assert_eq!(err.column, 15, "points at the value");
        assert_eq!(err.field.as_deref(), Some("ts"));
        assert!(
            err.reason.contains(r#""02/01/2024 03:04""#),
            "{}",
            err.reason
        );
        assert!(err.reason.contains("RFC 3339"), "{}", err.reason);

        let err = error(&mut p, br#"{"ts":1704164645}"#);
        assert!(
            err.reason.contains("expected a string in RFC 3339, like"),
            "{}",
            err.reason
        );

        let mut p = parser(JsonlOptions {
            timestamp_format: TimestampFormat::UnixMillis,
            ..options(&[])
        });
        let err = error(&mut p, br#"{"ts":"soon"}"#);
        assert!(
            err.reason
                .contains(r#"cannot read "soon" as Unix milliseconds"#),
            "{}",
            err.reason
        );
        let err = error(&mut p, br#"{"ts":9223372036854775807}"#);
        assert!(err.reason.contains("Unix milliseconds"), "{}", err.reason);
    }

    #[test]
    fn wrong_field_type_names_field_type_and_value() {
        let mut p = parser(options(&[("user_id", FieldType::Int64)]));
        let line = format!(r#"{{{TS},"user_id": {{"x":1}}}}"#);
        let err = error(&mut p, line.as_bytes());
        assert_eq!(err.field.as_deref(), Some("user_id"));
        assert_eq!(err.column, line.find("{\"x\"").unwrap() + 1);
        assert_eq!(
            err.reason,
            r#"field `user_id`: expected int64 (an integer, or a string holding one), found object {"x":1}"#
        );

        let long = "9".repeat(200);
        let err = error(&mut p, format!(r#"{{{TS},"user_id":"{long}"}}"#).as_bytes());
        let quoted = err.reason.split("found string ").nth(1).unwrap();
        assert_eq!(quoted.chars().count(), QUOTE_MAX_CHARS + 1, "{quoted}");
        assert!(quoted.ends_with('…'));
    }

    #[test]
    fn error_column_finds_the_right_occurrence_of_a_key() {
        let mut p = parser(JsonlOptions {
            nested: NestedMode::Json,
            ..options(&[("id", FieldType::Int64)])
        });
        let line = format!(r#"{{"x":{{"id":"abc"}},{TS},"id":"xyz"}}"#);
        let err = error(&mut p, line.as_bytes());
        assert_eq!(err.column, line.find("\"xyz\"").unwrap() + 1);
    }

    #[test]
    fn invalid_utf8_is_reported_at_the_bad_byte() {
        let mut p = parser(options(&[]));
        let mut line = format!(r#"{{{TS},"a":"caf"#).into_bytes();
        let at = line.len();
        line.extend_from_slice(b"\xe9 au lait\"}");
        let err = error(&mut p, &line);
        assert_eq!(err.column, at + 1);
        assert!(
            err.reason.contains("not valid UTF-8 (byte 0xe9)"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn int64_accepts_strings_and_integral_floats() {
        let mut p = parser(options(&[("n", FieldType::Int64)]));
        for (value, expected) in [("42", 42), ("\"42\"", 42), ("42.0", 42), ("-7", -7)] {
            let batch = one_row(&mut p, &format!(r#"{{{TS},"n":{value}}}"#));
            assert_eq!(int(&batch, "n"), Some(expected), "{value}");
        }
        for bad in ["42.5", "\"4x\"", "true", "18446744073709551615", "[1]"] {
            let err = error(&mut p, format!(r#"{{{TS},"n":{bad}}}"#).as_bytes());
            assert!(
                err.reason.contains("expected int64"),
                "{bad}: {}",
                err.reason
            );
        }
        let batch = one_row(&mut p, &format!(r#"{{{TS},"n":null}}"#));
        assert_eq!(int(&batch, "n"), None);
    }

    #[test]
    fn other_field_types() {
        let fields = [
            ("s", FieldType::Utf8),
            ("f", FieldType::Float64),
            ("b", FieldType::Boolean),
            ("t", FieldType::Timestamp),
            ("j", FieldType::Json),
            ("missing", FieldType::Utf8),
        ];
        let mut p = parser(options(&fields));
        let batch = one_row(
            &mut p,
            &format!(
                r#"{{{TS},"s":12,"f":"1.5","b":true,"t":"2024-01-02T05:00:00+02:00","j":{{"k":[1,"two",null]}}}}"#
            ),
        );
        assert_eq!(text(&batch, "s").as_deref(), Some("12"));
        assert_eq!(
            batch
                .column_by_name("f")
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(0),
            1.5
        );
        assert!(batch.column_by_name("b").unwrap().as_boolean().value(0));
        let t = batch
            .column_by_name("t")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .value(0);
        assert_eq!(
            DateTime::from_timestamp_micros(t).unwrap().to_rfc3339(),
            "2024-01-02T03:00:00+00:00"
        );
        assert_eq!(
            text(&batch, "j").as_deref(),
            Some(r#"{"k":[1,"two",null]}"#)
        );
        assert_eq!(text(&batch, "missing"), None);
        assert_eq!(text(&batch, "attributes"), None, "every key was declared");
        assert_eq!(
            batch.schema().field_with_name("t").unwrap().data_type(),
            &utc_micros()
        );

        let err = error(&mut p, format!(r#"{{{TS},"b":"yes"}}"#).as_bytes());
        assert!(err.reason.contains("expected bool"), "{}", err.reason);
        let err = error(&mut p, format!(r#"{{{TS},"s":{{"a":1}}}}"#).as_bytes());
        assert!(err.reason.contains("expected string"), "{}", err.reason);
    }

    #[test]
    fn attributes_keep_undeclared_keys() {
        let mut p = parser(options(&[("user_id", FieldType::Int64)]));
        let batch = one_row(
            &mut p,
            r#"{"event":"app_open","ts":"2024-01-02T03:04:05Z","user_id":5,"tags":["a","b"],"esc":"q\"\n\u0001é","n":1.0,"k\"e\u0079":{"a\\b":[]}}"#,
        );
        assert_eq!(int(&batch, "user_id"), Some(5));
        assert_eq!(
            text(&batch, "attributes").as_deref(),
            Some(
                r#"{"event":"app_open","tags":["a","b"],"esc":"q\"\n\u0001é","n":1.0,"k\"ey_a\\b":[]}"#
            )
        );
    }

    #[test]
    fn nested_flatten_mode() {
        let mut p = parser(JsonlOptions {
            timestamp_field: "meta.ts".into(),
            ..options(&[("context.device.os", FieldType::Utf8)])
        });
        let batch = one_row(
            &mut p,
            r#"{"meta":{"ts":"2024-01-02T03:04:05Z","host":"a"},"context":{"device":{"os":"ios","model":"x"},"app":{}},"e":"open"}"#,
        );
        assert_eq!(utc(&batch), "2024-01-02T03:04:05+00:00");
        assert_eq!(text(&batch, "context_device_os").as_deref(), Some("ios"));
        assert_eq!(
            text(&batch, "attributes").as_deref(),
            Some(r#"{"meta_host":"a","context_device_model":"x","context_app":{},"e":"open"}"#)
        );

        // The flattened name works too, at any level of nesting.
        let batch = one_row(
            &mut p,
            r#"{"meta_ts":"2024-01-02T03:04:05Z","context_device":{"os":"android"}}"#,
        );
        assert_eq!(
            text(&batch, "context_device_os").as_deref(),
            Some("android")
        );
        assert_eq!(text(&batch, "attributes"), None);
    }

    #[test]
    fn nested_json_mode() {
        let mut p = parser(JsonlOptions {
            timestamp_field: "meta.ts".into(),
            nested: NestedMode::Json,
            ..options(&[("context.device.os", FieldType::Utf8)])
        });
        let batch = one_row(
            &mut p,
            r#"{"meta":{"ts":"2024-01-02T03:04:05Z"},"context":{"device":{"os":"ios","model":"x"},"app":{}},"e":"open"}"#,
        );
        assert_eq!(text(&batch, "context_device_os").as_deref(), Some("ios"));
        assert_eq!(
            text(&batch, "attributes").as_deref(),
            Some(r#"{"context":{"device":{"model":"x"},"app":{}},"e":"open"}"#)
        );

        // The flattened name is just another key here; a non-object at a declared prefix is kept.
        let batch = one_row(
            &mut p,
            r#"{"meta":{"ts":"2024-01-02T03:04:05Z"},"context_device_os":"x","context":"web"}"#,
        );
        assert_eq!(text(&batch, "context_device_os"), None);
        assert_eq!(
            text(&batch, "attributes").as_deref(),
            Some(r#"{"context_device_os":"x","context":"web"}"#)
        );
    }

    #[test]
    fn unix_millis_and_seconds() {
        let mut p = toronto(JsonlOptions {
            timestamp_format: TimestampFormat::UnixMillis,
            ..options(&[])
        });
        // 2024-01-03T04:30:00Z is 23:30 on Jan 2 in Toronto.
        let batch = one_row(&mut p, r#"{"ts":1704256200000}"#);
        assert_eq!(utc(&batch), "2024-01-03T04:30:00+00:00");
        assert_eq!(date(&batch), ymd(2024, 1, 2));
        let batch = one_row(&mut p, r#"{"ts":"1704256200000"}"#);
        assert_eq!(utc(&batch), "2024-01-03T04:30:00+00:00");

        let mut p = toronto(JsonlOptions {
            timestamp_format: TimestampFormat::UnixSeconds,
            ..options(&[])
        });
        let batch = one_row(&mut p, r#"{"ts":1704274200.25}"#);
        assert_eq!(utc(&batch), "2024-01-03T09:30:00.250+00:00");
        assert_eq!(date(&batch), ymd(2024, 1, 3));
    }

    #[test]
    fn rfc3339_with_offsets_and_space() {
        let mut p = toronto(options(&[]));
        let batch = one_row(&mut p, r#"{"ts":"2024-01-02T23:30:00-05:00"}"#);
        assert_eq!(utc(&batch), "2024-01-03T04:30:00+00:00");
        assert_eq!(date(&batch), ymd(2024, 1, 2));
        let batch = one_row(&mut p, r#"{"ts":"2024-01-03 05:00:00.123Z"}"#);
        assert_eq!(utc(&batch), "2024-01-03T05:00:00.123+00:00");
        assert_eq!(date(&batch), ymd(2024, 1, 3), "00:00 in Toronto");
    }

    #[test]
    fn strftime_without_offset_is_read_in_the_project_time_zone() {
        let format = TimestampFormat::Strftime("%d/%m/%Y %H:%M:%S".into());
        let mut p = toronto(JsonlOptions {
            timestamp_format: format,
            ..options(&[])
        });
        let cases = [
            (
                "02/01/2024 23:59:59",
                "2024-01-03T04:59:59+00:00",
                ymd(2024, 1, 2),
            ),
            (
                "03/01/2024 00:00:00",
                "2024-01-03T05:00:00+00:00",
                ymd(2024, 1, 3),
            ),
            // Spring forward on 2024-03-10: 01:59:59 EST, then 03:00 EDT; 02:30 does not exist.
            (
                "10/03/2024 01:59:59",
                "2024-03-10T06:59:59+00:00",
                ymd(2024, 3, 10),
            ),
            (
                "10/03/2024 03:00:00",
                "2024-03-10T07:00:00+00:00",
                ymd(2024, 3, 10),
            ),
            (
                "10/03/2024 02:30:00",
                "2024-03-10T07:30:00+00:00",
                ymd(2024, 3, 10),
            ),
            // Fall back on 2024-11-03: 01:30 happens twice; the first (EDT) is taken.
            (
                "03/11/2024 01:30:00",
                "2024-11-03T05:30:00+00:00",
                ymd(2024, 11, 3),
            ),
            (
                "03/11/2024 23:30:00",
                "2024-11-04T04:30:00+00:00",
                ymd(2024, 11, 3),
            ),
        ];
        for (local, expected, expected_date) in cases {
            let batch = one_row(&mut p, &format!(r#"{{"ts":"{local}"}}"#));
            assert_eq!(utc(&batch), expected, "{local}");
            assert_eq!(date(&batch), expected_date, "{local}");
        }

        let err = error(&mut p, br#"{"ts":"2024-01-02 03:04:05"}"#);
        assert!(err.reason.contains("`%d/%m/%Y %H:%M:%S`"), "{}", err.reason);
        assert!(err.reason.contains("America/Toronto"), "{}", err.reason);

        let with_offset = TimestampFormat::Strftime("%d/%b/%Y:%H:%M:%S %z".into());
        let mut p = toronto(JsonlOptions {
            timestamp_format: with_offset,
            ..options(&[])
        });
        let batch = one_row(&mut p, r#"{"ts":"02/Jan/2024:23:30:00 +0100"}"#);
        assert_eq!(utc(&batch), "2024-01-02T22:30:00+00:00");
        assert_eq!(date(&batch), ymd(2024, 1, 2));
    }

    #[test]
    fn stray_carriage_return_and_bom_are_whitespace() {
        let mut p = parser(options(&[]));
        let batch = one_row(&mut p, "{\"ts\":\"2024-01-02T03:04:05Z\"}\r");
        assert_eq!(utc(&batch), "2024-01-02T03:04:05+00:00");
        let batch = one_row(&mut p, "\u{feff}{\"ts\":\"2024-01-02T03:04:05Z\"} \r");
        assert_eq!(utc(&batch), "2024-01-02T03:04:05+00:00");
        let err = error(&mut p, "\u{feff}{\"ts\":}".as_bytes());
        assert_eq!(err.column, 10, "columns count the byte-order mark");
    }

    #[test]
    fn good_and_bad_lines_in_one_batch() {
        let mut p = parser(options(&[("n", FieldType::Int64)]));
        let lines = [
            r#"{"ts":"2024-01-02T03:04:05Z","n":1}"#,
            r#"{"ts":"2024-01-02T03:04:05Z","n":"x"}"#,
            r#"{"ts":"2024-01-02T03:04:06Z","n":2,"extra":true}"#,
            r#"{"ts":"2024-01-02T03:04:07Z" "n":3}"#,
            r#"{"ts":"2024-01-02T03:04:08Z"}"#,
        ];
        let mut errors = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if let Err(err) = p.push_line(line.as_bytes(), i as u64 + 1) {
                errors.push((i + 1, err));
            }
        }
        assert_eq!(p.len(), 3);
        assert_eq!(errors.len(), 2);
        assert_eq!((errors[0].0, errors[0].1.column), (2, 34));
        assert_eq!((errors[1].0, errors[1].1.column), (4, 30));
        let batch = p.finish_batch().unwrap();
        assert!(p.is_empty());
        assert_eq!(batch.num_rows(), 3);
        let line = batch
            .column_by_name("line")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(line.values().to_vec(), [1, 3, 5]);
        let n = batch
            .column_by_name("n")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(n.iter().collect::<Vec<_>>(), [Some(1), Some(2), None]);
        let attributes = batch
            .column_by_name("attributes")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(
            attributes.iter().collect::<Vec<_>>(),
            [None, Some(r#"{"extra":true}"#), None]
        );
        assert_eq!(p.finish_batch().unwrap().num_rows(), 0);
    }

    #[test]
    fn names_parse() {
        assert_eq!(
            "unix_ms".parse::<TimestampFormat>().unwrap(),
            TimestampFormat::UnixMillis
        );
        assert_eq!(
            "rfc3339".parse::<TimestampFormat>().unwrap(),
            TimestampFormat::Rfc3339
        );
        assert_eq!(
            "%s".parse::<TimestampFormat>().unwrap(),
            TimestampFormat::Strftime("%s".into())
        );
        let err = "unix".parse::<TimestampFormat>().unwrap_err().to_string();
        assert!(err.contains("rfc3339, unix_s, unix_ms, unix_us"), "{err}");
        assert!(matches!(
            "%Q".parse::<TimestampFormat>(),
            Err(JsonlError::InvalidStrftime(_))
        ));
        assert_eq!("bool".parse::<FieldType>().unwrap(), FieldType::Boolean);
        for ty in ["string", "int64", "float64", "bool", "timestamp", "json"] {
            assert_eq!(ty.parse::<FieldType>().unwrap().to_string(), ty);
        }
        let err = "integer".parse::<FieldType>().unwrap_err().to_string();
        assert!(
            err.contains("string, int64, float64, bool, timestamp, json"),
            "{err}"
        );
    }

    #[test]
    fn bad_options_are_rejected() {
        let new = |o| JsonlParser::new(o, ParseOptions::default()).map(drop);
        assert!(matches!(
            new(options(&[("a..b", FieldType::Utf8)])),
            Err(JsonlError::InvalidPath(_))
        ));
        assert!(matches!(
            new(options(&[
                ("a.b", FieldType::Utf8),
                ("a_b", FieldType::Utf8)
            ])),
            Err(JsonlError::DuplicateColumn { .. })
        ));
        assert!(matches!(
            new(options(&[("a", FieldType::Json), ("a.b", FieldType::Utf8)])),
            Err(JsonlError::Overlap { .. })
        ));
        assert!(matches!(
            new(options(&[("line", FieldType::Int64)])),
            Err(JsonlError::ReservedColumn { .. })
        ));
        assert!(matches!(
            new(options(&[("ts", FieldType::Utf8)])),
            Err(JsonlError::TimestampDeclared(_))
        ));
        assert!(matches!(
            new(JsonlOptions {
                timestamp_format: TimestampFormat::Strftime("%Q".into()),
                ..options(&[])
            }),
            Err(JsonlError::InvalidStrftime(_))
        ));
    }

    /// `cargo test --release -p darkroom-logs jsonl_throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "throughput measurement; run in release"]
    fn jsonl_throughput() {
        let mut p = parser(options(&[
            ("event", FieldType::Utf8),
            ("user_id", FieldType::Int64),
            ("context.device.os", FieldType::Utf8),
            ("duration_ms", FieldType::Float64),
        ]));
        let lines: Vec<String> = (0..200_000)
            .map(|i| {
                format!(
                    r#"{{"ts":"2024-01-02T03:{:02}:{:02}.{:03}Z","event":"app_open","user_id":{i},"session":"s-{i:x}-9f2c","context":{{"device":{{"os":"ios","model":"iPhone15,2","id":"d{i}"}},"app":{{"version":"4.2.{}","build":812}}}},"duration_ms":{}.5,"tags":["a","b"]}}"#,
                    i / 60 % 60,
                    i % 60,
                    i % 1000,
                    i % 7,
                    i % 900
                )
            })
            .collect();
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        let start = std::time::Instant::now();
        for (i, line) in lines.iter().enumerate() {
            p.push_line(line.as_bytes(), i as u64).unwrap();
            if p.len() == 65_536 {
                p.finish_batch().unwrap();
            }
        }
        p.finish_batch().unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{:.1} MB/s, {:.0} lines/s",
            bytes as f64 / secs / 1e6,
            lines.len() as f64 / secs
        );
    }
}
