//! Ingesting logs: counts, idempotency, quarantine, ledger, duplicates, missing and corrupt files.

use crate::harness::{DEMO_FORMAT, TestProject, lines, nginx_line};

const D: &str = "2026-03-01";

#[test]
fn ingest_counts_every_line_and_reingest_is_identical() {
    let p = TestProject::nginx(DEMO_FORMAT, r#"hosts = ["web-1", "web-2"]"#);
    p.write_gz(
        &format!("logs/web-1/access-{D}.log.gz"),
        lines(1000, D, true).as_bytes(),
    );
    p.write(
        &format!("logs/web-2/access-{D}.log"),
        lines(500, D, true).as_bytes(),
    );

    let first = p.run(&["ingest", "web", "--date", D, "--json"]).ok().json();
    let report = &first["reports"][0];
    assert_eq!(report["status"], "ok", "{first}");
    assert_eq!(report["totals"]["lines"], 1500);
    assert_eq!(report["totals"]["rows"], 1500);
    assert_eq!(report["totals"]["quarantined"], 0);

    let count = "SELECT count(*) FROM raw_web WHERE file_date = DATE '2026-03-01'";
    assert_eq!(p.count(count), 1500);
    let per_host = p.query("SELECT host, count(*) AS n FROM raw_web GROUP BY host ORDER BY host");
    assert_eq!(per_host[0]["host"], "web-1");
    assert_eq!(per_host[0]["n"], 1000);
    assert_eq!(per_host[1]["n"], 500);

    // Again: the partition is replaced, not appended to; the ledger too.
    p.run(&["ingest", "web", "--date", D]).ok();
    assert_eq!(p.count(count), 1500);
    assert_eq!(
        p.count("SELECT count(*) FROM (SELECT DISTINCT host, file, line FROM raw_web)"),
        1500
    );
    assert_eq!(
        p.count("SELECT sum(lines) FROM _ingest_ledger WHERE record = 'hour' AND source = 'web'"),
        1500
    );
    assert_eq!(
        p.count("SELECT sum(bytes) FROM _ingest_ledger WHERE record = 'hour'"),
        (lines(1000, D, true).len() + lines(500, D, true).len()) as i64
    );
    // Columns are typed, and lineage is there.
    let row = &p.query("SELECT status, body_bytes_sent, request_time, cookie_vid, user_id, event_date, line, file FROM raw_web WHERE host = 'web-1' AND line = 2")[0];
    assert_eq!(row["status"], 200);
    assert_eq!(row["body_bytes_sent"], 1001);
    assert_eq!(row["request_time"], 0.01);
    assert_eq!(row["cookie_vid"], "v00001");
    assert_eq!(row["user_id"], "1");
    assert_eq!(row["event_date"], "2026-03-01");
    assert_eq!(row["file"], "logs/web-1/access-2026-03-01.log.gz");
    // The completion of the partition is recorded in the commit that wrote it.
    let history = std::fs::read_dir(p.path().join("warehouse/raw_web/_delta_log"))
        .unwrap()
        .count();
    assert!(history >= 2);
}

#[test]
fn every_bad_line_is_quarantined_byte_for_byte() {
    let p = TestProject::nginx("combined", "");
    let mut file: Vec<u8> = Vec::new();
    let good = nginx_line(1, D, false);
    file.extend_from_slice(format!("{good}\n").as_bytes());
    // quotes and escaped quotes inside the user agent and path
    file.extend_from_slice(br#"192.0.2.7 - - [01/Mar/2026:10:00:00 -0500] "GET /say?q=\"hi\" HTTP/1.1" 200 5 "-" "Agent \"quoted\" 1.0""#);
    file.push(b'\n');
    // IPv6 and '-' fields
    file.extend_from_slice(
        br#"2001:db8::1 - - [01/Mar/2026:10:00:01 -0500] "GET / HTTP/2.0" 304 - "-" "-""#,
    );
    file.push(b'\n');
    // CRLF
    file.extend_from_slice(format!("{}\r\n", nginx_line(2, D, false)).as_bytes());
    // another time zone: 12:00 +0530 is 06:30 UTC, 01:30 in Toronto
    file.extend_from_slice(
        br#"192.0.2.8 - bob [01/Mar/2026:12:00:00 +0530] "GET /in HTTP/1.1" 200 1 "-" "x""#,
    );
    file.push(b'\n');
    // a 1 MB user agent
    let big = format!(
        r#"192.0.2.9 - - [01/Mar/2026:10:00:02 -0500] "GET /big HTTP/1.1" 200 1 "-" "{}""#,
        "A".repeat(1 << 20)
    );
    file.extend_from_slice(big.as_bytes());
    file.push(b'\n');
    // --- bad ones ---
    let invalid_utf8: &[u8] =
        b"192.0.2.10 - - [01/Mar/2026:10:00:03 -0500] \"GET /\xff\xfe HTTP/1.1\" 200 1 \"-\" \"x\"";
    file.extend_from_slice(invalid_utf8);
    file.push(b'\n');
    let json_line: &[u8] = br#"{"level":"info","msg":"another program's log"}"#;
    file.extend_from_slice(json_line);
    file.push(b'\n');
    let common_line = br#"192.0.2.11 - - [01/Mar/2026:10:00:04 -0500] "GET / HTTP/1.1" 200 1"#;
    file.extend_from_slice(common_line);
    file.extend_from_slice(b"\r\n");
    let truncated: &[u8] = br#"192.0.2.12 - - [01/Mar/2026:10:00:05 -0500] "GET /cut HTTP/1.1" 200 1 "-" "Mozilla/5.0 (Wind"#;
    file.extend_from_slice(truncated); // no newline: the file was cut
    p.write(&format!("logs/web-1/access-{D}.log"), &file);

    let run = p.run(&["ingest", "web", "--date", D, "--json"]).ok();
    let report = &run.json()["reports"][0];
    assert_eq!(report["totals"]["lines"], 10, "{report}");
    assert_eq!(report["totals"]["rows"], 6, "{report}");
    assert_eq!(report["totals"]["quarantined"], 4, "{report}");

    // The quarantine holds the exact bytes (a '\r' before the newline included).
    let q = p.query("SELECT line, reason, \"column\", encode(raw, 'hex') AS hex FROM _quarantine_web ORDER BY line");
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut common_crlf = common_line.to_vec();
    common_crlf.push(b'\r');
    let expected: Vec<(i64, String)> = vec![
        (7, hex(invalid_utf8)),
        (8, hex(json_line)),
        (9, hex(&common_crlf)),
        (10, hex(truncated)),
    ];
    assert_eq!(q.len(), 4, "{q:?}");
    for (row, (line, bytes)) in q.iter().zip(expected) {
        assert_eq!(row["line"], line);
        assert_eq!(row["hex"], bytes, "line {line}");
        assert!(!row["reason"].as_str().unwrap().is_empty());
        assert!(row["column"].as_i64().unwrap() >= 1);
    }
    assert!(
        q[3]["reason"].as_str().unwrap().contains("no newline"),
        "{}",
        q[3]["reason"]
    );

    // Parsed values.
    let r = p.query("SELECT request_path, http_user_agent FROM raw_web WHERE line = 2");
    assert_eq!(r[0]["request_path"], "/say?q=\"hi\"");
    assert_eq!(r[0]["http_user_agent"], "Agent \"quoted\" 1.0");
    let r =
        p.query("SELECT remote_addr, body_bytes_sent, http_referer FROM raw_web WHERE line = 3");
    assert_eq!(r[0]["remote_addr"], "2001:db8::1");
    assert!(r[0].get("body_bytes_sent").is_none_or(|v| v.is_null()));
    let r = p.query("SELECT CAST(event_ts AS VARCHAR) AS ts, event_date, remote_user FROM raw_web WHERE line = 5");
    assert!(
        r[0]["ts"]
            .as_str()
            .unwrap()
            .starts_with("2026-03-01T06:30:00"),
        "{r:?}"
    );
    assert_eq!(r[0]["event_date"], "2026-03-01");
    assert_eq!(r[0]["remote_user"], "bob");
    assert_eq!(
        p.count("SELECT length(http_user_agent) FROM raw_web WHERE line = 6"),
        1 << 20
    );
    let r = p.query("SELECT http_user_agent FROM raw_web WHERE line = 4");
    assert!(!r[0]["http_user_agent"].as_str().unwrap().ends_with('\r'));

    // The ledger counts the quarantined lines in the hour of the line before them.
    assert_eq!(
        p.count("SELECT sum(quarantined) FROM _ingest_ledger WHERE record = 'hour'"),
        4
    );
    assert_eq!(
        p.count("SELECT sum(lines) FROM _ingest_ledger WHERE record = 'hour'"),
        10
    );
    assert_eq!(
        p.count("SELECT sum(bytes) FROM _ingest_ledger WHERE record = 'hour'"),
        file.len() as i64
    );
}

#[test]
fn missing_hosts_dates_empty_and_corrupt_files_are_reported() {
    let p = TestProject::nginx(
        "combined",
        r#"hosts = ["web-1", "web-2", "web-3", "web-4"]"#,
    );
    p.write_gz(
        &format!("logs/web-1/access-{D}.log.gz"),
        lines(100, D, false).as_bytes(),
    );
    p.write(&format!("logs/web-2/access-{D}.log"), b"");
    // a gzip stream that breaks after a good start
    let mut corrupt = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, lines(5000, D, false).as_bytes()).unwrap();
        enc.finish().unwrap()
    };
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 64] {
        *b ^= 0x5a;
    }
    p.write(&format!("logs/web-3/access-{D}.log.gz"), &corrupt);

    let run = p.run(&["ingest", "web", "--date", D]);
    assert_eq!(
        run.code,
        Some(3),
        "incomplete: {}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stdout.contains("host web-4 has no file"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("logs/web-4/access-2026-03-01.log*"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("web-3/access-2026-03-01.log.gz [error]"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("web-2/access-2026-03-01.log [empty]"),
        "{}",
        run.stdout
    );

    // The good file loaded in full; what was read of the corrupt one is kept and counted.
    assert_eq!(
        p.count("SELECT count(*) FROM raw_web WHERE host = 'web-1'"),
        100
    );
    let ledger = p.query("SELECT record, host, status, detail FROM _ingest_ledger WHERE record <> 'hour' ORDER BY host");
    let find = |host: &str| ledger.iter().find(|r| r["host"] == host).cloned().unwrap();
    assert_eq!(find("web-3")["status"], "error");
    assert_eq!(find("web-4")["status"], "missing");
    assert_eq!(find("web-4")["record"], "missing");
    assert_eq!(find("web-2")["status"], "empty");

    // A date with no file at all: reported, nothing replaced, exit 3.
    let run = p.run(&["ingest", "web", "--date", "2026-03-02"]);
    assert_eq!(run.code, Some(3));
    assert!(run.stdout.contains("no file at all"), "{}", run.stdout);
    assert_eq!(
        p.count("SELECT count(*) FROM raw_web WHERE file_date = DATE '2026-03-02'"),
        0
    );
    assert_eq!(
        p.count("SELECT count(*) FROM _ingest_ledger WHERE file_date = DATE '2026-03-02' AND status = 'missing'"),
        5
    );
}

