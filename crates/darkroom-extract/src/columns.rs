//! Warehouse column types and the Arrow builders every database reader fills.
//!
//! A reader maps each source column to a [`Ty`] (or refuses it with an error naming the
//! column and type), then appends values through [`Builder`]'s typed `push_*` methods. Text
//! values (MySQL's text protocol, SQLite) go through [`Builder::push_text`], which parses
//! exactly: a decimal keeps every digit or fails, never rounds.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder,
    ListArray, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};

/// The type a source column has in the warehouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// Exact decimal: precision 1..=38, scale 0..=precision.
    Decimal(u8, i8),
    /// UTF-8 text; also uuid, json, enums and times of day, in their text form.
    Text,
    Binary,
    /// Days since 1970-01-01.
    Date,
    /// Microseconds since 1970-01-01 UTC.
    Timestamp,
    List(Box<Ty>),
}

impl Ty {
    pub fn arrow(&self) -> DataType {
        match self {
            Self::Bool => DataType::Boolean,
            Self::Int8 => DataType::Int8,
            Self::Int16 => DataType::Int16,
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::Float32 => DataType::Float32,
            Self::Float64 => DataType::Float64,
            Self::Decimal(p, s) => DataType::Decimal128(*p, *s),
            Self::Text => DataType::Utf8,
            Self::Binary => DataType::Binary,
            Self::Date => DataType::Date32,
            Self::Timestamp => timestamp_type(),
            Self::List(inner) => DataType::List(list_field(inner)),
        }
    }
}

/// `timestamp` in Delta: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The element field of a list, named as Delta names it.
fn list_field(inner: &Ty) -> FieldRef {
    Arc::new(Field::new("element", inner.arrow(), true))
}

/// The largest precision an Arrow/Delta decimal holds.
pub const MAX_DECIMAL_PRECISION: u8 = 38;

/// 10^n for n in 0..=38 (the rest do not fit a decimal).
pub fn pow10(n: u32) -> Option<i128> {
    POW10.get(n as usize).copied()
}

const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// One column being filled.
pub enum Builder {
    Bool(BooleanBuilder),
    Int8(Int8Builder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Decimal {
        b: Decimal128Builder,
        precision: u8,
        scale: i8,
    },
    Text(StringBuilder),
    Binary(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    List {
        field: FieldRef,
        values: Box<Builder>,
        offsets: Vec<i32>,
        nulls: NullBufferBuilder,
    },
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Builder")
    }
}

/// Why a value could not be appended.
pub type ValueResult = Result<(), String>;

impl Builder {
    pub fn new(ty: &Ty, capacity: usize) -> Self {
        match ty {
            Ty::Bool => Self::Bool(BooleanBuilder::with_capacity(capacity)),
            Ty::Int8 => Self::Int8(Int8Builder::with_capacity(capacity)),
            Ty::Int16 => Self::Int16(Int16Builder::with_capacity(capacity)),
            Ty::Int32 => Self::Int32(Int32Builder::with_capacity(capacity)),
            Ty::Int64 => Self::Int64(Int64Builder::with_capacity(capacity)),
            Ty::Float32 => Self::Float32(Float32Builder::with_capacity(capacity)),
            Ty::Float64 => Self::Float64(Float64Builder::with_capacity(capacity)),
            Ty::Decimal(p, s) => Self::Decimal {
                b: Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .unwrap_or_else(|_| Decimal128Builder::with_capacity(capacity)),
                precision: *p,
                scale: *s,
            },
            Ty::Text => Self::Text(StringBuilder::with_capacity(capacity, capacity * 16)),
            Ty::Binary => Self::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            Ty::Date => Self::Date(Date32Builder::with_capacity(capacity)),
            Ty::Timestamp => Self::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
            Ty::List(inner) => {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                Self::List {
                    field: list_field(inner),
                    values: Box::new(Self::new(inner, capacity)),
                    offsets,
                    nulls: NullBufferBuilder::new(capacity),
                }
            }
        }
    }

