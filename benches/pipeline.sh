#!/usr/bin/env bash
# Orchestrator overhead: planning a 365-day backfill of the demo project (every task, every
# date) and answering `darkroom status`.
#
#   benches/pipeline.sh [--runs 7] [--bin path/to/release/darkroom] [--days 365] [--users 6000]
#
# Generates a demo company of DAYS days (--no-run), then times, RUNS times each:
#   1. `backfill --dry-run` on the fresh project: every task is planned as new (its log
#      files listed and fingerprinted, every model's date fingerprints computed);
#   2. after one real backfill of every date: `backfill --dry-run` again (every task found
#      done in the index of completions) — the overhead a resumed or repeated backfill pays;
#   3. `darkroom status` on that project.
# Prints every run and the medians. The figures are wall-clock times of the whole process
# (start-up, loading the project and models, planning, printing the JSON).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=7; BIN=""; DAYS=365; USERS=6000
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --days) DAYS="$2"; shift 2 ;;
    --users) USERS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN" ]; then
  cargo build --release -p darkroom
  BIN="${CARGO_TARGET_DIR:-target}/release/darkroom"
fi
BIN=$(realpath "$BIN")
WORK=$(mktemp -d /tmp/darkroom-bench-pipeline-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
dir="$WORK/demo"
"$BIN" demo "$dir" --days "$DAYS" --users "$USERS" --no-run --json > /dev/null
first=$(python3 -c "import json; print(json.load(open('$dir/truth/summary.json'))['start'])")
last=$(python3 -c "import json; print(json.load(open('$dir/truth/summary.json'))['end'])")
echo "demo: $DAYS days ($first to $last), $USERS users"

time_runs() { # label, command...
  local label="$1"; shift
  local times=()
  for run in $(seq "$RUNS"); do
    s=$(date +%s.%N)
    "$@" > "$WORK/out.json"
    e=$(date +%s.%N)
    times+=("$(echo "$e - $s" | bc)")
  done
  local med
  med=$(printf '%s\n' "${times[@]}" | median)
  echo "$label: runs ${times[*]} s; median $med s" >&2
  echo "$med"
}

plan() { "$BIN" -C "$dir" backfill --from "$first" --to "$last" --dry-run --json; }
fresh=$(time_runs "plan, fresh project" plan)
python3 - "$WORK/out.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"  {len(p['tasks'])} tasks planned, {p['to_run']} to run, {p['done']} done; "
      f"planning alone (as the command measures it) {p['plan_seconds']:.3f} s")
PY

"$BIN" -C "$dir" extract --date "$last" --json > /dev/null
s=$(date +%s.%N)
"$BIN" -C "$dir" backfill --from "$first" --to "$last" --json > "$WORK/backfill.json"
e=$(date +%s.%N)
python3 - "$WORK/backfill.json" "$(echo "$e - $s" | bc)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"one backfill of every date: {float(sys.argv[2]):.1f} s, ok={r['ok']}, "
      + ", ".join(f"{k}: {v['tasks']}" for k, v in r["stages"].items()))
PY
done_plan=$(time_runs "plan, every task done" plan)
python3 - "$WORK/out.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"  {len(p['tasks'])} tasks planned, {p['to_run']} to run, {p['done']} done; "
      f"planning alone {p['plan_seconds']:.3f} s")
PY
status() { "$BIN" -C "$dir" status --json; }
st=$(time_runs "status" status)
echo
echo "medians: plan fresh $fresh s, plan all done $done_plan s, status $st s (targets: < 1 s, < 1 s, < 0.2 s)"
