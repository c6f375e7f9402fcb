//! Real database servers for the tests: a PostgreSQL and a MariaDB started from the installed
//! Debian packages on loopback, on free ports, in temporary folders — one of each per test
//! binary, shared by its tests (each test makes its own database). A watchdog stops a server
//! and removes its folder when the test process exits.
//!
//! Install them with `scripts/test-services install` (CI does). Shared with the binary's tests
//! (`#[path]`), so it needs nothing but std and tempfile.

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

/// A PostgreSQL server of the caller's own, for a test that stops it.
pub fn own_postgres() -> Server {
    start_postgres()
}

impl Server {
    /// Stop a PostgreSQL server at once, as a crash or `pg_ctl stop -m immediate` would
    /// (SIGQUIT to the postmaster: every connection is cut).
    pub fn stop_postgres_now(&self) {
        let pid_file = self.dir.join("data").join("postmaster.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string))
            .unwrap_or_else(|| panic!("no pid in {}", pid_file.display()));
        run(
            Command::new("kill").args(["-QUIT", &pid]),
            "kill -QUIT postgres",
        );
    }
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

/// A fresh, empty database on this binary's PostgreSQL (made with psql): its URL.
pub fn postgres_database(name: &str) -> String {
    let server = postgres();
    run(
        Command::new(postgres_bin().join("psql"))
            .args([
                "-X",
                "-q",
                "-h",
                "127.0.0.1",
                "-U",
                "darkroom",
                "-d",
                "postgres",
            ])
            .arg("-p")
            .arg(server.port.to_string())
            .arg("-c")
            .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .arg("-c")
            .arg(format!("CREATE DATABASE {name}")),
        "psql",
    );
    format!("{}/{name}", server.base_url)
}

/// A fresh, empty database on this binary's MariaDB (made with the mariadb client): its URL.
pub fn mariadb_database(name: &str) -> String {
    let server = mariadb();
    run(
        Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root"])
            .arg(format!("-P{}", server.port))
            .arg("-e")
            .arg(format!(
                "DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} CHARACTER SET utf8mb4"
            )),
        "mariadb client",
    );
    format!("{}/{name}", server.base_url)
}

/// Run SQL in a database of this binary's PostgreSQL (with psql).
pub fn postgres_sql(database: &str, sql: &str) {
    let server = postgres();
    run(
        Command::new(postgres_bin().join("psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "darkroom",
            ])
            .arg("-p")
            .arg(server.port.to_string())
            .arg("-d")
            .arg(database)
            .arg("-c")
            .arg(sql),
        "psql",
    );
}
