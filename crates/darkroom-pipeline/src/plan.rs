//! Planning: every task of a night (or of a backfill's dates), its dependencies, the
//! fingerprint of its inputs, and whether it is already done.
//!
//! Tasks, one per (stage, target, date partition):
//! - `extract/<db>/<night>`: copy a database's tables (the current night only: a database
//!   can only be read as it is now).
//! - `ingest/<source>/<file_date>`: parse a log source's files of one date.
//! - `build/<model>/<date>`: one date partition of an incremental model.
//! - `build/<model>`: a table or snapshot model, once per night (after every date it reads).
//! - `publish/<night>`: record the night's table versions as the snapshot readers see.
//!
//! **Fingerprints.** An ingest's fingerprint is its files as listed now (host, path, size,
//! last modified; see `darkroom_sources::listing_fingerprints`). A date partition's is its
//! model's SQL, the project's variables and time zone, and the fingerprints of the
//! partitions it reads: a log source's file dates `D - 1 ..= D + late_days`, an upstream
//! incremental model's date `D`, a view's own inputs for `D`. A table or dimension upstream
//! is current state and does not make old partitions stale (facts keep the keys valid when
//! they were built; identity re-attribution names its dates through `rebuild_dates`), and
//! neither does a database table: a source row that arrives late for an earlier date is
//! picked up by a model's `rebuild_dates`. A table model's fingerprint covers every
//! fingerprint it reads in the plan. A task is done when the warehouse recorded its
//! completion with the same fingerprint.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use darkroom_config::{Diagnostics, Project};
use darkroom_models::{Materialized, Models};
use darkroom_storage::Warehouse;
use serde::Serialize;

use crate::store::{IndexedCompletion, Store};
use crate::{PipelineError, Result};

/// The stages, in the order a night runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Extract,
    Ingest,
    Build,
    Publish,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Self::Extract => "extract",
            Self::Ingest => "ingest",
            Self::Build => "build",
            Self::Publish => "publish",
        }
    }
}

/// What a task does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskKind {
    Extract {
        source: String,
    },
    Ingest {
        source: String,
    },
    /// One date partition of an incremental model (batched with the model's other dates
    /// when they run).
    BuildDate {
        model: String,
    },
    /// A table or snapshot model, built once for the night.
    BuildModel {
        model: String,
    },
    Publish,
}

/// Whether a planned task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Planned {
    /// It runs; `why` says why (new, inputs changed, forced, failed before).
    Run { why: String },
    /// Recorded complete with the same fingerprint: not run again.
    Done,
    /// Not done, but the reprocess policy leaves it alone.
    Excluded { why: String },
}

/// One task of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub id: String,
    pub stage: Stage,
    #[serde(flatten)]
    pub kind: TaskKind,
    /// The date partition, or the night for extract, whole-model and publish tasks.
    pub date: NaiveDate,
    /// The table whose commit records the task complete (empty for an extract, whose
    /// tables each record their own).
    pub table: String,
    pub fingerprint: String,
    /// Indexes of the tasks it needs.
    pub deps: Vec<usize>,
    pub planned: Planned,
}

/// How a backfill treats tasks already attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reprocess {
    /// Run what is not done (never run, failed, or its inputs changed).
    #[default]
    Missing,
    /// Run only what failed (or was skipped) in an earlier run.
    Failed,
    /// Run everything again.
    All,
}

impl std::str::FromStr for Reprocess {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "missing" => Ok(Self::Missing),
            "failed" => Ok(Self::Failed),
            "all" => Ok(Self::All),
            other => Err(format!(
                "unknown reprocess policy `{other}`: use missing, failed or all"
            )),
        }
    }
}

/// What to plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum Request {
    /// One night: its extract, ingest and builds, plus the earlier dates (up to
    /// `lookback_days`) whose inputs changed since they were done (late data).
    Run { night: NaiveDate },
    /// A range of dates: ingest and build each (no extract: a database can only be read as
    /// it is now), then the table models and one publish for `to`.
    Backfill { from: NaiveDate, to: NaiveDate },
}

impl Request {
    /// The night the plan publishes.
    pub fn night(&self) -> NaiveDate {
        match self {
            Self::Run { night } => *night,
            Self::Backfill { to, .. } => *to,
        }
    }
}

