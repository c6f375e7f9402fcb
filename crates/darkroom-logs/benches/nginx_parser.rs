//! Throughput of `LineReader` + `NginxParser` producing typed Arrow batches from a file.
//!
//! The input is generated once (deterministically) into `target/bench-data/`: realistic
//! combined-format lines of ~200-300 bytes. `DARKROOM_BENCH_MB` sets its size (default 256).
//! Criterion reports bytes per second; the line count is printed so lines/s can be derived.
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark with a broken setup should stop loudly"
)]

use std::fs::File;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

/// The allocator the `darkroom` binary uses, so the parser is measured as it runs there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use darkroom_logs::{LineReader, LogParser, NginxFormat, NginxParser, ParseOptions};

const DEMO_TAIL: &str = " vid=$cookie_vid uid=$user_id rt=$request_time";
/// Bump when the generator changes so stale files are not reused.
const GENERATOR_VERSION: u32 = 1;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Darkroom/3.12.0 (iPhone; iOS 17.4.1; Scale/3.00)",
    "Darkroom/3.11.2 (Android 13; SM-S911B)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "python-requests/2.31.0",
    r#"Mozilla/5.0 (compatible; \"SuperBot\" 1.0; +http://example.net/bot)"#,
    r"Mozilla/5.0 (Windows NT 10.0) \x22Quoted\x22 Edg/124.0.2478.67",
];

const REFERERS: &[&str] = &[
    "-",
    "-",
    "https://www.google.com/",
    "https://darkroom.example/",
    "https://darkroom.example/explore?tab=popular",
    "https://t.co/aBcD3fGh",
    "https://www.reddit.com/r/photography/comments/1b2c3d/",
];

fn path(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => "/".to_owned(),
        1 => format!("/photos/{}", rng.below(5_000_000)),
        2 => format!("/api/v1/feed?cursor={:x}&limit=20", rng.next() >> 16),
        3 => format!("/static/js/app.{:08x}.js", rng.next() as u32),
        4 => format!("/u/user{}/likes?page={}", rng.below(200_000), rng.below(10)),
        5 => format!("/search?q=night+sky+{}&sort=recent", rng.below(1000)),
        6 => format!("/api/v1/photos/{}/comments", rng.below(5_000_000)),
        _ => format!("/images/{:x}/thumb_640.jpg", rng.next()),
    }
}

fn client(rng: &mut Rng) -> String {
    if rng.below(5) == 0 {
        format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.below(65536),
            rng.below(65536),
            rng.below(65536)
        )
    } else {
        format!(
            "{}.{}.{}.{}",
            1 + rng.below(223),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        )
    }
}

fn write_line(out: &mut impl Write, rng: &mut Rng, secs: u64, demo: bool) -> std::io::Result<()> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // Local time in UTC-4, a day in July 2024.
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let day = 10 + secs / 86_400;
    let method = match rng.below(20) {
        0..=16 => "GET",
        17 | 18 => "POST",
        _ => "HEAD",
    };
    let protocol = if rng.below(3) == 0 {
        "HTTP/1.1"
    } else {
        "HTTP/2.0"
    };
    let status = match rng.below(100) {
        0..=79 => 200,
        80..=87 => 304,
        88..=91 => 301,
        92..=96 => 404,
        97 => 499,
        _ => 500,
    };
    let user = if rng.below(50) == 0 { "admin" } else { "-" };
    write!(
        out,
        r#"{} - {user} [{day:02}/{}/2024:{h:02}:{m:02}:{s:02} -0400] "{method} {} {protocol}" {status} {} "{}" "{}""#,
        client(rng),
        MONTHS[6],
        path(rng),
        rng.below(250_000),
        rng.pick(REFERERS),
        rng.pick(AGENTS),
    )?;
    if demo {
        let uid = if rng.below(3) == 0 {
            "-".to_owned()
        } else {
            rng.below(1_000_000).to_string()
        };
        write!(
            out,
            " vid={:016x} uid={uid} rt=0.{:03}",
            rng.next(),
            rng.below(1000)
        )?;
    }
    out.write_all(b"\n")
}

