//! The ground truth, counted from the simulation itself (never from the written files): what
//! the warehouse must contain, under the data contract's rules, and every fault's effect.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;

use crate::logs::{FileTruth, LostLines, write_file};
use crate::sim::{self, TouchKind, World};
use crate::{DemoError, DemoOptions};

/// Days before a visitor's first link whose anonymous events go to the linked user
/// (DESIGN.md: `identity_lookback_days`, default 30).
pub const IDENTITY_LOOKBACK_DAYS: i64 = 30;
/// The funnels' conversion window.
pub const FUNNEL_WINDOW_DAYS: i64 = 14;

const DAY_MS: i64 = 86_400_000;

/// Who an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Who {
    User(u32),
    /// A device never linked to a user (or linked too late): its own person.
    Visitor(u32),
}

/// Identity as the warehouse can resolve it: when each device was first seen with each user.
struct Identity {
    /// device -> (first seen together, user), sorted.
    links: HashMap<u32, Vec<(i64, u32)>>,
}

impl Identity {
    fn new(world: &World) -> Self {
        let mut first: HashMap<(u32, u32), i64> = HashMap::new();
        for t in world.touches.iter().filter(|t| t.user != 0) {
            let at = first.entry((t.device, t.user)).or_insert(t.ts_ms);
            *at = (*at).min(t.ts_ms);
        }
        let mut links: HashMap<u32, Vec<(i64, u32)>> = HashMap::new();
        for ((device, user), at) in first {
            links.entry(device).or_default().push((at, user));
        }
        for l in links.values_mut() {
            l.sort_unstable();
        }
        Self { links }
    }

    /// The contract's rule: the logged-in user; else the user most recently linked to the
    /// device (a shared device: by first time seen together, ties to the lower id); before any
    /// link, the first linked user when the event is at most the look-back before that link;
    /// else the device itself.
    fn resolve(&self, device: u32, user: u32, ts_ms: i64) -> Who {
        if user != 0 {
            return Who::User(user);
        }
        let Some(links) = self.links.get(&device) else {
            return Who::Visitor(device);
        };
        let linked = links.partition_point(|&(at, _)| at <= ts_ms);
        if linked > 0 {
            let latest = links[linked - 1].0;
            let first_of_latest = links[..linked].partition_point(|&(at, _)| at < latest);
            return Who::User(links[first_of_latest].1);
        }
        match links.first() {
            Some(&(at, u)) if ts_ms >= at - IDENTITY_LOOKBACK_DAYS * DAY_MS => Who::User(u),
            _ => Who::Visitor(device),
        }
    }
}

#[derive(Debug, Default, Serialize, Clone)]
struct Day {
    date: String,
    /// Persons with a page view or app open, as the warehouse can resolve them.
    visitors: usize,
    /// The same, counting real people (a person with two unlinked devices is one here).
    visitors_real: usize,
    /// Daily active: signed-up persons with any page view, app open or action after signing up.
    active_users: usize,
    /// Daily engaged: users with at least 3 engagement actions (like, comment, follow, upload).
    engaged_users: usize,
    signups: u64,
    uploads: u64,
    likes: u64,
    comments: u64,
    follows: u64,
    submissions: u64,
    purchases: u64,
    sales: u64,
    /// Revenue of the day's sales, in cents.
    sales_cents: i64,
    subscriptions_started: u64,
    subscriptions_canceled: u64,
    plan_changes: u64,
    /// Log lines the servers produced for events of this day, before any fault.
    log_lines: u64,
}

