//! The schema of `darkroom.toml` and its structural validation.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::database::{self, DatabaseKind, DatabaseSourceConfig, RawDatabase};
use crate::diagnostics::{Diagnostic, Diagnostics, SourceFile};
use crate::interpolate;

/// `[project]`: what the project is called and the time zone every date is in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    /// A short name, shown in the UI and in alerts.
    pub name: String,
    /// IANA time zone of every date: event_date, "yesterday", deadlines. Timestamps stay UTC.
    #[serde(default = "default_timezone")]
    pub timezone: Spanned<String>,
    /// Optional free text.
    #[serde(default)]
    pub description: Option<String>,
}

impl ProjectSection {
    /// The parsed time zone. Validated when the project loads, so this never fails afterwards.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.get_ref().parse().unwrap_or(chrono_tz::UTC)
    }
}

fn default_timezone() -> Spanned<String> {
    Spanned::new(0..0, "UTC".to_string())
}

/// `[warehouse]`: where the Delta tables live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseConfig {
    /// A folder (relative to the project) or `s3://bucket/prefix`.
    #[serde(default = "default_location")]
    pub location: Spanned<String>,
    /// Where `--target dev` builds models (a folder or `s3://...`): trying an edited model
    /// never touches the tables everyone reads. Default: `warehouse-dev` beside a local
    /// warehouse; required for an S3 warehouse.
    #[serde(default)]
    pub dev_location: Option<Spanned<String>>,
    /// S3 settings; each falls back to the standard `AWS_*` environment variables.
    #[serde(default)]
    pub s3: Option<S3Config>,
}

impl Default for WarehouseConfig {
    fn default() -> Self {
        Self {
            location: default_location(),
            dev_location: None,
            s3: None,
        }
    }
}

/// `[pipeline]`: when the nightly run fires, by when its data must be complete, and how the
/// orchestrator runs tasks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// When `darkroom schedule` starts the nightly run: a standard 5-field cron expression
    /// (minute hour day-of-month month day-of-week) in the project time zone.
    #[serde(default = "default_schedule")]
    pub schedule: Spanned<String>,
    /// When `darkroom schedule` runs maintenance (compaction and vacuum), same format.
    #[serde(default = "default_maintenance")]
    pub maintenance: Spanned<String>,
    /// By when (HH:MM, project time zone) each night's data must be complete, on the day
    /// after the night; `darkroom status` reports a missed deadline even if nothing ran.
    #[serde(default)]
    pub deadline: Option<Spanned<String>>,
    /// Tasks run at once.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// Retries of a task that failed with a transient error (connection refused, timeout,
    /// throttling); a logic error (bad SQL) is never retried.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first retry waits this long; each next one twice as long (plus up to 25% jitter),
    /// at most 10 minutes.
    #[serde(default = "default_retry_seconds")]
    pub retry_seconds: f64,
    /// How many earlier dates each run checks for late data (a log file that arrived or
    /// changed after its date was done).
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
    /// Published snapshots whose files maintenance keeps.
    #[serde(default = "default_keep_snapshots")]
    pub keep_snapshots: usize,
    /// Files removed from a table stay this many hours before vacuum deletes them (for
    /// readers still on an older version), unless a kept snapshot needs them longer.
    #[serde(default = "default_vacuum_hours")]
    pub vacuum_retention_hours: f64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            schedule: default_schedule(),
            maintenance: default_maintenance(),
            deadline: None,
            parallel: default_parallel(),
            retries: default_retries(),
            retry_seconds: default_retry_seconds(),
            lookback_days: default_lookback_days(),
            keep_snapshots: default_keep_snapshots(),
            vacuum_retention_hours: default_vacuum_hours(),
        }
    }
}

impl PipelineConfig {
    /// The deadline as (hour, minute), when set (validated at load).
    pub fn deadline_time(&self) -> Option<chrono::NaiveTime> {
        self.deadline
            .as_ref()
            .and_then(|d| chrono::NaiveTime::parse_from_str(d.get_ref(), "%H:%M").ok())
    }
}

fn default_schedule() -> Spanned<String> {
    Spanned::new(0..0, "30 2 * * *".to_string())
}
fn default_maintenance() -> Spanned<String> {
    Spanned::new(0..0, "0 5 * * 0".to_string())
}
fn default_parallel() -> usize {
    2
}
fn default_retries() -> u32 {
    3
}
fn default_retry_seconds() -> f64 {
    30.0
}
fn default_lookback_days() -> u32 {
    7
}
fn default_keep_snapshots() -> usize {
    7
}
fn default_vacuum_hours() -> f64 {
    168.0
}

