//! The window funnel: for one person's events, the deepest step reached by a chain that starts
//! at a step-1 event and finds each next step, in order, no later than `window` after the start
//! (the bound is inclusive).
//!
//! This is ClickHouse's `windowFunnel`, with its options:
//!
//! - default: any events may come between the steps;
//! - `strict_order`: once a step-1 event has been seen, an event that is not a step (or a step
//!   whose previous step was not reached yet) ends the search;
//! - `strict_deduplication`: an event of a step that was already reached ends the search;
//! - `strict_increase`: each step's timestamp is strictly later than the previous step's;
//!
//! and one of our own, `any_order`: the deepest k such that steps 1..k all happen, in any order,
//! within one window.
//!
//! **Equal timestamps.** Events are ordered by timestamp, then by step number (as ClickHouse
//! does): a step-2 event at the same instant as a step-1 event comes after it and can extend its
//! chain (except under `strict_increase`). An event matching several steps counts as each of
//! them. Exclusion events (product funnels) come after the steps of the same instant.
//!
//! **strict_increase** follows its definition exactly: the deepest chain whose timestamps
//! strictly increase. (ClickHouse keeps only the latest start and can miss such a chain when a
//! later step-1 event shares its instant with the next step: step 1 at t=1 and t=2, step 2 at
//! t=2 reaches level 2 here, level 1 in ClickHouse.) The other modes give ClickHouse's levels.
//!
//! The algorithm is ClickHouse's: after sorting, one pass that keeps, for each level, the latest
//! start of a chain that reached it — the latest start leaves the most window for the next step,
//! so it is the only chain worth extending.

use std::fmt;

/// The most steps a funnel may have (ClickHouse's limit too).
pub const MAX_STEPS: usize = 32;

/// Packed events keep the step in the low bits of the timestamp.
const STEP_BITS: u32 = 6;
const STEP_MASK: i64 = (1 << STEP_BITS) - 1;
/// The largest timestamp magnitude a packed event can hold (2^57: ±4.5 million years in
/// seconds, ±4,500 years in microseconds).
pub const MAX_PACKED_TS: i64 = 1 << (63 - STEP_BITS);

/// The options of a funnel search. `Default` is ClickHouse's default mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Mode {
    pub strict_order: bool,
    pub strict_deduplication: bool,
    pub strict_increase: bool,
    pub any_order: bool,
}

impl Mode {
    /// The options as written: comma-separated names (`"strict_order, strict_increase"`);
    /// empty or `default` for none.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut mode = Self::default();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "default" => {}
                "strict_order" => mode.strict_order = true,
                "strict_deduplication" => mode.strict_deduplication = true,
                "strict_increase" => mode.strict_increase = true,
                "any_order" => mode.any_order = true,
                "strict" => {
                    return Err(
                        "funnel mode `strict` was renamed `strict_deduplication` (as in ClickHouse)"
                            .into(),
                    );
                }
                other => {
                    return Err(format!(
                        "unknown funnel mode `{other}`: use default, strict_order, \
                         strict_deduplication, strict_increase (combinable, comma-separated) \
                         or any_order"
                    ));
                }
            }
        }
        if mode.any_order
            && (mode.strict_order || mode.strict_deduplication || mode.strict_increase)
        {
            return Err("funnel mode any_order cannot be combined with the strict modes".into());
        }
        Ok(mode)
    }

    /// Whether more events can only raise the level (so a person at the last step is done).
    pub fn is_monotone(self) -> bool {
        !self.strict_order && !self.strict_deduplication
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.strict_order, "strict_order"),
            (self.strict_deduplication, "strict_deduplication"),
            (self.strict_increase, "strict_increase"),
            (self.any_order, "any_order"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        if names.is_empty() {
            f.write_str("default")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// One event packed in an `i64`: the timestamp shifted left, the step (1..=32; 0 for an event
/// matching no step, kept only under `strict_order`) in the low bits, so that sorting the
/// packed values sorts by (timestamp, step). `None` when the timestamp is out of range.
#[inline]
pub fn pack(ts: i64, step: u8) -> Option<i64> {
    (-MAX_PACKED_TS..MAX_PACKED_TS)
        .contains(&ts)
        .then(|| (ts << STEP_BITS) | i64::from(step))
}

#[inline]
fn unpack(p: i64) -> (i64, u8) {
    (p >> STEP_BITS, (p & STEP_MASK) as u8)
}

/// The level (0..=steps) of one person's packed events, sorting them first.
pub fn level(events: &mut [i64], steps: usize, window: i64, mode: Mode) -> u8 {
    events.sort_unstable();
    let iter = events.iter().map(|&p| {
        let (ts, step) = unpack(p);
        Event {
            ts,
            kind: step,
            index: 0,
        }
    });
    if mode.any_order {
        return any_order::<Start>(iter, steps, window).0;
    }
    scan::<Start>(iter, steps, window, mode).0
}

/// An event as the scan sees it: its time, its kind (0: no step; 1..=steps: a step;
/// [`EXCLUSION`] + g: an exclusion between step g and g + 1) and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Event {
    pub ts: i64,
    pub kind: u8,
    /// The caller's index of the event (to find its properties again); unused by the scan.
    pub index: u32,
}

/// Kinds at or above this are exclusions: `EXCLUSION + g` ends every chain that has reached
/// step g and not yet step g + 1.
pub const EXCLUSION: u8 = 64;

/// What the scan remembers of a chain: at least its start; a [`Path`] also its events.
pub trait Chain: Copy {
    fn start(ev: &Event) -> Self;
    fn extend(&self, step: usize, ev: &Event) -> Self;
    fn first_ts(&self) -> i64;
}

/// A chain known by its start time only: all a level needs.
#[derive(Debug, Clone, Copy)]
pub struct Start(i64);

impl Chain for Start {
    #[inline]
    fn start(ev: &Event) -> Self {
        Self(ev.ts)
    }
    #[inline]
    fn extend(&self, _step: usize, _ev: &Event) -> Self {
        *self
    }
    #[inline]
    fn first_ts(&self) -> i64 {
        self.0
    }
}

/// The most steps a product funnel with paths may have.
pub const MAX_PATH_STEPS: usize = 16;

/// A chain with the time and caller's index of each step's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub times: [i64; MAX_PATH_STEPS],
    pub events: [u32; MAX_PATH_STEPS],
}

