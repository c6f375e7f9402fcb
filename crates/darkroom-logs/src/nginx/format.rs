//! Compiling an nginx `log_format` string into the plan the parser follows.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::scan::Literal;

/// nginx's predefined `combined` format.
pub const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;

/// nginx's `common` format (`combined` without referer and user agent).
pub const COMMON: &str =
    r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent"#;

/// Why a `log_format` string cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The format string is empty.
    #[error("the log format is empty; give \"combined\", \"common\" or an nginx log_format string")]
    Empty,
    /// `${` without a closing `}`.
    #[error("character {at}: '${{' is not closed by '}}'; write ${{name}} or $name")]
    UnterminatedBrace {
        /// 1-based character position of the `$`.
        at: usize,
    },
    /// `$` not followed by a variable name.
    #[error(
        "character {at}: '$' must be followed by a variable name (letters, digits, '_'); \
         nginx has no escape for a literal '$' in log_format"
    )]
    MissingName {
        /// 1-based character position of the `$`.
        at: usize,
    },
    /// Two variables with no literal text between them cannot be told apart.
    #[error(
        "character {at}: ${second} follows ${first} with nothing between them, so the parser \
         cannot tell where one ends; put a separator (such as a space) between them"
    )]
    AdjacentVariables {
        /// 1-based character position of the second variable's `$`.
        at: usize,
        /// The first variable.
        first: String,
        /// The second variable.
        second: String,
    },
    /// Two variables would produce the same column.
    #[error(
        "character {at}: ${variable} would produce column '{column}', which an earlier variable \
         already produces; remove one of them from the format"
    )]
    DuplicateColumn {
        /// 1-based character position of the variable's `$`.
        at: usize,
        /// The variable.
        variable: String,
        /// The clashing column name.
        column: String,
    },
    /// Every row needs `event_ts`.
    #[error(
        "the format has no timestamp variable; every row needs event_ts, so include \
         $time_local, $time_iso8601 or $msec"
    )]
    NoTimestamp,
}

/// The shape of a timestamp variable's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeKind {
    /// `10/Oct/2000:13:55:36 -0700`
    Local,
    /// `2000-10-10T13:55:36-07:00`
    Iso8601,
    /// `1700000000.123`
    Msec,
}

/// What a variable becomes in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `remote_addr`, Utf8 not null, after the IP policy.
    RemoteAddr,
    /// A nullable Utf8 column named like the variable.
    Text,
    /// `event_ts` and `event_date`.
    Time(TimeKind),
    /// `request_method`, `request_path`, `request_protocol`.
    Request,
    /// `status`, Int32 not null.
    Status,
    /// A nullable Int64 counter.
    Int64,
    /// A nullable Float64 (seconds).
    Float64,
}

/// How the end of a field is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The field runs to the end of the line.
    Rest,
    /// The line ends with `term`; the field runs up to it.
    Suffix,
    /// The field ends at the first occurrence of `term` (for quoted fields: whose `"` is not
    /// escaped by a backslash).
    Search,
}

/// One variable of the format and the literal text that follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldSpec {
    /// Variable name without `$`.
    pub var: String,
    pub kind: Kind,
    /// Between `"` and `"`: may contain escaped quotes.
    pub quoted: bool,
    /// The literal text after the field (may be empty only for the last field).
    pub term: Literal,
    pub end: End,
    /// The usual width of the field, tried before searching (timestamps have a fixed width).
    pub width: Option<usize>,
    /// The value can never contain the first byte of `term` (an address or a number followed
    /// by a space), so the field ends at that byte and `term` must follow there.
    pub strict: bool,
}

/// A compiled nginx `log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxFormat {
    source: String,
    pub(crate) prefix: Vec<u8>,
    pub(crate) fields: Vec<FieldSpec>,
}

