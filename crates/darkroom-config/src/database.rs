//! `[[sources]]` of kind `postgres`, `mysql` and `sqlite`: production databases whose tables are
//! copied into `raw_<source>_<table>`.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::diagnostics::{Diagnostics, SourceFile};

/// Which database a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
    Mysql,
    Sqlite,
}

impl DatabaseKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }

    pub(crate) fn parse(kind: &str) -> Option<Self> {
        match kind {
            "postgres" => Some(Self::Postgres),
            "mysql" => Some(Self::Mysql),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }
}

/// How a table is copied each run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableMode {
    /// The whole table every run.
    Full { history: FullHistory },
    /// Only rows whose `cursor` is past the last watermark (minus `lookback`), merged into the
    /// warehouse table on `key`.
    Incremental {
        cursor: String,
        lookback: Option<Lookback>,
    },
}

/// What a full copy does with the previous copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullHistory {
    /// The table holds the latest copy only.
    Replace,
    /// Each run is kept as the partition `snapshot_date` = the run's date.
    Snapshot,
}

/// How far behind the watermark an incremental read starts, to catch late updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    /// For timestamp cursors: this many seconds.
    Seconds(i64),
    /// For integer cursors: this many ids.
    Count(i64),
}

/// One `[[sources.tables]]` entry.
#[derive(Debug, Clone)]
pub struct TableConfig {
    /// The table's name in the database (optionally `schema.table` for Postgres).
    pub name: Spanned<String>,
    pub mode: TableMode,
    /// Merge key for incremental tables; default the table's primary key.
    pub key: Vec<String>,
    /// A SQL condition in the database's own dialect, applied when reading.
    pub filter: Option<String>,
    /// Columns never read.
    pub exclude: Vec<String>,
    /// Columns replaced by a salted SHA-256 (hex) before anything is written.
    pub hash: Vec<String>,
    pub span: Range<usize>,
}

impl TableConfig {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// The table's name without its schema, lowercase: the suffix of its warehouse table.
    pub fn short_name(&self) -> String {
        let name = self.name();
        name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase()
    }
}

/// A database source.
#[derive(Debug, Clone)]
pub struct DatabaseSourceConfig {
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub kind: DatabaseKind,
    /// `postgres://user:pass@host:port/db`, `mysql://...`, or for SQLite a file path (relative
    /// to the project) or `sqlite://PATH`. Normally `"${APP_DB_URL}"`, from the environment.
    pub url: String,
    /// The time zone that timestamps without a zone (`timestamp`, MySQL `datetime`, SQLite
    /// text) are written in; they are stored in UTC.
    pub timestamp_timezone: chrono_tz::Tz,
    /// Rows per Arrow batch: what bounds memory.
    pub batch_rows: usize,
    /// Connection attempts after the first, with exponential backoff.
    pub retries: u32,
    /// Salt for hashed columns, from the environment.
    pub hash_salt: Option<String>,
    pub tables: Vec<TableConfig>,
    pub span: Range<usize>,
}

impl DatabaseSourceConfig {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// `raw_<source>_<table>`.
    pub fn raw_table(&self, table: &TableConfig) -> String {
        format!("raw_{}_{}", self.name(), table.short_name())
    }

    pub fn table(&self, name: &str) -> Option<&TableConfig> {
        self.tables
            .iter()
            .find(|t| t.name() == name || t.short_name() == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatabase {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    url: Spanned<String>,
    #[serde(default)]
    timestamp_timezone: Option<Spanned<String>>,
    #[serde(default = "default_batch_rows")]
    batch_rows: Spanned<i64>,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default)]
    hash_salt: Option<Spanned<String>>,
    #[serde(default)]
    tables: Vec<Spanned<RawTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    name: Spanned<String>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    history: Option<Spanned<String>>,
    #[serde(default)]
    cursor: Option<Spanned<String>>,
    #[serde(default)]
    lookback: Option<Spanned<toml::Value>>,
    #[serde(default)]
    key: Vec<String>,
    #[serde(default, rename = "where")]
    filter: Option<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    hash: Vec<String>,
}

fn default_batch_rows() -> Spanned<i64> {
    Spanned::new(0..0, 65_536)
}
fn default_retries() -> u32 {
    4
}

/// Parse `30s`, `15m`, `6h`, `2d` into seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let unit_seconds = match unit.trim() {
        "s" | "sec" | "second" | "seconds" => 1,
        "m" | "min" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return None,
    };
    n.checked_mul(unit_seconds)
}

