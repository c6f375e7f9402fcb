//! Behaviour of the nginx parser on real-world lines, good and bad.

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use chrono::{DateTime, NaiveDate};

use super::*;
use crate::IpPolicy;

const DEMO: &str = r#"combined vid=$cookie_vid uid=$user_id rt=$request_time"#;
const LINE: &str = r#"203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1&b=2 HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#;

fn demo_format() -> NginxFormat {
    let text = DEMO.replace("combined", COMBINED);
    NginxFormat::from_name_or_format(&text).unwrap()
}

fn parser(format: &str) -> NginxParser {
    let format = match format {
        "demo" => demo_format(),
        f => NginxFormat::from_name_or_format(f).unwrap(),
    };
    NginxParser::new(format, ParseOptions::default())
}

fn parse_ok(format: &str, line: &str) -> RecordBatch {
    let mut p = parser(format);
    if let Err(e) = p.push_line(line.as_bytes(), 1) {
        panic!("{e}\n{line}");
    }
    let batch = p.finish_batch().unwrap();
    assert_eq!(batch.num_rows(), 1);
    batch
}

fn parse_err(format: &str, line: &[u8]) -> LineError {
    let mut p = parser(format);
    let err = p.push_line(line, 7).unwrap_err();
    assert_eq!(p.len(), 0);
    let batch = p.finish_batch().unwrap();
    assert_eq!(batch.num_rows(), 0);
    err
}

fn text(batch: &RecordBatch, column: &str) -> Option<String> {
    let col = batch.column_by_name(column).unwrap().as_string::<i32>();
    col.is_valid(0).then(|| col.value(0).to_owned())
}

fn int(batch: &RecordBatch, column: &str) -> Option<i64> {
    let col = batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<Int64Type>();
    col.is_valid(0).then(|| col.value(0))
}

fn ts(batch: &RecordBatch) -> String {
    let micros = batch
        .column_by_name("event_ts")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .value(0);
    DateTime::from_timestamp_micros(micros)
        .unwrap()
        .to_rfc3339()
}

fn date(batch: &RecordBatch) -> NaiveDate {
    let days = batch
        .column_by_name("event_date")
        .unwrap()
        .as_primitive::<Date32Type>()
        .value(0);
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(days as u64)
}

fn combined(ua: &str) -> String {
    format!(r#"10.1.2.3 - - [01/Jan/2024:12:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "{ua}""#)
}

#[test]
fn combined_line_fills_every_column() {
    let b = parse_ok("combined", LINE);
    assert_eq!(b.schema(), NginxFormat::combined().schema());
    assert_eq!(text(&b, "remote_addr").as_deref(), Some("203.0.113.9"));
    assert_eq!(text(&b, "remote_user").as_deref(), Some("alice"));
    assert_eq!(ts(&b), "2000-10-10T20:55:36+00:00");
    assert_eq!(date(&b), NaiveDate::from_ymd_opt(2000, 10, 10).unwrap());
    assert_eq!(text(&b, "request_method").as_deref(), Some("GET"));
    assert_eq!(
        text(&b, "request_path").as_deref(),
        Some("/apache_pb.gif?a=1&b=2")
    );
    assert_eq!(text(&b, "request_protocol").as_deref(), Some("HTTP/1.0"));
    assert_eq!(
        b.column_by_name("status")
            .unwrap()
            .as_primitive::<Int32Type>()
            .value(0),
        200
    );
    assert_eq!(int(&b, "body_bytes_sent"), Some(2326));
    assert_eq!(
        text(&b, "http_referer").as_deref(),
        Some("http://www.example.com/start.html")
    );
    assert_eq!(
        text(&b, "http_user_agent").as_deref(),
        Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
    );
    assert_eq!(int(&b, "line"), Some(1));
}

#[test]
fn demo_format_with_visitor_user_and_request_time() {
    let line = format!("{LINE} vid=v-123 uid=42 rt=0.125");
    let b = parse_ok("demo", &line);
    let names: Vec<_> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names[11..],
        ["cookie_vid", "user_id", "request_time", "line"]
    );
    assert_eq!(
        text(&b, "http_user_agent").as_deref(),
        Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
    );
    assert_eq!(text(&b, "cookie_vid").as_deref(), Some("v-123"));
    assert_eq!(text(&b, "user_id").as_deref(), Some("42"));
    let rt = b
        .column_by_name("request_time")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(rt.value(0), 0.125);
    // Anonymous visitor: nginx writes '-' for empty variables.
    let b = parse_ok("demo", &format!("{LINE} vid=v-9 uid=- rt=-"));
    assert_eq!(text(&b, "user_id"), None);
    assert!(b.column_by_name("request_time").unwrap().is_null(0));
    // Missing the custom tail: a plain combined line is not a demo line.
    let e = parse_err("demo", LINE.as_bytes());
    assert_eq!(e.field.as_deref(), Some("http_user_agent"));
}

