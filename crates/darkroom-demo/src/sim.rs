//! The simulation: people arrive, browse, sign up, upload, like, comment, follow, sell, buy
//! and subscribe, one day after another. Everything it decides is kept (the database rows and
//! every touch of a device) so the truth is counted from the simulation itself; every log line
//! goes to the [`LogWriter`] as it happens.

use chrono::{Datelike, NaiveDate, Weekday};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::logs::{Line, LogWriter, Src, local_ms};
use crate::{DemoError, DemoOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Web,
    Ios,
    Android,
}

impl Platform {
    pub fn name(self) -> &'static str {
        match self {
            Platform::Web => "web",
            Platform::Ios => "ios",
            Platform::Android => "android",
        }
    }
}

pub const CHANNELS: [(&str, f64, f64); 5] = [
    // name, share of arrivals, chance to sign up
    ("organic", 0.30, 0.30),
    ("search", 0.25, 0.28),
    ("social", 0.20, 0.18),
    ("paid", 0.15, 0.34),
    ("referral", 0.10, 0.46),
];
const COUNTRIES: [(&str, f64); 8] = [
    ("US", 0.35),
    ("CA", 0.15),
    ("GB", 0.10),
    ("DE", 0.08),
    ("FR", 0.07),
    ("IN", 0.10),
    ("BR", 0.08),
    ("JP", 0.07),
];
const PLATFORMS: [(Platform, f64); 3] = [
    (Platform::Web, 0.55),
    (Platform::Ios, 0.25),
    (Platform::Android, 0.20),
];
const WEB_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
];
const IOS_AGENT: &str = "Darkroom/3.12.0 (iPhone; iOS 17.4.1; Scale/3.00)";
const ANDROID_AGENT: &str = "Darkroom/3.11.2 (Android 14; Pixel 8)";
/// Local-hour weights of session starts: quiet nights, a lunch bump, busy evenings.
const HOURS: [f64; 24] = [
    0.8, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 1.5, 2.2, 2.4, 2.5, 2.8, 3.2, 3.0, 2.6, 2.5, 2.6, 3.0, 3.6,
    4.2, 4.5, 4.0, 2.8, 1.6,
];
/// Weekends are quieter.
pub const WEEKEND_FACTOR: f64 = 0.72;

/// The planted leading indicators and their true effects.
pub const UPLOADS_INDICATOR_MIN: u32 = 3;
pub const UPLOADS_INDICATOR_EFFECT: f64 = 4.0;
pub const FOLLOWS_INDICATOR_MIN: u32 = 5;
pub const FOLLOWS_INDICATOR_EFFECT: f64 = 3.0;
/// Daily chance that an active member without a subscription subscribes.
pub const BASE_SUBSCRIBE_HAZARD: f64 = 0.004;
/// Daily chance that an active member buys a photo.
pub const BASE_PURCHASE_HAZARD: f64 = 0.006;

/// What a device touch was, for the truth's visitor and active counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchKind {
    /// A page view or an app open: makes its person a visitor that day.
    Visit,
    /// An API call, a screen view or an action.
    Other,
}

/// One event seen in the logs, as the warehouse will be able to attribute it.
#[derive(Debug, Clone, Copy)]
pub struct Touch {
    pub ts_ms: i64,
    pub device: u32,
    /// The logged-in user, 0 when anonymous.
    pub user: u32,
    pub kind: TouchKind,
}

pub struct Device {
    pub vid: String,
    pub platform: Platform,
    pub person: u32,
    agent: &'static str,
    ip: String,
    logged_in: bool,
    /// A member of another person's household who also logs in on this device (a shared
    /// family computer or tablet), and the day of their first session on it.
    borrower: Option<u32>,
    borrowed_since: Option<u32>,
    /// The traffic channel of the device's first page view, as the warehouse's rules name it
    /// (`fct_pageviews.channel`), once it is logged; `None` for an app or before.
    pub landing: Option<&'static str>,
}

pub struct Person {
    pub channel: &'static str,
    pub country: &'static str,
    pub arrival_day: u32,
    pub devices: Vec<u32>,
    pub user: Option<u32>,
    signup_day: Option<u32>,
    /// Visits anonymously until this day when never signing up.
    browse_until: u32,
    engagement: f64,
    photographer: f64,
    relink_first_device: bool,
    extra_device_day: Option<u32>,
}

pub struct User {
    pub id: u32,
    pub person: u32,
    pub username: String,
    pub email: String,
    pub country: &'static str,
    pub channel: &'static str,
    pub platform: Platform,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub deleted_ms: Option<i64>,
    pub bio: Option<String>,
    pub settings: String,
    pub signup_day: u32,
    pub first_week_uploads: u32,
    pub first_week_follows: u32,
    pub subscription: Option<u32>,
}

pub struct Photo {
    pub id: u32,
    pub user: u32,
    pub title: Option<String>,
    pub width: u32,
    pub height: u32,
    pub camera: Option<&'static str>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub deleted_ms: Option<i64>,
}

pub struct Submission {
    pub id: u32,
    pub photo: u32,
    pub user: u32,
    pub status: &'static str,
    pub price_cents: i64,
    pub submitted_ms: i64,
    pub reviewed_ms: Option<i64>,
}

pub struct Purchase {
    pub id: u32,
    pub user: u32,
    pub amount_cents: i64,
    pub created_ms: i64,
}