pub(crate) fn convert(
    file: &SourceFile,
    kind: DatabaseKind,
    raw: RawDatabase,
    span: Range<usize>,
    diags: &mut Diagnostics,
) -> Option<DatabaseSourceConfig> {
    let url = raw.url.get_ref().trim().to_string();
    let url_ok = match kind {
        DatabaseKind::Postgres => {
            url.starts_with("postgres://") || url.starts_with("postgresql://")
        }
        DatabaseKind::Mysql => url.starts_with("mysql://") || url.starts_with("mariadb://"),
        DatabaseKind::Sqlite => {
            !url.is_empty() && (!url.contains("://") || url.starts_with("sqlite://"))
        }
    };
    if !url_ok {
        let expected = match kind {
            DatabaseKind::Postgres => "postgres://user:password@host:5432/dbname",
            DatabaseKind::Mysql => "mysql://user:password@host:3306/dbname",
            DatabaseKind::Sqlite => "a file path such as db/app.db, or sqlite://PATH",
        };
        // never echo the URL itself: it may hold a password
        diags.push(file.error(
            raw.url.span(),
            format!(
                "`url` of a {} source must look like {expected}",
                kind.name()
            ),
        ));
    }
    let timestamp_timezone = match &raw.timestamp_timezone {
        None => chrono_tz::UTC,
        Some(tz) => match tz.get_ref().parse::<chrono_tz::Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                diags.push(file.error(
                    tz.span(),
                    format!(
                        "unknown time zone `{}`: use an IANA name such as `UTC`",
                        tz.get_ref()
                    ),
                ));
                chrono_tz::UTC
            }
        },
    };
    let batch_rows = *raw.batch_rows.get_ref();
    if !(1_000..=10_000_000).contains(&batch_rows) {
        diags.push(file.error(
            raw.batch_rows.span(),
            format!("`batch_rows` = {batch_rows} is out of range: use 1000 to 10000000"),
        ));
    }
    if let Some(salt) = &raw.hash_salt
        && salt.get_ref().len() < 8
    {
        diags.push(file.error(
            salt.span(),
            "`hash_salt` is too short: use at least 8 characters, from the environment \
             (`hash_salt = \"${PII_SALT}\"`)",
        ));
    }
    if raw.tables.is_empty() {
        diags.push(file.error(
            span.clone(),
            format!(
                "database source `{}` lists no tables: add `[[sources.tables]]` with `name = \"...\"`",
                raw.name.get_ref()
            ),
        ));
    }
    let mut tables = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for table in raw.tables {
        let table_span = table.span();
        let t = table.into_inner();
        if let Some(table) = convert_table(file, t, table_span, &raw.hash_salt, diags) {
            let short = table.short_name();
            if let Some(line) = seen.get(&short) {
                diags.push(file.error(
                    table.name.span(),
                    format!("table `{short}` is listed twice (first on line {line})"),
                ));
            } else {
                seen.insert(short, file.line_col(table.name.span().start).0);
            }
            tables.push(table);
        }
    }
    // kept even with problems (they are in `diags`, so the project does not load): its name
    // still takes part in the duplicate check
    Some(DatabaseSourceConfig {
        name: raw.name,
        description: raw.description,
        kind,
        url,
        timestamp_timezone,
        batch_rows: usize::try_from(batch_rows).unwrap_or(65_536),
        retries: raw.retries,
        hash_salt: raw.hash_salt.map(Spanned::into_inner),
        tables,
        span,
    })
}