/// Writes `truth/` and returns the summary.
pub(crate) fn write(
    dir: &Path,
    opts: &DemoOptions,
    world: &World,
    files: &[FileTruth],
    lost: &[LostLines],
    db_changes: &[serde_json::Value],
) -> Result<serde_json::Value, DemoError> {
    let identity = Identity::new(world);
    let days = opts.days as usize;
    let date = |d: u32| sim::date_of(opts.start, d);
    let mut out: Vec<Day> = (0..opts.days)
        .map(|d| Day {
            date: date(d).to_string(),
            ..Day::default()
        })
        .collect();
    let day_of = |ts: i64| world.day_of(ts).map(|d| d as usize);

    // Visitors and active users, from every device touch.
    let mut visitors: Vec<BTreeSet<Who>> = vec![BTreeSet::new(); days];
    let mut visitors_real: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); days];
    let mut active: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); days];
    let created: HashMap<u32, i64> = world.users.iter().map(|u| (u.id, u.created_ms)).collect();
    for t in &world.touches {
        let Some(d) = day_of(t.ts_ms) else { continue };
        let who = identity.resolve(t.device, t.user, t.ts_ms);
        if t.kind == TouchKind::Visit {
            visitors[d].insert(who);
            visitors_real[d].insert(real_person(world, t));
        }
        if let Who::User(u) = who
            && created.get(&u).is_some_and(|c| t.ts_ms >= *c)
        {
            active[d].insert(u);
        }
    }
    // Engaged: the moment a user's day reaches 3 engagement actions.
    let mut per_user_day: BTreeMap<(u32, usize), Vec<i64>> = BTreeMap::new();
    for a in &world.actions {
        if let Some(d) = day_of(a.ts_ms) {
            per_user_day.entry((a.user, d)).or_default().push(a.ts_ms);
        }
    }
    let mut engaged_at: Vec<(u32, i64)> = Vec::new();
    for ((user, d), mut times) in per_user_day {
        if times.len() >= 3 {
            times.sort_unstable();
            out[d].engaged_users += 1;
            engaged_at.push((user, times[2]));
        }
    }
    for d in 0..days {
        out[d].visitors = visitors[d].len();
        out[d].visitors_real = visitors_real[d].len();
        out[d].active_users = active[d].len();
    }
    let mut bump = |ts: i64, f: &mut dyn FnMut(&mut Day)| {
        if let Some(d) = day_of(ts) {
            f(&mut out[d]);
        }
    };
    for u in &world.users {
        bump(u.created_ms, &mut |d| d.signups += 1);
    }
    for p in &world.photos {
        bump(p.created_ms, &mut |d| d.uploads += 1);
    }
    for l in &world.likes {
        bump(l.created_ms, &mut |d| d.likes += 1);
    }
    for c in &world.comments {
        bump(c.created_ms, &mut |d| d.comments += 1);
    }
    for f in &world.follows {
        bump(f.created_ms, &mut |d| d.follows += 1);
    }
    for s in &world.submissions {
        bump(s.submitted_ms, &mut |d| d.submissions += 1);
    }
    for p in &world.purchases {
        bump(p.created_ms, &mut |d| d.purchases += 1);
    }
    for s in &world.sales {
        bump(s.sold_ms, &mut |d| {
            d.sales += 1;
            d.sales_cents += s.amount_cents;
        });
    }
    for s in &world.subscriptions {
        bump(s.started_ms, &mut |d| d.subscriptions_started += 1);
        if let Some(c) = s.canceled_ms {
            bump(c, &mut |d| d.subscriptions_canceled += 1);
        }
    }
    for c in &world.plan_changes {
        bump(c.changed_ms, &mut |d| d.plan_changes += 1);
    }
    let mut events = Vec::new();
    for ((d, src, host, platform, kind), &count) in &world.events {
        out[*d as usize].log_lines += count;
        events.push(json!({
            "date": date(*d).to_string(),
            "source": src.name(),
            "host": src.hosts()[*host],
            "platform": platform.name(),
            "event_type": kind,
            "count": count,
        }));
    }

    let funnels = funnels(opts, world, &identity, &engaged_at);
    let indicators = indicators(opts, world);
    let lines_written: u64 = files
        .iter()
        .filter(|f| f.duplicate_of.is_none())
        .map(|f| f.lines)
        .sum();
    let summary = json!({
        "generator": "darkroom demo",
        "seed": opts.seed,
        "start": opts.start.to_string(),
        "end": date(opts.days - 1).to_string(),
        "days": opts.days,
        "timezone": crate::TIMEZONE,
        "identity_lookback_days": IDENTITY_LOOKBACK_DAYS,
        "real_world": {
            "persons": world.persons.len(),
            "devices": world.devices.len(),
            "users": world.users.len(),
            "users_deleted": world.users.iter().filter(|u| u.deleted_ms.is_some()).count(),
            "persons_by_platform_of_first_visit": count_by(world.persons.iter().map(|p| world.devices[p.devices[0] as usize].platform.name())),
            "persons_by_channel": count_by(world.persons.iter().map(|p| p.channel)),
            // Each web device's first page view by the channel the warehouse must give it:
            // a person's first device comes by their channel (organic as direct), a later one
            // direct.
            "web_devices_by_landing_channel": count_by(world.devices.iter().filter_map(|d| d.landing)),
            "users_by_country": count_by(world.users.iter().map(|u| u.country)),
            "users_by_signup_platform": count_by(world.users.iter().map(|u| u.platform.name())),
        },
        "as_resolvable": {
            "persons": resolvable_persons(world, &identity),
            "rule": "a logged-in event belongs to its user; an anonymous one to the user most recently linked to its device (first seen together at or before the event), or before any link to the first linked user if at most 30 days earlier; a device never linked is its own person (v:<visitor_id>)",
            "shared_devices": world.devices.iter().filter(|d| d.shared()).count(),
        },
        "rows": {
            "users": world.users.len(),
            "photos": world.photos.len(),
            "marketplace_submissions": world.submissions.len(),
            "purchases": world.purchases.len(),
            "sales": world.sales.len(),
            "subscriptions": world.subscriptions.len(),
            "plan_changes": world.plan_changes.len(),
            "likes": world.likes.len(),
            "comments": world.comments.len(),
            "follows": world.follows.len(),
        },
        "log_lines": {
            "produced": world.events.values().sum::<u64>(),
            "written": lines_written,
            "lost": lost.iter().map(|l| l.lines).sum::<u64>(),
            "garbled": files.iter().filter(|f| f.duplicate_of.is_none()).map(|f| f.garbled_lines).sum::<u64>(),
            "files": files.iter().filter(|f| f.duplicate_of.is_none()).count(),
            "duplicate_files": files.iter().filter(|f| f.duplicate_of.is_some()).count(),
        },
        "leading_indicators": indicators,
        "faults": opts.faults,
        "database_changes": db_changes,
    });
    let truth = dir.join("truth");
    let put = |name: &str, value: &serde_json::Value| -> Result<(), DemoError> {
        let mut text = serde_json::to_vec_pretty(value)
            .map_err(|e| DemoError::Invalid(format!("cannot write truth/{name}: {e}")))?;
        text.push(b'\n');
        write_file(&truth.join(name), &text)
    };
    put("summary.json", &summary)?;
    put(
        "daily.json",
        &serde_json::to_value(&out).unwrap_or_default(),
    )?;
    put("events.json", &serde_json::Value::Array(events))?;
    put(
        "files.json",
        &serde_json::to_value(files).unwrap_or_default(),
    )?;
    put(
        "lost_lines.json",
        &serde_json::to_value(lost).unwrap_or_default(),
    )?;
    put("funnels.json", &funnels)?;
    write_file(&truth.join("README.md"), TRUTH_README.as_bytes())?;
    Ok(summary)
}