impl NginxFormat {
    /// `"combined"`, `"common"`, or an nginx `log_format` string such as
    /// `$remote_addr [$time_local] "$request" $status`.
    pub fn from_name_or_format(s: &str) -> Result<Self, FormatError> {
        match s {
            "combined" => Self::compile(COMBINED),
            "common" => Self::compile(COMMON),
            _ => Self::compile(s),
        }
    }

    /// nginx's `combined` format.
    pub fn combined() -> Self {
        Self::builtin(COMBINED)
    }

    /// nginx's `common` format.
    pub fn common() -> Self {
        Self::builtin(COMMON)
    }

    /// The format string this was compiled from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The variables of the format, in order, without `$`.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.var.as_str())
    }

    /// The Arrow schema of the batches a parser for this format produces: the columns of each
    /// variable in format order, then `line`.
    pub fn schema(&self) -> SchemaRef {
        let mut fields = Vec::new();
        for f in &self.fields {
            fields.extend(columns_of(&f.var, f.kind));
        }
        fields.push(Field::new("line", DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }

    /// The text columns whose values vary freely: every text variable and the client
    /// address, and the request's target; not the request's method and protocol (a handful
    /// of short values).
    pub fn free_text_columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.fields {
            match f.kind {
                Kind::RemoteAddr | Kind::Text => out.push(f.var.clone()),
                Kind::Request => out.push("request_path".to_owned()),
                Kind::Time(_) | Kind::Status | Kind::Int64 | Kind::Float64 => {}
            }
        }
        out
    }

    fn builtin(format: &str) -> Self {
        match Self::compile(format) {
            Ok(f) => f,
            // The built-in formats are constants covered by tests.
            Err(e) => unreachable!("built-in nginx format does not compile: {e}"),
        }
    }

    fn compile(source: &str) -> Result<Self, FormatError> {
        if source.is_empty() {
            return Err(FormatError::Empty);
        }
        let tokens = tokenize(source)?;
        let mut prefix = Vec::new();
        let mut vars: Vec<(usize, String, Vec<u8>)> = Vec::new();
        for token in tokens {
            match token {
                Token::Literal(text) => match vars.last_mut() {
                    Some((_, _, after)) => after.extend_from_slice(text.as_bytes()),
                    None => prefix.extend_from_slice(text.as_bytes()),
                },
                Token::Var { at, name } => {
                    if let Some((_, prev, after)) = vars.last()
                        && after.is_empty()
                    {
                        return Err(FormatError::AdjacentVariables {
                            at,
                            first: prev.clone(),
                            second: name,
                        });
                    }
                    vars.push((at, name, Vec::new()));
                }
            }
        }
        let mut fields = Vec::with_capacity(vars.len());
        let mut seen_time = false;
        let mut column_names: Vec<String> = vec!["line".to_owned()];
        let count = vars.len();
        for (i, (at, var, term)) in vars.into_iter().enumerate() {
            let mut kind = kind_of(&var);
            if let Kind::Time(_) = kind {
                // Only the first timestamp becomes event_ts; any other is kept as text.
                if seen_time {
                    kind = Kind::Text;
                }
                seen_time = true;
            }
            for column in columns_of(&var, kind) {
                let name = column.name().clone();
                if column_names.contains(&name) {
                    return Err(FormatError::DuplicateColumn {
                        at,
                        variable: var,
                        column: name,
                    });
                }
                column_names.push(name);
            }
            let before = match fields.last() {
                Some(FieldSpec { term, .. }) => term.bytes.as_slice(),
                None => prefix.as_slice(),
            };
            let quoted = before.last() == Some(&b'"') && term.first() == Some(&b'"');
            let end = if term.is_empty() {
                End::Rest
            } else if i + 1 == count {
                End::Suffix
            } else {
                End::Search
            };
            let width = match kind {
                Kind::Time(TimeKind::Local) => Some(26),
                Kind::Time(TimeKind::Iso8601) => Some(25),
                _ => None,
            };
            let strict = end == End::Search
                && is_compact(kind)
                && term
                    .first()
                    .is_some_and(|&b| !b.is_ascii_alphanumeric() && !b".:-+%_".contains(&b));
            fields.push(FieldSpec {
                var,
                kind,
                quoted,
                term: Literal::new(term),
                end,
                width,
                strict,
            });
        }
        if !seen_time {
            return Err(FormatError::NoTimestamp);
        }
        Ok(Self {
            source: source.to_owned(),
            prefix,
            fields,
        })
    }
}

