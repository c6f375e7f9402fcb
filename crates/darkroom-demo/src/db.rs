//! The production database (SQLite): the app's schema with the usual production mess — soft
//! deletes, `updated_at`, nullable columns, a JSON settings column, money as DECIMAL text —
//! and the schema-drift faults applied after the load.

use std::path::Path;

use rusqlite::{Connection, params};
use serde_json::json;

use crate::DemoError;
use crate::faults::{Drift, Fault};
use crate::logs::utc;
use crate::sim::World;

const SCHEMA: &str = "
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  email TEXT NOT NULL UNIQUE,
  country TEXT NOT NULL,
  signup_platform TEXT NOT NULL CHECK (signup_platform IN ('web', 'ios', 'android')),
  acquisition_channel TEXT NOT NULL,
  bio TEXT,
  settings TEXT NOT NULL,            -- JSON
  created_at DATETIME NOT NULL,      -- UTC text, 'YYYY-MM-DD HH:MM:SS.sss'
  updated_at DATETIME NOT NULL,
  deleted_at DATETIME                -- soft delete
);
CREATE TABLE photos (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  title TEXT,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL,
  camera TEXT,
  created_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL,
  deleted_at DATETIME
);
CREATE TABLE marketplace_submissions (
  id INTEGER PRIMARY KEY,
  photo_id INTEGER NOT NULL REFERENCES photos(id),
  user_id INTEGER NOT NULL REFERENCES users(id),
  status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
  price DECIMAL(10, 2) NOT NULL,
  submitted_at DATETIME NOT NULL,
  reviewed_at DATETIME,
  updated_at DATETIME NOT NULL
);
CREATE TABLE purchases (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  total DECIMAL(10, 2) NOT NULL,
  currency TEXT NOT NULL,
  created_at DATETIME NOT NULL
);
CREATE TABLE sales (
  id INTEGER PRIMARY KEY,
  purchase_id INTEGER NOT NULL REFERENCES purchases(id),
  submission_id INTEGER NOT NULL REFERENCES marketplace_submissions(id),
  photo_id INTEGER NOT NULL REFERENCES photos(id),
  seller_id INTEGER NOT NULL REFERENCES users(id),
  buyer_id INTEGER NOT NULL REFERENCES users(id),
  licence TEXT NOT NULL CHECK (licence IN ('standard', 'extended')),
  amount DECIMAL(10, 2) NOT NULL,
  sold_at DATETIME NOT NULL
);
CREATE TABLE subscriptions (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  plan TEXT NOT NULL,                -- enum: plus, pro
  monthly_price DECIMAL(10, 2) NOT NULL,
  status TEXT NOT NULL,              -- enum: active, canceled
  started_at DATETIME NOT NULL,
  canceled_at DATETIME,
  updated_at DATETIME NOT NULL
);
CREATE TABLE plan_changes (
  id INTEGER PRIMARY KEY,
  subscription_id INTEGER NOT NULL REFERENCES subscriptions(id),
  user_id INTEGER NOT NULL REFERENCES users(id),
  from_plan TEXT NOT NULL,
  to_plan TEXT NOT NULL,
  changed_at DATETIME NOT NULL
);
CREATE TABLE likes (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  photo_id INTEGER NOT NULL REFERENCES photos(id),
  created_at DATETIME NOT NULL
);
CREATE TABLE comments (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  photo_id INTEGER NOT NULL REFERENCES photos(id),
  body TEXT NOT NULL,
  created_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL,
  deleted_at DATETIME
);
CREATE TABLE follows (
  id INTEGER PRIMARY KEY,
  follower_id INTEGER NOT NULL REFERENCES users(id),
  followee_id INTEGER NOT NULL REFERENCES users(id),
  created_at DATETIME NOT NULL,
  deleted_at DATETIME
);
";

