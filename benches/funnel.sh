#!/usr/bin/env bash
# Window funnel over a Parquet event log: Darkroom's window_funnel against ClickHouse (chdb,
# in-process, windowFunnel) and DuckDB (no funnel function: the same result with ASOF joins),
# side by side, with the same number of threads.
#
#   benches/funnel.sh [--events 50000000] [--users EVENTS/25] [--runs 5] [--threads 2]
#                     [--bin path/to/release/darkroom] [--skip-darkroom]
#
# Generates the event log once (benches/funnel_gen.py; kept in
# ${DARKROOM_BENCH_DATA:-/tmp/darkroom-bench-funnel} and reused), then for each query --
# funnel (users by the deepest of visit -> signup -> activate -> engage -> subscribe reached
# within 30 days), funnel_platform (the same per platform) and dau (daily distinct users by
# platform) -- runs chdb and DuckDB (benches/funnel_ref.py: RUNS runs in one process, each
# reading the Parquet file, timing the query alone) and Darkroom (RUNS processes of
# `darkroom query --format csv`, DARKROOM_THREADS=THREADS, timing the whole process). The SQL
# of each is in benches/funnel_queries/. Prints every run, the medians, the time ratios and
# the peak memory (max RSS) and CPU time (user + system, all threads: about THREADS x the
# time if the engine had its cores to itself), and checks that the three engines return identical rows: a
# difference prints MISMATCH and the script exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=50000000; USERS=""; RUNS=5; THREADS=2; BIN=""; SKIP_DR=0
while [ $# -gt 0 ]; do
  case "$1" in
    --events) EVENTS="$2"; shift 2 ;;
    --users) USERS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --skip-darkroom) SKIP_DR=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
USERS="${USERS:-$((EVENTS / 25))}"
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/darkroom}"
if [ "$SKIP_DR" = 0 ]; then
  if [ ! -x "$BIN" ]; then
    echo "no darkroom binary at $BIN: cargo build --release -p darkroom, or pass --bin PATH" \
         "(or --skip-darkroom)" >&2
    exit 2
  fi
  BIN=$(realpath "$BIN")
fi
python3 -c 'import chdb, duckdb, pyarrow, numpy' 2>/dev/null \
  || python3 -m pip install --quiet chdb duckdb pyarrow numpy
HAVE_TIME=0
[ -x /usr/bin/time ] && HAVE_TIME=1

DATA="${DARKROOM_BENCH_DATA:-/tmp/darkroom-bench-funnel}"
mkdir -p "$DATA"
DATA=$(realpath "$DATA")
FILE="$DATA/events-$EVENTS-$USERS.parquet"
if [ ! -f "$FILE" ]; then
  echo "generating $EVENTS events of $USERS users (once)..."
  python3 benches/funnel_gen.py "$FILE" --events "$EVENTS" --users "$USERS" --seed 7 --days 60
fi
echo "input: $FILE, $(stat -c %s "$FILE") bytes"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $THREADS threads each, $RUNS runs"

# `darkroom query` runs inside a project: an empty one, beside the data
PROJECT="$DATA/project"
mkdir -p "$PROJECT"
cat > "$PROJECT/darkroom.toml" <<TOML
[project]
name = "funnel-bench"
timezone = "UTC"
[warehouse]
location = "warehouse"
TOML

