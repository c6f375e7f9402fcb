//! Definitions: events, dimensions, metrics, funnels and teams, declared once in TOML files
//! next to the models (`models/**/*.toml`, except a model's own `X.toml` beside `X.sql`) and
//! validated at load with file, line and column.
//!
//! ```toml
//! [[event]]                       # something a person does, at a time
//! name = "visit"
//! table = "int_touches_resolved"  # or: sql = "SELECT person_id, event_ts, platform FROM ..."
//! time = "event_ts"               # a timestamp (UTC); default event_ts
//! person = "person_id"            # default person_id
//! filter = "is_visit"
//! properties = ["platform"]       # what funnels and retention may break down by
//!
//! [[dimension]]                   # what metrics may be sliced by
//! name = "plan"
//! table = "dim_user"              # joined on `key` (same column name in both); omit for a
//! key = "user_key"                # column of the metric's own table
//! column = "plan"                 # or expr = "CASE WHEN f.event_date = d.first_seen_date ..."
//!
//! [[metric]]
//! name = "signups"
//! owner = "marketing"
//! kind = "count"                  # count | count_distinct | sum | average | ratio | derived
//! table = "fct_events"
//! time = "event_date"             # a date column, in the project time zone
//! filter = "event_type = 'signup'"
//! dimensions = ["platform", "country"]
//!
//! [[funnel]]
//! name = "buyer"
//! window = "14d"
//! steps = ["visit", "signup", { event = "purchase", filter = "amount > 0" }]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use darkroom_config::{Diagnostic, Diagnostics, SourceFile};
use serde::Deserialize;
use toml::Spanned;

use crate::funnel::{MAX_PATH_STEPS, Mode};

/// Every definition of a project.
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    pub events: BTreeMap<String, EventDef>,
    pub dimensions: BTreeMap<String, DimensionDef>,
    pub metrics: BTreeMap<String, MetricDef>,
    pub funnels: BTreeMap<String, FunnelDef>,
    pub teams: BTreeMap<String, TeamDef>,
}

/// Where a definition was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct EventDef {
    pub name: String,
    pub description: String,
    pub source: EventSource,
    pub properties: Vec<String>,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub enum EventSource {
    Table {
        table: String,
        time: String,
        person: String,
        filter: Option<String>,
    },
    /// A query returning `person_id`, `event_ts` and the properties.
    Sql(String),
}

#[derive(Debug, Clone)]
pub struct DimensionDef {
    pub name: String,
    pub description: String,
    /// `(table, key)` to join, or `None` for a column of the metric's table.
    pub join: Option<(String, String)>,
    /// The SQL of the value: `f.` is the metric's table, `d.` the joined one.
    pub expr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Count,
    CountDistinct,
    Sum,
    Average,
    Ratio,
    Derived,
}

