//! Failpoints for crash-safety tests.
//!
//! Set `DARKROOM_FAILPOINT=<name>` and the process aborts (as if killed) when it reaches that
//! point, with no unwinding and no destructors. Tests use this to prove that every step of a
//! write leaves either the old partition or the new one. Reading the variable costs one atomic
//! load after the first call.

use std::sync::OnceLock;

/// The named points, in the order a partition write reaches them.
pub const POINTS: &[&str] = &[
    "write.before_data_files",
    "write.input_consumed",
    "write.before_commit",
    "write.after_commit",
];

/// Abort the process here if `DARKROOM_FAILPOINT` names this point, either alone
/// (`write.after_commit`: the first write to reach it) or for one table
/// (`write.after_commit:raw_web`).
pub fn hit(name: &str, table: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let Some(armed) = ARMED.get_or_init(|| std::env::var("DARKROOM_FAILPOINT").ok()) else {
        return;
    };
    let matches = match armed.split_once(':') {
        Some((point, t)) => point == name && t == table,
        None => armed == name,
    };
    if matches {
        eprintln!("darkroom: failpoint {name} reached writing {table}; aborting as if killed");
        std::process::abort();
    }
}