const TRUTH_README: &str = "\
# Ground truth of this demo company

Written by `darkroom demo` from the simulation itself, before the logs were written and before
any fault was applied (never by reading the files back). Days are in the project time zone.

- `summary.json`: seed, period, real-world totals and totals as the warehouse can resolve them
  (`as_resolvable.rule` states the identity rule; `shared_devices` counts the household devices
  a second member logs in on, whose owner's anonymous views then go to that member; with
  `web_devices_by_landing_channel`: each web visitor's first page view by the traffic
  channel its referer and UTM tags give it), database row counts, log lines produced / written / lost / garbled, the planted leading
  indicators with their true effect and observed rates, the injected faults, database changes.
- `daily.json`: per day: visitors (resolvable and real), daily active and engaged users,
  signups, uploads, likes, comments, follows, submissions, purchases, sales, subscriptions.
- `events.json`: per day, source, host, platform and event type: events produced (before faults).
- `files.json`: every log file written: lines, bytes (uncompressed), garbled lines (must be
  quarantined), backlog lines, skewed lines, and `duplicate_of` for a file delivered twice.
- `lost_lines.json`: lines never written, by cause, source, host and UTC hour.
- `funnels.json`: the three funnels: steps, window, mode, entry dates and persons per step.
";

fn count_by<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, u64> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_default() += 1;
    }
    m
}