fn ts(ms: i64) -> String {
    utc(ms).format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

fn opt_ts(ms: Option<i64>) -> Option<String> {
    ms.map(ts)
}

/// Money as exact decimal text: 1250 -> "12.50".
fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn sql_error(e: rusqlite::Error) -> DemoError {
    DemoError::Invalid(format!("writing the demo database: {e}"))
}

/// Writes the database to `path` (replacing it) and applies the schema-drift faults; returns
/// a description of each change made after the load.
pub(crate) fn write(
    path: &Path,
    world: &World,
    faults: &[Fault],
) -> Result<Vec<serde_json::Value>, DemoError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| DemoError::io(&format!("creating {}", parent.display()), e))?;
    }
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let p = path.with_file_name(format!(
            "{}{suffix}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("app.db")
        ));
        if p.exists() {
            std::fs::remove_file(&p)
                .map_err(|e| DemoError::io(&format!("replacing {}", p.display()), e))?;
        }
    }
    let mut db = Connection::open(path).map_err(sql_error)?;
    db.execute_batch(SCHEMA).map_err(sql_error)?;
    let tx = db.transaction().map_err(sql_error)?;
    {
        let mut st = tx
            .prepare("INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
            .map_err(sql_error)?;
        for u in &world.users {
            st.execute(params![
                u.id,
                u.username,
                u.email,
                u.country,
                u.platform.name(),
                u.channel,
                u.bio,
                u.settings,
                ts(u.created_ms),
                ts(u.updated_ms),
                opt_ts(u.deleted_ms)
            ])
            .map_err(sql_error)?;
        }
        let mut st = tx
            .prepare("INSERT INTO photos VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
            .map_err(sql_error)?;
        for p in &world.photos {
            st.execute(params![
                p.id,
                p.user,
                p.title,
                p.width,
                p.height,
                p.camera,
                ts(p.created_ms),
                ts(p.updated_ms),
                opt_ts(p.deleted_ms)
            ])
            .map_err(sql_error)?;
        }
        let mut st = tx
            .prepare("INSERT INTO marketplace_submissions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .map_err(sql_error)?;
        for s in &world.submissions {
            st.execute(params![
                s.id,
                s.photo,
                s.user,
                s.status,
                money(s.price_cents),
                ts(s.submitted_ms),
                opt_ts(s.reviewed_ms),
                ts(s.reviewed_ms.unwrap_or(s.submitted_ms))
            ])
            .map_err(sql_error)?;
        }
        let mut st = tx
            .prepare("INSERT INTO purchases VALUES (?1, ?2, ?3, 'USD', ?4)")
            .map_err(sql_error)?;
        for p in &world.purchases {
            st.execute(params![
                p.id,
                p.user,
                money(p.amount_cents),
                ts(p.created_ms)
            ])
            .map_err(sql_error)?;
        }
        let mut st = tx
            .prepare("INSERT INTO sales VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
            .map_err(sql_error)?;
        for s in &world.sales {
            st.execute(params![
                s.id,
                s.purchase,
                s.submission,
                s.photo,
                s.seller,
                s.buyer,
                s.licence,
                money(s.amount_cents),
                ts(s.sold_ms)
            ])
            .map_err(sql_error)?;
        }
        let mut st = tx
            .prepare("INSERT INTO subscriptions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .map_err(sql_error)?;
        for s in &world.subscriptions {
            st.execute(params![
                s.id,
                s.user,
                s.plan,
                money(s.price_cents),
                s.status,
                ts(s.started_ms),
                opt_ts(s.canceled_ms),
                ts(s.updated_ms)
            ])
            .map_err(sql_error)?;
        }
        let mut st = tx
            .prepare("INSERT INTO plan_changes VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .map_err(sql_error)?;
        for c in &world.plan_changes {
            st.execute(params![
                c.id,
                c.subscription,
                c.user,
                c.from_plan,
                c.to_plan,
                ts(c.changed_ms)
            ])
            .map_err(sql_error)?;
        }
        let mut st = tx
            .prepare("INSERT INTO likes VALUES (?1, ?2, ?3, ?4)")
            .map_err(sql_error)?;
        for l in &world.likes {
            st.execute(params![l.id, l.user, l.photo, ts(l.created_ms)])
                .map_err(sql_error)?;
        }
        let mut st = tx
            .prepare("INSERT INTO comments VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
            .map_err(sql_error)?;
        for c in &world.comments {
            st.execute(params![
                c.id,
                c.user,
                c.photo,
                c.body,
                ts(c.created_ms),
                ts(c.deleted_ms.unwrap_or(c.created_ms)),
                opt_ts(c.deleted_ms)
            ])
            .map_err(sql_error)?;
        }
        let mut st = tx
            .prepare("INSERT INTO follows VALUES (?1, ?2, ?3, ?4, ?5)")
            .map_err(sql_error)?;
        for f in &world.follows {
            st.execute(params![
                f.id,
                f.follower,
                f.followee,
                ts(f.created_ms),
                opt_ts(f.deleted_ms)
            ])
            .map_err(sql_error)?;
        }
    }
    tx.commit().map_err(sql_error)?;
    let mut changes = Vec::new();
    for fault in faults {
        let Fault::SchemaDrift { change } = fault else {
            continue;
        };
        changes.push(drift(&db, *change, world)?);
    }
    Ok(changes)
}

fn drift(db: &Connection, change: Drift, world: &World) -> Result<serde_json::Value, DemoError> {
    Ok(match change {
        Drift::Rename => {
            db.execute_batch("ALTER TABLE users RENAME COLUMN country TO country_code")
                .map_err(sql_error)?;
            json!({ "change": "rename", "table": "users", "column": "country",
                    "now": "country_code", "rows_affected": world.users.len() })
        }
        Drift::Type => {
            // SQLite cannot change a column's type in place: rebuild the table, as a
            // migration tool would, with width as text ('6000px'). Foreign keys are off
            // meanwhile (SQLite's own recipe): dropping the old table must not count as
            // deleting the photos that likes, comments and sales point at.
            db.execute_batch(
                "PRAGMA foreign_keys = OFF;
                 BEGIN;
                 CREATE TABLE photos_new (
                   id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id),
                   title TEXT, width TEXT NOT NULL, height INTEGER NOT NULL, camera TEXT,
                   created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, deleted_at DATETIME);
                 INSERT INTO photos_new SELECT id, user_id, title, width || 'px', height, camera,
                   created_at, updated_at, deleted_at FROM photos;
                 DROP TABLE photos;
                 ALTER TABLE photos_new RENAME TO photos;
                 COMMIT;
                 PRAGMA foreign_keys = ON;",
            )
            .map_err(sql_error)?;
            json!({ "change": "type", "table": "photos", "column": "width",
                    "was": "INTEGER", "now": "TEXT (e.g. '6000px')",
                    "rows_affected": world.photos.len() })
        }
        Drift::Enum => {
            // Every tenth active subscription moves to the new `team` plan.
            let n = db
                .execute(
                    "UPDATE subscriptions SET plan = 'team', monthly_price = '29.00',
                       updated_at = (SELECT max(updated_at) FROM subscriptions)
                     WHERE status = 'active' AND id % 10 = 0",
                    [],
                )
                .map_err(sql_error)?;
            json!({ "change": "enum", "table": "subscriptions", "column": "plan",
                    "new_value": "team", "rows_affected": n })
        }
    })
}
