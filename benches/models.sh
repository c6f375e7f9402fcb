#!/usr/bin/env bash
# SQL models benchmark: rebuilding one day of every demo model, and how that cost grows with
# history.
#
#   benches/models.sh [--runs 3] [--bin path/to/release/darkroom]
#                     [--days "30:27000 365:81030"] [--users-per-day 222]
#
# For each history length (DAYS, or DAYS:USERS; USERS defaults to DAYS x --users-per-day) it
# generates a demo company, runs `darkroom demo` (which ingests, extracts and builds every
# date once), then times `darkroom build --date LAST`
# (every model for the last day: incremental partitions, the identity map, the SCD2 snapshot,
# the dimensions) RUNS times. Prints each run, the median, the day's input rows (touches) and
# the ratio of the longest history's median to the shortest's. Members accumulate, so the
# last day of a long history holds more data than that of a short one with the same users
# per day: the defaults give both last days about 156,000 touches, so the ratio compares the
# same day's data on top of 30 and 365 days of history.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3; BIN=""; DAYS="30:27000 365:81030"; PER_DAY=222
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --days) DAYS="$2"; shift 2 ;;
    --users-per-day) PER_DAY="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN" ]; then
  cargo build --release -p darkroom
  BIN="${CARGO_TARGET_DIR:-target}/release/darkroom"
fi
BIN=$(realpath "$BIN")
WORK=$(mktemp -d /tmp/darkroom-bench-models-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
declare -A MED ROWS ALONE
for entry in $DAYS; do
  days=${entry%%:*}
  users=${entry#*:}
  [ "$users" = "$entry" ] && users=$((days * PER_DAY))
  dir="$WORK/d$days"
  t0=$(date +%s.%N)
  "$BIN" demo "$dir" --days "$days" --users "$users" --json > "$WORK/demo$days.json"
  t1=$(date +%s.%N)
  last=$(python3 -c "import json; print(json.load(open('$dir/truth/summary.json'))['end'])")
  rows=$("$BIN" -C "$dir" query --format csv "SELECT count(*) FROM int_touches_resolved WHERE event_date = DATE '$last'" | tail -1)
  echo "history $days days ($users users): demo (generate, ingest, extract, build all) $(echo "$t1 - $t0" | bc) s; $rows touches on $last"
  times=()
  for run in $(seq "$RUNS"); do
    s=$(date +%s.%N)
    "$BIN" -C "$dir" build --date "$last" --json > "$WORK/build.json"
    e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc)
    times+=("$t")
    python3 - "$WORK/build.json" "$run" "$t" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
failed = [m["model"] for m in r["models"] if m["status"] != "built"]
slow = sorted(r["models"], key=lambda m: -m["seconds"])[:3]
print(f"  run {sys.argv[2]}: {float(sys.argv[3]):.2f} s, {len(r['models'])} models"
      + (f", FAILED {failed}" if failed else "")
      + "; slowest: " + ", ".join(f"{m['model']} {m['seconds']:.2f}s" for m in slow))
PY
  done
  # the same day without re-attribution (identity_lookback_days=0): the day's own work and
  # the tables rebuilt whole (identity map, dimensions), without the earlier days a first
  # sign-in re-attributes (a 30-day window whose size depends on the company's growth)
  alone=()
  for run in $(seq "$RUNS"); do
    s=$(date +%s.%N)
    "$BIN" -C "$dir" build --date "$last" --var identity_lookback_days=0 --json > "$WORK/build0.json"
    e=$(date +%s.%N)
    alone+=("$(echo "$e - $s" | bc)")
  done
  ALONE[$days]=$(printf '%s\n' "${alone[@]}" | median)
  echo "  without re-attribution: ${alone[*]} s, median ${ALONE[$days]} s"
  MED[$days]=$(printf '%s\n' "${times[@]}" | median)
  ROWS[$days]=$rows
  echo "  median one-day rebuild: ${MED[$days]} s ($(echo "scale=3; ${MED[$days]} * 100000 / $rows" | bc) s per 100k touches of the day)"
done
first=$(echo $DAYS | awk '{print $1}'); first=${first%%:*}
last=$(echo $DAYS | awk '{print $NF}'); last=${last%%:*}
if [ "$first" != "$last" ]; then
  echo "ratio ${last}-day / ${first}-day history: $(echo "scale=2; ${MED[$last]} / ${MED[$first]}" | bc) as measured;" \
       "$(printf '%.2f' "$(echo "scale=12; (${MED[$last]} / ${ROWS[$last]}) / (${MED[$first]} / ${ROWS[$first]})" | bc)")" \
       "per touch of the day (target <= 1.5; compare histories whose last day holds about the" \
       "same touches: --users-per-day sets the size)"
  echo "ratio without re-attribution: $(printf '%.2f' "$(echo "scale=12; ${ALONE[$last]} / ${ALONE[$first]}" | bc)")"
fi