/// Who really made a touch: the logged-in user's person, else the device's owner (the only
/// one who uses a device logged out).
fn real_person(world: &World, t: &sim::Touch) -> u32 {
    let owner = world.devices[t.device as usize].person;
    match t.user {
        0 => owner,
        u => world
            .users
            .get(u as usize - 1)
            .map_or(owner, |user| user.person),
    }
}

fn resolvable_persons(world: &World, identity: &Identity) -> usize {
    let mut all: BTreeSet<Who> = world.users.iter().map(|u| Who::User(u.id)).collect();
    for t in &world.touches {
        all.insert(identity.resolve(t.device, t.user, t.ts_ms));
    }
    all.len()
}

/// ClickHouse `windowFunnel` (default mode) over one person's events sorted by (time, step):
/// the deepest step reached by a chain that starts at a step-1 event in `entry` and finds each
/// next step no later than `window` after that start.
fn window_funnel(
    events: &mut [(i64, usize)],
    steps: usize,
    window: i64,
    entry: (i64, i64),
) -> usize {
    events.sort_unstable();
    // starts[k]: the latest chain start that has reached step k + 1.
    let mut starts: Vec<Option<i64>> = vec![None; steps];
    for &(ts, step) in events.iter() {
        if step == 0 {
            if ts >= entry.0 && ts < entry.1 {
                starts[0] = Some(ts);
            }
        } else if let Some(s) = starts[step - 1]
            && ts <= s + window
        {
            starts[step] = Some(s);
        }
    }
    starts
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |k| k + 1)
}

/// A funnel: name, description, and after the visit each step's name and (user, time) events.
type FunnelDef<'a> = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'a [(u32, i64)])>,
);

/// What each funnel step means, as the truth counts it.
const STEP_DEFINITIONS: [(&str, &str); 9] = [
    (
        "visit",
        "a page view or app open (any device, logged in or not)",
    ),
    ("signup", "the account is created (users.created_at)"),
    (
        "daily_active",
        "the member is active on a later day than the signup day",
    ),
    (
        "daily_engaged",
        "a day with at least 3 likes, comments, follows or uploads",
    ),
    (
        "paid_subscriber",
        "a subscription starts (subscriptions.started_at)",
    ),
    ("photo_upload", "a photo is uploaded (photos.created_at)"),
    (
        "marketplace_submit",
        "a photo is submitted to the marketplace",
    ),
    ("photo_sold", "one of the member's photos is sold (sales)"),
    ("purchase", "the member buys a photo (purchases)"),
];