pub struct Sale {
    pub id: u32,
    pub purchase: u32,
    pub submission: u32,
    pub photo: u32,
    pub seller: u32,
    pub buyer: u32,
    pub licence: &'static str,
    pub amount_cents: i64,
    pub sold_ms: i64,
}

pub struct Subscription {
    pub id: u32,
    pub user: u32,
    pub plan: &'static str,
    pub price_cents: i64,
    pub status: &'static str,
    pub started_ms: i64,
    pub canceled_ms: Option<i64>,
    pub updated_ms: i64,
}

pub struct PlanChange {
    pub id: u32,
    pub subscription: u32,
    pub user: u32,
    pub from_plan: &'static str,
    pub to_plan: &'static str,
    pub changed_ms: i64,
}

pub struct Like {
    pub id: u32,
    pub user: u32,
    pub photo: u32,
    pub created_ms: i64,
}

pub struct Comment {
    pub id: u32,
    pub user: u32,
    pub photo: u32,
    pub body: &'static str,
    pub created_ms: i64,
    pub deleted_ms: Option<i64>,
}

pub struct Follow {
    pub id: u32,
    pub follower: u32,
    pub followee: u32,
    pub created_ms: i64,
    pub deleted_ms: Option<i64>,
}

/// An engagement action (like, comment, follow, upload) by a user.
#[derive(Debug, Clone, Copy)]
pub struct Action {
    pub user: u32,
    pub ts_ms: i64,
}

/// Everything the simulation decided.
#[derive(Default)]
pub struct World {
    pub persons: Vec<Person>,
    pub devices: Vec<Device>,
    pub users: Vec<User>,
    pub photos: Vec<Photo>,
    pub submissions: Vec<Submission>,
    pub purchases: Vec<Purchase>,
    pub sales: Vec<Sale>,
    pub subscriptions: Vec<Subscription>,
    pub plan_changes: Vec<PlanChange>,
    pub likes: Vec<Like>,
    pub comments: Vec<Comment>,
    pub follows: Vec<Follow>,
    pub touches: Vec<Touch>,
    pub actions: Vec<Action>,
    /// (day, source, host, platform, event type) -> events, before any fault.
    pub events: std::collections::BTreeMap<(u32, Src, usize, Platform, String), u64>,
    /// Day boundaries: UTC ms of each local midnight, `days + 1` of them.
    pub midnights: Vec<i64>,
}

impl World {
    /// The day index of a UTC instant (None outside the period).
    pub fn day_of(&self, ts_ms: i64) -> Option<u32> {
        let i = self.midnights.partition_point(|&m| m <= ts_ms);
        (i >= 1 && i < self.midnights.len()).then(|| (i - 1) as u32)
    }
}

const COMMENTS: [&str; 6] = [
    "Stunning light!",
    "Love the composition.",
    "Where was this taken?",
    "Great colours \u{1F44F}",
    "This made my day",
    "What lens did you use?",
];
const CAMERAS: [&str; 5] = [
    "Sony A7 IV",
    "Canon EOS R6",
    "Fujifilm X-T5",
    "iPhone 15 Pro",
    "Nikon Z6 II",
];
const SCREENS: [&str; 6] = [
    "feed",
    "explore",
    "photo",
    "profile",
    "search",
    "notifications",
];

struct Ctx<'w, 'l, 'd> {
    rng: ChaCha8Rng,
    /// For the choices made without a draw from `rng` (see [`chance`]).
    seed: u64,
    world: &'w mut World,
    logs: &'l mut LogWriter<'d>,
    end_ms: i64,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return *item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn hex_id(rng: &mut ChaCha8Rng) -> String {
    format!("{:016x}", rng.random::<u64>())
}

/// Runs the simulation over the whole period, emitting log lines as it goes.
pub fn simulate(opts: &DemoOptions, tz: Tz, logs: &mut LogWriter<'_>) -> Result<World, DemoError> {
    let days = opts.days;
    let mut world = World {
        midnights: (0..=days)
            .map(|d| {
                let date = opts.start + chrono::Days::new(u64::from(d));
                local_ms(tz, date.and_time(chrono::NaiveTime::MIN))
            })
            .collect(),
        ..World::default()
    };
    let end_ms = *world.midnights.last().unwrap_or(&0);
    let mut ctx = Ctx {
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        seed: opts.seed,
        world: &mut world,
        logs,
        end_ms,
    };
    // Arrivals grow threefold over the period; weekends are lower. The base is set so that
    // about `opts.users` people sign up.
    let mean_signup: f64 = CHANNELS.iter().map(|(_, share, p)| share * p).sum();
    let growth = |d: u32| 1.0 + 2.0 * f64::from(d) / f64::from(days.max(1));
    let weekday = |d: u32| {
        let date = opts.start + chrono::Days::new(u64::from(d));
        if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
            WEEKEND_FACTOR
        } else {
            1.0
        }
    };
    let shape: f64 = (0..days).map(|d| growth(d) * weekday(d)).sum();
    // Signups trail arrivals by a few days; the last days' visitors sign up after the end.
    let base = f64::from(opts.users) / mean_signup / shape.max(1.0) * 1.08;
    for d in 0..days {
        let date = opts.start + chrono::Days::new(u64::from(d));
        let expected = base * growth(d) * weekday(d);
        let noise = 0.9 + 0.2 * ctx.rng.random::<f64>();
        let arrivals = (expected * noise).round() as u32;
        for _ in 0..arrivals {
            new_person(&mut ctx, d, days);
        }
        for p in 0..ctx.world.persons.len() as u32 {
            live_day(&mut ctx, p, d, weekday(d));
        }
        subscriptions_day(&mut ctx, d);
        ctx.logs.flush(Some(date - chrono::Days::new(1)))?;
    }
    ctx.logs.flush(None)?;
    settle(&mut ctx);
    Ok(world)
}

