//! One run at a time per project: a lock row in the metadata store with the holder's pid,
//! host and a heartbeat. A second run finds a live holder and stops at once; a holder that
//! was killed (its pid is gone on this host, or its heartbeat stopped) is taken over.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::{LockHolder, Store};
use crate::{PipelineError, Result};

/// How often the holder refreshes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A heartbeat older than this means the holder is gone.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// This machine's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether process `pid` exists on this machine (`None` where that cannot be told).
fn pid_exists(pid: u32) -> Option<bool> {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    // a zombie (killed, not yet reaped by its parent) is gone as far as the lock goes
    match std::fs::read_to_string(proc.join(pid.to_string()).join("stat")) {
        Ok(stat) => Some(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_none_or(|state| state != "Z"),
        ),
        Err(_) => Some(false),
    }
}

/// Whether the holder of a lock is still working, seen from `host` at `now_ms`.
pub fn holder_alive(holder: &LockHolder, host: &str, now_ms: i64) -> bool {
    let fresh = now_ms - holder.heartbeat_ms < STALE_AFTER.as_millis() as i64;
    if holder.host == host
        && let Some(exists) = pid_exists(holder.pid)
    {
        return exists && fresh;
    }
    fresh
}

/// The lock, held until dropped (the heartbeat stops and the row is deleted).
pub struct LockGuard {
    store: Store,
    pid: u32,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").field("pid", &self.pid).finish()
    }
}

impl LockGuard {
    /// Name the run the lock is held for (shown to a second run).
    pub fn set_run(&self, run_id: i64) -> Result<()> {
        self.store.lock_run(self.pid, run_id)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if let Err(e) = self.store.unlock(self.pid) {
            tracing::warn!(error = %e, "cannot release the project lock");
        }
    }
}

/// Take the project's lock for `command`, or fail with [`PipelineError::Locked`] naming the
/// live holder. Returns the stale holder taken over, if any.
pub fn acquire(
    store: &Store,
    command: &str,
    clock: Arc<dyn Clock>,
) -> Result<(LockGuard, Option<LockHolder>)> {
    let host = host_name();
    let pid = std::process::id();
    let now = clock.now_ms();
    let me = LockHolder {
        run_id: None,
        pid,
        host: host.clone(),
        command: command.to_string(),
        started_ms: now,
        heartbeat_ms: now,
    };
    let taken = store.try_lock(&me, &|h| holder_alive(h, &host, now))?;
    let replaced = match taken {
        Ok(replaced) => replaced,
        Err(holder) => return Err(PipelineError::Locked(Box::new(holder))),
    };
    let heartbeat = tokio::runtime::Handle::try_current().ok().map(|rt| {
        let store = store.clone();
        rt.spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
            loop {
                tick.tick().await;
                let now = chrono::Utc::now().timestamp_millis();
                match store.heartbeat(pid, now) {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!("the project lock was taken over by another process");
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot refresh the lock heartbeat"),
                }
            }
        })
    });
    Ok((
        LockGuard {
            store: store.clone(),
            pid,
            heartbeat,
        },
        replaced,
    ))
}