fn funnels(
    opts: &DemoOptions,
    world: &World,
    identity: &Identity,
    engaged_at: &[(u32, i64)],
) -> serde_json::Value {
    let window = FUNNEL_WINDOW_DAYS * DAY_MS;
    let last_entry_day = opts.days.saturating_sub(FUNNEL_WINDOW_DAYS as u32).max(1);
    let entry = (world.midnights[0], world.midnights[last_entry_day as usize]);
    let entry_dates = (
        opts.start.to_string(),
        sim::date_of(opts.start, last_entry_day - 1).to_string(),
    );
    // Step-1 events: page views and app opens; later steps come from the database.
    let visits: Vec<(Who, u32, i64)> = world
        .touches
        .iter()
        .filter(|t| t.kind == TouchKind::Visit)
        .map(|t| {
            (
                identity.resolve(t.device, t.user, t.ts_ms),
                real_person(world, t),
                t.ts_ms,
            )
        })
        .collect();
    let person_of: HashMap<u32, u32> = world.users.iter().map(|u| (u.id, u.person)).collect();
    let signups: Vec<(u32, i64)> = world.users.iter().map(|u| (u.id, u.created_ms)).collect();
    // Daily active: the member comes back, on a later day than the signup (the signup day's
    // own activity would make the step a copy of the signup).
    let signup_day: HashMap<u32, u32> = world.users.iter().map(|u| (u.id, u.signup_day)).collect();
    let active: Vec<(u32, i64)> = world
        .touches
        .iter()
        .filter(|t| {
            t.user != 0
                && world
                    .day_of(t.ts_ms)
                    .zip(signup_day.get(&t.user))
                    .is_some_and(|(d, s)| d > *s)
        })
        .map(|t| (t.user, t.ts_ms))
        .collect();
    let subscribed: Vec<(u32, i64)> = world
        .subscriptions
        .iter()
        .map(|s| (s.user, s.started_ms))
        .collect();
    let uploads: Vec<(u32, i64)> = world
        .photos
        .iter()
        .map(|p| (p.user, p.created_ms))
        .collect();
    let submitted: Vec<(u32, i64)> = world
        .submissions
        .iter()
        .map(|s| (s.user, s.submitted_ms))
        .collect();
    let sold: Vec<(u32, i64)> = world.sales.iter().map(|s| (s.seller, s.sold_ms)).collect();
    let bought: Vec<(u32, i64)> = world
        .purchases
        .iter()
        .map(|p| (p.user, p.created_ms))
        .collect();
    // "Daily active" needs activity after signing up: touches by the logged-in user qualify
    // only once the account exists, which they always do.
    let defs: [FunnelDef<'_>; 3] = [
        (
            "activation",
            "visitor -> signup -> daily active -> daily engaged -> paid subscriber",
            vec![
                ("signup", &signups),
                ("daily_active", &active),
                ("daily_engaged", engaged_at),
                ("paid_subscriber", &subscribed),
            ],
        ),
        (
            "creator",
            "visitor -> signup -> photo upload -> submit to marketplace -> photo sold",
            vec![
                ("signup", &signups),
                ("photo_upload", &uploads),
                ("marketplace_submit", &submitted),
                ("photo_sold", &sold),
            ],
        ),
        (
            "buyer",
            "visitor -> signup -> purchase photo",
            vec![("signup", &signups), ("purchase", &bought)],
        ),
    ];
    let mut result = Vec::new();
    for (name, description, later) in defs {
        let steps = later.len() + 1;
        let mut by_who: HashMap<Who, Vec<(i64, usize)>> = HashMap::new();
        let mut by_person: HashMap<u32, Vec<(i64, usize)>> = HashMap::new();
        for &(who, person, ts) in &visits {
            by_who.entry(who).or_default().push((ts, 0));
            by_person.entry(person).or_default().push((ts, 0));
        }
        for (i, (_, events)) in later.iter().enumerate() {
            for &(user, ts) in events.iter() {
                by_who.entry(Who::User(user)).or_default().push((ts, i + 1));
                if let Some(&p) = person_of.get(&user) {
                    by_person.entry(p).or_default().push((ts, i + 1));
                }
            }
        }
        let count = |groups: Vec<Vec<(i64, usize)>>| {
            let mut reached = vec![0_u64; steps];
            for mut events in groups {
                let level = window_funnel(&mut events, steps, window, entry);
                for r in reached.iter_mut().take(level) {
                    *r += 1;
                }
            }
            reached
        };
        let resolvable = count(by_who.into_values().collect());
        let real = count(by_person.into_values().collect());
        let names: Vec<&str> = std::iter::once("visit")
            .chain(later.iter().map(|(n, _)| *n))
            .collect();
        result.push(json!({
            "name": name,
            "description": description,
            "steps": names,
            "step_definitions": STEP_DEFINITIONS
                .iter()
                .filter(|(step, _)| names.contains(step))
                .map(|(step, what)| (step.to_string(), json!(what)))
                .collect::<serde_json::Map<_, _>>(),
            "window_days": FUNNEL_WINDOW_DAYS,
            "mode": "default (ClickHouse windowFunnel): the deepest step of a chain that starts at a visit and finds each next step, in order, no later than the window after the start (inclusive)",
            "equal_timestamps": "ordered by step number",
            "entry_dates": { "from": entry_dates.0, "to": entry_dates.1 },
            "persons": "as resolvable by the identity rules (visitors: page views and app opens)",
            "persons_reaching_step": resolvable,
            "real_world_persons_reaching_step": real,
        }));
    }
    serde_json::Value::Array(result)
}

