#!/usr/bin/env bash
# Database extraction benchmark: a 10-million-row table of mixed types in a local PostgreSQL,
# copied by `darkroom extract` (binary COPY decoded into Arrow, written as Delta/Parquet zstd)
# against `psql -c "\copy (SELECT ...) TO '/dev/null' (FORMAT binary)"`, side by side.
#
#   benches/extract.sh [--rows 10000000] [--runs 3] [--bin path/to/release/darkroom]
#
# Starts its own PostgreSQL (from the Debian package, as the postgres user when run as root)
# on a free port in a temporary folder, builds the table once, then prints seconds, rows/s
# and peak memory (max RSS) per run, the medians and the ratio. Stops the server at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=10000000; RUNS=3; BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN" ]; then
  cargo build --release -p darkroom
  BIN="${CARGO_TARGET_DIR:-target}/release/darkroom"
fi
BIN=$(realpath "$BIN")
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
scripts/test-services install >/dev/null

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
WORK=$(mktemp -d /tmp/darkroom-bench-pg-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$WORK/data" -A trust -U darkroom -E UTF8 --locale=C --no-sync >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w \
  -o "-p $PORT -k $WORK -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=512MB" start >/dev/null
URL="postgres://darkroom@127.0.0.1:$PORT/postgres"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$URL")

echo "building a $ROWS-row table of mixed types (once)..."
"${PSQL[@]}" <<SQL
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  user_id integer NOT NULL,
  quantity smallint NOT NULL,
  amount numeric(12,2) NOT NULL,
  ratio double precision,
  paid boolean NOT NULL,
  status text NOT NULL,
  note text,
  created_at timestamptz NOT NULL,
  ship_date date,
  token uuid NOT NULL
);
INSERT INTO orders
SELECT g, ((g * 7919) % 1000000)::int, (g % 20)::smallint, ((g % 100000) / 100.0)::numeric(12,2),
       CASE WHEN g % 10 = 0 THEN NULL ELSE (g % 1000) / 7.0 END, g % 3 = 0,
       (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
       CASE WHEN g % 5 = 0 THEN 'gift wrap, leave at the door #' || g ELSE NULL END,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '3 seconds',
       date '2026-01-01' + (g % 365)::int,
       md5(g::text)::uuid
  FROM generate_series(1::bigint, $ROWS) g;
VACUUM ANALYZE orders;
SQL
SIZE=$("${PSQL[@]}" -tAc "SELECT pg_size_pretty(pg_table_size('orders'))")
echo "table: orders, $ROWS rows, $SIZE on disk"

PROJECT="$WORK/project"
mkdir -p "$PROJECT"
cat > "$PROJECT/darkroom.toml" <<TOML
[project]
name = "bench"
[warehouse]
location = "warehouse"
[[sources]]
name = "pg"
kind = "postgres"
url = "$URL"
[[sources.tables]]
name = "orders"
TOML

measure() { # command... -> "seconds maxrss_kb"
  local out
  out=$( { /usr/bin/time -f "TIME %e %M" "$@" > /dev/null; } 2>&1 | grep '^TIME' )
  echo "${out#TIME }"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

COLS="id, user_id, quantity, amount, ratio, paid, status, note, created_at, ship_date, token"
psql_times=(); dr_times=(); dr_rss=()
for run in $(seq 1 "$RUNS"); do
  read -r t _ < <(measure "${PSQL[@]}" -c "\\copy (SELECT $COLS FROM orders) TO '/dev/null' (FORMAT binary)")
  psql_times+=("$t")
  read -r t rss < <(measure "$BIN" -C "$PROJECT" extract pg --json)
  dr_times+=("$t"); dr_rss+=("$rss")
  printf 'run %d: psql \\copy binary %6.2f s   darkroom extract %6.2f s (%d MiB max RSS)\n' \
    "$run" "${psql_times[-1]}" "$t" $((rss / 1024))
done
got=$("$BIN" -C "$PROJECT" query --format csv "SELECT count(*) FROM raw_pg_orders" | tail -1)
[ "$got" = "$ROWS" ] || { echo "darkroom wrote $got rows, expected $ROWS" >&2; exit 1; }
P=$(printf '%s\n' "${psql_times[@]}" | median)
D=$(printf '%s\n' "${dr_times[@]}" | median)
R=$(printf '%s\n' "${dr_rss[@]}" | median)
echo
printf 'median: psql %.2f s (%.0f rows/s), darkroom %.2f s (%.0f rows/s), max RSS %d MiB\n' \
  "$P" "$(echo "$ROWS / $P" | bc -l)" "$D" "$(echo "$ROWS / $D" | bc -l)" $((R / 1024))
printf 'darkroom speed / psql speed: %.2f (target >= 0.50)\n' "$(echo "$P / $D" | bc -l)"
