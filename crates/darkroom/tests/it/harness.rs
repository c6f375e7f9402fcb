//! A temporary project and a way to run the binary in it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_darkroom");

/// The demo's custom nginx format: combined, then visitor cookie, user id and request time.
pub const DEMO_FORMAT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" vid=$cookie_vid uid=$user_id rt=$request_time"#;

pub struct TestProject {
    root: PathBuf,
    /// Removed when the project is dropped (none for a project opened where it is).
    _temp: Option<tempfile::TempDir>,
    pub env: Vec<(String, String)>,
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code,
            Some(0),
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl TestProject {
    /// A project whose darkroom.toml is `toml`.
    pub fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("darkroom.toml"), toml).expect("write toml");
        Self {
            root: dir.path().to_path_buf(),
            _temp: Some(dir),
            env: Vec::new(),
        }
    }

    /// The project already in `root` (not removed afterwards).
    pub fn open(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            _temp: None,
            env: Vec::new(),
        }
    }

    /// A project with one nginx source `web` reading `logs/{host}/access-{date}.log*`.
    pub fn nginx(format: &str, extra: &str) -> Self {
        Self::new(&format!(
            r#"
[project]
name = "test"
timezone = "America/Toronto"

[[sources]]
name = "web"
kind = "nginx"
path = "logs/{{host}}/access-{{date}}.log*"
format = '{format}'
{extra}
"#
        ))
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write");
        p
    }

    pub fn write_gz(&self, rel: &str, bytes: &[u8]) -> PathBuf {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).expect("gz");
        self.write(rel, &enc.finish().expect("gz"))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("-C").arg(self.path()).args(args);
        cmd.env_remove("DARKROOM_FAILPOINT")
            .env_remove("DARKROOM_PROJECT");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.command(args).output().expect("run darkroom"))
    }

    /// Rows of a query as JSON objects.
    pub fn query(&self, sql: &str) -> Vec<Value> {
        let run = self.run(&["query", sql, "--format", "json"]).ok();
        match run.json() {
            Value::Array(rows) => rows,
            other => panic!("expected an array, got {other}"),
        }
    }

    /// A single number from a query.
    pub fn count(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        let row = rows.first().unwrap_or_else(|| panic!("no rows from {sql}"));
        let v = row
            .as_object()
            .and_then(|o| o.values().next())
            .cloned()
            .unwrap_or(Value::Null);
        v.as_i64()
            .unwrap_or_else(|| panic!("not a number: {v} from {sql}"))
    }
}

/// A realistic combined-format line (with the demo's extra fields when `demo`).
pub fn nginx_line(i: usize, date: &str, demo: bool) -> String {
    let day = &date[8..10];
    let month = match &date[5..7] {
        "01" => "Jan",
        "02" => "Feb",
        "03" => "Mar",
        "04" => "Apr",
        "05" => "May",
        "06" => "Jun",
        "07" => "Jul",
        "08" => "Aug",
        "09" => "Sep",
        "10" => "Oct",
        "11" => "Nov",
        _ => "Dec",
    };
    let year = &date[0..4];
    let (h, m, s) = ((i / 3600) % 24, (i / 60) % 60, i % 60);
    let base = format!(
        r#"10.0.{}.{} - - [{day}/{month}/{year}:{h:02}:{m:02}:{s:02} -0500] "GET /photos/{i}?ref=home HTTP/1.1" 200 {} "https://www.google.com/" "Mozilla/5.0 (X11; Linux x86_64) Firefox/126.0""#,
        i % 250,
        i % 200,
        1000 + i
    );
    if demo {
        format!(
            "{base} vid=v{i:05} uid={} rt=0.0{}",
            if i.is_multiple_of(3) {
                "-".to_string()
            } else {
                (i % 97).to_string()
            },
            i % 10
        )
    } else {
        base
    }
}

pub fn lines(n: usize, date: &str, demo: bool) -> String {
    (0..n).map(|i| nginx_line(i, date, demo) + "\n").collect()
}

/// A webhook receiver: every POST body, parsed.
pub struct Hook {
    pub url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                if let Ok(v) = serde_json::from_slice(&body) {
                    sink.lock().unwrap().push(v);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Self { url, bodies }
    }

    pub fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.bodies.lock().unwrap())
    }
}