/// Parse a standard 5-field cron expression.
pub fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    if text.split_whitespace().count() != 5 {
        return Err(format!(
            "`{text}` is not a 5-field cron expression (minute hour day-of-month month              day-of-week), e.g. `30 2 * * *` for 02:30 every day"
        ));
    }
    croner::parser::CronParser::new()
        .parse(text)
        .map_err(|e| format!("bad cron expression `{text}`: {e}"))
}

fn default_location() -> Spanned<String> {
    Spanned::new(0..0, "warehouse".to_string())
}

/// `[warehouse.s3]`. Secrets belong in the environment: write `"${S3_SECRET}"`, never the value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000` for a local S3-compatible server. Default: `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Default: `AWS_REGION`, then `us-east-1`.
    pub region: Option<String>,
    /// Default: `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// Default: `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// Allow plain-HTTP endpoints (local servers). Default: `AWS_ALLOW_HTTP`, else false.
    pub allow_http: Option<bool>,
}

/// Where a log source's files are and how their names carry the date and host.
#[derive(Debug, Clone)]
pub struct LogFiles {
    /// Path template: `{date}` (required) and `{host}` placeholders, glob wildcards allowed,
    /// relative to the project, absolute, or `s3://bucket/...`.
    pub path: Spanned<String>,
    /// Hosts expected every day; a missing one is reported by name and path.
    pub hosts: Vec<String>,
    /// How `{date}` is written in paths (strftime), default `%Y-%m-%d`.
    pub date_format: Spanned<String>,
    /// Days after `file_date` that a file may still hold events for (rotation, backlogs).
    pub late_days: u32,
}

/// What to do with client IP addresses before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIp {
    Keep,
    /// Zero the host part: /24 for IPv4, /48 for IPv6.
    Truncate,
    /// Replace by a salted hash; the salt comes from the environment.
    Hash {
        salt: String,
    },
}

/// How nested JSON objects become columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NestedMode {
    /// `{"a": {"b": 1}}` becomes column `a_b`.
    Flatten,
    /// Nested values stay JSON text.
    Json,
}

/// `kind = "nginx"`: access logs in `combined`, `common` or a custom `log_format`.
#[derive(Debug, Clone)]
pub struct NginxSourceConfig {
    pub format: Spanned<String>,
    /// Formats tried in order when a line does not match `format` (e.g. after a logging
    /// change): the same variables in the same order; the time may be written another way.
    pub also_formats: Vec<Spanned<String>>,
    pub client_ip: ClientIp,
}

/// `kind = "jsonl"`: one JSON object per line.
#[derive(Debug, Clone)]
pub struct JsonlSourceConfig {
    pub timestamp_field: String,
    pub timestamp_format: Spanned<String>,
    pub nested: NestedMode,
    /// Declared typed columns: dotted path -> type name.
    pub fields: BTreeMap<String, Spanned<String>>,
    /// A field holding a client IP, treated by `client_ip`.
    pub client_ip_field: Option<String>,
    pub client_ip: ClientIp,
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub files: LogFiles,
    pub kind: SourceKind,
    /// Span of the whole `[[sources]]` table, for errors about the source as a whole.
    pub span: Range<usize>,
}

/// The kind-specific part of a source.
#[derive(Debug, Clone)]
pub enum SourceKind {
    Nginx(NginxSourceConfig),
    Jsonl(JsonlSourceConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }
    /// `raw_<name>`: the table parsed rows go to.
    pub fn raw_table(&self) -> String {
        format!("raw_{}", self.name())
    }
    /// `_quarantine_<name>`: the table unparseable lines go to.
    pub fn quarantine_table(&self) -> String {
        format!("_quarantine_{}", self.name())
    }
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SourceKind::Nginx(_) => "nginx",
            SourceKind::Jsonl(_) => "jsonl",
        }
    }
}

// ---- raw serde shapes (private): flat tables as users write them -------------------------

enum RawSource {
    Nginx(RawNginx),
    Jsonl(RawJsonl),
    Database(DatabaseKind, RawDatabase),
}