/// A plan: the tasks in an order that respects their dependencies.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub request: Request,
    pub reprocess: Reprocess,
    pub force: bool,
    pub tasks: Vec<Task>,
    /// The dates incremental models compute.
    pub dates: Vec<NaiveDate>,
    /// Fingerprints of every (incremental model, date) the plan knows, for dates an upstream
    /// model rebuilds besides the planned ones.
    #[serde(skip)]
    pub date_fingerprints: Arc<HashMap<(String, NaiveDate), String>>,
}

impl Plan {
    pub fn to_run(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| matches!(t.planned, Planned::Run { .. }))
            .count()
    }
    pub fn done(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.planned == Planned::Done)
            .count()
    }
}

/// Everything planning reads.
#[derive(Debug)]
pub struct PlanInputs<'a> {
    pub project: &'a Project,
    pub models: &'a Models,
    pub warehouse: &'a Warehouse,
    pub store: &'a Store,
    pub vars: &'a BTreeMap<String, String>,
}

/// The models of a project, or every problem with them.
pub fn load_models(project: &Project) -> Result<Models> {
    let mut diags = Diagnostics::default();
    let models = Models::load(project, &mut diags);
    if diags.is_empty() {
        Ok(models)
    } else {
        diags.sort();
        Err(PipelineError::Invalid(diags.to_string()))
    }
}

/// The location key the completions index uses for a warehouse.
pub fn location_key(warehouse: &Warehouse) -> String {
    warehouse
        .location()
        .root_url()
        .map(|u| u.to_string())
        .unwrap_or_default()
}

fn hash(parts: &serde_json::Value) -> String {
    blake3::hash(parts.to_string().as_bytes())
        .to_hex()
        .to_string()
}

/// Where a warehouse table read through `source(...)` comes from.
enum Origin {
    Log { source: String, late_days: u32 },
    Database { source: String },
    Other,
}

struct Planner<'a> {
    inputs: &'a PlanInputs<'a>,
    index: HashMap<(String, String), IndexedCompletion>,
    /// Ingest fingerprints: listed now for dates the plan ingests, else as recorded.
    ingest_fp: HashMap<(String, NaiveDate), String>,
    /// Dates each log source is ingested in this plan.
    ingest_dates: BTreeSet<NaiveDate>,
    model_fp: HashMap<(usize, NaiveDate), String>,
    origins: HashMap<String, Origin>,
    extract_fp: HashMap<String, String>,
}

impl Planner<'_> {
    fn origin(&self, table: &str) -> &Origin {
        self.origins.get(table).unwrap_or(&Origin::Other)
    }

    fn ingest_fingerprint(&self, source: &str, date: NaiveDate) -> String {
        if let Some(fp) = self.ingest_fp.get(&(source.to_string(), date)) {
            return fp.clone();
        }
        let task = format!("ingest/{source}/{date}");
        self.index
            .get(&(darkroom_sources::ledger::LEDGER_TABLE.to_string(), task))
            .map_or_else(|| "absent".to_string(), |c| c.fingerprint.clone())
    }

    /// The inputs model `i` reads for date `d` (through views, recursively).
    fn date_inputs(&mut self, i: usize, d: NaiveDate, out: &mut Vec<serde_json::Value>) {
        let models = self.inputs.models;
        let model = &models.models[i];
        for (table, _) in &model.sources {
            match self.origin(table) {
                Origin::Log { source, late_days } => {
                    let source = source.clone();
                    for day in read_window(d, *late_days) {
                        out.push(serde_json::json!([
                            table,
                            day,
                            self.ingest_fingerprint(&source, day)
                        ]));
                    }
                }
                Origin::Database { .. } | Origin::Other => {
                    out.push(serde_json::json!(["table", table]));
                }
            }
        }
        for &u in &models.graph.upstream[i] {
            let up = &models.models[u];
            match up.settings.materialized {
                Materialized::Incremental => {
                    let fp = self.model_fingerprint(u, d);
                    out.push(serde_json::json!([up.name, d, fp]));
                }
                Materialized::View => self.date_inputs(u, d, out),
                Materialized::Table | Materialized::Snapshot => {
                    out.push(serde_json::json!(["model", up.name]));
                }
            }
        }
    }

    /// The fingerprint of date `d` of incremental model `i`.
    fn model_fingerprint(&mut self, i: usize, d: NaiveDate) -> String {
        if let Some(fp) = self.model_fp.get(&(i, d)) {
            return fp.clone();
        }
        let mut inputs = Vec::new();
        self.date_inputs(i, d, &mut inputs);
        let model = &self.inputs.models.models[i];
        let fp = hash(&serde_json::json!({
            "model": model.name,
            "sql": blake3::hash(model.source.text.as_bytes()).to_hex().to_string(),
            "settings": darkroom_config::fingerprint_text(&model.settings),
            "vars": self.inputs.vars,
            "timezone": self.inputs.project.timezone().name(),
            "date": d,
            "inputs": inputs,
        }));
        self.model_fp.insert((i, d), fp.clone());
        fp
    }

    fn completion(&self, table: &str, task: &str) -> Option<&IndexedCompletion> {
        self.index.get(&(table.to_string(), task.to_string()))
    }
}