enum Token<'a> {
    Literal(&'a str),
    Var { at: usize, name: String },
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits a format into literals and variables; positions are 1-based characters.
fn tokenize(source: &str) -> Result<Vec<Token<'_>>, FormatError> {
    let bytes = source.as_bytes();
    let char_at = |byte: usize| source[..byte].chars().count() + 1;
    let mut tokens = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        if lit_start < i {
            tokens.push(Token::Literal(&source[lit_start..i]));
        }
        let dollar = i;
        let (name, next) = if bytes.get(i + 1) == Some(&b'{') {
            let close = bytes[i + 2..].iter().position(|&b| b == b'}').ok_or(
                FormatError::UnterminatedBrace {
                    at: char_at(dollar),
                },
            )?;
            let name = &source[i + 2..i + 2 + close];
            if name.is_empty() || !name.bytes().all(is_name_byte) {
                return Err(FormatError::MissingName {
                    at: char_at(dollar),
                });
            }
            (name, i + 3 + close)
        } else {
            let len = bytes[i + 1..]
                .iter()
                .take_while(|&&b| is_name_byte(b))
                .count();
            if len == 0 {
                return Err(FormatError::MissingName {
                    at: char_at(dollar),
                });
            }
            (&source[i + 1..i + 1 + len], i + 1 + len)
        };
        tokens.push(Token::Var {
            at: char_at(dollar),
            name: name.to_owned(),
        });
        i = next;
        lit_start = next;
    }
    if lit_start < bytes.len() {
        tokens.push(Token::Literal(&source[lit_start..]));
    }
    Ok(tokens)
}

fn kind_of(var: &str) -> Kind {
    match var {
        "remote_addr" => Kind::RemoteAddr,
        "time_local" => Kind::Time(TimeKind::Local),
        "time_iso8601" => Kind::Time(TimeKind::Iso8601),
        "msec" => Kind::Time(TimeKind::Msec),
        "request" => Kind::Request,
        "status" => Kind::Status,
        "body_bytes_sent"
        | "bytes_sent"
        | "request_length"
        | "connection"
        | "connection_requests" => Kind::Int64,
        "request_time" => Kind::Float64,
        _ => Kind::Text,
    }
}

/// Values of these kinds hold only letters, digits and `.:-+%_`.
fn is_compact(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::RemoteAddr
            | Kind::Status
            | Kind::Int64
            | Kind::Float64
            | Kind::Time(TimeKind::Iso8601 | TimeKind::Msec)
    )
}