WORK=$(mktemp -d /tmp/darkroom-bench-funnel-run-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

measure() { # out-file, command... -> prints "seconds maxrss_kb cpu_seconds"; fails if the command does
  local out="$1"; shift
  if [ "$HAVE_TIME" = 1 ]; then
    /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" > "$out" 2> "$WORK/stderr" || return 1
    tail -n 1 "$WORK/time" | awk '{print $1, $2, $3 + $4}'
  else
    python3 - "$out" "$WORK/stderr" "$@" <<'PY' || return 1
import os, subprocess, sys, time
out, err, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
t = time.perf_counter()
with open(out, "wb") as o, open(err, "wb") as e:
    p = subprocess.Popen(cmd, stdout=o, stderr=e)
    _, status, usage = os.wait4(p.pid, 0)
if status:
    sys.exit(1)
print(f"{time.perf_counter() - t:.3f} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime:.2f}")
PY
  fi
}

sql_for() { # engine query -> the SQL with the file's path in it
  python3 - "benches/funnel_queries/$1_$2.sql" "$FILE" <<'PY'
import sys
sql = open(sys.argv[1]).read().strip()
print(sql.replace("{file}", sys.argv[2].replace("'", "''")))
PY
}

FAILED=0
for q in funnel funnel_platform dau; do
  echo
  echo "== $q"
  for e in chdb duckdb; do
    if ! read -r secs rss cpu < <(measure "$WORK/$q-$e.json" python3 benches/funnel_ref.py "$FILE" \
        --engine "$e" --query "$q" --threads "$THREADS" --runs "$RUNS"); then
      echo "  $e FAILED:"; tail -n 20 "$WORK/stderr" | sed 's/^/    /'; FAILED=1; continue
    fi
    python3 - "$WORK/$q-$e.json" "$rss" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
r["peak_rss_mb"] = round(int(sys.argv[2]) / 1024)
json.dump(r, open(sys.argv[1], "w"))
print(f"  {r['engine']:9} runs {' '.join(f'{t:.3f}' for t in r['runs'])} s; median {r['median']:.3f} s "
      f"(CPU {statistics.median(r['cpu']):.2f} s); peak RSS {r['peak_rss_mb']} MiB (python with {r['engine']} imported: {r['rss_base_mb']} MiB)")
PY
  done
  [ "$SKIP_DR" = 1 ] && continue
  sql=$(sql_for darkroom "$q")
  : > "$WORK/$q-darkroom.times"
  ok=1
  for i in $(seq "$RUNS"); do
    if ! read -r secs rss cpu < <(DARKROOM_THREADS="$THREADS" measure "$WORK/$q-darkroom-$i.csv" \
        "$BIN" -C "$PROJECT" query --format csv "$sql"); then
      echo "  darkroom FAILED (run $i):"; tail -n 20 "$WORK/stderr" | sed 's/^/    /'
      ok=0; FAILED=1; break
    fi
    echo "$secs $rss $cpu" >> "$WORK/$q-darkroom.times"
  done
  [ "$ok" = 1 ] || continue
  python3 - "$WORK" "$q" "$RUNS" <<'PY'
import csv, json, statistics, sys
sys.path.insert(0, "benches")
from funnel_ref import normalise
work, q, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = [line.split() for line in open(f"{work}/{q}-darkroom.times")]
results = []
for i in range(1, runs + 1):
    rows = list(csv.reader(open(f"{work}/{q}-darkroom-{i}.csv")))
    results.append(normalise(rows[1:]))
if any(r != results[0] for r in results):
    print("  darkroom: runs gave different results", file=sys.stderr)
secs = [float(t[0]) for t in times]
r = {"engine": "darkroom", "query": q, "runs": secs, "median": statistics.median(secs),
     "peak_rss_mb": round(max(int(t[1]) for t in times) / 1024), "result": results[0],
     "runs_differ": any(r != results[0] for r in results)}
json.dump(r, open(f"{work}/{q}-darkroom.json", "w"))
print(f"  darkroom  runs {' '.join(f'{t:.3f}' for t in secs)} s; median {r['median']:.3f} s "
      f"(CPU {statistics.median(float(t[2]) for t in times):.2f} s); "
      f"peak RSS {r['peak_rss_mb']} MiB (max over runs; whole process)")
PY
done

echo
python3 - "$WORK" "$SKIP_DR" <<'PY' || FAILED=1
import json, os, sys
work, skip_dr = sys.argv[1], sys.argv[2] == "1"
engines = ["chdb", "duckdb"] + ([] if skip_dr else ["darkroom"])


def load(q, e):
    p = f"{work}/{q}-{e}.json"
    return json.load(open(p)) if os.path.exists(p) else None


print("medians (seconds; chdb and duckdb: the query in a warm process; darkroom: the whole process)")
print(f"  {'query':16} {'chdb':>8} {'duckdb':>8} {'darkroom':>9} {'dr/chdb':>8} {'dr/duckdb':>9}"
      f"   peak RSS MiB chdb/duckdb/darkroom")
bad = False
for q in ("funnel", "funnel_platform", "dau"):
    r = {e: load(q, e) for e in ("chdb", "duckdb", "darkroom")}
    med = {e: (f"{r[e]['median']:.3f}" if r[e] else "-") for e in r}
    ratio = lambda a, b: f"{r[a]['median'] / r[b]['median']:.2f}x" if r[a] and r[b] else "-"
    rss = "/".join(str(r[e]["peak_rss_mb"]) if r[e] else "-" for e in r)
    print(f"  {q:16} {med['chdb']:>8} {med['duckdb']:>8} {med['darkroom']:>9} "
          f"{ratio('darkroom', 'chdb'):>8} {ratio('darkroom', 'duckdb'):>9}   {rss}")
print("  (dr/x: darkroom's time over x's; below 1 is darkroom faster)")
print()
for q in ("funnel", "funnel_platform", "dau"):
    r = {e: load(q, e) for e in engines}
    missing = [e for e in engines if r[e] is None]
    if missing:
        print(f"{q}: NOT CHECKED, no result from {', '.join(missing)}")
        bad = True
        continue
    ref = r["chdb"]["result"]
    differ = [e for e in engines if r[e]["result"] != ref or r[e].get("runs_differ")]
    if not differ:
        extra = f"; levels {ref}" if q == "funnel" else f"; {len(ref)} rows"
        print(f"{q}: identical results from {', '.join(engines)}{extra}")
        continue
    bad = True
    print(f"!!!!!!!! MISMATCH in {q}: the result of {', '.join(differ)} is not chdb's !!!!!!!!")
    for e in differ:
        if r[e].get("runs_differ"):
            print(f"  {e}: its runs gave different results")
        got, want = r[e]["result"], ref
        print(f"  {e}: {len(got)} rows, chdb {len(want)} rows; first differences:")
        shown = 0
        for row in sorted(set(map(tuple, got)) ^ set(map(tuple, want)), key=str):
            print(f"    {'only ' + e if list(row) in got else 'only chdb':>15}: {list(row)}")
            shown += 1
            if shown == 20:
                break
sys.exit(1 if bad else 0)
PY
if [ "$FAILED" = 1 ]; then
  echo "FAILED: see above" >&2
  exit 1
fi
