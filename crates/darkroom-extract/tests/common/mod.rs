//! Real database servers for the tests: a PostgreSQL and a MariaDB started from the installed
//! Debian packages on loopback, on free ports, in temporary folders — one of each per test
//! binary, shared by its tests (each test makes its own database). A watchdog stops a server
//! and removes its folder when the test process exits.
//!
//! Install them with `scripts/test-services install` (CI does).

#![allow(dead_code)]
// the servers and their watchdogs outlive the test process's handles on purpose
#![allow(clippy::zombie_processes)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Whether this process runs as root (then Postgres must run as its own user).
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stop the server (by the pid in `pid_file`) and remove `dir` once this process is gone.
fn watchdog(pid_file: &Path, dir: &Path) {
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.5; done; \
         p=$(head -n1 '{pid}' 2>/dev/null); [ -n \"$p\" ] && kill -TERM $p; \
         for i in 1 2 3 4 5 6 7 8 9 10; do [ -n \"$p\" ] && kill -0 $p 2>/dev/null || break; sleep 0.5; done; \
         [ -n \"$p\" ] && kill -KILL $p 2>/dev/null; rm -rf '{dir}'",
        me = std::process::id(),
        pid = pid_file.display(),
        dir = dir.display()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the server watchdog");
}

fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.join("initdb").is_file());
    versions.sort();
    versions.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb): run scripts/test-services install")
    })
}

/// A running server: its port and the admin URL.
#[derive(Debug)]
pub struct Server {
    pub port: u16,
    /// e.g. `postgres://darkroom@127.0.0.1:5555` (no database)
    pub base_url: String,
    pub dir: PathBuf,
}

/// The PostgreSQL server of this test binary, started on first use.
pub fn postgres() -> &'static Server {
    static PG: OnceLock<Server> = OnceLock::new();
    PG.get_or_init(start_postgres)
}

fn start_postgres() -> Server {
    let bin = postgres_bin();
    let dir = tempfile::Builder::new()
        .prefix("darkroom-pg-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let data = dir.join("data");
    let root = is_root();
    if root {
        run(
            Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(&dir),
            "chown",
        );
    }
    let as_pg = |program: PathBuf| {
        if root {
            let mut c = Command::new("runuser");
            c.arg("-u").arg("postgres").arg("--").arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    run(
        as_pg(bin.join("initdb")).arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "darkroom",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]),
        "initdb",
    );
    let port = free_port();
    let log = dir.join("server.log");
    let mut cmd = as_pg(bin.join("postgres"));
    cmd.arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=100",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    cmd.spawn().expect("cannot start postgres");
    watchdog(&data.join("postmaster.pid"), &dir);
    wait_for_port(port, &log);
    Server {
        port,
        base_url: format!("postgres://darkroom@127.0.0.1:{port}"),
        dir,
    }
}

/// The MariaDB server of this test binary, started on first use.
pub fn mariadb() -> &'static Server {
    static MY: OnceLock<Server> = OnceLock::new();
    MY.get_or_init(start_mariadb)
}