impl Chain for Path {
    fn start(ev: &Event) -> Self {
        let mut p = Path {
            times: [0; MAX_PATH_STEPS],
            events: [0; MAX_PATH_STEPS],
        };
        p.times[0] = ev.ts;
        p.events[0] = ev.index;
        p
    }
    fn extend(&self, step: usize, ev: &Event) -> Self {
        let mut p = *self;
        if step < MAX_PATH_STEPS {
            p.times[step] = ev.ts;
            p.events[step] = ev.index;
        }
        p
    }
    fn first_ts(&self) -> i64 {
        self.times[0]
    }
}

/// The ordered search over events sorted by (ts, kind): the level reached and the first chain
/// that reached it.
pub fn scan<C: Chain>(
    events: impl IntoIterator<Item = Event>,
    steps: usize,
    window: i64,
    mode: Mode,
) -> (u8, Option<C>) {
    let steps = steps.min(MAX_STEPS);
    // chains[k]: the latest-starting chain that reached step k + 1 (and may go on).
    let mut chains: [Option<C>; MAX_STEPS] = [None; MAX_STEPS];
    // Under strict_increase, chains reached at the current instant wait here until time moves
    // on: a step may only extend a chain whose last step is strictly earlier.
    let mut pending: [Option<C>; MAX_STEPS] = [None; MAX_STEPS];
    let mut pending_ts = i64::MIN;
    let mut reached = 0usize;
    let mut best: Option<C> = None;
    let mut started = false;
    for ev in events {
        if mode.strict_increase && ev.ts != pending_ts {
            for k in 0..steps {
                if let Some(c) = pending[k].take() {
                    chains[k] = Some(c);
                }
            }
            pending_ts = ev.ts;
        }
        let kind = usize::from(ev.kind);
        if kind >= usize::from(EXCLUSION) {
            let gap = kind - usize::from(EXCLUSION);
            if (1..steps).contains(&gap) {
                chains[gap - 1] = None;
                pending[gap - 1] = None;
            }
            continue;
        }
        if kind == 0 || kind > steps {
            if mode.strict_order && started {
                break;
            }
            continue;
        }
        let k = kind - 1;
        if k == 0 {
            let c = C::start(&ev);
            if mode.strict_increase {
                pending[0] = Some(c);
            } else {
                chains[0] = Some(c);
            }
            started = true;
            if reached == 0 {
                reached = 1;
                best = Some(c);
            }
        } else if (mode.strict_deduplication && reached > k)
            || (mode.strict_order && started && reached < k)
        {
            // a repeated step, or a step out of order: the search ends here
            break;
        } else if let Some(prev) = chains[k - 1]
            && ev.ts <= prev.first_ts().saturating_add(window)
        {
            let c = prev.extend(k, &ev);
            // A chain with the same start that reached this step earlier stays: it is as good
            // for what follows, and its times are the person's first conversion.
            let same_start = |x: &Option<C>| x.is_some_and(|o| o.first_ts() == c.first_ts());
            let kept = same_start(&chains[k]) || same_start(&pending[k]);
            if !kept && mode.strict_increase {
                pending[k] = Some(c);
            } else if !kept {
                chains[k] = Some(c);
            }
            if kind > reached {
                reached = kind;
                best = Some(c);
                if reached == steps {
                    break;
                }
            }
        }
    }
    (reached as u8, best)
}