    pub fn push_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::Int8(b) => b.append_null(),
            Self::Int16(b) => b.append_null(),
            Self::Int32(b) => b.append_null(),
            Self::Int64(b) => b.append_null(),
            Self::Float32(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Decimal { b, .. } => b.append_null(),
            Self::Text(b) => b.append_null(),
            Self::Binary(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Timestamp(b) => b.append_null(),
            Self::List { offsets, nulls, .. } => {
                let last = offsets.last().copied().unwrap_or(0);
                offsets.push(last);
                nulls.append_null();
            }
        }
    }

    pub fn push_bool(&mut self, v: bool) -> ValueResult {
        match self {
            Self::Bool(b) => b.append_value(v),
            _ => return Err(self.mismatch("a boolean")),
        }
        Ok(())
    }

    /// An integer, into whichever integer (or decimal) width the column has; out of range is
    /// an error, never a wrap.
    pub fn push_i64(&mut self, v: i64) -> ValueResult {
        let range = |t: &str| format!("{v} does not fit in {t}");
        match self {
            Self::Int8(b) => b.append_value(i8::try_from(v).map_err(|_| range("int8"))?),
            Self::Int16(b) => b.append_value(i16::try_from(v).map_err(|_| range("int16"))?),
            Self::Int32(b) => b.append_value(i32::try_from(v).map_err(|_| range("int32"))?),
            Self::Int64(b) => b.append_value(v),
            Self::Decimal { .. } => return self.push_decimal_unscaled(i128::from(v), 0),
            Self::Float64(b) if v.unsigned_abs() <= (1 << 53) => b.append_value(v as f64),
            Self::Bool(b) if v == 0 || v == 1 => b.append_value(v == 1),
            _ => return Err(self.mismatch("an integer")),
        }
        Ok(())
    }

    pub fn push_f64(&mut self, v: f64) -> ValueResult {
        match self {
            Self::Float64(b) => b.append_value(v),
            Self::Float32(b) => {
                let narrow = v as f32;
                if f64::from(narrow) != v && v.is_finite() {
                    return Err(format!("{v} cannot be held exactly by a float4 column"));
                }
                b.append_value(narrow);
            }
            Self::Decimal { .. } if v.is_finite() => {
                // shortest text that reads back as the same float, then parsed exactly
                return self.push_text(&format!("{v}"), None);
            }
            _ => return Err(self.mismatch("a floating-point number")),
        }
        Ok(())
    }

    pub fn push_f32(&mut self, v: f32) -> ValueResult {
        match self {
            Self::Float32(b) => b.append_value(v),
            Self::Float64(b) => b.append_value(f64::from(v)),
            _ => return Err(self.mismatch("a floating-point number")),
        }
        Ok(())
    }

    /// A decimal given as an integer scaled by 10^`scale`; rescaled to the column's scale
    /// only when no digit is lost.
    pub fn push_decimal_unscaled(&mut self, v: i128, scale: i32) -> ValueResult {
        let Self::Decimal {
            b,
            precision,
            scale: target,
        } = self
        else {
            return Err(self.mismatch("a decimal"));
        };
        let target_scale = i32::from(*target);
        let value = if scale == target_scale {
            Some(v)
        } else if scale < target_scale {
            pow10((target_scale - scale).unsigned_abs()).and_then(|m| v.checked_mul(m))
        } else {
            let d = pow10((scale - target_scale).unsigned_abs()).unwrap_or(i128::MAX);
            if v % d != 0 {
                return Err(format!(
                    "{} has more decimal places than the column's scale {target}",
                    format_decimal(v, scale)
                ));
            }
            Some(v / d)
        };
        let limit = pow10(u32::from(*precision)).unwrap_or(i128::MAX);
        match value {
            Some(x) if x.abs() < limit => {
                b.append_value(x);
                Ok(())
            }
            _ => Err(format!(
                "{} does not fit in decimal({precision},{target})",
                format_decimal(v, scale)
            )),
        }
    }

