//! Writing the servers' log files: lines as the simulation emits them, the log faults applied
//! on the way (skewed clocks, dead senders, lines lost in transit, a parser regression, a file
//! delivered twice, a missing day), and the exact effect of each recorded for the truth.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, NaiveDate, TimeZone};
use chrono_tz::Tz;
use flate2::Compression;
use flate2::write::GzEncoder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::faults::Fault;
use crate::{API_HOSTS, DemoError, WEB_HOSTS};

/// The three log sources of the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Src {
    /// nginx on the web hosts.
    Web,
    /// nginx on the API hosts.
    Api,
    /// JSON-lines app events, collected on the API hosts.
    App,
}

impl Src {
    pub fn name(self) -> &'static str {
        match self {
            Src::Web => "web",
            Src::Api => "api",
            Src::App => "app",
        }
    }

    pub fn hosts(self) -> &'static [&'static str] {
        match self {
            Src::Web => &WEB_HOSTS,
            Src::Api | Src::App => &API_HOSTS,
        }
    }

    fn file_name(self, date: NaiveDate, suffix: &str) -> String {
        match self {
            Src::Web | Src::Api => format!("access-{date}{suffix}.log.gz"),
            Src::App => format!("events-{date}{suffix}.jsonl.gz"),
        }
    }
}

/// One log line before its timestamp is written: nginx lines are `head [time] tail`, JSON
/// lines `{"ts":"time",tail`.
pub(crate) struct Line {
    pub src: Src,
    pub host: usize,
    /// The true time of the event, UTC milliseconds.
    pub ts_ms: i64,
    pub head: String,
    pub tail: String,
}

/// What happened to the lines of one file, as written.
#[derive(Debug, Clone, Serialize)]
pub struct FileTruth {
    pub path: String,
    pub source: &'static str,
    pub host: &'static str,
    pub file_date: NaiveDate,
    /// Lines in the file (every one ends in a newline).
    pub lines: u64,
    /// Uncompressed bytes.
    pub bytes: u64,
    /// Lines written in the changed format of a parser-regression fault (they must be
    /// quarantined); the rest parse.
    pub garbled_lines: u64,
    /// Lines of earlier days delivered late in this file (a sender that came back).
    pub backlog_lines: u64,
    /// Lines whose written clock is off (a skewed host), by true event date.
    pub skewed_lines: u64,
    /// For a duplicate delivery: the path of the original this copies, byte for byte.
    pub duplicate_of: Option<String>,
}

/// Lines that were never written, by cause, source, host and UTC hour of the event.
#[derive(Debug, Clone, Serialize)]
pub struct LostLines {
    pub cause: &'static str,
    pub source: &'static str,
    pub host: &'static str,
    /// The UTC hour of the events (`2026-01-05T14:00:00Z`).
    pub hour: String,
    pub lines: u64,
}

struct Bucket {
    /// (0 = backlog delivered first, written ts, emission order, text)
    lines: Vec<(u8, i64, u64, String)>,
    garbled: u64,
    backlog: u64,
    skewed: u64,
}

