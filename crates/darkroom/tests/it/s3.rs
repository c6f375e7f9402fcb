//! The warehouse and the log files on S3, against a local moto server started here.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{TestProject, lines};

/// A moto S3 server on a free port, stopped on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start `python3 -m moto.server` ({e}): install it with \
                     `pip install 'moto[server]'` or run the whole suite with scripts/test"
                )
            });
        let moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto.server did not start: is `moto[server]` installed? (scripts/test-services)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A plain HTTP request (moto does not check signatures).
    fn request(&self, method: &str, path: &str, body: &[u8]) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(
            out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200"),
            "{method} {path}: {out}"
        );
        out
    }
}

#[test]
fn warehouse_and_logs_on_s3() {
    let moto = Moto::start();
    moto.request("PUT", "/lake", b"");
    let d = "2026-03-01";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(lines(250, d, false).as_bytes()).unwrap();
    moto.request(
        "PUT",
        &format!("/lake/logs/web-1/access-{d}.log.gz"),
        &gz.finish().unwrap(),
    );
    moto.request(
        "PUT",
        &format!("/lake/logs/web-2/access-{d}.log"),
        lines(50, d, false).as_bytes(),
    );

    let mut p = TestProject::new(
        r#"
[project]
name = "s3test"

[warehouse]
location = "s3://lake/warehouse"
[warehouse.s3]
endpoint = "${TEST_S3_ENDPOINT}"
region = "us-east-1"
access_key_id = "testing"
secret_access_key = "${TEST_S3_SECRET}"
allow_http = true

[[sources]]
name = "web"
kind = "nginx"
path = "s3://lake/logs/{host}/access-{date}.log*"
format = "combined"
"#,
    );
    p.env.push(("TEST_S3_ENDPOINT".into(), moto.endpoint()));
    p.env.push(("TEST_S3_SECRET".into(), "testing".into()));

    let run = p.run(&["ingest", "web", "--date", d, "--json"]).ok();
    let report = &run.json()["reports"][0];
    assert_eq!(report["totals"]["rows"], 300, "{report}");
    assert_eq!(
        report["files"][0]["path"],
        "s3://lake/logs/web-1/access-2026-03-01.log.gz"
    );
    assert_eq!(p.count("SELECT count(*) FROM raw_web"), 300);

    // Re-ingest replaces the partition: same rows.
    p.run(&["ingest", "web", "--date", d]).ok();
    assert_eq!(p.count("SELECT count(*) FROM raw_web"), 300);
    let tables = p.run(&["tables", "--json"]).ok().json();
    let names: Vec<&str> = tables
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["_ingest_ledger", "_quarantine_web", "raw_web"]);
    // Nothing was written locally.
    assert!(!p.path().join("warehouse").exists());
    // The Delta log is on S3.
    let listing = moto.request(
        "GET",
        "/lake?list-type=2&prefix=warehouse/raw_web/_delta_log/",
        b"",
    );
    assert!(listing.contains("00000000000000000001.json"), "{listing}");
}
