//! `darkroom demo --db URL`: the demo's production database, loaded into a running Postgres
//! or MySQL/MariaDB server from the SQLite file the generator wrote, table by table, value by
//! value (the same rows, so the same truth).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use futures::SinkExt;
use mysql_async::prelude::Queryable;
use rusqlite::types::ValueRef;

/// The demo's tables, parents before children.
const TABLES: &[&str] = &[
    "users",
    "photos",
    "marketplace_submissions",
    "purchases",
    "sales",
    "subscriptions",
    "plan_changes",
    "likes",
    "comments",
    "follows",
];

/// Which server a `--db` URL names.
pub fn kind(url: &str) -> Result<darkroom_demo::DemoDatabase> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(darkroom_demo::DemoDatabase::Postgres)
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        Ok(darkroom_demo::DemoDatabase::Mysql)
    } else {
        bail!(
            "--db {}: expected postgres://user:password@host:5432/dbname or \
             mysql://user:password@host:3306/dbname",
            darkroom_extract::redact(url)
        )
    }
}

/// The demo replaces its own tables in the `--db` database, and refuses one that holds others.
fn refuse_others(others: &[String]) -> Result<()> {
    if others.is_empty() {
        Ok(())
    } else {
        bail!(
            "the database already holds other tables ({}): give --db an empty database made \
             for the demo",
            others.join(", ")
        )
    }
}

/// A column of a demo table: its name and its server type.
struct Column {
    name: String,
    declared: String,
}

fn columns(db: &rusqlite::Connection, table: &str) -> Result<Vec<Column>> {
    let mut stmt = db.prepare(&format!("PRAGMA table_info({table})"))?;
    let columns = stmt
        .query_map([], |r| {
            Ok(Column {
                name: r.get(1)?,
                declared: r.get::<_, String>(2)?.to_ascii_uppercase(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(columns)
}

fn server_type(declared: &str, postgres: bool) -> String {
    if declared.contains("INT") {
        "BIGINT".into()
    } else if declared.starts_with("DECIMAL") {
        declared.replace(' ', "")
    } else if declared.contains("DATETIME") {
        // UTC, as the generator writes it
        if postgres {
            "TIMESTAMPTZ(3)".into()
        } else {
            "DATETIME(3)".into()
        }
    } else {
        "TEXT".into()
    }
}

fn ddl(table: &str, columns: &[Column], postgres: bool) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| {
            let key = if c.name == "id" { " PRIMARY KEY" } else { "" };
            format!("{} {}{key}", c.name, server_type(&c.declared, postgres))
        })
        .collect();
    format!("CREATE TABLE {table} ({})", cols.join(", "))
}

/// Each row's values as text (None for NULL): integers and money as SQLite holds them, text
/// as written.
fn rows(
    db: &rusqlite::Connection,
    table: &str,
    columns: &[Column],
) -> Result<Vec<Vec<Option<String>>>> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut stmt = db.prepare(&format!(
        "SELECT {} FROM {table} ORDER BY id",
        names.join(", ")
    ))?;
    let n = names.len();
    let out = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => None,
                        ValueRef::Integer(v) => Some(v.to_string()),
                        ValueRef::Real(v) => Some(format!("{v}")),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                })
                .collect::<Result<Vec<_>, rusqlite::Error>>()
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(out)
}

/// Load every demo table from `sqlite` into the server at `url`, replacing earlier ones.
/// Returns the rows loaded.
pub async fn load(sqlite: &Path, url: &str) -> Result<u64> {
    let db =
        rusqlite::Connection::open_with_flags(sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", sqlite.display()))?;
    let target = darkroom_extract::redact(url);
    match kind(url)? {
        darkroom_demo::DemoDatabase::Postgres => load_postgres(&db, url)
            .await
            .with_context(|| format!("loading the demo database into {target}")),
        darkroom_demo::DemoDatabase::Mysql => load_mysql(&db, url)
            .await
            .with_context(|| format!("loading the demo database into {target}")),
        darkroom_demo::DemoDatabase::Sqlite => Ok(0),
    }
}

async fn load_postgres(db: &rusqlite::Connection, url: &str) -> Result<u64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| anyhow!("cannot connect: {e}"))?;
    let connection = tokio::spawn(connection);
    // the generator's timestamps are UTC
    client.batch_execute("SET TIME ZONE 'UTC'").await?;
    // only a database that holds the demo's tables or nothing: never drop someone's data
    let others: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
              WHERE table_schema = current_schema()",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|t| !TABLES.contains(&t.as_str()))
        .collect();
    refuse_others(&others)?;
    let mut total = 0;
    for table in TABLES.iter().rev() {
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await?;
    }
    for table in TABLES {
        let columns = columns(db, table)?;
        client.batch_execute(&ddl(table, &columns, true)).await?;
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let sink = client
            .copy_in(&format!(
                "COPY {table} ({}) FROM STDIN (FORMAT csv)",
                names.join(", ")
            ))
            .await?;
        futures::pin_mut!(sink);
        let mut buf = String::new();
        let rows = rows(db, table, &columns)?;
        for row in &rows {
            let fields: Vec<String> = row
                .iter()
                .map(|v| match v {
                    None => String::new(),
                    Some(s) => format!("\"{}\"", s.replace('"', "\"\"")),
                })
                .collect();
            buf.push_str(&fields.join(","));
            buf.push('\n');
            if buf.len() > 1 << 20 {
                sink.send(bytes::Bytes::from(std::mem::take(&mut buf)))
                    .await?;
            }
        }
        if !buf.is_empty() {
            sink.send(bytes::Bytes::from(buf)).await?;
        }
        sink.finish().await?;
        total += rows.len() as u64;
    }
    drop(client);
    let _ = connection.await;
    Ok(total)
}

async fn load_mysql(db: &rusqlite::Connection, url: &str) -> Result<u64> {
    let url = url
        .strip_prefix("mariadb://")
        .map_or_else(|| url.to_string(), |rest| format!("mysql://{rest}"));
    let mut conn = mysql_async::Conn::from_url(url)
        .await
        .map_err(|e| anyhow!("cannot connect: {e}"))?;
    conn.query_drop("SET NAMES utf8mb4").await?;
    conn.query_drop("SET SESSION time_zone = '+00:00'").await?;
    // a backslash is an ordinary character in the literals below, whatever the server's mode
    conn.query_drop("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        .await?;
    let others: Vec<String> = conn
        .query::<String, _>(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
        )
        .await?
        .into_iter()
        .filter(|t| !TABLES.contains(&t.as_str()))
        .collect();
    refuse_others(&others)?;
    let mut total = 0;
    for table in TABLES.iter().rev() {
        conn.query_drop(format!("DROP TABLE IF EXISTS {table}"))
            .await?;
    }
    for table in TABLES {
        let columns = columns(db, table)?;
        conn.query_drop(ddl(table, &columns, false)).await?;
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let rows = rows(db, table, &columns)?;
        for chunk in rows.chunks(2_000) {
            let values: Vec<String> = chunk
                .iter()
                .map(|row| {
                    let fields: Vec<String> = row
                        .iter()
                        .map(|v| match v {
                            None => "NULL".into(),
                            Some(s) => format!("'{}'", s.replace('\'', "''")),
                        })
                        .collect();
                    format!("({})", fields.join(","))
                })
                .collect();
            conn.query_drop(format!(
                "INSERT INTO {table} ({}) VALUES {}",
                names.join(", "),
                values.join(",")
            ))
            .await?;
        }
        total += rows.len() as u64;
    }
    conn.disconnect().await?;
    Ok(total)
}