fn new_person(ctx: &mut Ctx<'_, '_, '_>, day: u32, days: u32) {
    let rng = &mut ctx.rng;
    let channel_i = pick(
        rng,
        &[(0, 0.30), (1, 0.25), (2, 0.20), (3, 0.15), (4, 0.10)],
    );
    let (channel, _, signup_p) = CHANNELS[channel_i];
    let country = pick(rng, &COUNTRIES);
    let platform = pick(rng, &PLATFORMS);
    let platform_factor = if platform == Platform::Web { 0.9 } else { 1.15 };
    let signup_day = rng
        .random_bool((signup_p * platform_factor).min(1.0))
        .then(|| {
            if rng.random_bool(0.45) {
                day
            } else {
                day + rng.random_range(1..=10)
            }
        });
    let browse_until = day + rng.random_range(0..=21);
    let engagement = 0.08 + 0.62 * rng.random::<f64>().powi(2);
    let photographer = rng.random::<f64>().powi(3);
    let relink = rng.random_bool(0.5);
    let extra = rng
        .random_bool(0.3)
        .then(|| signup_day.unwrap_or(day) + rng.random_range(1..=30));
    let person = ctx.world.persons.len() as u32;
    let device = add_device(ctx, person, platform);
    ctx.world.persons.push(Person {
        channel,
        country,
        arrival_day: day,
        devices: vec![device],
        user: None,
        signup_day: signup_day.filter(|d| *d < days),
        browse_until,
        engagement,
        photographer,
        relink_first_device: relink,
        extra_device_day: extra,
    });
}

fn add_device(ctx: &mut Ctx<'_, '_, '_>, person: u32, platform: Platform) -> u32 {
    let rng = &mut ctx.rng;
    let agent = match platform {
        Platform::Web => WEB_AGENTS[rng.random_range(0..WEB_AGENTS.len())],
        Platform::Ios => IOS_AGENT,
        Platform::Android => ANDROID_AGENT,
    };
    let ip = if rng.random_bool(0.1) {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.random::<u16>(),
            rng.random::<u16>(),
            rng.random::<u16>()
        )
    } else {
        format!(
            "{}.{}.{}.{}",
            rng.random_range(1..224),
            rng.random::<u8>(),
            rng.random::<u8>(),
            rng.random_range(1..255)
        )
    };
    let vid = hex_id(rng);
    ctx.world.devices.push(Device {
        vid,
        platform,
        person,
        agent,
        ip,
        logged_in: false,
        borrower: None,
        borrowed_since: None,
        landing: None,
    });
    (ctx.world.devices.len() - 1) as u32
}

impl Device {
    /// Whether a second user has logged in on this device (a household's shared one).
    pub fn shared(&self) -> bool {
        self.borrowed_since.is_some()
    }
}

fn other_platform(rng: &mut ChaCha8Rng, p: Platform) -> Platform {
    let others: Vec<(Platform, f64)> = PLATFORMS.iter().copied().filter(|(q, _)| *q != p).collect();
    pick(rng, &others)
}

/// A session start on day `d`: a local hour drawn from the daily curve.
fn session_start(ctx: &mut Ctx<'_, '_, '_>, d: u32) -> i64 {
    let (start, end) = (
        ctx.world.midnights[d as usize],
        ctx.world.midnights[d as usize + 1],
    );
    let hours: Vec<(usize, f64)> = HOURS.iter().copied().enumerate().collect();
    let hour = pick(&mut ctx.rng, &hours) as i64;
    let within = ctx.rng.random_range(0..3_600_000);
    // Scaled to the day's real length (23 or 25 hours on DST days).
    start + (hour * 3_600_000 + within) * (end - start) / 86_400_000
}

fn live_day(ctx: &mut Ctx<'_, '_, '_>, p: u32, d: u32, weekday: f64) {
    let person = &ctx.world.persons[p as usize];
    if person.arrival_day > d {
        return;
    }
    let signup_day = person.signup_day;
    match (ctx.world.persons[p as usize].user, signup_day) {
        (None, Some(s)) if s == d => signup(ctx, p, d),
        (None, _) => {
            let person = &ctx.world.persons[p as usize];
            let visits = person.arrival_day == d
                || (d <= person.browse_until || signup_day.is_some())
                    && ctx.rng.random_bool(0.12 * weekday);
            if visits {
                let device = person.devices[0];
                let start = session_start(ctx, d);
                session(ctx, device, 0, start, d, &mut Vec::new());
            }
        }
        (Some(user), _) => member_day(ctx, p, user, d, weekday),
    }
}

