use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use chrono::NaiveDate;

use super::*;

fn options(fields: &[(&str, FieldType)]) -> JsonlOptions {
    JsonlOptions {
        timestamp_field: "ts".into(),
        timestamp_format: TimestampFormat::Rfc3339,
        nested: NestedMode::Flatten,
        fields: fields.iter().map(|(p, t)| ((*p).to_owned(), *t)).collect(),
    }
}

fn parser(options: JsonlOptions) -> JsonlParser {
    JsonlParser::new(options, ParseOptions::default()).unwrap()
}

fn toronto(options: JsonlOptions) -> JsonlParser {
    let parse = ParseOptions {
        timezone: chrono_tz::America::Toronto,
        ..ParseOptions::default()
    };
    JsonlParser::new(options, parse).unwrap()
}

fn error(p: &mut JsonlParser, line: &[u8]) -> LineError {
    let err = p.push_line(line, 7).unwrap_err();
    assert!(p.is_empty(), "nothing may be appended on error");
    err
}

fn one_row(p: &mut JsonlParser, line: &str) -> RecordBatch {
    p.push_line(line.as_bytes(), 1).unwrap();
    let batch = p.finish_batch().unwrap();
    assert_eq!(batch.num_rows(), 1);
    batch
}

fn utc(batch: &RecordBatch) -> String {
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
    NaiveDate::from_num_days_from_ce_opt(days + UNIX_EPOCH_DAYS_FROM_CE).unwrap()
}

fn text(batch: &RecordBatch, column: &str) -> Option<String> {
    let array = batch.column_by_name(column).unwrap().as_string::<i32>();
    array.is_valid(0).then(|| array.value(0).to_owned())
}

fn int(batch: &RecordBatch, column: &str) -> Option<i64> {
    let array = batch
        .column_by_name(column)
        .unwrap()
        .as_primitive::<Int64Type>();
    array.is_valid(0).then(|| array.value(0))
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

const TS: &str = r#""ts":"2024-01-02T03:04:05Z""#;

#[test]
fn schema_has_time_fields_attributes_and_line() {
    let p = parser(options(&[
        ("user_id", FieldType::Int64),
        ("context.device.os", FieldType::Utf8),
    ]));
    let names: Vec<_> = p
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "event_ts",
            "event_date",
            "user_id",
            "context_device_os",
            "attributes",
            "line"
        ]
    );
    assert_eq!(p.schema().field(0).data_type(), &utc_micros());
    assert_eq!(p.schema().field(1).data_type(), &DataType::Date32);
}

#[test]
fn empty_line_is_an_error() {
    let mut p = parser(options(&[]));
    for line in [&b""[..], b"   ", b"\r"] {
        let err = error(&mut p, line);
        assert_eq!(err.column, 1);
        assert!(err.reason.contains("empty line"), "{}", err.reason);
    }
}