fn columns_of(var: &str, kind: Kind) -> Vec<Field> {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    match kind {
        Kind::RemoteAddr => vec![Field::new(var, DataType::Utf8, false)],
        Kind::Text => vec![text(var)],
        Kind::Time(_) => vec![
            Field::new(
                "event_ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("event_date", DataType::Date32, false),
        ],
        Kind::Request => vec![
            text("request_method"),
            text("request_path"),
            text("request_protocol"),
        ],
        Kind::Status => vec![Field::new(var, DataType::Int32, false)],
        Kind::Int64 => vec![Field::new(var, DataType::Int64, true)],
        Kind::Float64 => vec![Field::new(var, DataType::Float64, true)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const DEMO: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" vid=$cookie_vid uid=$user_id rt=$request_time"#;

    fn names(f: &NginxFormat) -> Vec<String> {
        f.schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    #[test]
    fn combined_and_common_compile_by_name() {
        let c = NginxFormat::from_name_or_format("combined").unwrap();
        assert_eq!(c, NginxFormat::combined());
        assert_eq!(c.as_str(), COMBINED);
        assert_eq!(
            names(&c),
            [
                "remote_addr",
                "remote_user",
                "event_ts",
                "event_date",
                "request_method",
                "request_path",
                "request_protocol",
                "status",
                "body_bytes_sent",
                "http_referer",
                "http_user_agent",
                "line"
            ]
        );
        let quoted: Vec<_> = c
            .fields
            .iter()
            .filter(|f| f.quoted)
            .map(|f| f.var.as_str())
            .collect();
        assert_eq!(quoted, ["request", "http_referer", "http_user_agent"]);
        assert_eq!(c.fields.last().unwrap().end, End::Suffix);
        assert_eq!(
            NginxFormat::from_name_or_format("common").unwrap(),
            NginxFormat::common()
        );
        assert_eq!(NginxFormat::common().fields.last().unwrap().end, End::Rest);
    }

    #[test]
    fn free_text_columns_are_the_text_that_varies_freely() {
        let f = NginxFormat::from_name_or_format(DEMO).unwrap();
        assert_eq!(
            f.free_text_columns(),
            [
                "remote_addr",
                "remote_user",
                "request_path",
                "http_referer",
                "http_user_agent",
                "cookie_vid",
                "user_id"
            ]
        );
        // every one is a text column of the schema
        let schema = f.schema();
        for c in f.free_text_columns() {
            assert_eq!(
                schema.field_with_name(&c).unwrap().data_type(),
                &DataType::Utf8
            );
        }
    }

    #[test]
    fn demo_format_compiles_with_typed_columns() {
        let f = NginxFormat::from_name_or_format(DEMO).unwrap();
        let schema = f.schema();
        let tail: Vec<_> = schema
            .fields()
            .iter()
            .skip(9)
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect();
        assert_eq!(
            tail,
            [
                ("http_referer", DataType::Utf8),
                ("http_user_agent", DataType::Utf8),
                ("cookie_vid", DataType::Utf8),
                ("user_id", DataType::Utf8),
                ("request_time", DataType::Float64),
                ("line", DataType::Int64),
            ]
        );
        let ua = &f.fields[7];
        assert!(ua.quoted);
        assert_eq!(ua.term.bytes, b"\" vid=");
        assert_eq!(ua.end, End::Search);
        assert_eq!(f.fields.last().unwrap().end, End::Rest);
    }

    #[test]
    fn braced_variables_and_other_timestamps() {
        let f = NginxFormat::from_name_or_format("${msec}|${remote_addr}x$status").unwrap();
        assert_eq!(
            f.variables().collect::<Vec<_>>(),
            ["msec", "remote_addr", "status"]
        );
        assert_eq!(f.prefix, b"");
        let f = NginxFormat::from_name_or_format("$time_iso8601 $time_local $status").unwrap();
        assert_eq!(f.fields[1].kind, Kind::Text);
    }

    #[test]
    fn bad_formats_say_what_and_where() {
        let err = |s: &str| NginxFormat::from_name_or_format(s).unwrap_err();
        assert_eq!(
            err("[$time_local] $status$body_bytes_sent"),
            FormatError::AdjacentVariables {
                at: 22,
                first: "status".into(),
                second: "body_bytes_sent".into()
            }
        );
        assert_eq!(
            err("[$time_local] ${status"),
            FormatError::UnterminatedBrace { at: 15 }
        );
        assert_eq!(err("$remote_addr $status"), FormatError::NoTimestamp);
        assert_eq!(err("$msec $ x"), FormatError::MissingName { at: 7 });
        assert_eq!(err("$msec ${}"), FormatError::MissingName { at: 7 });
        assert_eq!(err(""), FormatError::Empty);
        assert!(matches!(
            err("$msec $status $status"),
            FormatError::DuplicateColumn { at: 15, .. }
        ));
        assert!(matches!(
            err("$msec \"$request\" $request_method"),
            FormatError::DuplicateColumn { .. }
        ));
        let msg = err("[$time_local] $status$body_bytes_sent").to_string();
        assert!(msg.contains("character 22"), "{msg}");
    }
}
