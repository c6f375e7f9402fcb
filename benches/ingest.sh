#!/usr/bin/env bash
# Whole-path ingest benchmark: Darkroom (read, parse, write Delta/Parquet zstd) against DuckDB
# (regexp_extract or string_split into the same columns, Parquet zstd), side by side, one core.
#
#   benches/ingest.sh [--mb 2048] [--runs 3] [--bin path/to/release/darkroom]
#
# Prints MB/s, lines/s and peak memory (max RSS) per run and the medians; checks that both
# produce the same number of rows and the same digest of the parsed columns.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=2048; RUNS=3; BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mb) MB="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN" ]; then
  cargo build --release -p darkroom
  BIN="${CARGO_TARGET_DIR:-target}/release/darkroom"
fi
python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install --quiet duckdb
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

DATA=bench-data
LOG="$DATA/logs/bench-1/access-2026-03-01.log"
mkdir -p "$DATA/logs/bench-1"
if [ ! -f "$LOG" ] || [ "$(stat -c %s "$LOG")" -lt $((MB * 1024 * 1024)) ]; then
  echo "generating a ${MB} MiB combined log (once)..."
  python3 benches/gen_nginx_log.py "$LOG" --mb "$MB"
fi
BYTES=$(stat -c %s "$LOG")
LINES=$(wc -l < "$LOG")
echo "input: $LOG, $BYTES bytes, $LINES lines"

PROJECT="$DATA/project"
mkdir -p "$PROJECT"
cat > "$PROJECT/darkroom.toml" <<TOML
[project]
name = "bench"
timezone = "UTC"
[warehouse]
location = "warehouse"
[[sources]]
name = "bench"
kind = "nginx"
path = "../logs/{host}/access-{date}.log"
format = "combined"
TOML

measure() { # label, command... -> prints "seconds maxrss_kb"
  local out
  out=$( { /usr/bin/time -f "TIME %e %M" taskset -c 0 "$@" > /dev/null; } 2>&1 | grep '^TIME' )
  echo "${out#TIME }"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

report() { # label bytes lines secs rss
  python3 - "$@" <<'PY'
import sys; n, b, l, s, r = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"  {n:16} {s:7.2f}s  {b/s/1e6:7.1f} MB/s  {l/s/1e6:5.2f} M lines/s  peak RSS {r/1024:6.0f} MiB")
PY
}

# The three contenders run in turn within each round, so a noisy spell on the shared machine
# hits all of them rather than one.
: > "$DATA/dr.times"; : > "$DATA/duck-regexp.times"; : > "$DATA/duck-split.times"
for i in $(seq "$RUNS"); do
  echo
  echo "round $i (each pinned to one core / one thread):"
  rm -rf "$PROJECT/warehouse"
  read -r secs rss < <(measure "$BIN" -C "$PROJECT" ingest bench --date 2026-03-01 --json)
  report "darkroom ingest" "$BYTES" "$LINES" "$secs" "$rss"
  echo "$secs $rss" >> "$DATA/dr.times"
  for method in regexp split; do
    rm -f "$DATA/duck-$method.parquet"
    read -r secs rss < <(measure python3 benches/duckdb_ingest.py "$LOG" "$DATA/duck-$method.parquet" --threads 1 --method "$method")
    report "duckdb $method" "$BYTES" "$LINES" "$secs" "$rss"
    echo "$secs $rss" >> "$DATA/duck-$method.times"
  done
done

echo
echo "same rows, same parsed values?"
python3 benches/compare_outputs.py "$PROJECT/warehouse/raw_bench" "$DATA/duck-regexp.parquet" "$DATA/duck-split.parquet"

dr=$(cut -d' ' -f1 "$DATA/dr.times" | median)
drm=$(cut -d' ' -f2 "$DATA/dr.times" | sort -n | tail -1)
python3 - "$BYTES" "$LINES" "$dr" "$drm" "$DATA" <<'PY'
import sys, statistics, os
b, l, dr, drm, data = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
print()
print(f"darkroom median: {dr:.2f}s = {b/dr/1e6:.1f} MB/s, {l/dr/1e6:.2f} M lines/s; peak RSS {drm/1024:.0f} MiB")
for m in ("regexp", "split"):
    p = os.path.join(data, f"duck-{m}.times")
    t = statistics.median(float(x.split()[0]) for x in open(p))
    rounds = [float(x.split()[0]) for x in open(p)]
    ours = [float(x.split()[0]) for x in open(os.path.join(data, "dr.times"))]
    per_round = sorted(d / o for d, o in zip(rounds, ours))
    print(f"duckdb {m} median: {t:.2f}s = {b/t/1e6:.1f} MB/s; darkroom is {t/dr:.2f}x faster "
          f"(per round: {', '.join(f'{r:.2f}x' for r in per_round)}; median {statistics.median(per_round):.2f}x)")
PY