/// The source kinds, for error messages.
pub const SOURCE_KINDS: &[&str] = &["nginx", "jsonl", "postgres", "mysql", "sqlite"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNginx {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    path: Spanned<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default = "default_date_format")]
    date_format: Spanned<String>,
    #[serde(default = "default_late_days")]
    late_days: u32,
    #[serde(default = "default_format")]
    format: Spanned<String>,
    #[serde(default)]
    also_formats: Vec<Spanned<String>>,
    #[serde(default)]
    client_ip: Option<Spanned<String>>,
    #[serde(default)]
    client_ip_salt: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJsonl {
    name: Spanned<String>,
    #[serde(default)]
    description: Option<String>,
    path: Spanned<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default = "default_date_format")]
    date_format: Spanned<String>,
    #[serde(default = "default_late_days")]
    late_days: u32,
    timestamp_field: Spanned<String>,
    #[serde(default = "default_timestamp_format")]
    timestamp_format: Spanned<String>,
    #[serde(default = "default_nested")]
    nested: NestedMode,
    #[serde(default)]
    fields: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    client_ip_field: Option<String>,
    #[serde(default)]
    client_ip: Option<Spanned<String>>,
    #[serde(default)]
    client_ip_salt: Option<Spanned<String>>,
}

fn default_date_format() -> Spanned<String> {
    Spanned::new(0..0, "%Y-%m-%d".to_string())
}
fn default_late_days() -> u32 {
    1
}
fn default_format() -> Spanned<String> {
    Spanned::new(0..0, "combined".to_string())
}
fn default_timestamp_format() -> Spanned<String> {
    Spanned::new(0..0, "rfc3339".to_string())
}
fn default_nested() -> NestedMode {
    NestedMode::Json
}

/// The JSON field types a jsonl source may declare.
pub const JSONL_FIELD_TYPES: &[&str] = &["string", "int64", "float64", "bool", "timestamp", "json"];

pub(crate) struct Parsed {
    pub project: ProjectSection,
    pub warehouse: WarehouseConfig,
    pub pipeline: PipelineConfig,
    pub sources: Vec<SourceConfig>,
    pub databases: Vec<DatabaseSourceConfig>,
    pub alerts: crate::AlertsConfig,
}

const SECTIONS: &str = "project, warehouse, pipeline, sources, alerts";

pub(crate) fn parse(
    file: &SourceFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Parsed, Diagnostics> {
    let (parsed, diags) = parse_partial(file, env);
    diags.into_result()?;
    parsed.ok_or_else(|| {
        Diagnostics::single(file.error(0..0, "internal error: no configuration and no problem"))
    })
}

/// Parse as much as can be parsed: the configuration (when the file's shape allows) and every
/// problem found, so later checks can add theirs to the same list.
pub(crate) fn parse_partial(
    file: &SourceFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Option<Parsed>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let (doc, syntax) = DeTable::parse_recoverable(&file.text);
    for e in &syntax {
        diags.push(toml_error(file, e, 0..0));
    }
    if !diags.is_empty() {
        return (None, diags);
    }
    let mut table = doc.into_inner();
    let mut interp = Vec::new();
    interpolate::expand_table(&mut table, env, &mut interp);
    for e in interp {
        diags.push(file.error(e.span, e.message));
    }

    let mut project = None;
    let mut warehouse = WarehouseConfig::default();
    let mut pipeline = PipelineConfig::default();
    let mut sources = Vec::new();
    let mut databases = Vec::new();
    let mut alerts = crate::AlertsConfig::default();
    for (key, value) in table {
        let key_span = key.span();
        match key.get_ref().as_ref() {
            "project" => project = deserialize::<ProjectSection>(file, value, &mut diags),
            "warehouse" => {
                if let Some(w) = deserialize::<WarehouseConfig>(file, value, &mut diags) {
                    warehouse = w;
                }
            }
            "pipeline" => {
                if let Some(p) = deserialize::<PipelineConfig>(file, value, &mut diags) {
                    pipeline = p;
                }
            }
            "sources" => (sources, databases) = parse_sources(file, value, &mut diags),
            "alerts" => {
                if let Some(a) = deserialize::<crate::AlertsConfig>(file, value, &mut diags) {
                    alerts = a;
                }
            }
            other => diags.push(file.error(
                key_span,
                format!("unknown section `{other}`; expected one of {SECTIONS}"),
            )),
        }
    }

    let Some(project) = project else {
        if !diags.iter().any(|d| d.message.contains("[project]")) {
            diags.push(file.error(
                0..0,
                "missing [project] section: add `[project]` with `name = \"...\"`",
            ));
        }
        return (None, diags);
    };
    validate(file, &project, &warehouse, &sources, &databases, &mut diags);
    validate_pipeline(file, &pipeline, &mut diags);
    crate::alerts::validate(file, &alerts, &mut diags);
    (
        Some(Parsed {
            project,
            warehouse,
            pipeline,
            sources,
            databases,
            alerts,
        }),
        diags,
    )
}

fn toml_error(file: &SourceFile, e: &toml::de::Error, fallback: Range<usize>) -> Diagnostic {
    let span = e.span().unwrap_or(fallback);
    file.error(span, e.message().trim().to_string())
}

fn deserialize<T: serde::de::DeserializeOwned>(
    file: &SourceFile,
    value: Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> Option<T> {
    let span = value.span();
    let mut value = value;
    // serde stops at the first unknown key of a table; drop it and try again so that every
    // unknown key, and the problems after them, are reported in one go.
    for _ in 0..32 {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(v) => return Some(v),
            Err(e) => {
                diags.push(toml_error(file, &e, span.clone()));
                let unknown = e
                    .message()
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split_once('`'))
                    .map(|(name, _)| name.to_string());
                let unknown = unknown?;
                let DeValue::Table(table) = value.get_mut() else {
                    return None;
                };
                let before = table.len();
                let kept: DeTable<'_> = std::mem::take(table)
                    .into_iter()
                    .filter(|(k, _)| k.get_ref().as_ref() != unknown)
                    .collect();
                *table = kept;
                if table.len() == before {
                    return None;
                }
            }
        }
    }
    None
}