/// One session on `device` from `start`: page views (web) or an app open and screens (apps),
/// plus the given actions spread through it. Returns the session's end.
fn session(
    ctx: &mut Ctx<'_, '_, '_>,
    device: u32,
    user: u32,
    start: i64,
    day: u32,
    actions: &mut Vec<(&'static str, u32)>,
) -> i64 {
    let platform = ctx.world.devices[device as usize].platform;
    let screens = 2 + ctx.rng.random_range(0..7) + ctx.rng.random_range(0..4);
    let web_host = ctx.rng.random_range(0..WEB_HOSTS_LEN);
    let mut ts = start;
    let end_of_day = ctx.world.midnights[day as usize + 1] - 1;
    if platform != Platform::Web {
        emit_app(ctx, device, user, ts, "app_open", "");
        touch(ctx, device, user, ts, TouchKind::Visit);
    }
    for i in 0..screens {
        ts = (ts + ctx.rng.random_range(2_000..90_000)).min(end_of_day);
        match platform {
            Platform::Web => {
                let path = page_path(ctx, i);
                emit_nginx(
                    ctx,
                    Src::Web,
                    device,
                    user,
                    ts,
                    web_host,
                    "GET",
                    &path,
                    "page_view",
                );
                touch(ctx, device, user, ts, TouchKind::Visit);
            }
            _ => {
                let screen = SCREENS[ctx.rng.random_range(0..SCREENS.len())];
                let path = format!("/api/v1/{screen}?limit=20");
                let host = ctx.rng.random_range(0..API_HOSTS_LEN);
                emit_nginx(
                    ctx,
                    Src::Api,
                    device,
                    user,
                    ts,
                    host,
                    "GET",
                    &path,
                    "api_call",
                );
                emit_app(ctx, device, user, ts + 40, "screen_view", screen);
                touch(ctx, device, user, ts, TouchKind::Other);
            }
        }
        if let Some((action, target)) = actions.pop() {
            ts = (ts + ctx.rng.random_range(1_000..20_000)).min(end_of_day);
            let path = match action {
                "like" => format!("/api/v1/photos/{target}/like"),
                "comment" => format!("/api/v1/photos/{target}/comments"),
                "follow" => format!("/api/v1/users/{target}/follow"),
                "upload" => "/api/v1/photos".to_owned(),
                "purchase" => "/api/v1/purchases".to_owned(),
                "subscribe" => "/api/v1/subscriptions".to_owned(),
                _ => "/api/v1/account".to_owned(),
            };
            match platform {
                Platform::Web => {
                    emit_nginx(
                        ctx,
                        Src::Web,
                        device,
                        user,
                        ts,
                        web_host,
                        "POST",
                        &path,
                        action,
                    );
                }
                _ => {
                    let host = ctx.rng.random_range(0..API_HOSTS_LEN);
                    emit_nginx(ctx, Src::Api, device, user, ts, host, "POST", &path, action);
                    emit_app(ctx, device, user, ts + 25, action, "");
                }
            }
            touch(ctx, device, user, ts, TouchKind::Other);
            action_at(ctx, action, target, user, ts);
        }
    }
    ts
}

const WEB_HOSTS_LEN: usize = crate::WEB_HOSTS.len();
const API_HOSTS_LEN: usize = crate::API_HOSTS.len();

fn page_path(ctx: &mut Ctx<'_, '_, '_>, i: u32) -> String {
    let rng = &mut ctx.rng;
    let photos = ctx.world.photos.len() as u32;
    match (i, rng.random_range(0..6)) {
        (0, 0..=2) => "/".to_owned(),
        (_, 0) => "/explore".to_owned(),
        (_, 1) => format!("/search?q=night+sky+{}", rng.random_range(0..50)),
        (_, 2) => format!(
            "/u/user{}",
            rng.random_range(1..=ctx.world.users.len().max(1))
        ),
        (_, 3) => "/pricing".to_owned(),
        _ => format!("/photos/{}", rng.random_range(1..=photos.max(1))),
    }
}

fn touch(ctx: &mut Ctx<'_, '_, '_>, device: u32, user: u32, ts_ms: i64, kind: TouchKind) {
    ctx.world.touches.push(Touch {
        ts_ms,
        device,
        user,
        kind,
    });
}

fn count_event(
    ctx: &mut Ctx<'_, '_, '_>,
    day: u32,
    src: Src,
    host: usize,
    device: u32,
    kind: &str,
) {
    let platform = ctx.world.devices[device as usize].platform;
    *ctx.world
        .events
        .entry((day, src, host, platform, kind.to_owned()))
        .or_default() += 1;
}

fn uid_text(user: u32) -> String {
    if user == 0 {
        "-".to_owned()
    } else {
        user.to_string()
    }
}

#[allow(clippy::too_many_arguments)]
fn emit_nginx(
    ctx: &mut Ctx<'_, '_, '_>,
    src: Src,
    device: u32,
    user: u32,
    ts: i64,
    host: usize,
    method: &str,
    path: &str,
    kind: &str,
) {
    // The event's day is the local date of its time (a session may cross midnight); nothing
    // is logged after the period ends.
    let Some(day) = ctx.world.day_of(ts) else {
        return;
    };
    count_event(ctx, day, src, host, device, kind);
    let rng = &mut ctx.rng;
    let status = if method == "POST" {
        201
    } else {
        match rng.random_range(0..100) {
            0..=93 => 200,
            94..=97 => 304,
            _ => 404,
        }
    };
    let bytes = if status == 304 {
        0
    } else {
        rng.random_range(300..250_000)
    };
    // After the first page view, a view comes from within the site, or (one in five) from a
    // bookmark or a typed address.
    let mut referer = match rng.random_range(0..5) {
        0 => "-",
        _ => "https://darkroom.example/",
    };
    let rt = rng.random_range(1..900);
    let mut path = std::borrow::Cow::Borrowed(path);
    if src == Src::Web
        && kind == "page_view"
        && ctx.world.devices[device as usize].landing.is_none()
    {
        let person = ctx.world.devices[device as usize].person;
        let first = ctx.world.persons[person as usize].devices.first() == Some(&device);
        // A person's first device arrives by their acquisition channel; a later one is
        // typed in.
        let channel = if first {
            ctx.world.persons[person as usize].channel
        } else {
            "organic"
        };
        let (landing, from, query) = landing(channel, device);
        ctx.world.devices[device as usize].landing = Some(landing);
        referer = from;
        if !query.is_empty() {
            let joiner = if path.contains('?') { '&' } else { '?' };
            path = std::borrow::Cow::Owned(format!("{path}{joiner}{query}"));
        }
    }
    let d = &ctx.world.devices[device as usize];
    ctx.logs.emit(Line {
        src,
        host,
        ts_ms: ts,
        head: d.ip.clone(),
        tail: format!(
            "\"{method} {path} HTTP/2.0\" {status} {bytes} \"{referer}\" \"{}\" vid={} uid={} rt=0.{rt:03}",
            d.agent,
            d.vid,
            uid_text(user)
        ),
    });
}

/// How a device's first page view arrives for a person of acquisition `channel`: the channel
/// the warehouse's rules will see (`fct_pageviews.channel`), the referer, and the query string
/// added to the page (UTM tags, click ids). Picked by device, with no random draw, so the rest
/// of the simulation is the same whatever the channel.
fn landing(channel: &str, device: u32) -> (&'static str, &'static str, &'static str) {
    let n = device as usize;
    match channel {
        "search" => (
            "search",
            [
                "https://www.google.com/",
                "https://www.bing.com/",
                "https://duckduckgo.com/",
            ][n % 3],
            "",
        ),
        "social" => [
            ("social", "https://www.instagram.com/", ""),
            ("social", "https://www.facebook.com/", ""),
            ("social", "https://t.co/", ""),
            ("social", "https://www.pinterest.com/", ""),
            (
                "social",
                "-",
                "utm_source=newsletter_share&utm_medium=social&utm_campaign=weekly_picks",
            ),
        ][n % 5],
        "paid" => [
            (
                "paid",
                "https://www.google.com/",
                "utm_source=google&utm_medium=cpc&utm_campaign=sell_your_photos&gclid=Cj0KCQ",
            ),
            (
                "paid",
                "https://www.facebook.com/",
                "utm_source=facebook&utm_medium=paidsocial&utm_campaign=golden_hour&fbclid=IwAR2",
            ),
            (
                "paid",
                "https://www.bing.com/",
                "utm_source=bing&utm_medium=cpc&utm_campaign=stock_photos&msclkid=5f2c",
            ),
        ][n % 3],
        "referral" => (
            "referral",
            [
                "https://petapixel.example/best-photo-marketplaces",
                "https://forum.photo-critique.example/threads/41822",
                "https://photoblog.example/2026/selling-my-prints",
            ][n % 3],
            "",
        ),
        // organic: a typed address, a bookmark, a link in an email client.
        _ => ("direct", "-", ""),
    }
}

fn emit_app(ctx: &mut Ctx<'_, '_, '_>, device: u32, user: u32, ts: i64, event: &str, screen: &str) {
    let host = ctx.rng.random_range(0..API_HOSTS_LEN);
    let Some(day) = ctx.world.day_of(ts) else {
        return;
    };
    count_event(ctx, day, Src::App, host, device, event);
    let d = &ctx.world.devices[device as usize];
    let user_json = if user == 0 {
        "null".to_owned()
    } else {
        format!("\"{user}\"")
    };
    let version = if d.platform == Platform::Ios {
        "3.12.0"
    } else {
        "3.11.2"
    };
    let screen = if screen.is_empty() {
        String::new()
    } else {
        format!(",\"screen\":\"{screen}\"")
    };
    ctx.logs.emit(Line {
        src: Src::App,
        host,
        ts_ms: ts,
        head: String::new(),
        tail: format!(
            "\"event\":\"{event}\",\"user_id\":{user_json},\"device\":{{\"id\":\"{}\",\"platform\":\"{}\",\"app_version\":\"{version}\"}}{screen}}}",
            d.vid,
            d.platform.name()
        ),
    });
}

fn signup(ctx: &mut Ctx<'_, '_, '_>, p: u32, d: u32) {
    // A visit first on the device they found us with...
    let first = ctx.world.persons[p as usize].devices[0];
    let start = session_start(ctx, d);
    let first_platform = ctx.world.devices[first as usize].platform;
    let mut ts = session(ctx, first, 0, start, d, &mut Vec::new());
    // ...and a quarter sign up on another device and platform.
    let device = if ctx.rng.random_bool(0.25) {
        let platform = other_platform(&mut ctx.rng, first_platform);
        let device = add_device(ctx, p, platform);
        ctx.world.persons[p as usize].devices.push(device);
        ts += ctx.rng.random_range(60_000..3_600_000);
        device
    } else {
        first
    };
    let end_of_day = ctx.world.midnights[d as usize + 1] - 1;
    let ts = (ts + 30_000).min(end_of_day - 600_000).max(start);
    let id = ctx.world.users.len() as u32 + 1;
    let person = &ctx.world.persons[p as usize];
    let platform = ctx.world.devices[device as usize].platform;
    let rng = &mut ctx.rng;
    let theme = if rng.random_bool(0.4) {
        "dark"
    } else {
        "light"
    };
    let settings = format!(
        "{{\"theme\":\"{theme}\",\"emails\":{},\"language\":\"{}\"}}",
        rng.random_bool(0.7),
        match person.country {
            "DE" => "de",
            "FR" => "fr",
            "JP" => "ja",
            "BR" => "pt",
            _ => "en",
        }
    );
    ctx.world.users.push(User {
        id,
        person: p,
        username: format!("user{id}"),
        email: format!("user{id}@example.com"),
        country: person.country,
        channel: person.channel,
        platform,
        created_ms: ts,
        updated_ms: ts,
        deleted_ms: None,
        bio: rng
            .random_bool(0.3)
            .then(|| "Photographer. Coffee. Mountains.".to_owned()),
        settings,
        signup_day: d,
        first_week_uploads: 0,
        first_week_follows: 0,
        subscription: None,
    });
    ctx.world.persons[p as usize].user = Some(id);
    ctx.world.devices[device as usize].logged_in = true;
    // The sign-up request itself, logged in from here on.
    match platform {
        Platform::Web => {
            let host = ctx.rng.random_range(0..WEB_HOSTS_LEN);
            emit_nginx(
                ctx,
                Src::Web,
                device,
                id,
                ts,
                host,
                "POST",
                "/signup",
                "signup",
            );
        }
        _ => {
            let host = ctx.rng.random_range(0..API_HOSTS_LEN);
            emit_nginx(
                ctx,
                Src::Api,
                device,
                id,
                ts,
                host,
                "POST",
                "/api/v1/signup",
                "signup",
            );
            emit_app(ctx, device, id, ts + 25, "signup", "");
        }
    }
    touch(ctx, device, id, ts, TouchKind::Other);
    let more = ts + ctx.rng.random_range(10_000..120_000);
    if more < end_of_day - 300_000 {
        member_session(ctx, p, id, device, more, d);
    }
}

fn member_day(ctx: &mut Ctx<'_, '_, '_>, p: u32, user: u32, d: u32, weekday: f64) {
    let person = &ctx.world.persons[p as usize];
    let u = &ctx.world.users[user as usize - 1];
    if u.deleted_ms.is_some() {
        return;
    }
    let age = f64::from(d - u.signup_day);
    let mut active = person.engagement * (0.35 + 0.65 * (-age / 25.0).exp()) * weekday;
    if u.first_week_follows >= FOLLOWS_INDICATOR_MIN && age >= 7.0 {
        active = (active * 1.2).min(0.95);
    }
    let signup_day = u.signup_day;
    // New devices: the first device logs in some day; some get a third device; some share
    // one with their household.
    if person.relink_first_device && !ctx.world.devices[person.devices[0] as usize].logged_in {
        let first = person.devices[0];
        if ctx.rng.random_bool(0.1) {
            ctx.world.devices[first as usize].logged_in = true;
        }
    }
    if shared_device_day(ctx.seed, p, signup_day) == Some(d) {
        borrow_a_device(ctx, p);
    }
    let person = &ctx.world.persons[p as usize];
    if person.extra_device_day == Some(d) {
        let last = *person.devices.last().unwrap_or(&0);
        let platform = other_platform(&mut ctx.rng, ctx.world.devices[last as usize].platform);
        let device = add_device(ctx, p, platform);
        ctx.world.devices[device as usize].logged_in = true;
        ctx.world.persons[p as usize].devices.push(device);
    }
    if !ctx.rng.random_bool(active.clamp(0.0, 1.0)) {
        return;
    }
    let sessions = 1 + u32::from(ctx.rng.random_bool(0.35)) + u32::from(ctx.rng.random_bool(0.1));
    for _ in 0..sessions {
        let logged: Vec<u32> = ctx.world.persons[p as usize]
            .devices
            .iter()
            .copied()
            .filter(|&dv| ctx.world.devices[dv as usize].logged_in)
            .collect();
        let device = logged[ctx.rng.random_range(0..logged.len())];
        let start = session_start(ctx, d);
        let dv = &mut ctx.world.devices[device as usize];
        if dv.person != p && dv.borrowed_since.is_none() {
            dv.borrowed_since = Some(d);
        }
        // On a device someone else in the household also logs in on, the owner is logged out
        // on some days and browses anonymously: the warehouse gives those views to the user
        // most recently linked to the device (DESIGN.md's identity rule), the truth too.
        if dv.person == p
            && dv.borrowed_since.is_some_and(|since| since < d)
            && chance(
                ctx.seed,
                &[2, u64::from(p), u64::from(d)],
                SHARED_LOGGED_OUT,
            )
        {
            session(ctx, device, 0, start, d, &mut Vec::new());
        } else {
            member_session(ctx, p, user, device, start, d);
        }
    }
}

/// Share of members who also log in on a device of another member of their household.
const SHARED_DEVICE_MEMBERS: f64 = 0.04;
/// Chance that, on a given day, the owner of a shared device is logged out on it.
const SHARED_LOGGED_OUT: f64 = 0.3;

/// A deterministic draw from the seed and `keys`, outside the simulation's random stream (so
/// adding such a choice does not shift every later draw).
fn chance(seed: u64, keys: &[u64], p: f64) -> bool {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &k in keys {
        h = splitmix(h ^ k);
    }
    (h >> 11) as f64 / (1_u64 << 53) as f64 <= p
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The day a member starts logging in on a household member's device, if they do.
fn shared_device_day(seed: u64, p: u32, signup_day: u32) -> Option<u32> {
    if !chance(seed, &[1, u64::from(p)], SHARED_DEVICE_MEMBERS) {
        return None;
    }
    let offset = splitmix(seed ^ u64::from(p) ^ 0x5EED) % 30;
    Some(signup_day + 1 + offset as u32)
}

/// Member `p` starts using a device of a member who arrived shortly before them (their
/// household): one that member logs in on and nobody else borrows yet.
fn borrow_a_device(ctx: &mut Ctx<'_, '_, '_>, p: u32) {
    let world = &ctx.world;
    let found = (p.saturating_sub(200)..p).rev().find_map(|q| {
        let owner = &world.persons[q as usize];
        let user = owner.user?;
        if world.users[user as usize - 1].deleted_ms.is_some() {
            return None;
        }
        owner.devices.iter().copied().find(|&dv| {
            let d = &world.devices[dv as usize];
            d.person == q && d.logged_in && d.borrower.is_none()
        })
    });
    if let Some(dv) = found {
        ctx.world.devices[dv as usize].borrower = Some(p);
        ctx.world.persons[p as usize].devices.push(dv);
    }
}

fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    let limit = (-mean).exp();
    let (mut k, mut prod) = (0, rng.random::<f64>());
    while prod > limit && k < 50 {
        k += 1;
        prod *= rng.random::<f64>();
    }
    k
}

/// A logged-in session with the member's actions of that session.
fn member_session(ctx: &mut Ctx<'_, '_, '_>, p: u32, user: u32, device: u32, start: i64, d: u32) {
    let person = &ctx.world.persons[p as usize];
    let (engagement, photographer) = (person.engagement, person.photographer);
    let mut actions: Vec<(&'static str, u32)> = Vec::new();
    let photos = ctx.world.photos.len() as u32;
    let users = ctx.world.users.len() as u32;
    if photos > 0 {
        for _ in 0..poisson(&mut ctx.rng, engagement * 3.0) {
            actions.push(("like", ctx.rng.random_range(1..=photos)));
        }
        for _ in 0..poisson(&mut ctx.rng, engagement * 0.6) {
            actions.push(("comment", ctx.rng.random_range(1..=photos)));
        }
    }
    if users > 1 {
        for _ in 0..poisson(&mut ctx.rng, engagement * 0.5) {
            let other = ctx.rng.random_range(1..=users);
            if other != user {
                actions.push(("follow", other));
            }
        }
    }
    if ctx.rng.random_bool((photographer * 0.6).min(1.0)) {
        let n = 1 + u32::from(ctx.rng.random_bool(0.4)) + u32::from(ctx.rng.random_bool(0.2));
        actions.extend(std::iter::repeat_n(("upload", 0), n as usize));
    }
    let u = &ctx.world.users[user as usize - 1];
    let age = d - u.signup_day;
    if u.subscription.is_none() {
        let effect = if u.first_week_uploads >= UPLOADS_INDICATOR_MIN && age >= 7 {
            UPLOADS_INDICATOR_EFFECT
        } else {
            1.0
        };
        if ctx.rng.random_bool(BASE_SUBSCRIBE_HAZARD * effect) {
            actions.insert(0, ("subscribe", 0));
        }
    }
    let effect = if u.first_week_follows >= FOLLOWS_INDICATOR_MIN && age >= 7 {
        FOLLOWS_INDICATOR_EFFECT
    } else {
        1.0
    };
    if ctx
        .rng
        .random_bool((BASE_PURCHASE_HAZARD * effect).min(1.0))
        && let Some(submission) = for_sale(ctx, user, start)
    {
        actions.insert(0, ("purchase", submission));
    }
    // Actions are taken from the end, one after each screen.
    actions.reverse();
    session(ctx, device, user, start, d, &mut actions);
}

/// A marketplace photo someone other than `buyer` has on sale at `ts`, if there is one.
fn for_sale(ctx: &mut Ctx<'_, '_, '_>, buyer: u32, ts: i64) -> Option<u32> {
    let n = ctx.world.submissions.len();
    if n == 0 {
        return None;
    }
    let from = ctx.rng.random_range(0..n);
    ctx.world.submissions[..=from]
        .iter()
        .rev()
        .find(|s| {
            s.status == "accepted" && s.user != buyer && s.reviewed_ms.is_some_and(|r| r < ts)
        })
        .map(|s| s.id)
}

/// Records the business fact behind an action (the database row).
fn action_at(ctx: &mut Ctx<'_, '_, '_>, action: &str, target: u32, user: u32, ts: i64) {
    let w = &mut *ctx.world;
    let rng = &mut ctx.rng;
    let u = &mut w.users[user as usize - 1];
    let first_week = ts < u.created_ms + 7 * 86_400_000;
    match action {
        "like" => {
            let id = w.likes.len() as u32 + 1;
            w.likes.push(Like {
                id,
                user,
                photo: target,
                created_ms: ts,
            });
        }
        "comment" => {
            let id = w.comments.len() as u32 + 1;
            let deleted = rng
                .random_bool(0.05)
                .then(|| ts + rng.random_range(60_000..86_400_000));
            w.comments.push(Comment {
                id,
                user,
                photo: target,
                body: COMMENTS[rng.random_range(0..COMMENTS.len())],
                created_ms: ts,
                deleted_ms: deleted.filter(|t| *t < ctx.end_ms),
            });
        }
        "follow" => {
            u.first_week_follows += u32::from(first_week);
            let id = w.follows.len() as u32 + 1;
            let deleted = rng
                .random_bool(0.05)
                .then(|| ts + rng.random_range(3_600_000..20 * 86_400_000));
            w.follows.push(Follow {
                id,
                follower: user,
                followee: target,
                created_ms: ts,
                deleted_ms: deleted.filter(|t| *t < ctx.end_ms),
            });
        }
        "upload" => {
            u.first_week_uploads += u32::from(first_week);
            let id = w.photos.len() as u32 + 1;
            let (width, height) = if rng.random_bool(0.6) {
                (6000, 4000)
            } else {
                (4000, 6000)
            };
            let deleted = rng
                .random_bool(0.03)
                .then(|| ts + rng.random_range(3_600_000..30 * 86_400_000));
            let edited = rng
                .random_bool(0.2)
                .then(|| ts + rng.random_range(60_000..86_400_000))
                .filter(|t| *t < ctx.end_ms);
            w.photos.push(Photo {
                id,
                user,
                title: rng
                    .random_bool(0.8)
                    .then(|| format!("Untitled #{}", rng.random_range(1..1000))),
                width,
                height,
                camera: rng
                    .random_bool(0.7)
                    .then(|| CAMERAS[rng.random_range(0..CAMERAS.len())]),
                created_ms: ts,
                updated_ms: edited.unwrap_or(ts),
                deleted_ms: deleted.filter(|t| *t < ctx.end_ms),
            });
            // Some photos go to the marketplace a little later.
            let submitted = ts + rng.random_range(600_000..2 * 86_400_000);
            if rng.random_bool(0.3) && submitted < ctx.end_ms {
                let reviewed = submitted + rng.random_range(3_600_000..86_400_000);
                let accepted = rng.random_bool(0.75);
                let sid = w.submissions.len() as u32 + 1;
                w.submissions.push(Submission {
                    id: sid,
                    photo: id,
                    user,
                    status: if reviewed >= ctx.end_ms {
                        "pending"
                    } else if accepted {
                        "accepted"
                    } else {
                        "rejected"
                    },
                    price_cents: rng.random_range(10..=160) * 50,
                    submitted_ms: submitted,
                    reviewed_ms: (reviewed < ctx.end_ms).then_some(reviewed),
                });
            }
        }
        "subscribe" => {
            let id = w.subscriptions.len() as u32 + 1;
            let (plan, price) = if rng.random_bool(0.7) {
                ("plus", 499)
            } else {
                ("pro", 999)
            };
            u.subscription = Some(id);
            w.subscriptions.push(Subscription {
                id,
                user,
                plan,
                price_cents: price,
                status: "active",
                started_ms: ts,
                canceled_ms: None,
                updated_ms: ts,
            });
        }
        "purchase" => {
            let s = &w.submissions[target as usize - 1];
            let (licence, amount) = if rng.random_bool(0.85) {
                ("standard", s.price_cents)
            } else {
                ("extended", s.price_cents * 3)
            };
            let pid = w.purchases.len() as u32 + 1;
            w.purchases.push(Purchase {
                id: pid,
                user,
                amount_cents: amount,
                created_ms: ts,
            });
            let id = w.sales.len() as u32 + 1;
            w.sales.push(Sale {
                id,
                purchase: pid,
                submission: s.id,
                photo: s.photo,
                seller: s.user,
                buyer: user,
                licence,
                amount_cents: amount,
                sold_ms: ts,
            });
        }
        _ => return,
    }
    if matches!(action, "like" | "comment" | "follow" | "upload") {
        w.actions.push(Action { user, ts_ms: ts });
    }
}

/// Upgrades and cancellations of running subscriptions.
fn subscriptions_day(ctx: &mut Ctx<'_, '_, '_>, d: u32) {
    let (start, end) = (
        ctx.world.midnights[d as usize],
        ctx.world.midnights[d as usize + 1],
    );
    for i in 0..ctx.world.subscriptions.len() {
        let s = &ctx.world.subscriptions[i];
        if s.status != "active" || s.started_ms >= start {
            continue;
        }
        let ts = start + ctx.rng.random_range(0..end - start);
        if s.plan == "plus" && ctx.rng.random_bool(0.01) {
            let id = ctx.world.plan_changes.len() as u32 + 1;
            ctx.world.plan_changes.push(PlanChange {
                id,
                subscription: s.id,
                user: s.user,
                from_plan: "plus",
                to_plan: "pro",
                changed_ms: ts,
            });
            let s = &mut ctx.world.subscriptions[i];
            s.plan = "pro";
            s.price_cents = 999;
            s.updated_ms = ts;
        } else if ctx.rng.random_bool(0.006) {
            let s = &mut ctx.world.subscriptions[i];
            s.status = "canceled";
            s.canceled_ms = Some(ts);
            s.updated_ms = ts;
            let user = s.user as usize - 1;
            ctx.world.users[user].subscription = None;
        }
    }
}

/// The end of the period: a few accounts were deleted (soft), settings changed.
fn settle(ctx: &mut Ctx<'_, '_, '_>) {
    let end = ctx.end_ms;
    for u in &mut ctx.world.users {
        if ctx.rng.random_bool(0.2) {
            let t = ctx
                .rng
                .random_range(u.created_ms..end.max(u.created_ms + 1));
            u.updated_ms = t;
        }
        if ctx.rng.random_bool(0.01) {
            u.deleted_ms = Some(end - ctx.rng.random_range(1..3_600_000));
            u.updated_ms = u.deleted_ms.unwrap_or(u.updated_ms);
        }
    }
}

/// The date of day index `d`.
pub fn date_of(start: NaiveDate, d: u32) -> NaiveDate {
    start + chrono::Days::new(u64::from(d))
}
