//! Progress bars on a terminal; nothing under `--json` or when stderr is not a TTY.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use darkroom_sources::{NoProgress, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// A progress reporter: a bar when attached to a terminal and not asked for JSON.
pub fn reporter(json: bool) -> Arc<dyn Progress> {
    if json || !std::io::stderr().is_terminal() {
        Arc::new(NoProgress)
    } else {
        Arc::new(Bar::default())
    }
}

#[derive(Default)]
struct Bar {
    current: Mutex<Option<(ProgressBar, Arc<AtomicBool>)>>,
}

impl Progress for Bar {
    fn begin(&self, label: &str, total: u64) -> Arc<AtomicU64> {
        let counter = Arc::new(AtomicU64::new(0));
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(
            "{msg:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let (b, c, s) = (bar.clone(), Arc::clone(&counter), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                b.set_position(c.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        if let Ok(mut cur) = self.current.lock() {
            *cur = Some((bar, stop));
        }
        counter
    }

    fn end(&self) {
        if let Ok(mut cur) = self.current.lock()
            && let Some((bar, stop)) = cur.take()
        {
            stop.store(true, Ordering::Relaxed);
            bar.finish_and_clear();
        }
    }
}

/// A spinner counting the rows of the table being extracted (terminal only).
#[derive(Clone)]
pub struct RowSpinner {
    enabled: bool,
    current: Arc<Mutex<Running>>,
}

/// The spinner shown and the flag that stops its updater thread.
type Running = Option<(ProgressBar, Arc<AtomicBool>)>;

impl RowSpinner {
    pub fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet && std::io::stderr().is_terminal(),
            current: Arc::default(),
        }
    }

    /// The callback the extractor calls when a table starts.
    pub fn on_table(&self) -> darkroom_extract::OnTable {
        let this = self.clone();
        Arc::new(move |label: &str, rows: Arc<AtomicU64>| {
            if !this.enabled {
                return;
            }
            this.done();
            let bar = ProgressBar::new_spinner();
            let style = ProgressStyle::with_template("{spinner} {msg} {pos} rows ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(style);
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(100));
            let stop = Arc::new(AtomicBool::new(false));
            let (b, s) = (bar.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    b.set_position(rows.load(Ordering::Relaxed));
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            if let Ok(mut cur) = this.current.lock() {
                *cur = Some((bar, stop));
            }
        })
    }

    pub fn done(&self) {
        if let Ok(mut cur) = self.current.lock()
            && let Some((bar, stop)) = cur.take()
        {
            stop.store(true, Ordering::Relaxed);
            bar.finish_and_clear();
        }
    }
}

/// A spinner with a message (terminal only).
pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Self { bar }
    }

    pub fn show(&self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }

    pub fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
