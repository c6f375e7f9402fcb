//! `darkroom metric`, `funnel` and `retention`: the project's definitions, computed over the
//! latest published snapshot.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use chrono::{Days, NaiveDate};
use darkroom_analytics::defs::{ExclusionDef, StepDef, parse_window};
use darkroom_analytics::funnel::Mode;
use darkroom_analytics::funnels::{FunnelQuery, FunnelReport, StepReport};
use darkroom_analytics::metrics::{Grain, MetricQuery};
use darkroom_analytics::retention::RetentionQuery;
use darkroom_analytics::{Definitions, Reader};
use darkroom_config::Project;

use crate::cli::{FunnelArgs, MetricArgs, RetentionArgs};
use crate::exit;
use crate::output::{print_json, print_text};
use crate::project;

struct Context {
    project: Project,
    defs: Definitions,
}

fn context(explicit: Option<&Path>) -> Result<Context> {
    let project = project::load(explicit)?;
    let defs = Definitions::load(&project.root).map_err(|d| {
        anyhow!(
            "{d}\n{} problem(s) in the definitions (models/**/*.toml)",
            d.len()
        )
    })?;
    Ok(Context { project, defs })
}

async fn reader(ctx: &Context) -> Result<Reader> {
    let warehouse = project::warehouse(&ctx.project)?;
    Ok(Reader::open(&warehouse).await?)
}

/// The last date with published data: the snapshot's night, else yesterday.
fn last_date(ctx: &Context, reader: &Reader) -> NaiveDate {
    reader.as_of.night.unwrap_or_else(|| {
        let today = chrono::Utc::now()
            .with_timezone(&ctx.project.timezone())
            .date_naive();
        today - Days::new(1)
    })
}

fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration for people: 45s, 12m, 3h 5m, 2d 4h.
fn duration(seconds: f64) -> String {
    let s = seconds.round() as i64;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3_600, s % 3_600 / 60),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3_600),
    }
}

fn value_text(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => {
            let sign = if v < 0.0 { "-" } else { "" };
            format!("{sign}{}", thousands(v.abs() as u64))
        }
        Some(v) if v.abs() < 10.0 => format!("{v:.4}"),
        Some(v) => format!("{v:.2}"),
    }
}