    pub fn push_str(&mut self, v: &str) -> ValueResult {
        match self {
            Self::Text(b) => b.append_value(v),
            _ => return Err(self.mismatch("text")),
        }
        Ok(())
    }

    pub fn push_bytes(&mut self, v: &[u8]) -> ValueResult {
        match self {
            Self::Binary(b) => b.append_value(v),
            _ => return Err(self.mismatch("bytes")),
        }
        Ok(())
    }

    /// Days since 1970-01-01.
    pub fn push_date(&mut self, days: i32) -> ValueResult {
        match self {
            Self::Date(b) => b.append_value(days),
            _ => return Err(self.mismatch("a date")),
        }
        Ok(())
    }

    /// Microseconds since 1970-01-01 UTC.
    pub fn push_timestamp(&mut self, micros: i64) -> ValueResult {
        match self {
            Self::Timestamp(b) => b.append_value(micros),
            _ => return Err(self.mismatch("a timestamp")),
        }
        Ok(())
    }

    /// The list builder's element builder, for appending one list's elements; finish the
    /// list with [`Builder::end_list`].
    pub fn list_values(&mut self) -> Option<&mut Builder> {
        match self {
            Self::List { values, .. } => Some(values),
            _ => None,
        }
    }

    /// Close a list whose elements were appended to [`Builder::list_values`].
    pub fn end_list(&mut self) -> ValueResult {
        match self {
            Self::List {
                values,
                offsets,
                nulls,
                ..
            } => {
                let len = i32::try_from(values.len())
                    .map_err(|_| "a list column holds more than 2^31 elements".to_string())?;
                offsets.push(len);
                nulls.append_non_null();
                Ok(())
            }
            _ => Err(self.mismatch("a list")),
        }
    }