#[test]
fn a_file_delivered_twice_is_counted_once() {
    let p = TestProject::nginx("combined", "");
    let content = lines(300, D, false);
    p.write(&format!("logs/web-1/access-{D}.log"), content.as_bytes());
    p.write(&format!("logs/web-1/access-{D}.log.1"), content.as_bytes());
    let run = p.run(&["ingest", "web", "--date", D, "--json"]).ok();
    let report = &run.json()["reports"][0];
    assert_eq!(report["totals"]["rows"], 300, "{report}");
    let statuses: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "duplicate"]);

    // The same bytes delivered again under the next day's name are recognised too.
    p.write("logs/web-1/access-2026-03-02.log", content.as_bytes());
    let run = p.run(&["ingest", "web", "--date", "2026-03-02", "--json"]);
    assert_eq!(run.code, Some(3), "nothing new for the date: incomplete");
    let report = &run.json()["reports"][0];
    assert_eq!(report["status"], "incomplete", "{report}");
    assert_eq!(report["files"][0]["status"], "duplicate", "{report}");
    assert!(
        report["files"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("2026-03-01")
    );
    assert_eq!(p.count("SELECT count(*) FROM raw_web"), 300);
}

#[test]
fn checksums_taken_while_parsing_recognise_later_duplicates_and_only_them() {
    let p = TestProject::nginx("combined", "");
    let content = lines(200, D, false);
    // Alone on its date: hashed by the reader that parses it.
    p.write(&format!("logs/web-1/access-{D}.log"), content.as_bytes());
    p.run(&["ingest", "web", "--date", D]).ok();

    // Next day: the same bytes (hashed beforehand, its size being known) are a duplicate;
    // a file of the same size with other bytes is not.
    let other = content.replacen("GET", "PUT", 1);
    assert_eq!(other.len(), content.len());
    p.write("logs/web-1/access-2026-03-02.log", content.as_bytes());
    p.write("logs/web-2/access-2026-03-02.log", other.as_bytes());
    let run = p.run(&["ingest", "web", "--date", "2026-03-02", "--json"]);
    let report = &run.json()["reports"][0];
    let status = |host: &str| {
        report["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["host"] == host)
            .map(|f| f["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status("web-1"), "duplicate", "{report}");
    assert_eq!(status("web-2"), "ok", "{report}");
    assert_eq!(p.count("SELECT count(*) FROM raw_web"), 400);
    assert_eq!(
        p.count("SELECT count(DISTINCT checksum) FROM _ingest_ledger WHERE record = 'file'"),
        2
    );
}

#[test]
fn a_host_seen_before_and_missing_today_is_reported() {
    let p = TestProject::nginx("combined", "");
    for (i, host) in ["web-1", "web-2"].iter().enumerate() {
        p.write(
            &format!("logs/{host}/access-{D}.log"),
            lines(10 + i, D, false).as_bytes(),
        );
    }
    p.write(
        "logs/web-1/access-2026-03-02.log",
        lines(10, "2026-03-02", false).as_bytes(),
    );
    p.run(&["ingest", "web", "--date", D]).ok();
    let run = p.run(&["ingest", "web", "--date", "2026-03-02"]);
    assert_eq!(run.code, Some(3), "{}", run.stdout);
    assert!(
        run.stdout.contains("host web-2 has no file"),
        "{}",
        run.stdout
    );
}

#[test]
fn jsonl_sources_flatten_and_keep_everything() {
    let p = TestProject::new(
        r#"
[project]
name = "t"
timezone = "America/Toronto"

[[sources]]
name = "app"
kind = "jsonl"
path = "logs/{host}/events-{date}.jsonl*"
timestamp_field = "ts"
timestamp_format = "unix_ms"
nested = "flatten"
fields = { event = "string", user_id = "int64", "device.os" = "string" }
"#,
    );
    let text = concat!(
        r#"{"ts":1772341200000,"event":"open","user_id":7,"device":{"os":"ios","v":"1.2"},"extra":true}"#,
        "\n",
        r#"{"ts":1772341260000,"event":"like","user_id":"8","device":{"os":"android"}}"#,
        "\n",
        r#"{"ts":"yesterday","event":"bad"}"#,
        "\n",
        r#"not json at all"#,
        "\n",
    );
    p.write_gz("logs/api-1/events-2026-03-01.jsonl.gz", text.as_bytes());
    let run = p
        .run(&["ingest", "app", "--date", "2026-03-01", "--json"])
        .ok();
    assert_eq!(run.json()["reports"][0]["totals"]["quarantined"], 2);
    let rows = p.query(
        "SELECT event, user_id, device_os, attributes, event_date FROM raw_app ORDER BY line",
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["user_id"], 7);
    assert_eq!(rows[1]["user_id"], 8);
    assert_eq!(rows[0]["device_os"], "ios");
    let attrs: serde_json::Value =
        serde_json::from_str(rows[0]["attributes"].as_str().unwrap()).unwrap();
    assert_eq!(attrs["device_v"], "1.2");
    assert_eq!(attrs["extra"], true);
    // 1772341200000 ms = 2026-03-01T05:00:00Z = midnight in Toronto
    assert_eq!(rows[0]["event_date"], "2026-03-01");
}

#[test]
fn client_ips_are_truncated_or_hashed_before_writing() {
    let p = TestProject::nginx(
        "combined",
        "client_ip = \"hash\"\nclient_ip_salt = \"${TEST_IP_SALT}\"",
    );
    let mut p = p;
    p.env.push(("TEST_IP_SALT".into(), "a-secret-salt".into()));
    p.write(
        &format!("logs/web-1/access-{D}.log"),
        lines(3, D, false).as_bytes(),
    );
    p.run(&["ingest", "web", "--date", D]).ok();
    let rows = p.query("SELECT remote_addr FROM raw_web ORDER BY line");
    let ip = rows[0]["remote_addr"].as_str().unwrap();
    assert_eq!(ip.len(), 32, "{ip}");
    assert!(!ip.contains("10.0."));
    // nothing in the warehouse holds the address
    let dir = p.path().join("warehouse/raw_web");
    for entry in walk(&dir) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(6).any(|w| w == b"10.0.1"),
            "{} holds a raw IP",
            entry.display()
        );
    }

    // without the variable, nothing runs and the variable is named
    let mut q = TestProject::nginx(
        "combined",
        "client_ip = \"hash\"\nclient_ip_salt = \"${TEST_IP_SALT}\"",
    );
    q.env.clear();
    let run = q.run(&["ingest", "web", "--date", D]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("TEST_IP_SALT"), "{}", run.stderr);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn jsonl_client_ip_field_is_truncated() {
    let p = TestProject::new(
        r#"
[project]
name = "t"

[[sources]]
name = "app"
kind = "jsonl"
path = "logs/{host}/events-{date}.jsonl"
timestamp_field = "ts"
fields = { event = "string", ip = "string" }
client_ip_field = "ip"
client_ip = "truncate"
"#,
    );
    let text = concat!(
        r#"{"ts":"2026-03-01T10:00:00Z","event":"open","ip":"198.51.100.77"}"#,
        "\n",
        r#"{"ts":"2026-03-01T10:00:01Z","event":"open","ip":"2001:db8:1:2:3::9"}"#,
        "\n",
        r#"{"ts":"2026-03-01T10:00:02Z","event":"open","ip":"not-an-ip"}"#,
        "\n",
    );
    p.write("logs/api-1/events-2026-03-01.jsonl", text.as_bytes());
    p.run(&["ingest", "app", "--date", "2026-03-01"]).ok();
    let rows = p.query("SELECT ip FROM raw_app ORDER BY line");
    assert_eq!(rows[0]["ip"], "198.51.100.0");
    assert_eq!(rows[1]["ip"], "2001:db8:1::");
    assert!(
        rows[2].get("ip").is_none_or(|v| v.is_null()),
        "never stored unmasked: {:?}",
        rows[2]
    );
}

#[test]
fn a_range_is_ingested_in_one_batch_exactly_as_one_date_at_a_time() {
    // Four dates: two hosts; then web-2 goes quiet and a bad line arrives; then web-1 sends
    // the first day's bytes again (every file a duplicate); then no file at all.
    let dates = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"];
    let first = lines(100, dates[0], false);
    let mut second = lines(120, dates[1], false);
    second.push_str("this is not an access log line\n");
    let files = [
        ("logs/web-1/access-2026-03-01.log", first.clone()),
        (
            "logs/web-2/access-2026-03-01.log",
            lines(50, dates[0], false),
        ),
        ("logs/web-1/access-2026-03-02.log", second),
        ("logs/web-1/access-2026-03-03.log", first),
    ];
    let batch = TestProject::nginx("combined", "");
    let single = TestProject::nginx("combined", "");
    for (path, content) in &files {
        batch.write(path, content.as_bytes());
        single.write(path, content.as_bytes());
    }

    let run = batch.run(&[
        "ingest", "web", "--from", dates[0], "--to", dates[3], "--json",
    ]);
    assert_eq!(run.code, Some(3), "incomplete dates: {}", run.stderr);
    let batched = run.json()["reports"].as_array().unwrap().clone();
    let mut one_by_one = Vec::new();
    for d in dates {
        let run = single.run(&["ingest", "web", "--date", d, "--json"]);
        one_by_one.push(run.json()["reports"][0].clone());
    }
    let summary = |r: &serde_json::Value| {
        let files: Vec<String> = r["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                format!(
                    "{} {} {} {}",
                    f["path"], f["status"], f["rows"], f["detail"]
                )
            })
            .collect();
        let missing: Vec<String> = r["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["host"].to_string())
            .collect();
        format!(
            "{} {} {} {:?} {:?} {}",
            r["file_date"], r["status"], r["totals"], files, missing, r["fingerprint"]
        )
    };
    assert_eq!(batched.len(), 4);
    for (b, s) in batched.iter().zip(&one_by_one) {
        assert_eq!(summary(b), summary(s));
    }
    let statuses: Vec<&str> = batched
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ok", "incomplete", "incomplete", "missing"]);
    assert_eq!(
        batched[1]["missing"][0]["host"], "web-2",
        "seen the day before"
    );
    assert_eq!(batched[2]["files"][0]["status"], "duplicate");
    // One commit per table for the dates with files to parse.
    assert_eq!(batched[0]["raw_version"], batched[1]["raw_version"]);
    assert_eq!(batched[0]["ledger_version"], batched[3]["ledger_version"]);
    assert!(batched[2]["raw_version"].is_null(), "nothing new to load");

    // The tables hold the same rows.
    let same = |sql: &str| {
        assert_eq!(batch.query(sql), single.query(sql), "{sql}");
    };
    same(
        "SELECT file_date, host, file, line, status, event_ts FROM raw_web ORDER BY file_date, host, line",
    );
    same(
        "SELECT file_date, host, file, line, reason, raw FROM _quarantine_web ORDER BY file_date, line",
    );
    same(
        "SELECT file_date, record, host, hour, file, lines, bytes, rows, quarantined, \
                first_event_ts, last_event_ts, file_size, checksum, status, \
                CASE WHEN record = 'missing' THEN NULL ELSE detail END AS detail \
         FROM _ingest_ledger \
         ORDER BY file_date, record, host, hour, file",
    );
    assert_eq!(batch.count("SELECT count(*) FROM raw_web"), 270);
    assert_eq!(batch.count("SELECT count(*) FROM _quarantine_web"), 1);

    // Each date is recorded complete on its own: re-ingesting one date changes only it.
    batch.write(
        "logs/web-1/access-2026-03-02.log",
        lines(7, dates[1], false).as_bytes(),
    );
    batch.run(&["ingest", "web", "--from", dates[1], "--to", dates[1]]);
    assert_eq!(batch.count("SELECT count(*) FROM raw_web"), 157);
    assert_eq!(batch.count("SELECT count(*) FROM _quarantine_web"), 0);
    assert_eq!(
        batch.count("SELECT sum(lines) FROM _ingest_ledger WHERE record = 'hour'"),
        157
    );
}