fn parse_sources(
    file: &SourceFile,
    value: Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> (Vec<SourceConfig>, Vec<DatabaseSourceConfig>) {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        diags.push(file.error(
            span,
            "`sources` must be an array of tables: write each source as `[[sources]]`",
        ));
        return (Vec::new(), Vec::new());
    };
    let mut logs = Vec::new();
    let mut databases = Vec::new();
    for item in items.iter().cloned() {
        let item_span = item.span();
        match raw_source(file, item, diags) {
            Some(RawSource::Database(kind, raw)) => {
                if let Some(db) = database::convert(file, kind, raw, item_span, diags) {
                    databases.push(db);
                }
            }
            Some(raw) => {
                if let Some(source) = convert_source(file, raw, item_span, diags) {
                    logs.push(source);
                }
            }
            None => {}
        }
    }
    (logs, databases)
}

/// Read `kind`, then the rest of the table as that kind's settings (unknown keys rejected).
fn raw_source(
    file: &SourceFile,
    item: Spanned<DeValue<'_>>,
    diags: &mut Diagnostics,
) -> Option<RawSource> {
    let span = item.span();
    let DeValue::Table(table) = item.into_inner() else {
        diags.push(file.error(
            span,
            "each source must be a table: write it as `[[sources]]`",
        ));
        return None;
    };
    let mut kind = None;
    let mut rest = DeTable::new();
    for (key, value) in table {
        if key.get_ref().as_ref() == "kind" {
            kind = Some(value);
        } else {
            rest.insert(key, value);
        }
    }
    let rest = Spanned::new(span.clone(), DeValue::Table(rest));
    let Some(kind) = kind else {
        diags.push(file.error(
            span,
            format!(
                "source has no `kind`; expected one of {}",
                SOURCE_KINDS.join(", ")
            ),
        ));
        return None;
    };
    let kind_span = kind.span();
    match kind.get_ref() {
        DeValue::String(k) if k.as_ref() == "nginx" => {
            deserialize::<RawNginx>(file, rest, diags).map(RawSource::Nginx)
        }
        DeValue::String(k) if k.as_ref() == "jsonl" => {
            deserialize::<RawJsonl>(file, rest, diags).map(RawSource::Jsonl)
        }
        DeValue::String(k) if DatabaseKind::parse(k.as_ref()).is_some() => {
            let kind = DatabaseKind::parse(k.as_ref())?;
            deserialize::<RawDatabase>(file, rest, diags).map(|raw| RawSource::Database(kind, raw))
        }
        DeValue::String(k) => {
            diags.push(file.error(
                kind_span,
                format!(
                    "unknown source kind `{k}`; expected one of {}",
                    SOURCE_KINDS.join(", ")
                ),
            ));
            None
        }
        _ => {
            diags.push(file.error(kind_span, "`kind` must be a string such as \"nginx\""));
            None
        }
    }
}