#[test]
fn quotes_and_escaped_quotes_inside_fields() {
    // Raw quotes inside the last field: it is matched from the end of the line.
    let b = parse_ok("combined", &combined(r#"Mozilla/5.0 "quoted" (X11)"#));
    assert_eq!(
        text(&b, "http_user_agent").as_deref(),
        Some(r#"Mozilla/5.0 "quoted" (X11)"#)
    );
    // Escaped quotes as nginx (\x22) and Apache (\") write them, in the path and the agent.
    let line = r#"10.1.2.3 - - [01/Jan/2024:12:00:00 +0000] "GET /search?q=\"a b\"&r=\x22c\x22 HTTP/1.1" 200 5 "ref \" \"x" "UA \"q\" \\ end\\""#;
    let b = parse_ok("combined", line);
    assert_eq!(
        text(&b, "request_path").as_deref(),
        Some(r#"/search?q="a b"&r="c""#)
    );
    assert_eq!(text(&b, "http_referer").as_deref(), Some(r#"ref " "x"#));
    assert_eq!(
        text(&b, "http_user_agent").as_deref(),
        Some(r#"UA "q" \ end\"#)
    );
    // In the demo format the agent is not last: it ends at the first unescaped `" vid=`.
    let line = format!(
        r#"{}\" vid=x" vid=v1 uid=- rt=0.001"#,
        &combined("")[..combined("").len() - 1]
    );
    let b = parse_ok("demo", &line);
    assert_eq!(text(&b, "http_user_agent").as_deref(), Some(r#"" vid=x"#));
    assert_eq!(text(&b, "cookie_vid").as_deref(), Some("v1"));
    // UTF-8 escaped byte by byte decodes to text.
    let b = parse_ok("combined", &combined(r"caf\xC3\xA9"));
    assert_eq!(text(&b, "http_user_agent").as_deref(), Some("café"));
}

#[test]
fn ipv6_client_addresses() {
    for addr in ["2001:db8::1", "::ffff:10.0.0.1", "::1"] {
        let b = parse_ok("combined", &combined("x").replacen("10.1.2.3", addr, 1));
        assert_eq!(text(&b, "remote_addr").as_deref(), Some(addr));
    }
}

#[test]
fn ip_policies_apply_in_the_parser() {
    let options = ParseOptions {
        ip_policy: IpPolicy::Truncate {
            v4_prefix: 24,
            v6_prefix: 48,
        },
        ..ParseOptions::default()
    };
    let mut p = NginxParser::new(NginxFormat::combined(), options);
    p.push_line(combined("x").as_bytes(), 1).unwrap();
    p.push_line(
        combined("x")
            .replacen("10.1.2.3", "2001:db8:1:2::1", 1)
            .as_bytes(),
        2,
    )
    .unwrap();
    let err = p
        .push_line(combined("x").replacen("10.1.2.3", "unix:", 1).as_bytes(), 3)
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("remote_addr"));
    let b = p.finish_batch().unwrap();
    let addrs = b.column_by_name("remote_addr").unwrap().as_string::<i32>();
    assert_eq!(
        addrs.iter().collect::<Vec<_>>(),
        [Some("10.1.2.0"), Some("2001:db8:1::")]
    );

    let options = ParseOptions {
        ip_policy: IpPolicy::Hash {
            salt: b"s".to_vec(),
        },
        ..ParseOptions::default()
    };
    let mut p = NginxParser::new(NginxFormat::combined(), options);
    p.push_line(combined("x").as_bytes(), 1).unwrap();
    let b = p.finish_batch().unwrap();
    let hashed = text(&b, "remote_addr").unwrap();
    assert_eq!(hashed.len(), 32);
    assert!(hashed.bytes().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn dashes_are_nulls() {
    let line = r#"10.1.2.3 - - [01/Jan/2024:12:00:00 +0000] "-" 400 - "-" "-""#;
    let b = parse_ok("combined", line);
    assert_eq!(text(&b, "remote_user"), None);
    assert_eq!(int(&b, "body_bytes_sent"), None);
    assert_eq!(text(&b, "http_referer"), None);
    assert_eq!(text(&b, "http_user_agent"), None);
    // A request that is not "METHOD TARGET PROTOCOL" is kept whole as the path.
    assert_eq!(text(&b, "request_method"), None);
    assert_eq!(text(&b, "request_path").as_deref(), Some("-"));
    assert_eq!(text(&b, "request_protocol"), None);
}

#[test]
fn tls_garbage_and_odd_requests_are_not_errors() {
    let tls = r#"10.1.2.3 - - [01/Jan/2024:12:00:00 +0000] "\x16\x03\x01\x00\xA5\x01\x00\x00\xA1\x03\x03" 400 157 "-" "-""#;
    let b = parse_ok("combined", tls);
    assert_eq!(text(&b, "request_method"), None);
    assert_eq!(
        text(&b, "request_path").as_deref(),
        Some(r"\x16\x03\x01\x00\xA5\x01\x00\x00\xA1\x03\x03")
    );
    let b = parse_ok("combined", &combined("x").replace("GET / HTTP/1.1", ""));
    assert_eq!(text(&b, "request_path").as_deref(), Some(""));
    let b = parse_ok(
        "combined",
        &combined("x").replace("GET / HTTP/1.1", "GET /"),
    );
    assert_eq!(text(&b, "request_path").as_deref(), Some("GET /"));
}

#[test]
fn invalid_utf8_is_a_line_error() {
    let mut line = combined("bad ").into_bytes();
    let at = line.len() - 1;
    line.insert(at, 0xFF);
    let e = parse_err("combined", &line);
    assert_eq!(e.field.as_deref(), Some("http_user_agent"));
    assert_eq!(e.column, at + 1);
    assert!(e.reason.contains("0xFF"), "{e}");
    // Escaped bytes that decode to invalid UTF-8 are rejected too.
    let e = parse_err("combined", combined(r"bad \xFF").as_bytes());
    assert_eq!(e.field.as_deref(), Some("http_user_agent"));
    // Valid multi-byte UTF-8 as raw bytes is fine.
    let b = parse_ok("combined", &combined("Mozilla ü 日本"));
    assert_eq!(
        text(&b, "http_user_agent").as_deref(),
        Some("Mozilla ü 日本")
    );
}

#[test]
fn crlf_does_not_leak_into_the_last_field() {
    let b = parse_ok("combined", &format!("{}\r", combined("ua")));
    assert_eq!(text(&b, "http_user_agent").as_deref(), Some("ua"));
    let b = parse_ok(
        "common",
        &format!("{}\r", LINE.split(" \"http").next().unwrap()),
    );
    assert_eq!(int(&b, "body_bytes_sent"), Some(2326));
    let b = parse_ok("demo", &format!("{LINE} vid=v uid=u\\x20 rt=0.5\r"));
    assert_eq!(
        b.column_by_name("request_time")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        0.5
    );
    assert_eq!(parse_err("combined", b"\r").reason, "empty line");
}

#[test]
fn a_one_megabyte_line_parses() {
    let ua = "A".repeat(1 << 20);
    let b = parse_ok("combined", &combined(&ua));
    assert_eq!(text(&b, "http_user_agent").unwrap().len(), 1 << 20);
}

#[test]
fn timestamps_in_other_zones_give_the_utc_instant_and_project_date() {
    let at = |t: &str| combined("x").replace("01/Jan/2024:12:00:00 +0000", t);
    assert_eq!(
        ts(&parse_ok("combined", &at("10/Oct/2000:13:55:36 -0700"))),
        "2000-10-10T20:55:36+00:00"
    );
    assert_eq!(
        ts(&parse_ok("combined", &at("01/Jan/2024:02:00:00 +0530"))),
        "2023-12-31T20:30:00+00:00"
    );
    // event_date is the date in the project zone, not in the line's zone.
    let options = ParseOptions {
        timezone: chrono_tz::America::Toronto,
        ..ParseOptions::default()
    };
    let mut p = NginxParser::new(NginxFormat::combined(), options);
    p.push_line(at("02/Jan/2024:03:00:00 +0000").as_bytes(), 1)
        .unwrap();
    p.push_line(at("02/Jan/2024:06:00:00 +0100").as_bytes(), 2)
        .unwrap();
    p.push_line(at("02/Jan/2024:06:00:00 +0100").as_bytes(), 3)
        .unwrap();
    let b = p.finish_batch().unwrap();
    let dates = b
        .column_by_name("event_date")
        .unwrap()
        .as_primitive::<Date32Type>();
    let day = |d: u32| {
        (NaiveDate::from_ymd_opt(2024, 1, d).unwrap()
            - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
    };
    assert_eq!(dates.values().to_vec(), [day(1), day(2), day(2)]);
}

#[test]
fn iso8601_and_msec_formats() {
    let b = parse_ok(
        "$remote_addr $time_iso8601 $status",
        "::1 2000-10-10T13:55:36-07:00 204",
    );
    assert_eq!(ts(&b), "2000-10-10T20:55:36+00:00");
    let b = parse_ok(
        "$msec $remote_addr \"$request\" $request_time $upstream_response_time",
        "1700000000.123 1.2.3.4 \"POST /api HTTP/2.0\" 0.010 0.004, 0.006",
    );
    assert_eq!(ts(&b), "2023-11-14T22:13:20.123+00:00");
    assert_eq!(
        text(&b, "upstream_response_time").as_deref(),
        Some("0.004, 0.006")
    );
    let e = parse_err("$msec $status", b"1700000000.1234567 200");
    assert_eq!(e.field.as_deref(), Some("msec"));
}

#[test]
fn lines_in_other_formats_are_errors_with_a_place() {
    let json = br#"{"ts":"2024-01-01T00:00:00Z","status":200,"path":"/"}"#;
    let e = parse_err("combined", json);
    assert_eq!(e.field.as_deref(), Some("remote_addr"));
    let apache = b"[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration";
    let e = parse_err("combined", apache);
    assert_eq!((e.column, e.field.as_deref()), (5, Some("remote_addr")));
    assert_eq!(
        e.to_string(),
        "column 5 ($remote_addr): expected ' - ' after $remote_addr, found ' Oc'"
    );
    // A common line lacks the referer and user agent.
    let common = LINE.split(" \"http").next().unwrap();
    let e = parse_err("combined", common.as_bytes());
    assert_eq!(e.field.as_deref(), Some("body_bytes_sent"));
    assert!(e.reason.contains("end of line"), "{e}");
    // A bad time names the byte.
    let e = parse_err(
        "combined",
        combined("x").replace("01/Jan", "01/Gan").as_bytes(),
    );
    assert_eq!((e.column, e.field.as_deref()), (18, Some("time_local")));
    assert!(e.reason.contains("found 'G'"), "{e}");
    let e = parse_err("combined", b"GET / HTTP/1.1");
    assert_eq!(e.field.as_deref(), Some("remote_addr"));
}

#[test]
fn truncated_and_empty_lines() {
    let full = combined("Mozilla/5.0 (X11; Linux x86_64)");
    let cut = &full[..full.len() - 12];
    let e = parse_err("combined", cut.as_bytes());
    assert_eq!(e.field.as_deref(), Some("http_user_agent"));
    assert_eq!(e.column, cut.len() + 1);
    // Cut right after an escaped quote: the quote does not close the field.
    let e = parse_err(
        "combined",
        combined("Mozilla \\\"").trim_end_matches('"').as_bytes(),
    );
    assert_eq!(e.field.as_deref(), Some("http_user_agent"));
    let e = parse_err("combined", b"");
    assert_eq!(
        (e.column, e.field.as_deref(), e.reason.as_str()),
        (1, None, "empty line")
    );
    assert_eq!(e.to_string(), "column 1: empty line");
}

#[test]
fn bad_numbers_name_the_field() {
    let e = parse_err(
        "combined",
        combined("x")
            .replace(" 200 5 ", " 200 99999999999999999999 ")
            .as_bytes(),
    );
    assert_eq!(e.field.as_deref(), Some("body_bytes_sent"));
    assert!(e.reason.contains("out of range"), "{e}");
    let e = parse_err(
        "combined",
        combined("x").replace(" 200 5 ", " 2x0 5 ").as_bytes(),
    );
    assert_eq!(e.field.as_deref(), Some("status"));
    assert!(e.reason.contains("expected an HTTP status code"), "{e}");
    let e = parse_err(
        "combined",
        combined("x")
            .replace(" 200 5 ", " 3000000000 5 ")
            .as_bytes(),
    );
    assert_eq!(e.field.as_deref(), Some("status"));
    let e = parse_err("demo", format!("{LINE} vid=v uid=u rt=fast").as_bytes());
    assert_eq!(e.field.as_deref(), Some("request_time"));
}

#[test]
fn errors_roll_back_and_batches_restart() {
    let mut p = parser("combined");
    p.push_line(LINE.as_bytes(), 1).unwrap();
    // Fails late (in the user agent), after earlier fields were appended.
    assert!(p.push_line(&combined("x").as_bytes()[..66], 2).is_err());
    assert!(p.push_line(combined("bad \\xFF").as_bytes(), 3).is_err());
    p.push_line(combined("ok").as_bytes(), 4).unwrap();
    assert_eq!(p.len(), 2);
    let b = p.finish_batch().unwrap();
    assert_eq!(b.num_rows(), 2);
    let lines = b
        .column_by_name("line")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(lines.values().to_vec(), [1, 4]);
    let agents = b
        .column_by_name("http_user_agent")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(agents.value(1), "ok");
    assert!(p.is_empty());
    let empty = p.finish_batch().unwrap();
    assert_eq!((empty.num_rows(), empty.schema()), (0, p.schema()));
    p.push_line(LINE.as_bytes(), 5).unwrap();
    assert_eq!(p.finish_batch().unwrap().num_rows(), 1);
}

/// xorshift64: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn random_mutations_never_panic_and_ok_rows_are_whole() {
    let seeds = [
        LINE.to_owned(),
        format!("{LINE} vid=v-1 uid=7 rt=0.002"),
        combined(r#"UA \"x\" \xC3\xA9"#),
        r#"2001:db8::1 - - [10/Oct/2000:13:55:36 +0530] "-" 400 - "-" "-""#.to_owned(),
    ];
    let specials: &[&[u8]] = &[
        b"\"", b"\\", b" ", b"-", b"\r", b"\xFF", b"\\x", b"[", b"]", b"\" \"", b"\xC3", b"0",
    ];
    let mut parsers = [parser("combined"), parser("common"), parser("demo")];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ok = [0_usize; 3];
    for i in 0..6000 {
        let mut line = seeds[i % seeds.len()].clone().into_bytes();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(line.len() + 1);
            match rng.below(4) {
                0 if at < line.len() => {
                    line.remove(at);
                }
                1 => {
                    let s = specials[rng.below(specials.len())];
                    line.splice(at..at, s.iter().copied());
                }
                2 if at < line.len() => line[at] = rng.next() as u8,
                _ => line.truncate(at),
            }
        }
        for (p, ok) in parsers.iter_mut().zip(&mut ok) {
            if p.push_line(&line, i as u64).is_ok() {
                *ok += 1;
            }
        }
    }
    for (i, (p, ok)) in parsers.iter_mut().zip(ok).enumerate() {
        let b = p.finish_batch().unwrap();
        assert_eq!(b.num_rows(), ok);
        assert_eq!(b.num_columns(), p.schema().fields().len());
        assert!(b.columns().iter().all(|c| c.len() == ok));
        if i == 0 {
            assert_round_trip(&b);
        }
    }
    assert!(ok.iter().all(|&n| n > 0), "{ok:?}");
}

/// Every accepted row, written back as a combined line, parses to the same row.
fn assert_round_trip(batch: &RecordBatch) {
    let mut again = parser("combined");
    let lines = batch
        .column_by_name("line")
        .unwrap()
        .as_primitive::<Int64Type>();
    for row in 0..batch.num_rows() {
        let line = render_combined(batch, row);
        if let Err(e) = again.push_line(line.as_bytes(), lines.value(row) as u64) {
            panic!("{e}: {line}");
        }
    }
    assert_eq!(&again.finish_batch().unwrap(), batch);
}

/// A combined line for one row, escaping every byte that could end a field early.
fn render_combined(b: &RecordBatch, row: usize) -> String {
    let text = |name: &str| {
        let col = b.column_by_name(name).unwrap().as_string::<i32>();
        col.is_valid(row).then(|| col.value(row).to_owned())
    };
    let escaped = |value: Option<String>| match value {
        None => "-".to_owned(),
        Some(v) if v == "-" => r"\x2D".to_owned(),
        Some(v) => {
            let mut out = String::new();
            for c in v.chars() {
                match c {
                    '"' | '\\' | ' ' | '[' | ']' | '\x00'..='\x1f' | '\x7f' => {
                        out.push_str(&format!("\\x{:02X}", c as u32));
                    }
                    c => out.push(c),
                }
            }
            out
        }
    };
    let request = match (text("request_method"), text("request_protocol")) {
        (Some(m), Some(v)) => format!("{m} {} {v}", escaped(text("request_path"))),
        _ => escaped(text("request_path")),
    };
    let micros = b
        .column_by_name("event_ts")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let time = DateTime::from_timestamp_micros(micros.value(row)).unwrap();
    let status = b
        .column_by_name("status")
        .unwrap()
        .as_primitive::<Int32Type>()
        .value(row);
    let bytes = b
        .column_by_name("body_bytes_sent")
        .unwrap()
        .as_primitive::<Int64Type>();
    let bytes = if bytes.is_valid(row) {
        bytes.value(row).to_string()
    } else {
        "-".into()
    };
    format!(
        r#"{} - {} [{}] "{request}" {status} {bytes} "{}" "{}""#,
        text("remote_addr").unwrap(),
        escaped(text("remote_user")),
        time.format("%d/%b/%Y:%H:%M:%S +0000"),
        escaped(text("http_referer")),
        escaped(text("http_user_agent")),
    )
}

#[test]
fn alternate_formats_read_what_the_main_one_cannot() {
    let main = NginxFormat::from_name_or_format(COMBINED).unwrap();
    let iso = NginxFormat::from_name_or_format(&COMBINED.replace("$time_local", "$time_iso8601"))
        .unwrap();
    let mut p = NginxParser::new(main.clone(), ParseOptions::default())
        .with_alternates(vec![iso])
        .unwrap();
    let iso_line = LINE.replace("10/Oct/2000:13:55:36 -0700", "2000-10-10T20:55:36+00:00");
    p.push_line(LINE.as_bytes(), 1).unwrap();
    p.push_line(iso_line.as_bytes(), 2).unwrap();
    // a line neither reads: the main format's error
    let err = p.push_line(b"garbage", 3).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("remote_addr"), "{err}");
    assert!(
        err.reason.contains("expected ' - ' after $remote_addr"),
        "{err}"
    );
    let batch = p.finish_batch().unwrap();
    assert_eq!(batch.num_rows(), 2);
    let ts = batch
        .column_by_name("event_ts")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    // the same instant, written two ways
    assert_eq!(ts.value(0), ts.value(1));
    let status = batch
        .column_by_name("status")
        .unwrap()
        .as_primitive::<Int32Type>();
    assert_eq!(status.value(1), 200);
    // an alternate that logs other variables is refused, naming both
    let other = NginxFormat::from_name_or_format("$remote_addr [$time_local] $status").unwrap();
    let err = NginxParser::new(main, ParseOptions::default())
        .with_alternates(vec![other])
        .err()
        .unwrap();
    assert!(
        err.contains("same variables") && err.contains("$status"),
        "{err}"
    );
}