/// Collects lines per file, applies the log faults and writes the gzip files.
pub(crate) struct LogWriter<'a> {
    dir: &'a Path,
    tz: Tz,
    rng: ChaCha8Rng,
    /// Per host: how far its clock is off, and from when (UTC ms; `i64::MIN`: always).
    skew_ms: BTreeMap<&'static str, (i64, i64)>,
    dead: Vec<(&'static str, i64, Option<NaiveDate>)>,
    loss: BTreeMap<NaiveDate, f64>,
    garble: BTreeMap<NaiveDate, f64>,
    duplicate: BTreeSet<(&'static str, NaiveDate)>,
    missing: BTreeSet<NaiveDate>,
    buckets: BTreeMap<(Src, usize, NaiveDate), Bucket>,
    seq: u64,
    pub files: Vec<FileTruth>,
    lost: BTreeMap<(&'static str, Src, usize, i64), u64>,
}

fn host_name(name: &str) -> Option<&'static str> {
    WEB_HOSTS
        .iter()
        .chain(API_HOSTS.iter())
        .find(|h| **h == name)
        .copied()
}

impl<'a> LogWriter<'a> {
    pub(crate) fn new(dir: &'a Path, tz: Tz, seed: u64, faults: &[Fault]) -> Self {
        let mut w = Self {
            dir,
            tz,
            // Its own stream, so faults never change what the simulation does.
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6C6F_6773_6661_756C),
            skew_ms: BTreeMap::new(),
            dead: Vec::new(),
            loss: BTreeMap::new(),
            garble: BTreeMap::new(),
            duplicate: BTreeSet::new(),
            missing: BTreeSet::new(),
            buckets: BTreeMap::new(),
            seq: 0,
            files: Vec::new(),
            lost: BTreeMap::new(),
        };
        for fault in faults {
            match fault {
                Fault::ClockSkew { host, hours, from } => {
                    if let Some(h) = host_name(host) {
                        let start = from.map_or(i64::MIN, |d| {
                            local_ms(tz, d.and_time(chrono::NaiveTime::MIN))
                        });
                        w.skew_ms.insert(h, (hours * 3_600_000, start));
                    }
                }
                Fault::SenderDies { host, from, back } => {
                    if let Some(h) = host_name(host) {
                        w.dead.push((h, local_ms(tz, *from), *back));
                    }
                }
                Fault::Loss { date, fraction } => {
                    w.loss.insert(*date, *fraction);
                }
                Fault::Garble { date, fraction } => {
                    w.garble.insert(*date, *fraction);
                }
                Fault::Duplicate { host, date } => {
                    if let Some(h) = host_name(host) {
                        w.duplicate.insert((h, *date));
                    }
                }
                Fault::MissingDay { date } => {
                    w.missing.insert(*date);
                }
                Fault::SchemaDrift { .. } | Fault::DbUnreachable { .. } => {}
            }
        }
        w
    }

    fn local_date(&self, ts_ms: i64) -> NaiveDate {
        utc(ts_ms).with_timezone(&self.tz).date_naive()
    }

    fn lose(&mut self, cause: &'static str, line: &Line) {
        let hour = line.ts_ms.div_euclid(3_600_000) * 3_600_000;
        *self
            .lost
            .entry((cause, line.src, line.host, hour))
            .or_default() += 1;
    }

    /// Takes one line: decides its file (by the host's clock), or that it is lost.
    pub(crate) fn emit(&mut self, line: Line) {
        let host = line.src.hosts()[line.host];
        let skew = self
            .skew_ms
            .get(host)
            .filter(|(_, from)| line.ts_ms >= *from)
            .map_or(0, |(ms, _)| *ms);
        let written = line.ts_ms + skew;
        let mut file_date = self.local_date(written);
        let mut order = 1;
        if let Some(&(_, _, back)) = self
            .dead
            .iter()
            .find(|(h, from, _)| *h == host && line.ts_ms >= *from)
        {
            match back {
                Some(back) if file_date < back => {
                    file_date = back;
                    order = 0;
                }
                Some(_) => {}
                None => return self.lose("sender_died", &line),
            }
        }
        if self.missing.contains(&file_date) {
            return self.lose("missing_day", &line);
        }
        if let Some(&f) = self.loss.get(&file_date)
            && self.rng.random_bool(f)
        {
            return self.lose("lost_in_transit", &line);
        }
        let garbled = line.src != Src::App
            && self
                .garble
                .get(&file_date)
                .is_some_and(|&f| self.rng.random_bool(f));
        let text = render(&line, written, garbled);
        let bucket = self
            .buckets
            .entry((line.src, line.host, file_date))
            .or_insert_with(|| Bucket {
                lines: Vec::new(),
                garbled: 0,
                backlog: 0,
                skewed: 0,
            });
        bucket.garbled += u64::from(garbled);
        bucket.backlog += u64::from(order == 0);
        bucket.skewed += u64::from(skew != 0);
        self.seq += 1;
        bucket.lines.push((order, written, self.seq, text));
    }

    /// Writes every file dated before `date` (all of them with `None`).
    pub(crate) fn flush(&mut self, before: Option<NaiveDate>) -> Result<(), DemoError> {
        let keys: Vec<_> = self
            .buckets
            .keys()
            .filter(|(_, _, d)| before.is_none_or(|b| *d < b))
            .copied()
            .collect();
        for key in keys {
            let Some(mut bucket) = self.buckets.remove(&key) else {
                continue;
            };
            let (src, host_index, date) = key;
            let host = src.hosts()[host_index];
            bucket
                .lines
                .sort_by_key(|(order, ts, seq, _)| (*order, *ts, *seq));
            let mut text = Vec::new();
            for (_, _, _, line) in &bucket.lines {
                text.extend_from_slice(line.as_bytes());
                text.push(b'\n');
            }
            let rel = format!("logs/{}/{host}/{}", src.name(), src.file_name(date, ""));
            let gz = gzip(&text)?;
            write_file(&self.dir.join(&rel), &gz)?;
            let truth = FileTruth {
                path: rel.clone(),
                source: src.name(),
                host,
                file_date: date,
                lines: bucket.lines.len() as u64,
                bytes: text.len() as u64,
                garbled_lines: bucket.garbled,
                backlog_lines: bucket.backlog,
                skewed_lines: bucket.skewed,
                duplicate_of: None,
            };
            if self.duplicate.contains(&(host, date)) {
                let copy = format!(
                    "logs/{}/{host}/{}",
                    src.name(),
                    src.file_name(date, "-redelivered")
                );
                write_file(&self.dir.join(&copy), &gz)?;
                self.files.push(FileTruth {
                    path: copy,
                    duplicate_of: Some(rel),
                    ..truth.clone()
                });
            }
            self.files.push(truth);
        }
        Ok(())
    }

    /// Lost lines by cause, source, host and UTC hour.
    pub(crate) fn lost(&self) -> Vec<LostLines> {
        self.lost
            .iter()
            .map(|(&(cause, src, host, hour), &lines)| LostLines {
                cause,
                source: src.name(),
                host: src.hosts()[host],
                hour: utc(hour).format("%Y-%m-%dT%H:00:00Z").to_string(),
                lines,
            })
            .collect()
    }
}