fn client_ip(
    file: &SourceFile,
    mode: Option<Spanned<String>>,
    salt: Option<Spanned<String>>,
    diags: &mut Diagnostics,
) -> Option<ClientIp> {
    let mode_str = mode.as_ref().map_or("keep", |m| m.get_ref().as_str());
    let mode_span = mode.as_ref().map_or(0..0, Spanned::span);
    match mode_str {
        "keep" | "truncate" => {
            if let Some(salt) = &salt {
                diags.push(file.error(
                    salt.span(),
                    "`client_ip_salt` is only used with `client_ip = \"hash\"`",
                ));
            }
            Some(if mode_str == "keep" {
                ClientIp::Keep
            } else {
                ClientIp::Truncate
            })
        }
        "hash" => match salt {
            Some(s) if s.get_ref().len() >= 8 => Some(ClientIp::Hash {
                salt: s.into_inner(),
            }),
            Some(s) => {
                diags.push(file.error(
                    s.span(),
                    "`client_ip_salt` is too short: use at least 8 characters, from the \
                     environment (`client_ip_salt = \"${IP_SALT}\"`)",
                ));
                None
            }
            None => {
                diags.push(file.error(
                    mode_span,
                    "`client_ip = \"hash\"` needs `client_ip_salt = \"${SOME_SECRET}\"` \
                     (read from the environment)",
                ));
                None
            }
        },
        other => {
            diags.push(file.error(
                mode_span,
                format!("unknown client_ip mode `{other}`; expected one of keep, truncate, hash"),
            ));
            None
        }
    }
}

fn convert_source(
    file: &SourceFile,
    raw: RawSource,
    span: Range<usize>,
    diags: &mut Diagnostics,
) -> Option<SourceConfig> {
    Some(match raw {
        RawSource::Database(..) => return None,
        RawSource::Nginx(n) => {
            let client_ip = client_ip(file, n.client_ip, n.client_ip_salt, diags)?;
            SourceConfig {
                name: n.name,
                description: n.description,
                files: LogFiles {
                    path: n.path,
                    hosts: n.hosts,
                    date_format: n.date_format,
                    late_days: n.late_days,
                },
                kind: SourceKind::Nginx(NginxSourceConfig {
                    format: n.format,
                    also_formats: n.also_formats,
                    client_ip,
                }),
                span,
            }
        }
        RawSource::Jsonl(j) => {
            let client_ip = client_ip(file, j.client_ip, j.client_ip_salt, diags)?;
            if client_ip != ClientIp::Keep && j.client_ip_field.is_none() {
                diags.push(file.error(
                    span.clone(),
                    "`client_ip` is set but `client_ip_field` is not: name the JSON field \
                     that holds the client IP",
                ));
            }
            SourceConfig {
                name: j.name,
                description: j.description,
                files: LogFiles {
                    path: j.path,
                    hosts: j.hosts,
                    date_format: j.date_format,
                    late_days: j.late_days,
                },
                kind: SourceKind::Jsonl(JsonlSourceConfig {
                    timestamp_field: j.timestamp_field.into_inner(),
                    timestamp_format: j.timestamp_format,
                    nested: j.nested,
                    fields: j.fields,
                    client_ip_field: j.client_ip_field,
                    client_ip,
                }),
                span,
            }
        }
    })
}