fn data_file(demo: bool) -> (PathBuf, u64, u64) {
    let mb: u64 = std::env::var("DARKROOM_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let name = if demo { "demo" } else { "combined" };
    let path = dir.join(format!("nginx_{name}_{mb}mb_v{GENERATOR_VERSION}.log"));
    if !path.exists() {
        let tmp = path.with_extension("tmp");
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp).unwrap());
        let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ u64::from(demo));
        let (mut written, mut secs) = (0_u64, 0_u64);
        let mut line = Vec::with_capacity(512);
        while written < mb << 20 {
            line.clear();
            write_line(&mut line, &mut rng, secs, demo).unwrap();
            out.write_all(&line).unwrap();
            written += line.len() as u64;
            // About 20 lines per second: consecutive lines often share the timestamp.
            secs += u64::from(rng.below(20) == 0);
        }
        out.flush().unwrap();
        drop(out);
        std::fs::rename(&tmp, &path).unwrap();
    }
    let (lines, bytes) = parse_file(&path, demo);
    eprintln!(
        "{}: {lines} lines, {bytes} bytes, {:.0} bytes/line",
        path.display(),
        bytes as f64 / lines as f64
    );
    (path, lines, bytes)
}

fn format(demo: bool) -> NginxFormat {
    let text = if demo {
        format!("{}{DEMO_TAIL}", darkroom_logs::nginx::COMBINED)
    } else {
        "combined".to_owned()
    };
    NginxFormat::from_name_or_format(&text).unwrap()
}

/// Reads and parses the whole file; every line must parse.
fn parse_file(path: &PathBuf, demo: bool) -> (u64, u64) {
    let options = ParseOptions {
        timezone: chrono_tz::America::Toronto,
        ..ParseOptions::default()
    };
    let batch_size = options.batch_size;
    let mut parser = NginxParser::new(format(demo), options);
    let mut reader = LineReader::new(File::open(path).unwrap());
    let mut lines = 0;
    while let Some(line) = reader.next_line().unwrap() {
        if let Err(e) = parser.push_line(line.text, line.number) {
            panic!("line {}: {e}: {}", line.number, line.raw.escape_ascii());
        }
        lines += 1;
        if parser.len() >= batch_size {
            black_box(parser.finish_batch().unwrap());
        }
    }
    black_box(parser.finish_batch().unwrap());
    (lines, reader.bytes_read())
}

/// Only splits the file into lines: the floor under the parser's cost.
fn read_lines(path: &PathBuf) -> u64 {
    let mut reader = LineReader::new(File::open(path).unwrap());
    let mut sum = 0;
    while let Some(line) = reader.next_line().unwrap() {
        sum += line.text.len() as u64;
    }
    sum
}

/// Parses a log already in memory: the parser's own cost, without the kernel's file copy.
fn parse_bytes(data: &[u8], demo: bool) -> usize {
    let options = ParseOptions {
        timezone: chrono_tz::America::Toronto,
        ..ParseOptions::default()
    };
    let batch_size = options.batch_size;
    let mut parser = NginxParser::new(format(demo), options);
    let mut rows = 0;
    let mut reader = LineReader::new(data);
    while let Some(line) = reader.next_line().unwrap() {
        parser.push_line(line.text, line.number).unwrap();
        if parser.len() >= batch_size {
            rows += black_box(parser.finish_batch().unwrap()).num_rows();
        }
    }
    rows + black_box(parser.finish_batch().unwrap()).num_rows()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("nginx_parser");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    {
        let (path, _, bytes) = data_file(false);
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function("line_reader_only", |b| {
            b.iter(|| black_box(read_lines(&path)))
        });
    }
    for (name, demo) in [("combined", false), ("demo_custom", true)] {
        let (path, lines, bytes) = data_file(demo);
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(name, |b| b.iter(|| black_box(parse_file(&path, demo))));
        eprintln!("{name}: {lines} lines per iteration");
        let data = std::fs::read(&path).unwrap();
        group.bench_function(format!("{name}_in_memory"), |b| {
            b.iter(|| black_box(parse_bytes(&data, demo)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