fn render(line: &Line, written_ms: i64, garbled: bool) -> String {
    let t = utc(written_ms);
    match line.src {
        Src::Web | Src::Api => {
            let time = if garbled {
                // The regression: a logging change that writes ISO 8601 times.
                t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
            } else {
                t.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
            };
            format!("{} - - [{time}] {}", line.head, line.tail)
        }
        Src::App => format!(
            "{{\"ts\":\"{}.{:03}Z\",{}",
            t.format("%Y-%m-%dT%H:%M:%S"),
            t.timestamp_subsec_millis(),
            line.tail
        ),
    }
}

pub(crate) fn utc(ms: i64) -> DateTime<chrono::Utc> {
    chrono::Utc
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
}

/// A local time in `tz` as UTC milliseconds (the later instant when ambiguous, the hour after
/// when skipped by a DST change).
pub(crate) fn local_ms(tz: Tz, t: chrono::NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&t).latest() {
        Some(dt) => dt.timestamp_millis(),
        None => {
            let later = t + chrono::Duration::hours(1);
            tz.from_local_datetime(&later)
                .latest()
                .map_or(0, |dt| dt.timestamp_millis())
        }
    }
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, DemoError> {
    // No name and mtime 0 in the header: the same data gives the same bytes.
    let mut gz = GzEncoder::new(Vec::with_capacity(data.len() / 5), Compression::fast());
    gz.write_all(data)
        .and_then(|()| gz.finish())
        .map_err(|e| DemoError::io("compressing a log file", e))
}

pub(crate) fn write_file(path: &Path, data: &[u8]) -> Result<(), DemoError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| DemoError::io(&format!("creating {}", parent.display()), e))?;
    }
    std::fs::write(path, data).map_err(|e| DemoError::io(&format!("writing {}", path.display()), e))
}
