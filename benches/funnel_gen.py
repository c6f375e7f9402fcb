#!/usr/bin/env python3
"""Generate a product event log as one Parquet file, for the window-funnel benchmark.

    python3 benches/funnel_gen.py OUT.parquet [--events 50000000] [--users 2000000]
                                              [--seed 7] [--days 60]

Columns: user_id int64, event string, ts timestamp[ms, UTC] (whole seconds), platform string
('web', 'ios', 'android'). Rows are in ts order, like a log, written in row groups of 1M rows
(zstd, dictionary-encoded strings). Exactly --events rows; the same arguments give the same
file.

The shape, per user:
  * a first-seen time (some before the log starts: those users show up without their first
    visits), a main platform, and ~10% of events on another platform;
  * 1..n visits ('visit'), later ones days to weeks after the first;
  * from one of the visits, a funnel chain 'signup' -> 'activate' -> 'engage' -> 'subscribe'
    with a decreasing chance of going on at each step (most users only visit). Each step
    follows the previous one by minutes, hours, days or weeks (some beyond 30 days, so the
    30-day window matters; a few exactly 30 days after the chain's visit, or 1 s more),
    sometimes at the same second, sometimes *before* it, and is sometimes repeated later;
  * noise events ('view_photo', 'like', 'comment', 'search', 'follow'), most of the volume,
    spread over the user's active period, more for users deeper in the funnel.
Events outside the --days window are dropped; noise fills the count up to --events.

Memory: the whole log is built in compact arrays (10 bytes an event) and sorted by one
index (8 bytes an event) before being written: about 1.7 GB peak at 50M events.
"""
import argparse, os, time
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

T0 = 1767571200  # 2026-01-05 00:00:00 UTC, the log's first second
STEPS = ["visit", "signup", "activate", "engage", "subscribe"]
NOISE = ["view_photo", "like", "comment", "search", "follow"]
NOISE_P = [0.42, 0.26, 0.10, 0.14, 0.08]
EVENTS = STEPS + NOISE
PLATFORMS = ["web", "ios", "android"]
PLATFORM_P = [0.5, 0.3, 0.2]
# chance of reaching step k+1 having reached step k (signup, activate, engage, subscribe)
GO_ON = [0.35, 0.55, 0.55, 0.40]
OTHER_PLATFORM = 0.10
ROW_GROUP = 1 << 20
DAY, HOUR, MINUTE = 86400, 3600, 60


def step_delays(rng, n):
    """Seconds from one funnel step to the next: a mixture from the same second to weeks,
    with a few negative (the 'next' step logged before the previous one)."""
    kind = rng.choice(7, size=n, p=[0.03, 0.04, 0.26, 0.26, 0.23, 0.08, 0.10])
    d = np.empty(n, dtype=np.float64)
    m = kind == 0
    d[m] = 0
    m = kind == 1  # before the previous step: minutes to a day earlier
    d[m] = -rng.lognormal(np.log(30 * MINUTE), 1.5, m.sum())
    m = kind == 2  # minutes
    d[m] = rng.lognormal(np.log(8 * MINUTE), 1.0, m.sum())
    m = kind == 3  # hours
    d[m] = rng.lognormal(np.log(3 * HOUR), 1.0, m.sum())
    m = kind == 4  # days
    d[m] = rng.lognormal(np.log(3 * DAY), 0.8, m.sum())
    m = kind == 5  # one to four weeks
    d[m] = rng.uniform(7 * DAY, 28 * DAY, m.sum())
    m = kind == 6  # around and beyond the 30-day window
    d[m] = rng.uniform(25 * DAY, 45 * DAY, m.sum())
    d = np.clip(d, -2 * DAY, 60 * DAY)
    return np.rint(d).astype(np.int64)


def platforms_for(rng, main_of_event):
    """Each event on the user's main platform, or with OTHER_PLATFORM chance another one."""
    n = len(main_of_event)
    other = rng.random(n) < OTHER_PLATFORM
    shift = rng.integers(1, 3, n)
    return np.where(other, (main_of_event + shift) % 3, main_of_event).astype(np.uint8)


