//! The JSON of one line: a tree that borrows its strings from the input (serde_json drives
//! the visitors below), compact re-serialisation for `attributes`, and byte offsets and
//! quotes for error messages.

use super::*;

/// Writes `,"key":` (no comma before the first key of an object). Only a key that had
/// escapes in the line (an owned one) can need escaping again; see [`Val::Str`].
pub(super) fn write_key(out: &mut String, key: &str, escape: bool, empty: &mut bool) {
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
pub(super) fn write_json(out: &mut String, value: &Val<'_>) {
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

pub(super) fn write_json_str(out: &mut String, s: &str) {
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
pub(super) fn quote(value: &Val<'_>) -> String {
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
pub(super) fn value_offset(body: &[u8], slot: Slot<'_>) -> usize {
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
pub(super) enum Val<'a> {
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
    pub(super) fn kind(&self) -> &'static str {
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

pub(super) fn parse_json(body: &[u8]) -> Result<Val<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = Val::deserialize(&mut deserializer)?;
    // Trailing whitespace (a stray `\r` included) is fine; anything else is not.
    deserializer.end()?;
    Ok(value)
}

/// A serde_json error as a line error: its column, or the first byte that is not UTF-8 if
/// that comes earlier (serde_json reports a bad string at its end).
pub(super) fn json_error(body: &[u8], base: usize, error: &serde_json::Error) -> LineError {
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

pub(super) struct ValVisitor;

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
pub(super) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

pub(super) struct KeyVisitor;

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