fn indicators(opts: &DemoOptions, world: &World) -> serde_json::Value {
    // Users whose whole first week and at least a week after it fall in the period.
    let observed: Vec<&sim::User> = world
        .users
        .iter()
        .filter(|u| u.signup_day + 14 <= opts.days)
        .collect();
    let subscribed: BTreeSet<u32> = world.subscriptions.iter().map(|s| s.user).collect();
    let bought: BTreeSet<u32> = world.purchases.iter().map(|p| p.user).collect();
    let rate = |with: &[&&sim::User], outcome: &BTreeSet<u32>| {
        let n = with.len();
        let k = with.iter().filter(|u| outcome.contains(&u.id)).count();
        json!({ "users": n, "converted": k, "rate": if n == 0 { 0.0 } else { k as f64 / n as f64 } })
    };
    let split = |pred: &dyn Fn(&sim::User) -> bool| -> (Vec<&&sim::User>, Vec<&&sim::User>) {
        observed.iter().partition(|u| pred(u))
    };
    let (up_with, up_without) = split(&|u| u.first_week_uploads >= sim::UPLOADS_INDICATOR_MIN);
    let (fo_with, fo_without) = split(&|u| u.first_week_follows >= sim::FOLLOWS_INDICATOR_MIN);
    json!([
        {
            "name": "uploads_in_first_week",
            "definition": format!("a member uploads at least {} photos in the 7 days after signing up", sim::UPLOADS_INDICATOR_MIN),
            "outcome": "becomes a paid subscriber",
            "true_effect": format!("the daily chance to subscribe is multiplied by {} from day 7 on (base {} per active day)", sim::UPLOADS_INDICATOR_EFFECT, sim::BASE_SUBSCRIBE_HAZARD),
            "multiplier": sim::UPLOADS_INDICATOR_EFFECT,
            "observed_over": "users who signed up at least 14 days before the end",
            "with_indicator": rate(&up_with, &subscribed),
            "without_indicator": rate(&up_without, &subscribed),
        },
        {
            "name": "follows_in_first_week",
            "definition": format!("a member follows at least {} people in the 7 days after signing up", sim::FOLLOWS_INDICATOR_MIN),
            "outcome": "buys a photo",
            "true_effect": format!("the daily chance to buy is multiplied by {} from day 7 on (base {} per session), and daily activity by 1.2", sim::FOLLOWS_INDICATOR_EFFECT, sim::BASE_PURCHASE_HAZARD),
            "multiplier": sim::FOLLOWS_INDICATOR_EFFECT,
            "observed_over": "users who signed up at least 14 days before the end",
            "with_indicator": rate(&fo_with, &bought),
            "without_indicator": rate(&fo_without, &bought),
        },
    ])
}

/// Days covered, as dates.
pub(crate) fn dates(opts: &DemoOptions) -> Vec<NaiveDate> {
    (0..opts.days)
        .map(|d| sim::date_of(opts.start, d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::window_funnel;

    #[test]
    fn window_funnel_follows_clickhouse_default_mode() {
        let all = (i64::MIN, i64::MAX);
        // visit at 0, step 2 at 5, step 3 at 20: window 10 reaches step 2 only.
        assert_eq!(window_funnel(&mut [(0, 0), (5, 1), (20, 2)], 3, 10, all), 2);
        // a later visit restarts the chain and reaches step 3 (bound inclusive).
        assert_eq!(
            window_funnel(&mut [(0, 0), (5, 1), (12, 0), (14, 1), (22, 2)], 3, 10, all),
            3
        );
        // steps out of order do not count; equal times order by step.
        assert_eq!(window_funnel(&mut [(5, 1), (6, 0)], 2, 10, all), 1);
        assert_eq!(window_funnel(&mut [(6, 1), (6, 0)], 2, 10, all), 2);
        // a start outside the entry dates does not start a chain.
        assert_eq!(window_funnel(&mut [(0, 0), (1, 1)], 2, 10, (1, 100)), 0);
    }
}