    /// Parse a value from its text form, exactly. `tz` is the zone a timestamp without an
    /// offset is written in (`None`: UTC).
    pub fn push_text(&mut self, text: &str, tz: Option<chrono_tz::Tz>) -> ValueResult {
        match self {
            Self::Text(b) => b.append_value(text),
            Self::Bool(b) => match text {
                "1" | "t" | "true" | "TRUE" | "True" => b.append_value(true),
                "0" | "f" | "false" | "FALSE" | "False" => b.append_value(false),
                _ => return Err(format!("`{text}` is not a boolean")),
            },
            Self::Int8(_) | Self::Int16(_) | Self::Int32(_) | Self::Int64(_) => {
                let v: i64 = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{text}` is not an integer"))?;
                return self.push_i64(v);
            }
            Self::Float32(b) => b.append_value(
                text.trim()
                    .parse()
                    .map_err(|_| format!("`{text}` is not a number"))?,
            ),
            Self::Float64(b) => b.append_value(
                text.trim()
                    .parse()
                    .map_err(|_| format!("`{text}` is not a number"))?,
            ),
            Self::Decimal { .. } => {
                let (v, scale) = parse_decimal(text)?;
                return self.push_decimal_unscaled(v, scale);
            }
            Self::Binary(b) => b.append_value(text.as_bytes()),
            Self::Date(b) => {
                let d = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                    .map_err(|_| format!("`{text}` is not a date (YYYY-MM-DD)"))?;
                b.append_value(days_since_epoch(d));
            }
            Self::Timestamp(b) => b.append_value(parse_timestamp(text, tz)?),
            Self::List { .. } => return Err(self.mismatch("text")),
        }
        Ok(())
    }

    fn len(&self) -> usize {
        match self {
            Self::Bool(b) => b.len(),
            Self::Int8(b) => b.len(),
            Self::Int16(b) => b.len(),
            Self::Int32(b) => b.len(),
            Self::Int64(b) => b.len(),
            Self::Float32(b) => b.len(),
            Self::Float64(b) => b.len(),
            Self::Decimal { b, .. } => b.len(),
            Self::Text(b) => b.len(),
            Self::Binary(b) => b.len(),
            Self::Date(b) => b.len(),
            Self::Timestamp(b) => b.len(),
            Self::List { offsets, .. } => offsets.len() - 1,
        }
    }

    fn mismatch(&self, what: &str) -> String {
        format!("internal error: {what} given to a column of another type ({self:?})")
    }

    /// The column so far, leaving the builder empty for the next batch.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Int8(b) => Arc::new(b.finish()),
            Self::Int16(b) => Arc::new(b.finish()),
            Self::Int32(b) => Arc::new(b.finish()),
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float32(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Decimal { b, .. } => Arc::new(b.finish()),
            Self::Text(b) => Arc::new(b.finish()),
            Self::Binary(b) => Arc::new(b.finish()),
            Self::Date(b) => Arc::new(b.finish()),
            Self::Timestamp(b) => Arc::new(b.finish()),
            Self::List {
                field,
                values,
                offsets,
                nulls,
            } => {
                let taken = std::mem::replace(offsets, vec![0]);
                let array = ListArray::new(
                    Arc::clone(field),
                    OffsetBuffer::new(taken.into()),
                    values.finish(),
                    nulls.finish(),
                );
                Arc::new(array)
            }
        }
    }
}

/// Days from 1970-01-01 to `d`.
pub fn days_since_epoch(d: NaiveDate) -> i32 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    i32::try_from(d.signed_duration_since(epoch).num_days()).unwrap_or(i32::MAX)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` (or with `T`), with an optional `Z`/`+HH:MM` offset; without
/// one, the time is read in `tz` (`None`: UTC). Microseconds since the Unix epoch, UTC.
pub fn parse_timestamp(text: &str, tz: Option<chrono_tz::Tz>) -> Result<i64, String> {
    let t = text.trim();
    let exact = |dt: chrono::DateTime<chrono::FixedOffset>| {
        if dt.timestamp_subsec_nanos().is_multiple_of(1000) {
            Ok(dt.timestamp_micros())
        } else {
            Err(format!(
                "`{text}` has more than 6 decimals of a second, which a timestamp cannot hold"
            ))
        }
    };
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return exact(dt);
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = chrono::DateTime::parse_from_str(t, format) {
            return exact(dt);
        }
    }
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d"]
        .iter()
        .find_map(|f| {
            NaiveDateTime::parse_from_str(t, f).ok().or_else(|| {
                (*f == "%Y-%m-%d")
                    .then(|| NaiveDate::parse_from_str(t, f).ok())
                    .flatten()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })
        })
        .ok_or_else(|| format!("`{text}` is not a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff])"))?;
    if !naive
        .and_utc()
        .timestamp_subsec_nanos()
        .is_multiple_of(1000)
    {
        return Err(format!(
            "`{text}` has more than 6 decimals of a second, which a timestamp cannot hold"
        ));
    }
    naive_to_utc_micros(naive, tz)
}

/// A wall-clock time in `tz` (`None`: UTC) as microseconds since the epoch. A time that
/// does not exist (the hour skipped when clocks go forward) is an error; one that exists twice
/// (clocks going back) is read as the earlier.
pub fn naive_to_utc_micros(naive: NaiveDateTime, tz: Option<chrono_tz::Tz>) -> Result<i64, String> {
    match tz {
        None | Some(chrono_tz::UTC) => Ok(naive.and_utc().timestamp_micros()),
        Some(tz) => match tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(dt) => Ok(dt.timestamp_micros()),
            chrono::LocalResult::Ambiguous(first, _) => Ok(first.timestamp_micros()),
            chrono::LocalResult::None => Err(format!(
                "{naive} does not exist in time zone {tz} (clocks went forward)"
            )),
        },
    }
}

/// Parse `-123.4500` into (digits as an integer, number of decimal places), exactly; an
/// exponent (`1.5e3`) is applied without rounding.
pub fn parse_decimal(text: &str) -> Result<(i128, i32), String> {
    let bad = || format!("`{text}` is not a decimal number");
    let t = text.trim();
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (t, 0),
    };
    let (negative, digits) = match mantissa.as_bytes().first() {
        Some(b'-') => (true, &mantissa[1..]),
        Some(b'+') => (false, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }
    let mut v: i128 = 0;
    for c in int_part.bytes().chain(frac_part.bytes()) {
        if !c.is_ascii_digit() {
            return Err(bad());
        }
        v = v
            .checked_mul(10)
            .and_then(|x| x.checked_add(i128::from(c - b'0')))
            .ok_or_else(|| format!("`{text}` has more than 38 digits"))?;
    }
    let frac_len = i32::try_from(frac_part.len()).map_err(|_| bad())?;
    let mut scale = frac_len.checked_sub(exponent).ok_or_else(bad)?;
    if scale < 0 {
        v = pow10(scale.unsigned_abs())
            .and_then(|m| v.checked_mul(m))
            .ok_or_else(|| format!("`{text}` has more than 38 digits"))?;
        scale = 0;
    }
    Ok((if negative { -v } else { v }, scale))
}

/// `v / 10^scale` as text, for messages.
pub fn format_decimal(v: i128, scale: i32) -> String {
    if scale <= 0 {
        return v.to_string();
    }
    let digits = v.unsigned_abs().to_string();
    let scale = scale.unsigned_abs() as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Decimal128Array};

    #[test]
    fn decimals_parse_exactly_and_never_round() {
        assert_eq!(parse_decimal("-123.4500"), Ok((-1_234_500, 4)));
        assert_eq!(parse_decimal("1.5e3"), Ok((1500, 0)));
        assert_eq!(parse_decimal("0.001"), Ok((1, 3)));
        assert!(parse_decimal("12a").is_err());
        assert!(parse_decimal("").is_err());
        let mut b = Builder::new(&Ty::Decimal(10, 2), 4);
        b.push_text("19.90", None).unwrap();
        b.push_text("-0.5", None).unwrap();
        assert!(
            b.push_text("1.005", None)
                .unwrap_err()
                .contains("decimal places")
        );
        assert!(
            b.push_text("123456789.00", None)
                .unwrap_err()
                .contains("does not fit")
        );
        let array = b.finish();
        let array = array.as_any().downcast_ref::<Decimal128Array>().unwrap();
        assert_eq!(array.value(0), 1990);
        assert_eq!(array.value(1), -50);
        let max = "9".repeat(38);
        let mut b = Builder::new(&Ty::Decimal(38, 0), 1);
        b.push_text(&max, None).unwrap();
        assert_eq!(format_decimal(-5, 3), "-0.005");
    }

    #[test]
    fn integers_are_range_checked() {
        let mut b = Builder::new(&Ty::Int16, 2);
        b.push_i64(32767).unwrap();
        assert!(b.push_i64(32768).unwrap_err().contains("does not fit"));
    }

    #[test]
    fn timestamps_read_in_the_given_zone() {
        let toronto: chrono_tz::Tz = "America/Toronto".parse().unwrap();
        let utc = parse_timestamp("2026-01-01 05:00:00", None).unwrap();
        let local = parse_timestamp("2026-01-01 00:00:00", Some(toronto)).unwrap();
        assert_eq!(utc, local);
        assert_eq!(
            parse_timestamp("2026-01-01T00:00:00-05:00", None).unwrap(),
            utc
        );
        assert!(parse_timestamp("2026-03-08 02:30:00", Some(toronto)).is_err());
        assert!(parse_timestamp("2026-01-01 00:00:00.1234567", None).is_err());
        assert!(parse_timestamp("2026-01-01T00:00:00.1234567Z", None).is_err());
    }

    #[test]
    fn lists_build_with_nulls_and_empties() {
        let mut b = Builder::new(&Ty::List(Box::new(Ty::Int32)), 4);
        b.list_values().unwrap().push_i64(1).unwrap();
        b.list_values().unwrap().push_null();
        b.end_list().unwrap();
        b.end_list().unwrap(); // empty
        b.push_null();
        let a = b.finish();
        assert_eq!(a.len(), 3);
        assert!(a.is_null(2));
        assert_eq!(a.data_type(), &Ty::List(Box::new(Ty::Int32)).arrow());
    }
}
