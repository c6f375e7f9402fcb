//! Loading and validating project files.

use std::path::Path;

use darkroom_config::{ClientIp, Project, STARTER_TOML, SourceKind};

fn env(name: &str) -> Option<String> {
    match name {
        "IP_SALT" => Some("pepper-pepper".into()),
        "S3_SECRET" => Some("s3cr3t".into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Project, String> {
    Project::from_str_with_env(Path::new("/p"), text, &env).map_err(|d| d.to_string())
}

#[test]
fn starter_project_is_valid() {
    let p = load(STARTER_TOML).expect("starter must validate");
    assert_eq!(p.sources.len(), 1);
    assert_eq!(p.sources[0].raw_table(), "raw_web");
}

#[test]
fn init_writes_a_loadable_project() {
    let dir = tempfile::tempdir().unwrap();
    darkroom_config::write_starter(dir.path()).unwrap();
    let p = Project::load_with_env(dir.path(), &env).unwrap();
    assert_eq!(p.project.name, "my_company");
    assert!(
        darkroom_config::write_starter(dir.path()).is_err(),
        "never overwrites"
    );
}

#[test]
fn every_problem_is_reported_at_once_with_lines() {
    let text = r#"
[project]
name = "x"
timezone = "Mars/Olympus"

[[sources]]
name = "web"
kind = "nginx"
path = "logs/{host}.log"
colour = "blue"

[[sources]]
name = "Bad-Name"
kind = "nginx"
path = "logs/{host}/{date}.log"
client_ip = "hash"

[[sources]]
name = "app"
kind = "carrier_pigeon"
path = "x/{date}"

[[sources]]
name = "events"
kind = "jsonl"
path = "logs/{date}/{hots}.jsonl"
timestamp_field = "ts"
date_format = "%Q"
fields = { user = "uuid" }
secret = "${NOT_SET_ANYWHERE}"

[alertz]
"#;
    let err = load(text).unwrap_err();
    let lines: Vec<&str> = err.lines().collect();
    // unknown key, line 10
    assert!(
        err.contains("darkroom.toml:10:1: unknown field `colour`"),
        "{err}"
    );
    // interpolation error names the variable
    assert!(err.contains("NOT_SET_ANYWHERE"), "{err}");
    // unknown section
    // ([alerts] is a section now: a misspelling is not)
    assert!(err.contains("unknown section `alertz`"), "{err}");
    // unknown kind names the choices
    assert!(err.contains("carrier_pigeon"), "{err}");
    assert!(err.contains(":20:"), "kind error on line 20: {err}");
    assert!(err.contains("time zone `Mars/Olympus`"), "{err}");
    assert!(err.contains("needs `client_ip_salt"), "{err}");
    assert!(err.contains("`{hots}`"), "{err}");
    assert!(err.contains("`%Q`"), "{err}");
    assert!(err.contains("unknown type `uuid`"), "{err}");
    assert!(lines.len() >= 9, "expected every problem, got:\n{err}");
}

#[test]
fn semantic_errors_have_lines() {
    let text = "[project]\nname = \"x\"\n\n[[sources]]\nname = \"Web\"\nkind = \"nginx\"\npath = \"logs/x.log\"\n\n[[sources]]\nname = \"a\"\nkind = \"nginx\"\npath = \"{date}\"\n[[sources]]\nname = \"a\"\nkind = \"nginx\"\npath = \"{date}\"\n";
    let err = load(text).unwrap_err();
    assert!(
        err.contains("darkroom.toml:5:8: source name `Web`"),
        "{err}"
    );
    assert!(
        err.contains("darkroom.toml:7:8: path `logs/x.log` has no `{date}`"),
        "{err}"
    );
    assert!(
        err.contains("darkroom.toml:14:8: duplicate source name `a` (first defined on line 10)"),
        "{err}"
    );
}

#[test]
fn syntax_errors_have_lines() {
    let err = load("[project]\nname = \"x\nfoo = 1\n").unwrap_err();
    assert!(err.contains("darkroom.toml:2:"), "{err}");
}

#[test]
fn secrets_come_from_the_environment() {
    let text = r#"
[project]
name = "x"
timezone = "America/Toronto"

[warehouse]
location = "s3://bucket/wh"
[warehouse.s3]
secret_access_key = "${S3_SECRET}"

[[sources]]
name = "web"
kind = "nginx"
path = "logs/{host}/{date}.log.gz"
client_ip = "hash"
client_ip_salt = "${IP_SALT}"
"#;
    let p = load(text).unwrap();
    assert_eq!(p.timezone(), chrono_tz::America::Toronto);
    assert_eq!(
        p.warehouse
            .s3
            .as_ref()
            .unwrap()
            .secret_access_key
            .as_deref(),
        Some("s3cr3t")
    );
    match &p.sources[0].kind {
        SourceKind::Nginx(n) => assert_eq!(
            n.client_ip,
            ClientIp::Hash {
                salt: "pepper-pepper".into()
            }
        ),
        SourceKind::Jsonl(_) => panic!("wrong kind"),
    }
}

#[test]
fn missing_project_section() {
    let err = load("[warehouse]\nlocation = \"w\"\n").unwrap_err();
    assert!(err.contains("missing [project] section"), "{err}");
}

#[test]
fn database_sources_parse_with_modes_and_secrets_from_the_environment() {
    let text = r#"
[project]
name = "x"

[[sources]]
name = "app_db"
kind = "postgres"
url = "postgres://app:${IP_SALT}@db:5432/prod"
hash_salt = "${IP_SALT}"
timestamp_timezone = "America/Toronto"

[[sources.tables]]
name = "public.users"
mode = "incremental"
cursor = "updated_at"
lookback = "6h"
hash = ["email"]
exclude = ["password_hash"]

[[sources.tables]]
name = "plans"
history = "snapshot"
where = "deleted_at IS NULL"
"#;
    let p = load(text).unwrap();
    let db = p.database("app_db").unwrap();
    assert_eq!(db.kind, darkroom_config::DatabaseKind::Postgres);
    assert!(
        db.url.contains("pepper-pepper"),
        "interpolated from the environment"
    );
    assert_eq!(db.raw_table(&db.tables[0]), "raw_app_db_users");
    assert_eq!(
        db.tables[0].mode,
        darkroom_config::TableMode::Incremental {
            cursor: "updated_at".into(),
            lookback: Some(darkroom_config::Lookback::Seconds(21_600)),
        }
    );
    assert_eq!(
        db.tables[1].mode,
        darkroom_config::TableMode::Full {
            history: darkroom_config::FullHistory::Snapshot
        }
    );
    assert_eq!(db.tables[1].filter.as_deref(), Some("deleted_at IS NULL"));
}

#[test]
fn database_source_mistakes_are_all_reported_with_lines() {
    let text = r#"
[project]
name = "x"

[[sources]]
name = "web"
kind = "mysql"
url = "postgres://oops:secretpw@db/prod"
batch_rows = 5

[[sources.tables]]
name = "orders"
mode = "incremental"

[[sources.tables]]
name = "users"
hash = ["email"]
lookback = "1d"

[[sources.tables]]
name = "users"
mode = "sometimes"

[[sources]]
name = "web"
kind = "sqlite"
url = "db.sqlite"
tables = []
"#;
    let err = load(text).unwrap_err();
    for needle in [
        "darkroom.toml:8:",
        "`url` of a mysql source must look like mysql://",
        "darkroom.toml:9:",
        "`batch_rows` = 5 is out of range",
        "incremental table `orders` needs `cursor",
        "no `hash_salt`",
        "`lookback` is only used with `mode = \"incremental\"`",
        "unknown mode `sometimes`",
        "duplicate source name `web`",
        "lists no tables",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("secretpw"), "never echo a URL: {err}");
}

#[test]
fn fingerprints_of_configuration_ignore_where_it_was_written() {
    let base = STARTER_TOML.to_string();
    let moved = format!("# a comment that moves every line down\n\n{base}");
    let a = load(&base).expect("starter");
    let b = load(&moved).expect("moved starter");
    let text = |p: &Project| darkroom_config::fingerprint_text(&p.sources[0].kind);
    assert_eq!(text(&a), text(&b));
    assert!(!text(&a).contains("span: "), "{}", text(&a));
}

#[test]
fn fingerprint_text_drops_byte_spans_and_keeps_values() {
    #[derive(Debug)]
    #[allow(dead_code)]
    struct Located {
        span: std::ops::Range<usize>,
        value: String,
        inner: Vec<Located>,
    }
    let at = |span: std::ops::Range<usize>| Located {
        span,
        value: "span: 3".into(),
        inner: vec![],
    };
    let one = Located {
        inner: vec![at(40..52)],
        ..at(3..9)
    };
    let two = Located {
        inner: vec![at(140..152)],
        ..at(103..109)
    };
    assert_ne!(format!("{one:?}"), format!("{two:?}"));
    let text = darkroom_config::fingerprint_text(&one);
    assert_eq!(text, darkroom_config::fingerprint_text(&two));
    assert_eq!(
        text,
        r#"Located { value: "span: 3", inner: [Located { value: "span: 3", inner: [] }] }"#
    );
}