/// Plan `request`. `last_failed` (tasks whose latest outcome was a failure) matters only for
/// [`Reprocess::Failed`].
pub async fn plan(
    inputs: &PlanInputs<'_>,
    request: &Request,
    reprocess: Reprocess,
    force: bool,
) -> Result<Plan> {
    let started = std::time::Instant::now();
    let project = inputs.project;
    let models = inputs.models;
    let location = location_key(inputs.warehouse);
    let mut index = inputs.store.completions(&location)?;
    // the warehouse is the truth: a table dropped or recreated since its completions were
    // indexed (its log is gone, or older than what the index heard of) forgets them
    let mut newest: HashMap<&str, u64> = HashMap::new();
    for c in index.values() {
        if !c.table.is_empty() {
            let v = newest.entry(c.table.as_str()).or_default();
            *v = (*v).max(c.table_version);
        }
    }
    let stale: Vec<String> = newest
        .into_iter()
        .filter(|(table, recorded)| {
            inputs
                .warehouse
                .local_version(table)
                .is_some_and(|now| now.is_none_or(|now| now < *recorded))
        })
        .map(|(table, _)| table.to_string())
        .collect();
    for table in &stale {
        tracing::info!(
            table,
            "the table changed behind the index: its completions are forgotten"
        );
        inputs.store.forget_table(&location, table)?;
        index.retain(|(t, _), _| t != table);
    }
    let mut origins = HashMap::new();
    for s in &project.sources {
        let origin = || Origin::Log {
            source: s.name().to_string(),
            late_days: s.files.late_days,
        };
        origins.insert(s.raw_table(), origin());
        origins.insert(s.quarantine_table(), origin());
    }
    for db in &project.databases {
        for t in &db.tables {
            origins.insert(
                db.raw_table(t),
                Origin::Database {
                    source: db.name().to_string(),
                },
            );
        }
    }
    let night = request.night();
    let lookback = u64::from(project.pipeline.lookback_days);
    // the dates whose ingest is considered: planned ones are listed now
    let (candidates, first_candidate): (Vec<NaiveDate>, NaiveDate) = match request {
        Request::Run { night } => {
            let first = night
                .checked_sub_days(chrono::Days::new(lookback))
                .unwrap_or(*night);
            (
                first.iter_days().take_while(|d| d <= night).collect(),
                first,
            )
        }
        Request::Backfill { from, to } => {
            (from.iter_days().take_while(|d| d <= to).collect(), *from)
        }
    };
    let ctx = darkroom_sources::IngestContext {
        project,
        warehouse: inputs.warehouse,
        remote_options: crate::runner::s3_options(project),
        progress: Arc::new(darkroom_sources::NoProgress),
    };
    // list every candidate date of every source: one walk of each source's folders
    let mut listed = HashMap::new();
    for s in &project.sources {
        let fps = darkroom_sources::listing_fingerprints(&ctx, s, &candidates)
            .await
            .map_err(|e| PipelineError::Source(format!("{}: {e}", s.name())))?;
        for (d, fp) in fps {
            listed.insert((s.name().to_string(), d), fp);
        }
    }
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        source_dates = listed.len(),
        "listed the log files"
    );

    let mut planner = Planner {
        inputs,
        index,
        ingest_fp: HashMap::new(),
        ingest_dates: BTreeSet::new(),
        model_fp: HashMap::new(),
        origins,
        extract_fp: HashMap::new(),
    };
    let last_failed: HashSet<String> = if reprocess == Reprocess::Failed {
        inputs.store.last_failed()?
    } else {
        HashSet::new()
    };
    let decide = |planner: &Planner<'_>, id: &str, table: &str, fp: &str| -> Planned {
        let recorded = planner.completion(table, id);
        let done = recorded.is_some_and(|c| c.fingerprint == fp);
        if force || reprocess == Reprocess::All {
            return Planned::Run {
                why: if done { "forced" } else { "not done" }.into(),
            };
        }
        if done {
            return Planned::Done;
        }
        if reprocess == Reprocess::Failed && !last_failed.contains(id) {
            return Planned::Excluded {
                why: "not done, but it did not fail before (--reprocess failed)".into(),
            };
        }
        Planned::Run {
            why: match recorded {
                None if last_failed.contains(id) => "failed before".into(),
                None => "new".into(),
                Some(_) => "inputs changed".into(),
            },
        }
    };

    let mut tasks: Vec<Task> = Vec::new();
    // ---- extract (a run only) ----
    let mut ids = TaskIds::default();
    if let Request::Run { night } = request {
        for db in &project.databases {
            let id = format!("extract/{}/{night}", db.name());
            let fp = hash(&serde_json::json!({
                "extract": db.name(),
                "tables": darkroom_config::fingerprint_text(&db.tables),
                "night": night,
            }));
            planner.extract_fp.insert(db.name().to_string(), fp.clone());
            let planned = decide(&planner, &id, "", &fp);
            ids.extract.insert(db.name().to_string(), tasks.len());
            tasks.push(Task {
                id,
                stage: Stage::Extract,
                kind: TaskKind::Extract {
                    source: db.name().to_string(),
                },
                date: *night,
                table: String::new(),
                fingerprint: fp,
                deps: vec![],
                planned,
            });
        }
    }

    // ---- ingest ----
    let ledger = darkroom_sources::ledger::LEDGER_TABLE;
    for s in &project.sources {
        for &d in &candidates {
            let id = format!("ingest/{}/{d}", s.name());
            let Some(fp) = listed.get(&(s.name().to_string(), d)).cloned() else {
                continue;
            };
            let recorded = planner.completion(ledger, &id).cloned();
            // a run ingests its night; earlier dates only when they were done before and
            // their files changed since (late data)
            let late_only = matches!(request, Request::Run { night } if d < *night);
            if late_only {
                match &recorded {
                    Some(c) if c.fingerprint != fp => {}
                    _ => continue,
                }
            }
            let planned = decide(&planner, &id, ledger, &fp);
            let planned = match planned {
                Planned::Run { .. } if late_only => Planned::Run {
                    why: "late data: its files changed since it was done".into(),
                },
                other => other,
            };
            planner
                .ingest_fp
                .insert((s.name().to_string(), d), fp.clone());
            planner.ingest_dates.insert(d);
            ids.ingest.insert((s.name().to_string(), d), tasks.len());
            tasks.push(Task {
                id,
                stage: Stage::Ingest,
                kind: TaskKind::Ingest {
                    source: s.name().to_string(),
                },
                date: d,
                table: ledger.to_string(),
                fingerprint: fp,
                deps: vec![],
                planned,
            });
        }
    }

    // ---- the dates incremental models compute ----
    let model_dates: Vec<NaiveDate> = match request {
        Request::Backfill { from, to } => from.iter_days().take_while(|d| d <= to).collect(),
        Request::Run { night } => {
            // the night, and each earlier date whose partitions were built with other inputs
            let mut dates = BTreeSet::from([*night]);
            for d in first_candidate.iter_days().take_while(|d| d < night) {
                for &i in &models.graph.order {
                    let model = &models.models[i];
                    if model.settings.materialized != Materialized::Incremental {
                        continue;
                    }
                    let id = format!("build/{}/{d}", model.name);
                    let Some(recorded) = planner.completion(&model.name, &id).cloned() else {
                        continue;
                    };
                    if recorded.fingerprint != planner.model_fingerprint(i, d) || force {
                        dates.insert(d);
                        break;
                    }
                }
            }
            dates.into_iter().collect()
        }
    };

    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "ingest and model dates planned"
    );
    // ---- builds, in model order ----
    // per model: the task indexes it produced (for the dependencies of downstream models)
    for &i in &models.graph.order {
        let model = &models.models[i];
        match model.settings.materialized {
            Materialized::View => {}
            Materialized::Incremental => {
                for &d in &model_dates {
                    let id = format!("build/{}/{d}", model.name);
                    let fp = planner.model_fingerprint(i, d);
                    let deps = date_deps(&planner, models, i, d, &ids);
                    let planned = decide(&planner, &id, &model.name, &fp);
                    ids.date.insert((i, d), tasks.len());
                    ids.model.entry(i).or_default().push(tasks.len());
                    tasks.push(Task {
                        id,
                        stage: Stage::Build,
                        kind: TaskKind::BuildDate {
                            model: model.name.clone(),
                        },
                        date: d,
                        table: model.name.clone(),
                        fingerprint: fp,
                        deps,
                        planned,
                    });
                }
            }
            Materialized::Table | Materialized::Snapshot => {
                let mut inputs = Vec::new();
                let mut deps = BTreeSet::new();
                whole_inputs(
                    &mut planner,
                    models,
                    i,
                    &model_dates,
                    &ids,
                    &tasks,
                    &mut inputs,
                    &mut deps,
                );
                let id = format!("build/{}", model.name);
                let mut fp = hash(&serde_json::json!({
                    "model": model.name,
                    "sql": blake3::hash(model.source.text.as_bytes()).to_hex().to_string(),
                    "settings": darkroom_config::fingerprint_text(&model.settings),
                    "vars": planner.inputs.vars,
                    "timezone": project.timezone().name(),
                    "inputs": inputs,
                }));
                let snapshot = model.settings.materialized == Materialized::Snapshot;
                if snapshot {
                    // as the snapshot records it: its inputs and the day it was taken
                    fp = serde_json::json!({"inputs": fp, "snapshot_date": night.to_string()})
                        .to_string();
                }
                let recorded = planner.completion(&model.name, &id).cloned();
                let planned = match recorded {
                    // a snapshot only moves forward (a database is read as it is now): a
                    // backfill builds on the history it already holds
                    Some(c) if snapshot && matches!(request, Request::Backfill { .. }) => {
                        fp = c.fingerprint;
                        Planned::Done
                    }
                    _ => decide(&planner, &id, &model.name, &fp),
                };
                ids.model.entry(i).or_default().push(tasks.len());
                tasks.push(Task {
                    id,
                    stage: Stage::Build,
                    kind: TaskKind::BuildModel {
                        model: model.name.clone(),
                    },
                    date: night,
                    table: model.name.clone(),
                    fingerprint: fp,
                    deps: deps.into_iter().collect(),
                    planned,
                });
            }
        }
    }

    // ---- publish ----
    let id = format!("publish/{night}");
    let fp = hash(&serde_json::json!(
        tasks.iter().map(|t| &t.fingerprint).collect::<Vec<_>>()
    ));
    // whatever runs tonight makes new table versions, which the night publishes
    let planned = if tasks
        .iter()
        .any(|t| matches!(t.planned, Planned::Run { .. }))
    {
        Planned::Run {
            why: "tasks run: their new versions are published".into(),
        }
    } else {
        decide(&planner, &id, darkroom_storage::SNAPSHOTS_TABLE, &fp)
    };
    let deps = (0..tasks.len()).collect();
    tasks.push(Task {
        id,
        stage: Stage::Publish,
        kind: TaskKind::Publish,
        date: night,
        table: darkroom_storage::SNAPSHOTS_TABLE.to_string(),
        fingerprint: fp,
        deps,
        planned,
    });

    // fingerprints for dates an upstream model may rebuild besides the planned ones (the
    // identity look-back): computed for a month before the first planned date
    if let Some(&first) = model_dates.first() {
        let earlier = first
            .checked_sub_days(chrono::Days::new(31))
            .unwrap_or(first);
        for &i in &models.graph.order {
            if models.models[i].settings.materialized == Materialized::Incremental {
                for d in earlier.iter_days().take_while(|d| *d < first) {
                    planner.model_fingerprint(i, d);
                }
            }
        }
    }
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        tasks = tasks.len(),
        "planned"
    );
    let date_fingerprints = planner
        .model_fp
        .iter()
        .map(|((i, d), fp)| ((models.models[*i].name.clone(), *d), fp.clone()))
        .collect();
    Ok(Plan {
        request: request.clone(),
        reprocess,
        force,
        tasks,
        dates: model_dates,
        date_fingerprints: Arc::new(date_fingerprints),
    })
}