fn validate(
    file: &SourceFile,
    project: &ProjectSection,
    warehouse: &WarehouseConfig,
    sources: &[SourceConfig],
    databases: &[DatabaseSourceConfig],
    diags: &mut Diagnostics,
) {
    if project.timezone.get_ref().parse::<chrono_tz::Tz>().is_err() {
        diags.push(file.error(
            project.timezone.span(),
            format!(
                "unknown time zone `{}`: use an IANA name such as `UTC` or `America/Toronto`",
                project.timezone.get_ref()
            ),
        ));
    }
    let location = warehouse.location.get_ref();
    if location.contains("://")
        && !location.starts_with("s3://")
        && !location.starts_with("file://")
    {
        diags.push(file.error(
            warehouse.location.span(),
            format!(
                "unsupported warehouse location `{location}`: use a folder path or s3://bucket/prefix"
            ),
        ));
    }
    if location.trim().is_empty() {
        diags.push(file.error(warehouse.location.span(), "warehouse location is empty"));
    }

    // names are unique across log and database sources, reported in file order
    let mut names: Vec<&Spanned<String>> = sources
        .iter()
        .map(|s| &s.name)
        .chain(databases.iter().map(|d| &d.name))
        .collect();
    names.sort_by_key(|n| n.span().start);
    let mut seen: BTreeMap<&str, Range<usize>> = BTreeMap::new();
    for spanned in names {
        let name = spanned.get_ref().as_str();
        if !is_identifier(name) {
            diags.push(file.error(
                spanned.span(),
                format!(
                    "source name `{name}` must start with a lowercase letter and hold only \
                     lowercase letters, digits and `_` (it becomes the table raw_{name})"
                ),
            ));
        }
        if let Some(first) = seen.get(name) {
            let (line, _) = file.line_col(first.start);
            diags.push(file.error(
                spanned.span(),
                format!("duplicate source name `{name}` (first defined on line {line})"),
            ));
        } else {
            seen.insert(name, spanned.span());
        }
    }
    for source in sources {
        validate_files(file, &source.files, diags);
        if let SourceKind::Jsonl(j) = &source.kind {
            if j.timestamp_field.trim().is_empty() {
                diags.push(file.error(source.span.clone(), "`timestamp_field` is empty"));
            }
            for (field, ty) in &j.fields {
                if !JSONL_FIELD_TYPES.contains(&ty.get_ref().as_str()) {
                    diags.push(file.error(
                        ty.span(),
                        format!(
                            "field `{field}` has unknown type `{}`; expected one of {}",
                            ty.get_ref(),
                            JSONL_FIELD_TYPES.join(", ")
                        ),
                    ));
                }
            }
        }
    }
}

fn validate_pipeline(file: &SourceFile, pipeline: &PipelineConfig, diags: &mut Diagnostics) {
    for cron in [&pipeline.schedule, &pipeline.maintenance] {
        if let Err(e) = parse_cron(cron.get_ref()) {
            diags.push(file.error(cron.span(), e));
        }
    }
    if let Some(deadline) = &pipeline.deadline
        && pipeline.deadline_time().is_none()
    {
        diags.push(file.error(
            deadline.span(),
            format!(
                "deadline `{}` is not a time of day: write HH:MM, e.g. \"07:00\"",
                deadline.get_ref()
            ),
        ));
    }
    if pipeline.parallel == 0 {
        diags.push(file.error(0..0, "[pipeline] parallel must be at least 1"));
    }
    if !(pipeline.retry_seconds.is_finite() && pipeline.retry_seconds >= 0.0) {
        diags.push(file.error(0..0, "[pipeline] retry_seconds must be 0 or more"));
    }
}

fn validate_files(file: &SourceFile, files: &LogFiles, diags: &mut Diagnostics) {
    let path = files.path.get_ref();
    if !path.contains("{date}") {
        diags.push(file.error(
            files.path.span(),
            format!(
                "path `{path}` has no `{{date}}` placeholder: every log file belongs to the date \
                 in its path, e.g. `logs/{{host}}/access-{{date}}.log.gz`"
            ),
        ));
    }
    let mut rest = path.as_str();
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            diags.push(file.error(
                files.path.span(),
                format!("path `{path}` has an unclosed `{{`"),
            ));
            break;
        };
        let name = &after[..close];
        if name != "date" && name != "host" {
            diags.push(file.error(
                files.path.span(),
                format!(
                    "unknown placeholder `{{{name}}}` in path `{path}`; use {{date}} and {{host}}"
                ),
            ));
        }
        rest = &after[close + 1..];
    }
    let items = chrono::format::StrftimeItems::new(files.date_format.get_ref());
    if items
        .clone()
        .any(|i| matches!(i, chrono::format::Item::Error))
        || files.date_format.get_ref().is_empty()
    {
        diags.push(file.error(
            files.date_format.span(),
            format!(
                "`{}` is not a valid strftime date format (e.g. `%Y-%m-%d` or `%Y%m%d`)",
                files.date_format.get_ref()
            ),
        ));
    }
    for host in &files.hosts {
        if host.is_empty() || host.contains('/') {
            diags.push(file.error(
                files.path.span(),
                format!("host `{host}` must be non-empty and hold no `/`"),
            ));
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