impl MetricKind {
    /// As written in the files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::CountDistinct => "count_distinct",
            Self::Sum => "sum",
            Self::Average => "average",
            Self::Ratio => "ratio",
            Self::Derived => "derived",
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetricDef {
    pub name: String,
    pub description: String,
    pub owner: Option<String>,
    pub kind: MetricKind,
    pub table: Option<String>,
    pub time: String,
    pub column: Option<String>,
    pub filter: Option<String>,
    pub dimensions: Vec<String>,
    pub numerator: Option<String>,
    pub denominator: Option<String>,
    pub expression: Option<String>,
    /// Each day counts the window of this many days ending that day (WAU: 7, MAU: 28).
    pub rolling_days: Option<u32>,
    pub unit: Option<String>,
    pub origin: Origin,
}

impl MetricDef {
    /// The metrics this one is computed from (ratio and derived).
    pub fn inputs(&self) -> Vec<String> {
        match self.kind {
            MetricKind::Ratio => [&self.numerator, &self.denominator]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            MetricKind::Derived => self
                .expression
                .as_deref()
                .map(identifiers)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepDef {
    pub name: String,
    pub event: String,
    pub filter: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ExclusionDef {
    pub event: String,
    pub filter: Option<String>,
    /// 1-based: the exclusion applies after step `after` and before step `after + 1`.
    pub after: usize,
}

#[derive(Debug, Clone)]
pub struct FunnelDef {
    pub name: String,
    pub description: String,
    pub owner: Option<String>,
    pub steps: Vec<StepDef>,
    pub window_seconds: i64,
    pub mode: Mode,
    pub exclusions: Vec<ExclusionDef>,
    /// 0-based step whose property value a breakdown uses (default the first).
    pub attribution: usize,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct TeamDef {
    pub name: String,
    pub description: String,
    pub metrics: Vec<String>,
    pub funnels: Vec<String>,
}

// ---- the files as written -------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileDefs {
    #[serde(default)]
    event: Vec<Spanned<RawEvent>>,
    #[serde(default)]
    dimension: Vec<Spanned<RawDimension>>,
    #[serde(default)]
    metric: Vec<Spanned<RawMetric>>,
    #[serde(default)]
    funnel: Vec<Spanned<RawFunnel>>,
    #[serde(default)]
    team: Vec<Spanned<RawTeam>>,
    /// Checks and reconciliations: read by the data-trust layer (`darkroom_quality::defs`).
    #[serde(default, rename = "check")]
    _check: serde::de::IgnoredAny,
    #[serde(default, rename = "reconcile")]
    _reconcile: serde::de::IgnoredAny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    table: Option<String>,
    sql: Option<String>,
    time: Option<String>,
    person: Option<String>,
    filter: Option<String>,
    #[serde(default)]
    properties: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDimension {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    table: Option<String>,
    key: Option<String>,
    column: Option<String>,
    expr: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    owner: Option<String>,
    kind: MetricKind,
    table: Option<String>,
    time: Option<String>,
    column: Option<String>,
    filter: Option<String>,
    #[serde(default)]
    dimensions: Vec<Spanned<String>>,
    numerator: Option<Spanned<String>>,
    denominator: Option<Spanned<String>>,
    expression: Option<Spanned<String>>,
    rolling_days: Option<u32>,
    unit: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawStep {
    Event(String),
    Full(RawStepFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStepFull {
    event: String,
    name: Option<String>,
    filter: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExclusion {
    event: String,
    filter: Option<String>,
    /// The two steps it sits between, by name.
    between: [String; 2],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunnel {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    owner: Option<String>,
    steps: Spanned<Vec<Spanned<RawStep>>>,
    window: Spanned<String>,
    mode: Option<Spanned<String>>,
    #[serde(default)]
    exclusions: Vec<Spanned<RawExclusion>>,
    attribution: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    metrics: Vec<Spanned<String>>,
    #[serde(default)]
    funnels: Vec<Spanned<String>>,
}

/// A window as written: `30d`, `12h`, `90m`, `45s`, `2w`; the number of seconds.
pub fn parse_window(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n.parse().ok()?;
    let per = match unit.trim() {
        "s" | "sec" | "seconds" | "second" => 1,
        "m" | "min" | "minutes" | "minute" => 60,
        "h" | "hours" | "hour" => 3_600,
        "d" | "days" | "day" => 86_400,
        "w" | "weeks" | "week" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(per)
}

/// The identifiers an expression names (metric names in a derived metric).
fn identifiers(expr: &str) -> Vec<String> {
    // words outside string literals, each with the first non-space character after it
    let chars: Vec<char> = expr.chars().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            in_string = !in_string;
            i += 1;
            continue;
        }
        if in_string || !(c.is_ascii_alphabetic() || c == '_') {
            i += 1;
            continue;
        }
        // a number's digits and letters (1e5) are not a word
        if i > 0 && (chars[i - 1].is_ascii_digit() || chars[i - 1] == '.') {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let next = chars[i..].iter().find(|c| !c.is_whitespace());
        // a function call (`round(`, `nullif(`), a keyword or a type is not a metric
        if next != Some(&'(') && !is_sql_word(&word) && !out.contains(&word) {
            out.push(word);
        }
    }
    out
}

/// SQL keywords and type names an expression may hold besides metric names.
fn is_sql_word(w: &str) -> bool {
    matches!(
        w.to_ascii_lowercase().as_str(),
        "and"
            | "or"
            | "not"
            | "null"
            | "case"
            | "when"
            | "then"
            | "else"
            | "end"
            | "as"
            | "is"
            | "in"
            | "between"
            | "like"
            | "true"
            | "false"
            | "cast"
            | "double"
            | "float"
            | "real"
            | "bigint"
            | "int"
            | "integer"
            | "decimal"
            | "numeric"
            | "distinct"
    )
}

fn is_identifier(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Loading state: the file being read and every problem so far.
struct Loader<'a> {
    file: &'a SourceFile,
    diags: &'a mut Diagnostics,
}

impl Loader<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.diags.push(self.file.error(span, msg));
    }
    fn origin(&self, span: &Range<usize>) -> Origin {
        Origin {
            path: self.file.path.clone(),
            line: self.file.line_col(span.start).0,
        }
    }
}

impl Definitions {
    /// Every `*.toml` under `models/` of a project, in path order.
    pub fn load(project_root: &Path) -> Result<Self, Diagnostics> {
        let files = definition_files(project_root);
        let mut sources = Vec::new();
        let mut diags = Diagnostics::default();
        for path in files {
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push(SourceFile::new(path, text)),
                Err(e) => diags.push(Diagnostic::without_location(
                    &path,
                    format!("cannot read definitions: {e}"),
                )),
            }
        }
        let defs = Self::from_sources(&sources, &mut diags);
        diags.into_result().map(|()| defs)
    }

    /// Definitions from files' texts, with every problem added to `diags`.
    pub fn from_sources(sources: &[SourceFile], diags: &mut Diagnostics) -> Self {
        let mut defs = Self::default();
        // Names first (so references may point at a later file), then the checks that need
        // every name.
        let mut raws = Vec::new();
        for file in sources {
            match toml::from_str::<FileDefs>(&file.text) {
                Ok(raw) => raws.push((file, raw)),
                Err(e) => {
                    let span = e.span().unwrap_or(0..0);
                    diags.push(file.error(span, e.message().to_string()));
                }
            }
        }
        for (file, raw) in &raws {
            let mut l = Loader { file, diags };
            for e in &raw.event {
                defs.add_event(&mut l, e);
            }
            for d in &raw.dimension {
                defs.add_dimension(&mut l, d);
            }
        }
        for (file, raw) in &raws {
            let mut l = Loader { file, diags };
            for m in &raw.metric {
                defs.add_metric(&mut l, m);
            }
            for f in &raw.funnel {
                defs.add_funnel(&mut l, f);
            }
        }
        for (file, raw) in &raws {
            let mut l = Loader { file, diags };
            for t in &raw.team {
                defs.add_team(&mut l, t);
            }
        }
        defs.check_metric_cycles(diags);
        defs
    }

    fn add_event(&mut self, l: &mut Loader<'_>, e: &Spanned<RawEvent>) {
        let (span, e) = (e.span(), e.get_ref());
        let name = e.name.get_ref().clone();
        if !is_identifier(&name) {
            l.err(
                e.name.span(),
                format!("event name `{name}` must be letters, digits and _"),
            );
        }
        if self.events.contains_key(&name) {
            l.err(e.name.span(), format!("event `{name}` is defined twice"));
            return;
        }
        let source = match (&e.table, &e.sql) {
            (Some(table), None) => EventSource::Table {
                table: table.clone(),
                time: e.time.clone().unwrap_or_else(|| "event_ts".into()),
                person: e.person.clone().unwrap_or_else(|| "person_id".into()),
                filter: e.filter.clone(),
            },
            (None, Some(sql)) => {
                if e.time.is_some() || e.person.is_some() || e.filter.is_some() {
                    l.err(
                        span.clone(),
                        format!(
                            "event `{name}`: with `sql`, name the columns person_id and event_ts \
                             in the query; time, person and filter belong to `table`"
                        ),
                    );
                }
                EventSource::Sql(sql.clone())
            }
            _ => {
                l.err(
                    span.clone(),
                    format!("event `{name}` needs either `table` or `sql` (one of them)"),
                );
                return;
            }
        };
        for p in &e.properties {
            if !is_identifier(p) {
                l.err(
                    span.clone(),
                    format!("event `{name}`: property `{p}` must be a column name"),
                );
            }
        }
        self.events.insert(
            name.clone(),
            EventDef {
                name,
                description: e.description.clone(),
                source,
                properties: e.properties.clone(),
                origin: l.origin(&span),
            },
        );
    }

    fn add_dimension(&mut self, l: &mut Loader<'_>, d: &Spanned<RawDimension>) {
        let (span, d) = (d.span(), d.get_ref());
        let name = d.name.get_ref().clone();
        if !is_identifier(&name) {
            l.err(
                d.name.span(),
                format!("dimension name `{name}` must be letters, digits and _"),
            );
        }
        if self.dimensions.contains_key(&name) {
            l.err(
                d.name.span(),
                format!("dimension `{name}` is defined twice"),
            );
            return;
        }
        let join = match (&d.table, &d.key) {
            (Some(t), Some(k)) => Some((t.clone(), k.clone())),
            (None, None) => None,
            _ => {
                l.err(
                    span.clone(),
                    format!("dimension `{name}`: `table` and `key` go together (the join)"),
                );
                None
            }
        };
        let expr = match (&d.column, &d.expr) {
            (Some(c), None) if join.is_some() => format!("d.{c}"),
            (Some(c), None) => format!("f.{c}"),
            (None, Some(e)) => e.clone(),
            _ => {
                l.err(
                    span.clone(),
                    format!("dimension `{name}` needs either `column` or `expr` (one of them)"),
                );
                return;
            }
        };
        self.dimensions.insert(
            name.clone(),
            DimensionDef {
                name,
                description: d.description.clone(),
                join,
                expr,
            },
        );
    }

    fn add_metric(&mut self, l: &mut Loader<'_>, m: &Spanned<RawMetric>) {
        let (span, m) = (m.span(), m.get_ref());
        let name = m.name.get_ref().clone();
        if !is_identifier(&name) {
            l.err(
                m.name.span(),
                format!("metric name `{name}` must be letters, digits and _"),
            );
        }
        if self.metrics.contains_key(&name) {
            l.err(m.name.span(), format!("metric `{name}` is defined twice"));
            return;
        }
        let kind = m.kind;
        let needs_column = matches!(
            kind,
            MetricKind::CountDistinct | MetricKind::Sum | MetricKind::Average
        );
        let reads_table = !matches!(kind, MetricKind::Ratio | MetricKind::Derived);
        if reads_table && m.table.is_none() {
            l.err(
                span.clone(),
                format!("metric `{name}` ({}) needs `table`", kind.name()),
            );
        }
        if needs_column && m.column.is_none() {
            l.err(
                span.clone(),
                format!(
                    "metric `{name}` ({}) needs `column`: what it counts, sums or averages",
                    kind.name()
                ),
            );
        }
        if !reads_table && (m.table.is_some() || m.column.is_some() || m.filter.is_some()) {
            l.err(
                span.clone(),
                format!(
                    "metric `{name}` ({}) is computed from other metrics: table, column \
                     and filter belong to them",
                    kind.name()
                ),
            );
        }
        if m.rolling_days.is_some_and(|d| !(1..=3_650).contains(&d)) {
            l.err(
                span.clone(),
                format!("metric `{name}`: rolling_days is 1 to 3650"),
            );
        }
        if m.rolling_days.is_some() && !reads_table {
            l.err(
                span.clone(),
                format!("metric `{name}`: rolling_days applies to metrics that read a table"),
            );
        }
        let metric_ref = |l: &mut Loader<'_>, s: &Option<Spanned<String>>, what: &str| match s {
            Some(s) => Some(s.get_ref().clone()),
            None => {
                l.err(
                    span.clone(),
                    format!("metric `{name}` (ratio) needs `{what}`"),
                );
                None
            }
        };
        let (numerator, denominator) = if kind == MetricKind::Ratio {
            (
                metric_ref(l, &m.numerator, "numerator"),
                metric_ref(l, &m.denominator, "denominator"),
            )
        } else {
            (None, None)
        };
        if kind == MetricKind::Derived && m.expression.is_none() {
            l.err(
                span.clone(),
                format!("metric `{name}` (derived) needs `expression`, over other metrics' names"),
            );
        }
        let mut dimensions = Vec::new();
        for d in &m.dimensions {
            if !self.dimensions.contains_key(d.get_ref()) {
                l.err(
                    d.span(),
                    format!(
                        "metric `{name}`: unknown dimension `{}` (declared: {})",
                        d.get_ref(),
                        names(self.dimensions.keys())
                    ),
                );
            }
            dimensions.push(d.get_ref().clone());
        }
        let def = MetricDef {
            name: name.clone(),
            description: m.description.clone(),
            owner: m.owner.clone(),
            kind,
            table: m.table.clone(),
            time: m.time.clone().unwrap_or_else(|| "event_date".into()),
            column: m.column.clone(),
            filter: m.filter.clone(),
            dimensions,
            numerator,
            denominator,
            expression: m.expression.as_ref().map(|e| e.get_ref().clone()),
            rolling_days: m.rolling_days,
            unit: m.unit.clone(),
            origin: l.origin(&span),
        };
        self.metrics.insert(name, def);
    }

    fn add_funnel(&mut self, l: &mut Loader<'_>, f: &Spanned<RawFunnel>) {
        let (span, f) = (f.span(), f.get_ref());
        let name = f.name.get_ref().clone();
        if !is_identifier(&name) {
            l.err(
                f.name.span(),
                format!("funnel name `{name}` must be letters, digits and _"),
            );
        }
        if self.funnels.contains_key(&name) {
            l.err(f.name.span(), format!("funnel `{name}` is defined twice"));
            return;
        }
        let mut steps = Vec::new();
        for s in f.steps.get_ref() {
            let (event, step_name, filter) = match s.get_ref() {
                RawStep::Event(e) => (e.clone(), e.clone(), None),
                RawStep::Full(RawStepFull {
                    event,
                    name,
                    filter,
                }) => (
                    event.clone(),
                    name.clone().unwrap_or_else(|| event.clone()),
                    filter.clone(),
                ),
            };
            if !self.events.contains_key(&event) {
                l.err(
                    s.span(),
                    format!(
                        "funnel `{name}`: unknown event `{event}` (declared: {})",
                        names(self.events.keys())
                    ),
                );
            }
            if steps.iter().any(|p: &StepDef| p.name == step_name) {
                l.err(
                    s.span(),
                    format!(
                        "funnel `{name}`: two steps are named `{step_name}`; give one a `name`"
                    ),
                );
            }
            steps.push(StepDef {
                name: step_name,
                event,
                filter,
            });
        }
        if steps.len() < 2 || steps.len() > MAX_PATH_STEPS {
            l.err(
                f.steps.span(),
                format!(
                    "funnel `{name}` has {} steps: a funnel has 2 to {MAX_PATH_STEPS}",
                    steps.len()
                ),
            );
        }
        let window_seconds = match parse_window(f.window.get_ref()) {
            Some(w) if w <= crate::funnels::MAX_WINDOW_SECONDS => w,
            _ => {
                l.err(
                    f.window.span(),
                    format!(
                        "funnel `{name}`: window `{}` is not a duration like 14d, 12h, 30m \
                         (at most 3650 days)",
                        f.window.get_ref()
                    ),
                );
                0
            }
        };
        let mode = match &f.mode {
            Some(m) => Mode::parse(m.get_ref()).unwrap_or_else(|e| {
                l.err(m.span(), format!("funnel `{name}`: {e}"));
                Mode::default()
            }),
            None => Mode::default(),
        };
        let step_index = |s: &str| steps.iter().position(|p| p.name == s);
        let mut exclusions = Vec::new();
        for x in &f.exclusions {
            let (xspan, x) = (x.span(), x.get_ref());
            if !self.events.contains_key(&x.event) {
                l.err(
                    xspan.clone(),
                    format!("funnel `{name}`: unknown exclusion event `{}`", x.event),
                );
            }
            match (step_index(&x.between[0]), step_index(&x.between[1])) {
                (Some(a), Some(b)) if b == a + 1 => exclusions.push(ExclusionDef {
                    event: x.event.clone(),
                    filter: x.filter.clone(),
                    after: a + 1,
                }),
                _ => l.err(
                    xspan,
                    format!(
                        "funnel `{name}`: an exclusion sits between two consecutive steps, by \
                         name (steps: {})",
                        steps
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            }
        }
        if mode.any_order && !exclusions.is_empty() {
            l.err(
                span.clone(),
                format!("funnel `{name}`: exclusions need an ordered funnel, not any_order"),
            );
        }
        let attribution = match &f.attribution {
            Some(a) => step_index(a.get_ref()).unwrap_or_else(|| {
                l.err(
                    a.span(),
                    format!(
                        "funnel `{name}`: attribution names no step `{}`",
                        a.get_ref()
                    ),
                );
                0
            }),
            None => 0,
        };
        self.funnels.insert(
            name.clone(),
            FunnelDef {
                name,
                description: f.description.clone(),
                owner: f.owner.clone(),
                steps,
                window_seconds,
                mode,
                exclusions,
                attribution,
                origin: l.origin(&span),
            },
        );
    }

    fn add_team(&mut self, l: &mut Loader<'_>, t: &Spanned<RawTeam>) {
        let t = t.get_ref();
        let name = t.name.get_ref().clone();
        if self.teams.contains_key(&name) {
            l.err(t.name.span(), format!("team `{name}` is defined twice"));
            return;
        }
        for m in &t.metrics {
            if !self.metrics.contains_key(m.get_ref()) {
                l.err(
                    m.span(),
                    format!("team `{name}`: unknown metric `{}`", m.get_ref()),
                );
            }
        }
        for f in &t.funnels {
            if !self.funnels.contains_key(f.get_ref()) {
                l.err(
                    f.span(),
                    format!("team `{name}`: unknown funnel `{}`", f.get_ref()),
                );
            }
        }
        self.teams.insert(
            name.clone(),
            TeamDef {
                name,
                description: t.description.clone(),
                metrics: t.metrics.iter().map(|m| m.get_ref().clone()).collect(),
                funnels: t.funnels.iter().map(|f| f.get_ref().clone()).collect(),
            },
        );
    }

    /// Ratio and derived metrics name metrics that exist, without a cycle.
    fn check_metric_cycles(&self, diags: &mut Diagnostics) {
        for m in self.metrics.values() {
            for input in m.inputs() {
                if !self.metrics.contains_key(&input) {
                    diags.push(at(
                        &m.origin,
                        format!(
                            "metric `{}` uses `{input}`, which is not a metric (declared: {})",
                            m.name,
                            names(self.metrics.keys())
                        ),
                    ));
                }
            }
            let mut seen = BTreeSet::new();
            if self.reaches(&m.name, &m.name, &mut seen) {
                diags.push(at(
                    &m.origin,
                    format!("metric `{}` is computed from itself", m.name),
                ));
            }
        }
    }

    fn reaches(&self, from: &str, target: &str, seen: &mut BTreeSet<String>) -> bool {
        let Some(m) = self.metrics.get(from) else {
            return false;
        };
        for input in m.inputs() {
            if input == target {
                return true;
            }
            if seen.insert(input.clone()) && self.reaches(&input, target, seen) {
                return true;
            }
        }
        false
    }
}

fn at(origin: &Origin, message: String) -> Diagnostic {
    Diagnostic {
        path: origin.path.clone(),
        line: Some(origin.line),
        column: None,
        message,
    }
}

/// Names for a message: `a, b, c`, or `none`.
pub(crate) fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = keys.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Every definitions file of a project: `models/**/*.toml` except a model's own settings
/// (`X.toml` beside `X.sql`), in path order.
pub fn definition_files(project_root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    collect_toml(&project_root.join("models"), &mut files);
    files.sort();
    files
}

fn collect_toml(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            collect_toml(&path, out);
        } else if path.extension().is_some_and(|x| x == "toml")
            // `X.toml` beside `X.sql` holds that model's settings
            && !path.with_extension("sql").is_file()
        {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn load(text: &str) -> (Definitions, Vec<String>) {
        let mut diags = Diagnostics::default();
        let file = SourceFile::new("models/defs.toml".into(), text.into());
        let defs = Definitions::from_sources(&[file], &mut diags);
        (defs, diags.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_valid_file_loads() {
        let (defs, errors) = load(
            r#"
[[event]]
name = "visit"
table = "int_touches_resolved"
filter = "is_visit"
properties = ["platform"]

[[event]]
name = "signup"
sql = "SELECT person_id, event_ts, platform FROM fct_events WHERE event_type = 'signup'"

[[dimension]]
name = "platform"
column = "platform"

[[metric]]
name = "signups"
kind = "count"
table = "fct_events"
filter = "event_type = 'signup'"
dimensions = ["platform"]

[[metric]]
name = "visitors"
kind = "count_distinct"
table = "int_person_days"
column = "person_id"

[[metric]]
name = "signup_rate"
kind = "ratio"
numerator = "signups"
denominator = "visitors"

[[funnel]]
name = "buyer"
window = "14d"
steps = ["visit", { event = "signup", name = "sign up", filter = "platform = 'ios'" }]
attribution = "sign up"
"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(defs.funnels["buyer"].window_seconds, 14 * 86_400);
        assert_eq!(defs.funnels["buyer"].attribution, 1);
        assert_eq!(
            defs.metrics["signup_rate"].inputs(),
            vec!["signups", "visitors"]
        );
        assert_eq!(defs.dimensions["platform"].expr, "f.platform");
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let (_, errors) = load(
            r#"
[[metric]]
name = "a"
kind = "sum"
table = "t"

[[metric]]
name = "b"
kind = "derived"
expression = "a / c"

[[metric]]
name = "d"
kind = "count"
table = "t"
dimensions = ["nowhere"]

[[funnel]]
name = "f"
window = "fortnight"
mode = "sideways"
steps = ["visit", "signup"]
"#,
        );
        let all = errors.join("\n");
        assert!(
            all.contains("defs.toml:2:1: metric `a` (sum) needs `column`"),
            "{all}"
        );
        assert!(
            all.contains("defs.toml:7") && all.contains("uses `c`, which is not a metric"),
            "{all}"
        );
        assert!(
            all.contains("defs.toml:16:15: metric `d`: unknown dimension `nowhere`"),
            "{all}"
        );
        assert!(
            all.contains("window `fortnight` is not a duration"),
            "{all}"
        );
        assert!(all.contains("unknown funnel mode `sideways`"), "{all}");
        assert!(all.contains("unknown event `visit`"), "{all}");
        assert_eq!(errors.len(), 7, "{all}");
    }

    #[test]
    fn unknown_keys_and_cycles_are_refused() {
        let (_, errors) =
            load("[[metric]]\nname = \"a\"\nkind = \"count\"\ntable = \"t\"\ncolour = \"red\"\n");
        assert!(
            errors[0].contains("defs.toml:5:1") && errors[0].contains("unknown field `colour`"),
            "{errors:?}"
        );
        let (_, errors) = load(
            "[[metric]]\nname = \"a\"\nkind = \"derived\"\nexpression = \"b + 1\"\n\
             [[metric]]\nname = \"b\"\nkind = \"derived\"\nexpression = \"a * 2\"\n",
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("`a` is computed from itself")),
            "{errors:?}"
        );
    }

    #[test]
    fn derived_expressions_name_metrics_not_sql() {
        assert_eq!(
            identifiers("CAST(revenue AS DOUBLE) / NULLIF(signups, 0) * 1e3"),
            vec!["revenue", "signups"]
        );
        assert_eq!(
            identifiers("CASE WHEN dau IS NULL THEN 0 ELSE round (dau / mau, 2) END"),
            vec!["dau", "mau"]
        );
        assert_eq!(identifiers("a + 'b c' + sqrt(d)"), vec!["a", "d"]);
    }

    #[test]
    fn windows_are_durations() {
        assert_eq!(parse_window("30d"), Some(30 * 86_400));
        assert_eq!(parse_window("12h"), Some(12 * 3_600));
        assert_eq!(parse_window("2w"), Some(14 * 86_400));
        assert_eq!(parse_window("30"), None);
        assert_eq!(parse_window("d"), None);
    }
}