#[test]
fn invalid_json_reports_serde_column() {
    let mut p = parser(options(&[]));
    let line = format!(r#"{{{TS},"a":}}"#);
    let err = error(&mut p, line.as_bytes());
    assert_eq!(err.column, line.len(), "points at the closing brace");
    assert!(
        err.reason.starts_with("not valid JSON: expected value"),
        "{}",
        err.reason
    );
    assert!(!err.reason.contains("line 1"), "{}", err.reason);

    let truncated = format!(r#"{{{TS},"a":"abc"#);
    let err = error(&mut p, truncated.as_bytes());
    assert!(err.reason.contains("truncated"), "{}", err.reason);

    let err = error(&mut p, format!("{{{TS}}} trailing").as_bytes());
    assert!(err.reason.contains("trailing characters"), "{}", err.reason);
}

#[test]
fn non_object_is_an_error() {
    let mut p = parser(options(&[]));
    let err = error(&mut p, b"[1,2]");
    assert_eq!(err.column, 1);
    assert_eq!(
        err.reason,
        "expected a JSON object per line, found array [1,2]"
    );
    let err = error(&mut p, br#"  "hello""#);
    assert_eq!(err.column, 3);
    assert!(
        err.reason.contains(r#"found string "hello""#),
        "{}",
        err.reason
    );
}

#[test]
fn missing_or_null_timestamp_is_an_error() {
    let mut p = parser(options(&[]));
    let err = error(&mut p, br#"{"time":"2024-01-02T03:04:05Z"}"#);
    assert_eq!(err.field.as_deref(), Some("ts"));
    assert!(err.reason.contains("`ts` is missing"), "{}", err.reason);
    let err = error(&mut p, br#"{"ts":null}"#);
    assert!(err.reason.contains("`ts` is null"), "{}", err.reason);
}

#[test]
fn unparseable_timestamp_quotes_value_and_format() {
    let mut p = parser(options(&[]));
    let line = br#"{"a":1, "ts": "02/01/2024 03:04"}"#;
    let err = error(&mut p, line);
    assert_eq!(err.column, 15, "points at the value");
    assert_eq!(err.field.as_deref(), Some("ts"));
    assert!(
        err.reason.contains(r#""02/01/2024 03:04""#),
        "{}",
        err.reason
    );
    assert!(err.reason.contains("RFC 3339"), "{}", err.reason);

    let err = error(&mut p, br#"{"ts":1704164645}"#);
    assert!(
        err.reason.contains("expected a string in RFC 3339, like"),
        "{}",
        err.reason
    );

    let mut p = parser(JsonlOptions {
        timestamp_format: TimestampFormat::UnixMillis,
        ..options(&[])
    });
    let err = error(&mut p, br#"{"ts":"soon"}"#);
    assert!(
        err.reason
            .contains(r#"cannot read "soon" as Unix milliseconds"#),
        "{}",
        err.reason
    );
    let err = error(&mut p, br#"{"ts":9223372036854775807}"#);
    assert!(err.reason.contains("Unix milliseconds"), "{}", err.reason);
}

#[test]
fn wrong_field_type_names_field_type_and_value() {
    let mut p = parser(options(&[("user_id", FieldType::Int64)]));
    let line = format!(r#"{{{TS},"user_id": {{"x":1}}}}"#);
    let err = error(&mut p, line.as_bytes());
    assert_eq!(err.field.as_deref(), Some("user_id"));
    assert_eq!(err.column, line.find("{\"x\"").unwrap() + 1);
    assert_eq!(
        err.reason,
        r#"field `user_id`: expected int64 (an integer, or a string holding one), found object {"x":1}"#
    );

    let long = "9".repeat(200);
    let err = error(&mut p, format!(r#"{{{TS},"user_id":"{long}"}}"#).as_bytes());
    let quoted = err.reason.split("found string ").nth(1).unwrap();
    assert_eq!(quoted.chars().count(), QUOTE_MAX_CHARS + 1, "{quoted}");
    assert!(quoted.ends_with('…'));
}

#[test]
fn error_column_finds_the_right_occurrence_of_a_key() {
    let mut p = parser(JsonlOptions {
        nested: NestedMode::Json,
        ..options(&[("id", FieldType::Int64)])
    });
    let line = format!(r#"{{"x":{{"id":"abc"}},{TS},"id":"xyz"}}"#);
    let err = error(&mut p, line.as_bytes());
    assert_eq!(err.column, line.find("\"xyz\"").unwrap() + 1);
}

#[test]
fn invalid_utf8_is_reported_at_the_bad_byte() {
    let mut p = parser(options(&[]));
    let mut line = format!(r#"{{{TS},"a":"caf"#).into_bytes();
    let at = line.len();
    line.extend_from_slice(b"\xe9 au lait\"}");
    let err = error(&mut p, &line);
    assert_eq!(err.column, at + 1);
    assert!(
        err.reason.contains("not valid UTF-8 (byte 0xe9)"),
        "{}",
        err.reason
    );
}

#[test]
fn int64_accepts_strings_and_integral_floats() {
    let mut p = parser(options(&[("n", FieldType::Int64)]));
    for (value, expected) in [("42", 42), ("\"42\"", 42), ("42.0", 42), ("-7", -7)] {
        let batch = one_row(&mut p, &format!(r#"{{{TS},"n":{value}}}"#));
        assert_eq!(int(&batch, "n"), Some(expected), "{value}");
    }
    for bad in ["42.5", "\"4x\"", "true", "18446744073709551615", "[1]"] {
        let err = error(&mut p, format!(r#"{{{TS},"n":{bad}}}"#).as_bytes());
        assert!(
            err.reason.contains("expected int64"),
            "{bad}: {}",
            err.reason
        );
    }
    let batch = one_row(&mut p, &format!(r#"{{{TS},"n":null}}"#));
    assert_eq!(int(&batch, "n"), None);
}

#[test]
fn other_field_types() {
    let fields = [
        ("s", FieldType::Utf8),
        ("f", FieldType::Float64),
        ("b", FieldType::Boolean),
        ("t", FieldType::Timestamp),
        ("j", FieldType::Json),
        ("missing", FieldType::Utf8),
    ];
    let mut p = parser(options(&fields));
    let batch = one_row(
        &mut p,
        &format!(
            r#"{{{TS},"s":12,"f":"1.5","b":true,"t":"2024-01-02T05:00:00+02:00","j":{{"k":[1,"two",null]}}}}"#
        ),
    );
    assert_eq!(text(&batch, "s").as_deref(), Some("12"));
    assert_eq!(
        batch
            .column_by_name("f")
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0),
        1.5
    );
    assert!(batch.column_by_name("b").unwrap().as_boolean().value(0));
    let t = batch
        .column_by_name("t")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .value(0);
    assert_eq!(
        DateTime::from_timestamp_micros(t).unwrap().to_rfc3339(),
        "2024-01-02T03:00:00+00:00"
    );
    assert_eq!(
        text(&batch, "j").as_deref(),
        Some(r#"{"k":[1,"two",null]}"#)
    );
    assert_eq!(text(&batch, "missing"), None);
    assert_eq!(text(&batch, "attributes"), None, "every key was declared");
    assert_eq!(
        batch.schema().field_with_name("t").unwrap().data_type(),
        &utc_micros()
    );

    let err = error(&mut p, format!(r#"{{{TS},"b":"yes"}}"#).as_bytes());
    assert!(err.reason.contains("expected bool"), "{}", err.reason);
    let err = error(&mut p, format!(r#"{{{TS},"s":{{"a":1}}}}"#).as_bytes());
    assert!(err.reason.contains("expected string"), "{}", err.reason);
}

#[test]
fn attributes_keep_undeclared_keys() {
    let mut p = parser(options(&[("user_id", FieldType::Int64)]));
    let batch = one_row(
        &mut p,
        r#"{"event":"app_open","ts":"2024-01-02T03:04:05Z","user_id":5,"tags":["a","b"],"esc":"q\"\n\u0001é","n":1.0,"k\"e\u0079":{"a\\b":[]}}"#,
    );
    assert_eq!(int(&batch, "user_id"), Some(5));
    assert_eq!(
        text(&batch, "attributes").as_deref(),
        Some(
            r#"{"event":"app_open","tags":["a","b"],"esc":"q\"\n\u0001é","n":1.0,"k\"ey_a\\b":[]}"#
        )
    );
}

#[test]
fn nested_flatten_mode() {
    let mut p = parser(JsonlOptions {
        timestamp_field: "meta.ts".into(),
        ..options(&[("context.device.os", FieldType::Utf8)])
    });
    let batch = one_row(
        &mut p,
        r#"{"meta":{"ts":"2024-01-02T03:04:05Z","host":"a"},"context":{"device":{"os":"ios","model":"x"},"app":{}},"e":"open"}"#,
    );
    assert_eq!(utc(&batch), "2024-01-02T03:04:05+00:00");
    assert_eq!(text(&batch, "context_device_os").as_deref(), Some("ios"));
    assert_eq!(
        text(&batch, "attributes").as_deref(),
        Some(r#"{"meta_host":"a","context_device_model":"x","context_app":{},"e":"open"}"#)
    );

    // The flattened name works too, at any level of nesting.
    let batch = one_row(
        &mut p,
        r#"{"meta_ts":"2024-01-02T03:04:05Z","context_device":{"os":"android"}}"#,
    );
    assert_eq!(
        text(&batch, "context_device_os").as_deref(),
        Some("android")
    );
    assert_eq!(text(&batch, "attributes"), None);
}

#[test]
fn nested_json_mode() {
    let mut p = parser(JsonlOptions {
        timestamp_field: "meta.ts".into(),
        nested: NestedMode::Json,
        ..options(&[("context.device.os", FieldType::Utf8)])
    });
    let batch = one_row(
        &mut p,
        r#"{"meta":{"ts":"2024-01-02T03:04:05Z"},"context":{"device":{"os":"ios","model":"x"},"app":{}},"e":"open"}"#,
    );
    assert_eq!(text(&batch, "context_device_os").as_deref(), Some("ios"));
    assert_eq!(
        text(&batch, "attributes").as_deref(),
        Some(r#"{"context":{"device":{"model":"x"},"app":{}},"e":"open"}"#)
    );

    // The flattened name is just another key here; a non-object at a declared prefix is kept.
    let batch = one_row(
        &mut p,
        r#"{"meta":{"ts":"2024-01-02T03:04:05Z"},"context_device_os":"x","context":"web"}"#,
    );
    assert_eq!(text(&batch, "context_device_os"), None);
    assert_eq!(
        text(&batch, "attributes").as_deref(),
        Some(r#"{"context_device_os":"x","context":"web"}"#)
    );
}

#[test]
fn unix_millis_and_seconds() {
    let mut p = toronto(JsonlOptions {
        timestamp_format: TimestampFormat::UnixMillis,
        ..options(&[])
    });
    // 2024-01-03T04:30:00Z is 23:30 on Jan 2 in Toronto.
    let batch = one_row(&mut p, r#"{"ts":1704256200000}"#);
    assert_eq!(utc(&batch), "2024-01-03T04:30:00+00:00");
    assert_eq!(date(&batch), ymd(2024, 1, 2));
    let batch = one_row(&mut p, r#"{"ts":"1704256200000"}"#);
    assert_eq!(utc(&batch), "2024-01-03T04:30:00+00:00");

    let mut p = toronto(JsonlOptions {
        timestamp_format: TimestampFormat::UnixSeconds,
        ..options(&[])
    });
    let batch = one_row(&mut p, r#"{"ts":1704274200.25}"#);
    assert_eq!(utc(&batch), "2024-01-03T09:30:00.250+00:00");
    assert_eq!(date(&batch), ymd(2024, 1, 3));
}

#[test]
fn rfc3339_with_offsets_and_space() {
    let mut p = toronto(options(&[]));
    let batch = one_row(&mut p, r#"{"ts":"2024-01-02T23:30:00-05:00"}"#);
    assert_eq!(utc(&batch), "2024-01-03T04:30:00+00:00");
    assert_eq!(date(&batch), ymd(2024, 1, 2));
    let batch = one_row(&mut p, r#"{"ts":"2024-01-03 05:00:00.123Z"}"#);
    assert_eq!(utc(&batch), "2024-01-03T05:00:00.123+00:00");
    assert_eq!(date(&batch), ymd(2024, 1, 3), "00:00 in Toronto");
}

#[test]
fn strftime_without_offset_is_read_in_the_project_time_zone() {
    let format = TimestampFormat::Strftime("%d/%m/%Y %H:%M:%S".into());
    let mut p = toronto(JsonlOptions {
        timestamp_format: format,
        ..options(&[])
    });
    let cases = [
        (
            "02/01/2024 23:59:59",
            "2024-01-03T04:59:59+00:00",
            ymd(2024, 1, 2),
        ),
        (
            "03/01/2024 00:00:00",
            "2024-01-03T05:00:00+00:00",
            ymd(2024, 1, 3),
        ),
        // Spring forward on 2024-03-10: 01:59:59 EST, then 03:00 EDT; 02:30 does not exist.
        (
            "10/03/2024 01:59:59",
            "2024-03-10T06:59:59+00:00",
            ymd(2024, 3, 10),
        ),
        (
            "10/03/2024 03:00:00",
            "2024-03-10T07:00:00+00:00",
            ymd(2024, 3, 10),
        ),
        (
            "10/03/2024 02:30:00",
            "2024-03-10T07:30:00+00:00",
            ymd(2024, 3, 10),
        ),
        // Fall back on 2024-11-03: 01:30 happens twice; the first (EDT) is taken.
        (
            "03/11/2024 01:30:00",
            "2024-11-03T05:30:00+00:00",
            ymd(2024, 11, 3),
        ),
        (
            "03/11/2024 23:30:00",
            "2024-11-04T04:30:00+00:00",
            ymd(2024, 11, 3),
        ),
    ];
    for (local, expected, expected_date) in cases {
        let batch = one_row(&mut p, &format!(r#"{{"ts":"{local}"}}"#));
        assert_eq!(utc(&batch), expected, "{local}");
        assert_eq!(date(&batch), expected_date, "{local}");
    }

    let err = error(&mut p, br#"{"ts":"2024-01-02 03:04:05"}"#);
    assert!(err.reason.contains("`%d/%m/%Y %H:%M:%S`"), "{}", err.reason);
    assert!(err.reason.contains("America/Toronto"), "{}", err.reason);

    let with_offset = TimestampFormat::Strftime("%d/%b/%Y:%H:%M:%S %z".into());
    let mut p = toronto(JsonlOptions {
        timestamp_format: with_offset,
        ..options(&[])
    });
    let batch = one_row(&mut p, r#"{"ts":"02/Jan/2024:23:30:00 +0100"}"#);
    assert_eq!(utc(&batch), "2024-01-02T22:30:00+00:00");
    assert_eq!(date(&batch), ymd(2024, 1, 2));
}

#[test]
fn stray_carriage_return_and_bom_are_whitespace() {
    let mut p = parser(options(&[]));
    let batch = one_row(&mut p, "{\"ts\":\"2024-01-02T03:04:05Z\"}\r");
    assert_eq!(utc(&batch), "2024-01-02T03:04:05+00:00");
    let batch = one_row(&mut p, "\u{feff}{\"ts\":\"2024-01-02T03:04:05Z\"} \r");
    assert_eq!(utc(&batch), "2024-01-02T03:04:05+00:00");
    let err = error(&mut p, "\u{feff}{\"ts\":}".as_bytes());
    assert_eq!(err.column, 10, "columns count the byte-order mark");
}

#[test]
fn good_and_bad_lines_in_one_batch() {
    let mut p = parser(options(&[("n", FieldType::Int64)]));
    let lines = [
        r#"{"ts":"2024-01-02T03:04:05Z","n":1}"#,
        r#"{"ts":"2024-01-02T03:04:05Z","n":"x"}"#,
        r#"{"ts":"2024-01-02T03:04:06Z","n":2,"extra":true}"#,
        r#"{"ts":"2024-01-02T03:04:07Z" "n":3}"#,
        r#"{"ts":"2024-01-02T03:04:08Z"}"#,
    ];
    let mut errors = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Err(err) = p.push_line(line.as_bytes(), i as u64 + 1) {
            errors.push((i + 1, err));
        }
    }
    assert_eq!(p.len(), 3);
    assert_eq!(errors.len(), 2);
    assert_eq!((errors[0].0, errors[0].1.column), (2, 34));
    assert_eq!((errors[1].0, errors[1].1.column), (4, 30));
    let batch = p.finish_batch().unwrap();
    assert!(p.is_empty());
    assert_eq!(batch.num_rows(), 3);
    let line = batch
        .column_by_name("line")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(line.values().to_vec(), [1, 3, 5]);
    let n = batch
        .column_by_name("n")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(n.iter().collect::<Vec<_>>(), [Some(1), Some(2), None]);
    let attributes = batch
        .column_by_name("attributes")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(
        attributes.iter().collect::<Vec<_>>(),
        [None, Some(r#"{"extra":true}"#), None]
    );
    assert_eq!(p.finish_batch().unwrap().num_rows(), 0);
}

#[test]
fn names_parse() {
    assert_eq!(
        "unix_ms".parse::<TimestampFormat>().unwrap(),
        TimestampFormat::UnixMillis
    );
    assert_eq!(
        "rfc3339".parse::<TimestampFormat>().unwrap(),
        TimestampFormat::Rfc3339
    );
    assert_eq!(
        "%s".parse::<TimestampFormat>().unwrap(),
        TimestampFormat::Strftime("%s".into())
    );
    let err = "unix".parse::<TimestampFormat>().unwrap_err().to_string();
    assert!(err.contains("rfc3339, unix_s, unix_ms, unix_us"), "{err}");
    assert!(matches!(
        "%Q".parse::<TimestampFormat>(),
        Err(JsonlError::InvalidStrftime(_))
    ));
    assert_eq!("bool".parse::<FieldType>().unwrap(), FieldType::Boolean);
    for ty in ["string", "int64", "float64", "bool", "timestamp", "json"] {
        assert_eq!(ty.parse::<FieldType>().unwrap().to_string(), ty);
    }
    let err = "integer".parse::<FieldType>().unwrap_err().to_string();
    assert!(
        err.contains("string, int64, float64, bool, timestamp, json"),
        "{err}"
    );
}

#[test]
fn bad_options_are_rejected() {
    let new = |o| JsonlParser::new(o, ParseOptions::default()).map(drop);
    assert!(matches!(
        new(options(&[("a..b", FieldType::Utf8)])),
        Err(JsonlError::InvalidPath(_))
    ));
    assert!(matches!(
        new(options(&[
            ("a.b", FieldType::Utf8),
            ("a_b", FieldType::Utf8)
        ])),
        Err(JsonlError::DuplicateColumn { .. })
    ));
    assert!(matches!(
        new(options(&[("a", FieldType::Json), ("a.b", FieldType::Utf8)])),
        Err(JsonlError::Overlap { .. })
    ));
    assert!(matches!(
        new(options(&[("line", FieldType::Int64)])),
        Err(JsonlError::ReservedColumn { .. })
    ));
    assert!(matches!(
        new(options(&[("ts", FieldType::Utf8)])),
        Err(JsonlError::TimestampDeclared(_))
    ));
    assert!(matches!(
        new(JsonlOptions {
            timestamp_format: TimestampFormat::Strftime("%Q".into()),
            ..options(&[])
        }),
        Err(JsonlError::InvalidStrftime(_))
    ));
}

/// `cargo test --release -p darkroom-logs jsonl_throughput -- --ignored --nocapture`
#[test]
#[ignore = "throughput measurement; run in release"]
fn jsonl_throughput() {
    let mut p = parser(options(&[
        ("event", FieldType::Utf8),
        ("user_id", FieldType::Int64),
        ("context.device.os", FieldType::Utf8),
        ("duration_ms", FieldType::Float64),
    ]));
    let lines: Vec<String> = (0..200_000)
        .map(|i| {
            format!(
                r#"{{"ts":"2024-01-02T03:{:02}:{:02}.{:03}Z","event":"app_open","user_id":{i},"session":"s-{i:x}-9f2c","context":{{"device":{{"os":"ios","model":"iPhone15,2","id":"d{i}"}},"app":{{"version":"4.2.{}","build":812}}}},"duration_ms":{}.5,"tags":["a","b"]}}"#,
                i / 60 % 60,
                i % 60,
                i % 1000,
                i % 7,
                i % 900
            )
        })
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let start = std::time::Instant::now();
    for (i, line) in lines.iter().enumerate() {
        p.push_line(line.as_bytes(), i as u64).unwrap();
        if p.len() == 65_536 {
            p.finish_batch().unwrap();
        }
    }
    p.finish_batch().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.1} MB/s, {:.0} lines/s",
        bytes as f64 / secs / 1e6,
        lines.len() as f64 / secs
    );
}
