//! Time, injected: the orchestrator asks a [`Clock`] for the time and to wait, so tests run
//! retries, backoff and schedules on a fake clock without sleeping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// Where the orchestrator gets the time from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Wait `duration` (a fake clock moves its time on and returns at once).
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock for tests: starts at a given instant, moves only when slept on (or advanced), and
/// remembers every sleep.
#[derive(Debug, Clone)]
pub struct FakeClock {
    inner: Arc<Mutex<FakeState>>,
}

#[derive(Debug)]
struct FakeState {
    now: DateTime<Utc>,
    sleeps: Vec<Duration>,
}

impl FakeClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(FakeState {
                now: start,
                sleeps: Vec::new(),
            })),
        }
    }

    /// Move the time on.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut s) = self.inner.lock() {
            s.now += chrono::Duration::from_std(by).unwrap_or_default();
        }
    }

    /// Every sleep asked for, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.inner
            .lock()
            .map(|s| s.sleeps.clone())
            .unwrap_or_default()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.lock().map(|s| s.now).unwrap_or_default()
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        if let Ok(mut s) = self.inner.lock() {
            s.sleeps.push(duration);
            s.now += chrono::Duration::from_std(duration).unwrap_or_default();
        }
        Box::pin(async {
            // let other tasks run, as a real sleep would
            tokio::task::yield_now().await;
        })
    }
}