/// The any-order search over events sorted by ts: the deepest k such that steps 1..k all
/// happen within one window, and the time of each step's event in the best such window.
pub fn any_order<C: Chain>(
    events: impl IntoIterator<Item = Event>,
    steps: usize,
    window: i64,
) -> (u8, Option<C>) {
    let steps = steps.min(MAX_STEPS);
    // last[j]: the latest event of step j + 1 so far.
    let mut last: [Option<Event>; MAX_STEPS] = [None; MAX_STEPS];
    let mut reached = 0usize;
    let mut best: Option<C> = None;
    for ev in events {
        let kind = usize::from(ev.kind);
        if kind == 0 || kind > steps {
            continue;
        }
        last[kind - 1] = Some(ev);
        // Windows ending at this event: each step's latest occurrence is its best choice.
        let from = ev.ts.saturating_sub(window);
        let k = last[..steps]
            .iter()
            .take_while(|l| l.is_some_and(|l| l.ts >= from))
            .count();
        if k > reached {
            reached = k;
            best = last[0].map(|first| {
                let mut c = C::start(&first);
                for (j, l) in last.iter().enumerate().take(k).skip(1) {
                    if let Some(l) = l {
                        c = c.extend(j, l);
                    }
                }
                c
            });
            if reached == steps {
                break;
            }
        }
    }
    (reached as u8, best)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use rand::{Rng, SeedableRng};

    fn lv(events: &[(i64, u8)], steps: usize, window: i64, mode: &str) -> u8 {
        let mut packed: Vec<i64> = events.iter().map(|&(t, s)| pack(t, s).unwrap()).collect();
        level(&mut packed, steps, window, Mode::parse(mode).unwrap())
    }

    #[test]
    fn default_mode_finds_the_deepest_chain() {
        assert_eq!(lv(&[(0, 1), (5, 2), (20, 3)], 3, 10, ""), 2);
        // the later start reaches further
        assert_eq!(
            lv(&[(0, 1), (5, 2), (12, 1), (14, 2), (22, 3)], 3, 10, ""),
            3
        );
        // a step before its previous step does not count
        assert_eq!(lv(&[(5, 2), (6, 1)], 2, 10, ""), 1);
        // no step-1 event: level 0
        assert_eq!(lv(&[(5, 2), (6, 3)], 3, 10, ""), 0);
        assert_eq!(lv(&[], 3, 10, ""), 0);
    }

    #[test]
    fn the_window_bound_is_inclusive() {
        assert_eq!(lv(&[(0, 1), (10, 2)], 2, 10, ""), 2);
        assert_eq!(lv(&[(0, 1), (11, 2)], 2, 10, ""), 1);
        // the window counts from the chain's start, not from the previous step
        assert_eq!(lv(&[(0, 1), (6, 2), (12, 3)], 3, 10, ""), 2);
    }

    #[test]
    fn equal_timestamps_are_ordered_by_step() {
        // step 2 at the same instant as step 1 extends it, whatever the input order
        assert_eq!(lv(&[(6, 2), (6, 1)], 2, 10, ""), 2);
        assert_eq!(lv(&[(6, 1), (6, 2)], 2, 10, ""), 2);
        // ... but not under strict_increase
        assert_eq!(lv(&[(6, 1), (6, 2)], 2, 10, "strict_increase"), 1);
        // strict_increase takes an earlier start when the latest one shares the next step's
        // instant (ClickHouse answers 1 here)
        assert_eq!(lv(&[(1, 1), (2, 1), (2, 2)], 2, 10, "strict_increase"), 2);
    }

    #[test]
    fn strict_order_stops_at_an_event_between_steps() {
        // 1, 2, other, 3: stops at the other event
        assert_eq!(
            lv(&[(0, 1), (1, 2), (2, 0), (3, 3)], 3, 10, "strict_order"),
            2
        );
        assert_eq!(lv(&[(0, 1), (1, 2), (2, 0), (3, 3)], 3, 10, ""), 3);
        // other events before the first step-1 event do not matter
        assert_eq!(lv(&[(0, 0), (1, 1), (2, 2)], 2, 10, "strict_order"), 2);
        // a step out of order stops it: 1, 3, 2
        assert_eq!(lv(&[(0, 1), (1, 3), (2, 2)], 3, 10, "strict_order"), 1);
        assert_eq!(lv(&[(0, 1), (1, 3), (2, 2)], 3, 10, ""), 2);
    }

    #[test]
    fn strict_deduplication_stops_at_a_repeated_step() {
        // 1, 2, 2, 3: the repeated step 2 stops the search
        assert_eq!(
            lv(
                &[(0, 1), (1, 2), (2, 2), (3, 3)],
                3,
                10,
                "strict_deduplication"
            ),
            2
        );
        assert_eq!(lv(&[(0, 1), (1, 2), (2, 2), (3, 3)], 3, 10, ""), 3);
        // a repeated step 1 only restarts
        assert_eq!(
            lv(
                &[(0, 1), (1, 1), (2, 2), (3, 3)],
                3,
                10,
                "strict_deduplication"
            ),
            3
        );
    }

    #[test]
    fn any_order_needs_every_step_within_one_window() {
        assert_eq!(lv(&[(0, 3), (1, 2), (2, 1)], 3, 10, "any_order"), 3);
        assert_eq!(lv(&[(0, 3), (1, 2), (20, 1)], 3, 10, "any_order"), 1);
        assert_eq!(lv(&[(0, 2), (20, 1), (25, 3)], 3, 10, "any_order"), 1);
        assert_eq!(lv(&[(0, 2), (10, 1)], 2, 10, "any_order"), 2);
    }

    #[test]
    fn exclusions_end_the_chains_waiting_for_the_next_step() {
        let ev = |ts, kind| Event { ts, kind, index: 0 };
        let run = |evs: Vec<Event>| scan::<Start>(evs, 3, 100, Mode::default()).0;
        // 1, X(1..2), 2: excluded
        assert_eq!(run(vec![ev(0, 1), ev(1, EXCLUSION + 1), ev(2, 2)]), 1);
        // a new start after the exclusion goes on
        assert_eq!(
            run(vec![ev(0, 1), ev(1, EXCLUSION + 1), ev(2, 1), ev(3, 2)]),
            2
        );
        // an exclusion of a later gap does not touch this one
        assert_eq!(
            run(vec![ev(0, 1), ev(1, EXCLUSION + 2), ev(2, 2), ev(3, 3)]),
            3
        );
        // the exclusion of the 2..3 gap after step 3 is reached changes nothing
        assert_eq!(
            run(vec![ev(0, 1), ev(2, 2), ev(3, 3), ev(4, EXCLUSION + 2)]),
            3
        );
    }

    #[test]
    fn paths_record_the_chain_that_reached_the_level() {
        let evs = [(0, 1, 0), (5, 2, 1), (12, 1, 2), (14, 2, 3), (22, 3, 4)]
            .map(|(ts, kind, index)| Event { ts, kind, index });
        let (level, path) = scan::<Path>(evs, 3, 10, Mode::default());
        let path = path.unwrap();
        assert_eq!(level, 3);
        assert_eq!(&path.times[..3], &[12, 14, 22]);
        assert_eq!(&path.events[..3], &[2, 3, 4]);
    }

    #[test]
    fn time_to_convert_uses_the_first_conversion_of_a_start() {
        // visit@0, signup@1, signup@5, purchase@6: visit -> signup took 1, not 5
        let evs = [(0, 1, 0), (1, 2, 1), (5, 2, 2), (6, 3, 3)].map(|(ts, kind, index)| Event {
            ts,
            kind,
            index,
        });
        let (level, path) = scan::<Path>(evs, 3, 10, Mode::default());
        assert_eq!(level, 3);
        assert_eq!(&path.unwrap().times[..3], &[0, 1, 6]);
    }

    /// The definition, by enumeration: the deepest chain of events (in the sorted order) with
    /// steps 1, 2, ..., k, the last no later than the window after the first.
    fn brute_chain_level(events: &[(i64, u8)], steps: usize, window: i64, increase: bool) -> u8 {
        // the deepest step a chain at (step - 1, started at `start`, last at `prev`) reaches
        // with the events from `from` on
        let extend = |from: usize, step: u8, start: i64, prev: i64| {
            fn go(
                ev: &[(i64, u8)],
                cfg: (usize, i64, bool),
                from: usize,
                step: u8,
                chain: (i64, i64),
            ) -> u8 {
                let (steps, window, increase) = cfg;
                let (start, prev) = chain;
                let mut best = step - 1;
                if usize::from(step) > steps {
                    return best;
                }
                for (i, &(ts, s)) in ev.iter().enumerate().skip(from) {
                    if s == step && ts <= start + window && (!increase || ts > prev) {
                        best = best.max(go(ev, cfg, i + 1, step + 1, (start, ts)));
                    }
                }
                best
            }
            go(events, (steps, window, increase), from, step, (start, prev))
        };
        let mut best = 0;
        for (i, &(ts, s)) in events.iter().enumerate() {
            if s == 1 {
                best = best.max(extend(i + 1, 2, ts, ts));
            }
        }
        best
    }

    /// The modes' rules, written from their statements: the search stops at the first event
    /// the mode forbids, and the level is that of the chains before it.
    fn brute_level(events: &[(i64, u8)], steps: usize, window: i64, mode: Mode) -> u8 {
        let mut sorted = events.to_vec();
        sorted.sort_unstable();
        if mode.any_order {
            return brute_any_order(&sorted, steps, window);
        }
        let mut started = false;
        for p in 0..sorted.len() {
            let (_, s) = sorted[p];
            let here = || brute_chain_level(&sorted[..p], steps, window, mode.strict_increase);
            if s == 0 {
                if mode.strict_order && started {
                    return here();
                }
                continue;
            }
            if s == 1 {
                started = true;
                continue;
            }
            if mode.strict_deduplication && here() >= s {
                return here();
            }
            if mode.strict_order && started && here() < s - 1 {
                return here();
            }
        }
        brute_chain_level(&sorted, steps, window, mode.strict_increase)
    }

    /// Every choice of one event per step for steps 1..=k: do they fit in one window?
    fn brute_any_order(events: &[(i64, u8)], steps: usize, window: i64) -> u8 {
        let mut best = 0;
        for k in 1..=steps {
            let per_step: Vec<Vec<i64>> = (1..=k as u8)
                .map(|s| events.iter().filter(|e| e.1 == s).map(|e| e.0).collect())
                .collect();
            if per_step.iter().any(Vec::is_empty) {
                break;
            }
            let mut idx = vec![0usize; k];
            let mut found = false;
            'all: loop {
                let times: Vec<i64> = idx
                    .iter()
                    .enumerate()
                    .map(|(j, &i)| per_step[j][i])
                    .collect();
                let (lo, hi) = (times.iter().min().unwrap(), times.iter().max().unwrap());
                if hi - lo <= window {
                    found = true;
                    break;
                }
                for j in 0..k {
                    idx[j] += 1;
                    if idx[j] < per_step[j].len() {
                        continue 'all;
                    }
                    idx[j] = 0;
                }
                break;
            }
            if !found {
                break;
            }
            best = k as u8;
        }
        best
    }

    #[test]
    fn randomised_against_the_brute_force_reference() {
        let modes = [
            "",
            "strict_order",
            "strict_deduplication",
            "strict_increase",
            "strict_order,strict_increase",
            "strict_deduplication,strict_increase",
            "strict_order,strict_deduplication",
            "strict_order,strict_deduplication,strict_increase",
            "any_order",
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut checked = 0;
        for user in 0..6000 {
            let steps = rng.random_range(1..=5usize);
            let n = rng.random_range(0..=9usize);
            // few distinct instants, so equal timestamps and repeated steps are common
            let span = rng.random_range(1..=20i64);
            let window = rng.random_range(0..=span);
            let events: Vec<(i64, u8)> = (0..n)
                .map(|_| {
                    (
                        rng.random_range(0..=span),
                        rng.random_range(0..=steps as u8 + 1).min(steps as u8),
                    )
                })
                .collect();
            for mode in modes {
                let mode = Mode::parse(mode).unwrap();
                // events matching no step exist only for strict_order
                let kept: Vec<(i64, u8)> = events
                    .iter()
                    .copied()
                    .filter(|e| e.1 != 0 || mode.strict_order)
                    .collect();
                let mut packed: Vec<i64> = kept.iter().map(|&(t, s)| pack(t, s).unwrap()).collect();
                let got = level(&mut packed, steps, window, mode);
                let want = brute_level(&kept, steps, window, mode);
                assert_eq!(
                    got, want,
                    "user {user}: mode {mode}, steps {steps}, window {window}, events {kept:?}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 6000 * modes.len());
    }
}