fn convert_table(
    file: &SourceFile,
    t: RawTable,
    span: Range<usize>,
    salt: &Option<Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<TableConfig> {
    let before = diags.len();
    let name = t.name.get_ref();
    let valid_part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 2 || !parts.iter().all(|p| valid_part(p)) {
        diags.push(file.error(
            t.name.span(),
            format!(
                "table name `{name}` must be a plain name such as `users` (or `schema.users`): \
                 letters, digits and `_`"
            ),
        ));
    }
    let mode_text = t.mode.as_ref().map_or("full", |m| m.get_ref().as_str());
    let mode = match mode_text {
        "full" => {
            if let Some(cursor) = &t.cursor {
                diags.push(file.error(
                    cursor.span(),
                    "`cursor` is only used with `mode = \"incremental\"`",
                ));
            }
            if let Some(lookback) = &t.lookback {
                diags.push(file.error(
                    lookback.span(),
                    "`lookback` is only used with `mode = \"incremental\"`",
                ));
            }
            let history = match t.history.as_ref().map(|h| h.get_ref().as_str()) {
                None | Some("replace") => FullHistory::Replace,
                Some("snapshot") => FullHistory::Snapshot,
                Some(other) => {
                    diags.push(file.error(
                        t.history.as_ref().map_or(span.clone(), Spanned::span),
                        format!("unknown history `{other}`; expected replace or snapshot"),
                    ));
                    FullHistory::Replace
                }
            };
            TableMode::Full { history }
        }
        "incremental" => {
            if let Some(h) = &t.history {
                diags.push(file.error(
                    h.span(),
                    "`history` is only used with `mode = \"full\"` (an incremental table is \
                     merged on its key)",
                ));
            }
            let Some(cursor) = &t.cursor else {
                diags.push(file.error(
                    t.mode.as_ref().map_or(span.clone(), Spanned::span),
                    format!(
                        "incremental table `{name}` needs `cursor = \"updated_at\"` (a column \
                         that only grows: a timestamp or an id)"
                    ),
                ));
                return None;
            };
            let lookback = match &t.lookback {
                None => None,
                Some(v) => match v.get_ref() {
                    toml::Value::Integer(n) if *n >= 0 => Some(Lookback::Count(*n)),
                    toml::Value::String(s) => match parse_duration(s) {
                        Some(secs) => Some(Lookback::Seconds(secs)),
                        None => {
                            diags.push(file.error(
                                v.span(),
                                format!(
                                    "`lookback = \"{s}\"` is not a duration: write e.g. \"6h\", \
                                     \"2d\", \"30m\" (or a number of ids for an id cursor)"
                                ),
                            ));
                            None
                        }
                    },
                    _ => {
                        diags.push(file.error(
                            v.span(),
                            "`lookback` must be a duration such as \"6h\" or a non-negative \
                             number of ids",
                        ));
                        None
                    }
                },
            };
            TableMode::Incremental {
                cursor: cursor.get_ref().clone(),
                lookback,
            }
        }
        other => {
            diags.push(file.error(
                t.mode.as_ref().map_or(span.clone(), Spanned::span),
                format!("unknown mode `{other}`; expected full or incremental"),
            ));
            return None;
        }
    };
    if !t.hash.is_empty() && salt.is_none() {
        diags.push(file.error(
            span.clone(),
            format!(
                "table `{name}` hashes columns ({}) but the source has no `hash_salt`: add \
                 `hash_salt = \"${{PII_SALT}}\"` (read from the environment)",
                t.hash.join(", ")
            ),
        ));
    }
    for c in &t.hash {
        if t.exclude.contains(c) {
            diags.push(file.error(
                span.clone(),
                format!("column `{c}` is both excluded and hashed in table `{name}`"),
            ));
        }
    }
    if diags.len() > before {
        return None;
    }
    Some(TableConfig {
        name: t.name,
        mode,
        key: t.key,
        filter: t.filter,
        exclude: t.exclude,
        hash: t.hash,
        span,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("6h"), Some(21_600));
        assert_eq!(parse_duration("2d"), Some(172_800));
        assert_eq!(parse_duration("30 m"), Some(1_800));
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("5y"), None);
    }
}