fn start_mariadb() -> Server {
    let dir = tempfile::Builder::new()
        .prefix("darkroom-my-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let data = dir.join("data");
    let user = if is_root() {
        "root".to_string()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "root".into())
    };
    let install = ["mariadb-install-db", "mysql_install_db"]
        .into_iter()
        .find(|p| {
            Command::new("which")
                .arg(p)
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| {
            panic!(
                "MariaDB is not installed (mariadb-install-db): run scripts/test-services install"
            )
        });
    run(
        Command::new(install)
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={user}"))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]),
        "mariadb-install-db",
    );
    let port = free_port();
    let pid = dir.join("mariadb.pid");
    let log = dir.join("server.log");
    let server = ["mariadbd", "mysqld"]
        .into_iter()
        .find(|p| {
            Path::new("/usr/sbin").join(p).is_file()
                || Command::new("which")
                    .arg(p)
                    .output()
                    .is_ok_and(|o| o.status.success())
        })
        .map(|p| {
            let sbin = Path::new("/usr/sbin").join(p);
            if sbin.is_file() {
                sbin
            } else {
                PathBuf::from(p)
            }
        })
        .expect("mariadbd not found");
    Command::new(server)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--user={user}"))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", dir.join("mysql.sock").display()))
        .arg(format!("--pid-file={}", pid.display()))
        .arg(format!("--log-error={}", log.display()))
        .args([
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-buffer-pool-size=64M",
            "--skip-log-bin",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start mariadbd");
    watchdog(&pid, &dir);
    wait_for_port(port, &log);
    Server {
        port,
        base_url: format!("mysql://root@127.0.0.1:{port}"),
        dir,
    }
}

fn wait_for_port(port: u16, log: &Path) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "the server did not listen on port {port} within 60 s; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A fresh database name for one test.
pub fn db_name(test: &str) -> String {
    format!("t_{test}")
}

/// A warehouse in a temporary folder, and the project settings around a source.
pub struct Bench {
    pub dir: tempfile::TempDir,
    pub warehouse: darkroom_storage::Warehouse,
}

impl Bench {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let warehouse = darkroom_storage::Warehouse::open(
            darkroom_storage::StorageSettings::local(dir.path().join("warehouse")),
        )
        .expect("warehouse");
        Self { dir, warehouse }
    }

    /// A database source parsed from `[[sources]]` TOML (the `[project]` header is added).
    pub fn source(&self, toml: &str) -> darkroom_config::DatabaseSourceConfig {
        let text = format!("[project]\nname = \"t\"\n\n{toml}");
        let project = darkroom_config::Project::from_str_with_env(self.dir.path(), &text, &|v| {
            (v == "PII_SALT").then(|| "pepper-for-tests".to_string())
        })
        .unwrap_or_else(|e| panic!("bad test config: {e}"));
        project
            .databases
            .into_iter()
            .next()
            .expect("one database source")
    }

    pub async fn extract(
        &self,
        source: &darkroom_config::DatabaseSourceConfig,
    ) -> darkroom_extract::SourceReport {
        self.try_extract(source).await.expect("extract")
    }

    pub async fn try_extract(
        &self,
        source: &darkroom_config::DatabaseSourceConfig,
    ) -> Result<darkroom_extract::SourceReport, darkroom_extract::ExtractError> {
        let options = darkroom_extract::ExtractOptions {
            date: chrono::NaiveDate::from_ymd_opt(2026, 11, 26),
            project_root: self.dir.path().to_path_buf(),
            ..Default::default()
        };
        darkroom_extract::extract_source(&self.warehouse, chrono_tz::UTC, source, &options).await
    }

    /// Rows of a query, each value as text (NULL as `NULL`).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        use arrow::util::display::array_value_to_string;
        let result = self
            .warehouse
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let mut out = Vec::new();
        for batch in &result.batches {
            for r in 0..batch.num_rows() {
                out.push(
                    batch
                        .columns()
                        .iter()
                        .map(|c| {
                            if c.is_null(r) {
                                "NULL".to_string()
                            } else {
                                array_value_to_string(c, r).unwrap_or_default()
                            }
                        })
                        .collect(),
                );
            }
        }
        out
    }

    pub async fn version(&self, table: &str) -> Option<u64> {
        self.warehouse
            .table_info(table)
            .await
            .expect("table info")
            .map(|t| t.version)
    }
}

/// The one table report of a single-table source.
pub fn only(report: &darkroom_extract::SourceReport) -> &darkroom_extract::TableReport {
    assert_eq!(report.tables.len(), 1, "{report:#?}");
    &report.tables[0]
}

pub fn loaded(report: &darkroom_extract::SourceReport) {
    for t in &report.tables {
        assert!(
            t.status == darkroom_extract::TableStatus::Loaded,
            "{} failed: {:?}",
            t.table,
            t.error
        );
    }
}

use arrow::array::Array as _;