/// Where each planned task is, by what it is for.
#[derive(Default)]
struct TaskIds {
    /// (log source, file date)
    ingest: HashMap<(String, NaiveDate), usize>,
    /// database source
    extract: HashMap<String, usize>,
    /// (incremental model, date)
    date: HashMap<(usize, NaiveDate), usize>,
    /// every task of a model
    model: HashMap<usize, Vec<usize>>,
}

/// The log file dates the partition of date `d` reads: `d - 1 ..= d + late_days`.
fn read_window(d: NaiveDate, late_days: u32) -> impl Iterator<Item = NaiveDate> {
    let first = d.pred_opt().unwrap_or(d);
    let last = d
        .checked_add_days(chrono::Days::new(u64::from(late_days)))
        .unwrap_or(d);
    first.iter_days().take_while(move |x| *x <= last)
}

/// Model `i` and the views it reads, through views, each once.
fn through_views(models: &Models, i: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut stack = vec![i];
    let mut seen = HashSet::new();
    while let Some(k) = stack.pop() {
        if !seen.insert(k) {
            continue;
        }
        out.push(k);
        stack.extend(
            models.graph.upstream[k]
                .iter()
                .filter(|u| models.models[**u].settings.materialized == Materialized::View),
        );
    }
    out
}

/// The tasks date `d` of incremental model `i` needs.
fn date_deps(
    planner: &Planner<'_>,
    models: &Models,
    i: usize,
    d: NaiveDate,
    ids: &TaskIds,
) -> Vec<usize> {
    let mut deps = BTreeSet::new();
    for k in through_views(models, i) {
        let model = &models.models[k];
        for (table, _) in &model.sources {
            match planner.origin(table) {
                Origin::Log { source, late_days } => {
                    for day in read_window(d, *late_days) {
                        if let Some(&t) = ids.ingest.get(&(source.clone(), day)) {
                            deps.insert(t);
                        }
                    }
                }
                Origin::Database { source } => {
                    if let Some(&t) = ids.extract.get(source) {
                        deps.insert(t);
                    }
                }
                Origin::Other => {}
            }
        }
        for &u in &models.graph.upstream[k] {
            match models.models[u].settings.materialized {
                Materialized::View => {}
                Materialized::Incremental => {
                    if let Some(&t) = ids.date.get(&(u, d)) {
                        deps.insert(t);
                    }
                }
                Materialized::Table | Materialized::Snapshot => {
                    deps.extend(ids.model.get(&u).into_iter().flatten().copied());
                }
            }
        }
    }
    deps.into_iter().collect()
}