pub async fn metric(explicit: Option<&Path>, args: MetricArgs) -> Result<u8> {
    let ctx = context(explicit)?;
    let Some(name) = args.name else {
        return list_metrics(&ctx, args.json);
    };
    let grain = Grain::parse(&args.grain).map_err(|e| anyhow!(e))?;
    let reader = reader(&ctx).await?;
    let to = args.to.unwrap_or_else(|| last_date(&ctx, &reader));
    let from = args.from.unwrap_or(to - Days::new(29));
    let report = darkroom_analytics::metrics::compute(
        &reader,
        &ctx.defs,
        &MetricQuery {
            metric: name,
            from,
            to,
            grain,
            by: args.by,
        },
    )
    .await?;
    if args.json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    let mut out = String::new();
    if args.csv {
        let mut header = vec!["period".to_string()];
        header.extend(report.by.iter().cloned());
        header.push(report.metric.clone());
        let _ = writeln!(out, "{}", header.join(","));
        for r in &report.rows {
            let mut cells = vec![r.period.to_string()];
            cells.extend(r.slice.iter().map(|s| csv_cell(s.as_deref().unwrap_or(""))));
            cells.push(r.value.map(|v| v.to_string()).unwrap_or_default());
            let _ = writeln!(out, "{}", cells.join(","));
        }
        print_text(&out)?;
        return Ok(exit::OK);
    }
    let _ = writeln!(
        out,
        "{} ({}{}) by {}, {} to {} | {}",
        report.metric,
        report.kind,
        report
            .owner
            .as_deref()
            .map(|o| format!(", owner {o}"))
            .unwrap_or_default(),
        report.grain.name(),
        report.from,
        report.to,
        report.as_of.describe()
    );
    if !report.description.is_empty() {
        let _ = writeln!(out, "  {}", report.description);
    }
    if let Some(w) = &report.warning {
        let _ = writeln!(out, "  note: {w}");
    }
    if !report.degraded_dates.is_empty() {
        let _ = writeln!(
            out,
            "  degraded dates in range: {}",
            dates(&report.degraded_dates)
        );
    }
    let mut header = format!("{:<12}", "period");
    for b in &report.by {
        let _ = write!(header, " {b:<16}");
    }
    let _ = writeln!(out, "{header} {:>14}", report.metric);
    for r in &report.rows {
        let mut line = format!("{:<12}", r.period.to_string());
        for s in &r.slice {
            let _ = write!(line, " {:<16}", s.as_deref().unwrap_or("(none)"));
        }
        let _ = writeln!(out, "{line} {:>14}", value_text(r.value));
    }
    if report.rows.is_empty() {
        let _ = writeln!(out, "(no rows in this range)");
    }
    print_text(&out)?;
    Ok(exit::OK)
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn dates(d: &[NaiveDate]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_metrics(ctx: &Context, json: bool) -> Result<u8> {
    let defs = &ctx.defs;
    if json {
        let metrics: Vec<_> = defs
            .metrics
            .values()
            .map(|m| {
                serde_json::json!({
                    "name": m.name, "description": m.description, "owner": m.owner,
                    "kind": m.kind.name(), "table": m.table,
                    "dimensions": darkroom_analytics::metrics::allowed_dimensions(defs, m),
                })
            })
            .collect();
        let teams: Vec<_> = defs
            .teams
            .values()
            .map(|t| serde_json::json!({"name": t.name, "description": t.description, "metrics": t.metrics, "funnels": t.funnels}))
            .collect();
        print_json(&serde_json::json!({"metrics": metrics, "teams": teams}))?;
        return Ok(exit::OK);
    }
    let mut out = String::new();
    if defs.metrics.is_empty() {
        let _ = writeln!(
            out,
            "No metrics declared yet: add [[metric]] entries to a .toml file under models/ \
             (see `darkroom metric --help`)."
        );
    }
    for t in defs.teams.values() {
        let _ = writeln!(out, "team {}: {}", t.name, t.description);
        for m in &t.metrics {
            let _ = writeln!(out, "  metric {m}");
        }
        for f in &t.funnels {
            let _ = writeln!(out, "  funnel {f}");
        }
    }
    let _ = writeln!(
        out,
        "\n{:<22} {:<10} {:<15} description",
        "metric", "owner", "kind"
    );
    for m in defs.metrics.values() {
        let _ = writeln!(
            out,
            "{:<22} {:<10} {:<15} {}",
            m.name,
            m.owner.as_deref().unwrap_or("-"),
            m.kind.name(),
            m.description
        );
    }
    print_text(&out)?;
    Ok(exit::OK)
}

/// `visit,signup[platform = 'ios'],purchase`
fn parse_steps(text: &str) -> Result<Vec<StepDef>> {
    let mut steps = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in text.chars().chain(std::iter::once(',')) {
        match c {
            '[' => depth += 1,
            ']' if depth == 0 => bail!("--steps {text}: a `]` without its `[`"),
            ']' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            let part = current.trim();
            if part.is_empty() {
                bail!("--steps has an empty step: {text}");
            }
            let (event, filter) = match part.split_once('[') {
                Some((e, f)) => (
                    e.trim().to_string(),
                    Some(f.trim_end().trim_end_matches(']').to_string()),
                ),
                None => (part.to_string(), None),
            };
            let mut name = event.clone();
            let mut n = 2;
            while steps.iter().any(|s: &StepDef| s.name == name) {
                name = format!("{event}_{n}");
                n += 1;
            }
            steps.push(StepDef {
                name,
                event,
                filter,
            });
            current.clear();
        } else {
            current.push(c);
        }
    }
    if depth != 0 {
        bail!("--steps {text}: a `[` filter is not closed by `]`");
    }
    Ok(steps)
}

pub async fn funnel(explicit: Option<&Path>, args: FunnelArgs) -> Result<u8> {
    let ctx = context(explicit)?;
    let defs = &ctx.defs;
    let def = match (&args.name, &args.steps) {
        (Some(name), _) => Some(defs.funnels.get(name).ok_or_else(|| {
            anyhow!(
                "unknown funnel `{name}` (declared: {}); or give --steps",
                defs.funnels.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?),
        (None, Some(_)) => None,
        (None, None) => return list_funnels(&ctx, args.json),
    };
    let steps = match (&args.steps, def) {
        (Some(s), _) => parse_steps(s)?,
        (None, Some(d)) => d.steps.clone(),
        (None, None) => bail!("give a funnel NAME or --steps"),
    };
    for s in &steps {
        if !defs.events.contains_key(&s.event) {
            bail!(
                "unknown event `{}` (declared: {})",
                s.event,
                defs.events.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let window_seconds = match &args.window {
        Some(w) => parse_window(w)
            .ok_or_else(|| anyhow!("--window {w}: use a duration like 14d, 12h, 30m, 2w"))?,
        None => def.map_or(14 * 86_400, |d| d.window_seconds),
    };
    let mode = match &args.mode {
        Some(m) => Mode::parse(m).map_err(|e| anyhow!("--mode: {e}"))?,
        None => def.map(|d| d.mode).unwrap_or_default(),
    };
    let step_index = |name: &str| {
        steps.iter().position(|s| s.name == name).ok_or_else(|| {
            anyhow!(
                "no step named `{name}` (steps: {})",
                steps
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    };
    let mut exclusions = if args.exclude.is_empty() {
        def.map(|d| d.exclusions.clone()).unwrap_or_default()
    } else {
        Vec::new()
    };
    for x in &args.exclude {
        let parts: Vec<&str> = x.split(':').collect();
        let [event, a, b] = parts.as_slice() else {
            bail!("--exclude {x}: write EVENT:STEP_A:STEP_B (two consecutive steps)");
        };
        let (ia, ib) = (step_index(a)?, step_index(b)?);
        if ib != ia + 1 {
            bail!("--exclude {x}: `{a}` and `{b}` are not consecutive steps");
        }
        if !defs.events.contains_key(*event) {
            bail!("--exclude {x}: unknown event `{event}`");
        }
        exclusions.push(ExclusionDef {
            event: event.to_string(),
            filter: None,
            after: ia + 1,
        });
    }
    let attribution = match &args.attribution {
        Some(a) => step_index(a)?,
        None => def.map_or(0, |d| d.attribution),
    };
    let reader = reader(&ctx).await?;
    let last = last_date(&ctx, &reader);
    if !(0..=darkroom_analytics::funnels::MAX_WINDOW_SECONDS).contains(&window_seconds) {
        bail!("--window: at most 3650 days");
    }
    let window_days = (window_seconds + 86_399) / 86_400;
    let to = match args.to {
        Some(to) => to,
        None => last
            .checked_sub_days(Days::new(window_days.max(0) as u64))
            .ok_or_else(|| anyhow!("--window is longer than the calendar"))?,
    };
    let from = args.from.unwrap_or(to - Days::new(29));
    let query = FunnelQuery {
        name: args.name.clone().unwrap_or_else(|| "ad hoc".into()),
        steps,
        window_seconds,
        mode,
        exclusions,
        from,
        to,
        by: args.by.clone(),
        attribution,
    };
    let report =
        darkroom_analytics::funnels::compute(&reader, defs, ctx.project.timezone(), &query).await?;
    if args.json {
        print_json(&report)?;
    } else {
        print_text(&funnel_text(&report, def.map(|d| d.description.as_str())))?;
    }
    Ok(exit::OK)
}

fn steps_table(out: &mut String, steps: &[StepReport], indent: &str) {
    let _ = writeln!(
        out,
        "{indent}{:<22} {:>10} {:>10} {:>11} {:>10} {:>12} {:>12}",
        "step", "persons", "from prev", "from first", "dropped", "median time", "mean time"
    );
    for s in steps {
        let (median, mean) = s
            .time_to_convert
            .as_ref()
            .map_or(("".into(), "".into()), |t| {
                (duration(t.median_seconds), duration(t.mean_seconds))
            });
        let _ = writeln!(
            out,
            "{indent}{:<22} {:>10} {:>10} {:>11} {:>10} {:>12} {:>12}",
            s.step,
            thousands(s.persons),
            percent(s.conversion_from_previous),
            percent(s.conversion_from_first),
            thousands(s.dropped_off),
            median,
            mean
        );
    }
}

fn funnel_text(r: &FunnelReport, description: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "funnel {}: entered {} to {}, window {}, mode {} | {}",
        r.funnel,
        r.entry_from,
        r.entry_to,
        duration(r.window_seconds as f64),
        r.mode,
        r.as_of.describe()
    );
    if let Some(d) = description.filter(|d| !d.is_empty()) {
        let _ = writeln!(out, "  {d}");
    }
    if !r.degraded_dates.is_empty() {
        let _ = writeln!(
            out,
            "  degraded dates in range: {}",
            dates(&r.degraded_dates)
        );
    }
    steps_table(&mut out, &r.steps, "");
    if let Some(last) = r
        .steps
        .iter()
        .rev()
        .find_map(|s| s.time_to_convert.as_ref())
    {
        let _ = write!(
            out,
            "\ntime from the previous step to the last step reached (persons): "
        );
        let parts: Vec<String> = last
            .distribution
            .iter()
            .filter(|b| b.persons > 0)
            .map(|b| format!("<={} {}", b.up_to, thousands(b.persons)))
            .collect();
        let _ = writeln!(out, "{}", parts.join(", "));
    }
    if let Some(by) = &r.by {
        let _ = writeln!(
            out,
            "\nby {by} (the value at step `{}`):",
            r.attributed_to.as_deref().unwrap_or("")
        );
        for g in &r.breakdown {
            let _ = writeln!(out, "  {by} = {}", g.value);
            steps_table(&mut out, &g.steps, "    ");
        }
    }
    if !r.trend_by_entry_week.is_empty() {
        let _ = writeln!(
            out,
            "\nconversion by week of entry (first step -> last step):"
        );
        for t in &r.trend_by_entry_week {
            let _ = writeln!(
                out,
                "  {}  {:>9} -> {:>8}  {:>6}",
                t.week,
                thousands(t.persons_per_step[0]),
                thousands(*t.persons_per_step.last().unwrap_or(&0)),
                percent(t.conversion)
            );
        }
    }
    out
}

fn list_funnels(ctx: &Context, json: bool) -> Result<u8> {
    let defs = &ctx.defs;
    if json {
        let funnels: Vec<_> = defs
            .funnels
            .values()
            .map(|f| {
                serde_json::json!({
                    "name": f.name, "description": f.description, "owner": f.owner,
                    "steps": f.steps.iter().map(|s| &s.name).collect::<Vec<_>>(),
                    "window_seconds": f.window_seconds, "mode": f.mode.to_string(),
                })
            })
            .collect();
        let events: Vec<_> = defs
            .events
            .values()
            .map(|e| serde_json::json!({"name": e.name, "description": e.description, "properties": e.properties}))
            .collect();
        print_json(&serde_json::json!({"funnels": funnels, "events": events}))?;
        return Ok(exit::OK);
    }
    let mut out = String::new();
    let _ = writeln!(out, "funnels:");
    for f in defs.funnels.values() {
        let steps: Vec<&str> = f.steps.iter().map(|s| s.name.as_str()).collect();
        let _ = writeln!(
            out,
            "  {:<20} {} (window {}, {})",
            f.name,
            steps.join(" -> "),
            duration(f.window_seconds as f64),
            f.mode
        );
    }
    let _ = writeln!(out, "events (for --steps and retention):");
    for e in defs.events.values() {
        let props = if e.properties.is_empty() {
            String::new()
        } else {
            format!(" [by: {}]", e.properties.join(", "))
        };
        let _ = writeln!(out, "  {:<20} {}{props}", e.name, e.description);
    }
    print_text(&out)?;
    Ok(exit::OK)
}

pub async fn retention(explicit: Option<&Path>, args: RetentionArgs) -> Result<u8> {
    let ctx = context(explicit)?;
    let period = Grain::parse(&args.period).map_err(|e| anyhow!("--period: {e}"))?;
    let reader = reader(&ctx).await?;
    let to = args.to.unwrap_or_else(|| last_date(&ctx, &reader));
    let from = args.from.unwrap_or_else(|| match period {
        Grain::Day => to - Days::new(14),
        Grain::Week => to - Days::new(7 * 8),
        Grain::Month => to - Days::new(31 * 6),
    });
    let report = darkroom_analytics::retention::compute(
        &reader,
        &ctx.defs,
        ctx.project.timezone(),
        &RetentionQuery {
            start_event: args.start,
            return_event: args.return_event,
            from,
            to,
            period,
            first_time: !args.recurring,
            unbounded: args.on_or_after,
            periods: args.periods,
            by: args.by,
        },
    )
    .await?;
    if args.json {
        print_json(&report)?;
        return Ok(exit::OK);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "retention: {} -> {}, {} cohorts by {}, returns {}; elapsed through {} | {}",
        report.start_event,
        report.return_event,
        report.period.name(),
        report.cohorts_by,
        report.returns,
        report.data_through,
        report.as_of.describe()
    );
    let n = args.periods as usize + 1;
    let mut header = format!("{:<12}", "cohort");
    if let Some(by) = &report.by {
        let _ = write!(header, " {by:<12}");
    }
    let _ = write!(header, " {:>9}", "persons");
    for i in 0..n {
        let _ = write!(header, " {:>7}", format!("+{i}"));
    }
    let _ = writeln!(out, "{header}");
    for c in &report.cohorts {
        let mut line = format!("{:<12}", c.cohort.to_string());
        if report.by.is_some() {
            let _ = write!(line, " {:<12}", c.value.as_deref().unwrap_or(""));
        }
        let _ = write!(line, " {:>9}", thousands(c.persons));
        for r in &c.rate {
            let _ = write!(line, " {:>7}", r.map(percent).unwrap_or_default());
        }
        let _ = writeln!(out, "{line}");
    }
    let mut line = format!("{:<12}", "all");
    if report.by.is_some() {
        let _ = write!(line, " {:<12}", "");
    }
    let total: u64 = report.cohorts.iter().map(|c| c.persons).sum();
    let _ = write!(line, " {:>9}", thousands(total));
    for r in &report.overall {
        let _ = write!(line, " {:>7}", r.map(percent).unwrap_or_default());
    }
    let _ = writeln!(out, "{line}");
    print_text(&out)?;
    Ok(exit::OK)
}
