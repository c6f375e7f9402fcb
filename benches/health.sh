#!/usr/bin/env bash
# Checks and monitors for one night of the default demo: the time of `darkroom health
# --recheck --date LAST` (every declared check and reconciliation, every monitor, incidents
# and alerts; nothing published) on the default demo company (90 days, 20,000 users), built
# once with `darkroom demo` and kept in ${DARKROOM_BENCH_DATA:-/tmp/darkroom-bench-health}.
#
#   benches/health.sh [--runs 5] [--bin path/to/release/darkroom]
#
# Prints every run (wall time, peak memory) and the median. Target: under 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=5; BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN="${BIN:-${CARGO_TARGET_DIR:-target}/release/darkroom}"
if [ ! -x "$BIN" ]; then
  echo "no darkroom binary at $BIN: cargo build --release -p darkroom, or pass --bin PATH" >&2
  exit 2
fi
DIR="${DARKROOM_BENCH_DATA:-/tmp/darkroom-bench-health}"
if [ ! -f "$DIR/truth/summary.json" ] || [ ! -d "$DIR/warehouse" ]; then
  echo "building the default demo in $DIR (generate and run the pipeline: a few minutes)"
  "$BIN" demo "$DIR" >/dev/null
fi
LAST=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['end'])" "$DIR/truth/summary.json")
echo "night $LAST of the default demo in $DIR"
times=()
for i in $(seq 1 "$RUNS"); do
  out=$( { /usr/bin/time -f "%e %M" "$BIN" -C "$DIR" health --recheck --date "$LAST" >/dev/null || true; } 2>&1 | tail -1 )
  secs=${out% *}; kb=${out#* }
  echo "run $i: ${secs} s, max RSS $((kb / 1024)) MiB"
  times+=("$secs")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')
echo "median: ${median} s (target: under 5 s)"