/// The inputs and dependencies of a table or snapshot model: everything it reads in the plan.
#[allow(clippy::too_many_arguments)]
fn whole_inputs(
    planner: &mut Planner<'_>,
    models: &Models,
    i: usize,
    model_dates: &[NaiveDate],
    ids: &TaskIds,
    tasks: &[Task],
    inputs: &mut Vec<serde_json::Value>,
    deps: &mut BTreeSet<usize>,
) {
    for k in through_views(models, i) {
        let model = &models.models[k];
        for (table, _) in &model.sources {
            match planner.origin(table) {
                Origin::Log { source, .. } => {
                    let source = source.clone();
                    for (key, &t) in &ids.ingest {
                        if key.0 == source {
                            deps.insert(t);
                        }
                    }
                    let mut fps: Vec<(NaiveDate, String)> = planner
                        .ingest_dates
                        .iter()
                        .map(|d| (*d, planner.ingest_fingerprint(&source, *d)))
                        .collect();
                    fps.sort();
                    inputs.push(serde_json::json!([table, fps]));
                }
                Origin::Database { source } => {
                    if let Some(&t) = ids.extract.get(source) {
                        deps.insert(t);
                    }
                    let fp = planner.extract_fp.get(source).cloned();
                    inputs.push(serde_json::json!([table, fp]));
                }
                Origin::Other => inputs.push(serde_json::json!(["table", table])),
            }
        }
        for &u in &models.graph.upstream[k] {
            let up = &models.models[u];
            match up.settings.materialized {
                Materialized::View => {}
                Materialized::Incremental => {
                    let fps: Vec<String> = model_dates
                        .iter()
                        .map(|d| planner.model_fingerprint(u, *d))
                        .collect();
                    inputs.push(serde_json::json!([up.name, fps]));
                    deps.extend(ids.model.get(&u).into_iter().flatten().copied());
                }
                Materialized::Table | Materialized::Snapshot => {
                    for &t in ids.model.get(&u).into_iter().flatten() {
                        deps.insert(t);
                        inputs.push(serde_json::json!([up.name, tasks[t].fingerprint]));
                    }
                }
            }
        }
    }
}