def generate(events, users, seed, days):
    rng = np.random.default_rng(seed)
    span = days * DAY
    # --- users: first-seen time (10% of the users started up to 10 days before the log),
    # with a daily cycle (busier in the afternoon and evening UTC) and slow growth
    hour_w = np.array([2, 1.5, 1, 1, 1, 1.5, 2, 3, 4, 5, 6, 6, 6, 6, 7, 7, 8, 8, 9, 9, 8, 6, 4, 3])
    day = np.floor((days + 10) * np.sqrt(rng.random(users))).astype(np.int64) - 10
    hour = rng.choice(24, size=users, p=hour_w / hour_w.sum())
    start = day * DAY + hour * HOUR + rng.integers(0, HOUR, users)
    main = rng.choice(3, size=users, p=PLATFORM_P).astype(np.uint8)

    # --- visits: 1 + geometric extra ones, later by days to weeks
    n_visits = rng.geometric(0.55, users)  # >= 1, mean ~1.8
    vu = np.repeat(np.arange(users, dtype=np.int64), n_visits)
    first_of_user = np.cumsum(n_visits) - n_visits
    k = np.arange(len(vu)) - np.repeat(first_of_user, n_visits)  # 0 for the first visit
    vt = start[vu] + np.where(k == 0, 0, rng.exponential(7 * DAY, len(vu)).astype(np.int64))
    # a few visits in the same second as another one
    dup = rng.random(len(vu)) < 0.01
    fu = [vu, vu[dup]]
    ft = [vt, vt[dup]]
    fe = [np.zeros(len(vu), np.uint8), np.zeros(dup.sum(), np.uint8)]

    # --- the funnel chain, from one of the user's visits
    # steps reached, 1 (visit only) to 5 (subscribe)
    go = rng.random((users, len(GO_ON))) < np.array(GO_ON)
    depth = 1 + np.cumprod(go, axis=1).sum(axis=1)
    anchor = first_of_user + (rng.random(users) * n_visits).astype(np.int64)
    t = vt[anchor].copy()
    for step in range(1, 5):
        who = np.nonzero(depth > step)[0]
        t_who = t[who] + step_delays(rng, len(who))
        # a few exactly at the end of the 30-day window from the chain's visit, or 1 s past it
        edge = rng.choice(3, size=len(who), p=[0.99, 0.005, 0.005])
        t_who = np.where(edge == 0, t_who, vt[anchor[who]] + 30 * DAY + (edge - 1))
        t[who] = t_who
        fu.append(who)
        ft.append(t_who)
        fe.append(np.full(len(who), step, np.uint8))
        again = rng.random(len(who)) < 0.08  # the step logged again later
        fu.append(who[again])
        ft.append(t_who[again] + rng.exponential(2 * DAY, again.sum()).astype(np.int64))
        fe.append(np.full(again.sum(), step, np.uint8))
    fu = np.concatenate(fu)
    ft = np.concatenate(ft)
    fe = np.concatenate(fe)
    keep = (ft >= 0) & (ft < span)
    fu, ft, fe = fu[keep], ft[keep], fe[keep]
    n_noise = events - len(fu)
    if n_noise < 0:
        raise SystemExit(f"{len(fu)} funnel events alone exceed --events {events}: use fewer users")

    # --- noise: users weighted by activity (heavy-tailed, more for deeper users), each event
    # in the user's active period after the first-seen time
    w = rng.lognormal(0, 1.1, users) * (1 + 0.6 * (depth - 1))
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    active = rng.lognormal(np.log(6 * DAY), 1.0, users)
    # the log in compact arrays, filled in place: funnel events first, then noise in batches
    user = np.empty(events, np.int32)
    ts = np.empty(events, np.int32)
    ev = np.empty(events, np.uint8)
    plat = np.empty(events, np.uint8)
    nf = len(fu)
    user[:nf], ts[:nf], ev[:nf] = fu, ft, fe
    plat[:nf] = platforms_for(rng, main[fu])
    del fu, ft, fe
    batch = 4_000_000
    for lo in range(nf, events, batch):
        n = min(batch, events - lo)
        u = np.searchsorted(cdf, rng.random(n), side="right").clip(0, users - 1)
        tt = start[u] + (rng.exponential(1.0, n) * active[u]).astype(np.int64)
        bad = (tt < 0) | (tt >= span)
        lo_t = np.maximum(start[u[bad]], 0)
        tt[bad] = lo_t + (rng.random(bad.sum()) * (span - lo_t)).astype(np.int64)
        user[lo:lo + n] = u
        ts[lo:lo + n] = tt
        ev[lo:lo + n] = 5 + rng.choice(5, size=n, p=NOISE_P)
        plat[lo:lo + n] = platforms_for(rng, main[u])
    ids = (10_000_000 + rng.permutation(users)).astype(np.int64)
    return user, ts, ev, plat, ids, depth


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--events", type=int, default=50_000_000)
    ap.add_argument("--users", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--days", type=int, default=60)
    a = ap.parse_args()
    t_start = time.time()
    user, ts, ev, plat, ids, _ = generate(a.events, a.users, a.seed, a.days)
    order = np.argsort(ts, kind="stable")
    schema = pa.schema([
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("event", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("platform", pa.string(), nullable=False),
    ])
    names = pa.array(EVENTS, pa.string())
    plats = pa.array(PLATFORMS, pa.string())
    tmp = a.out + ".tmp"
    with pq.ParquetWriter(tmp, schema, compression="zstd", use_dictionary=True) as w:
        for lo in range(0, len(order), ROW_GROUP):
            idx = order[lo:lo + ROW_GROUP]
            tbl = pa.table([
                pa.array(ids[user[idx]]),
                names.take(pa.array(ev[idx])),
                pa.array((ts[idx].astype(np.int64) + T0) * 1000, pa.timestamp("ms", tz="UTC")),
                plats.take(pa.array(plat[idx])),
            ], schema=schema)
            w.write_table(tbl, row_group_size=ROW_GROUP)
    os.replace(tmp, a.out)
    n_users = int(np.count_nonzero(np.bincount(user, minlength=a.users)))
    print(f"{a.out}: {len(order)} rows, {n_users} users, "
          f"{os.path.getsize(a.out) / 1e6:.1f} MB, {time.time() - t_start:.1f} s")


if __name__ == "__main__":
    main()
