//! Crash safety: a write killed at any step leaves the old partition or the new one, and a
//! re-run leaves exactly one copy.

use std::time::Duration;

use crate::harness::{TestProject, lines};

const D: &str = "2026-03-01";
const COUNT: &str = "SELECT count(*) FROM raw_web WHERE file_date = DATE '2026-03-01'";
const DISTINCT: &str = "SELECT count(*) FROM (SELECT DISTINCT host, file, line FROM raw_web WHERE file_date = DATE '2026-03-01')";

fn assert_exactly(p: &TestProject, n: i64) {
    assert_eq!(p.count(COUNT), n);
    assert_eq!(p.count(DISTINCT), n, "no row is duplicated");
    assert_eq!(
        p.count("SELECT sum(lines) FROM _ingest_ledger WHERE record = 'hour' AND file_date = DATE '2026-03-01'"),
        n,
        "the ledger agrees"
    );
}

#[test]
fn failpoints_at_each_step_of_a_write() {
    // (failpoint, does the new data show after the crash?)
    let points = [
        ("write.before_data_files:raw_web", false),
        ("write.input_consumed:raw_web", false),
        // every data file written, the commit not made
        ("write.before_commit:raw_web", false),
        ("write.after_commit:raw_web", true),
        // the raw table is committed, the ledger (written last) is not: not done yet
        ("write.before_data_files:_ingest_ledger", true),
        ("write.after_commit:_ingest_ledger", true),
    ];
    for (point, new_visible) in points {
        let p = TestProject::nginx("combined", "");
        let file = format!("logs/web-1/access-{D}.log");
        p.write(&file, lines(300, D, false).as_bytes());
        p.run(&["ingest", "web", "--date", D]).ok();
        assert_exactly(&p, 300);

        // New content, then a crash at `point` while writing it.
        p.write(&file, lines(500, D, false).as_bytes());
        let out = p
            .command(&["ingest", "web", "--date", D])
            .env("DARKROOM_FAILPOINT", point)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{point}: the process must die");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (name, table) = point.split_once(':').unwrap();
        assert!(
            stderr.contains(name) && stderr.contains(table),
            "{point}: {stderr}"
        );
        let after_crash = p.count(COUNT);
        let expected = if new_visible { 500 } else { 300 };
        assert_eq!(
            after_crash, expected,
            "{point}: old or new partition, never half"
        );
        assert_eq!(p.count(DISTINCT), after_crash, "{point}: no duplicates");

        // A re-run completes the work: exactly one copy.
        p.run(&["ingest", "web", "--date", D]).ok();
        assert_exactly(&p, 500);
    }
}

#[test]
fn a_crash_during_the_first_write_of_a_table_leaves_it_empty() {
    let p = TestProject::nginx("combined", "");
    p.write(
        &format!("logs/web-1/access-{D}.log"),
        lines(300, D, false).as_bytes(),
    );
    let out = p
        .command(&["ingest", "web", "--date", D])
        .env("DARKROOM_FAILPOINT", "write.before_commit:raw_web")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the process must die");
    // The table was created (its own commit) but holds nothing: no partition is complete.
    assert_eq!(p.count(COUNT), 0);
    p.run(&["ingest", "web", "--date", D]).ok();
    assert_exactly(&p, 300);
}

#[test]
fn seeded_random_kills_never_leave_two_copies() {
    let p = TestProject::nginx("combined", "");
    let file = format!("logs/web-1/access-{D}.log");
    // Big enough that a debug build takes a second or more to ingest it.
    let sizes = [60_000usize, 80_000];
    p.write(&file, lines(sizes[0], D, false).as_bytes());
    p.run(&["ingest", "web", "--date", D]).ok();
    let mut committed = sizes[0] as i64;

    let mut seed: u64 = 0x5eed_da4c_700d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..8 {
        let n = sizes[(round + 1) % 2];
        p.write(&file, lines(n, D, false).as_bytes());
        let delay = Duration::from_millis(next() % 1500);
        let mut child = p.command(&["ingest", "web", "--date", D]).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        let now = p.count(COUNT);
        assert!(
            now == committed || now == n as i64,
            "round {round} (killed after {delay:?}, {status}): {now} rows, expected {committed} or {n}"
        );
        assert_eq!(p.count(DISTINCT), now, "round {round}: duplicated rows");
        // finish the work
        p.run(&["ingest", "web", "--date", D]).ok();
        assert_exactly(&p, n as i64);
        committed = n as i64;
    }
}
