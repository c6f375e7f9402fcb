#!/usr/bin/env python3
"""DuckDB's side of the ingest benchmark: parse an nginx combined log into the same columns
and types Darkroom writes, and write Parquet with the same zstd level.

    python3 benches/duckdb_ingest.py LOG OUT.parquet [--threads 1] [--method regexp|split]

DuckDB's fastest plain-SQL ways to parse such a log: one `regexp_extract` with named groups,
or `string_split` on spaces and quotes. Both are here; the bench script runs both and keeps
the faster. Columns out (as in raw_<source>): remote_addr, remote_user, event_ts (UTC),
event_date, request_method, request_path, request_protocol, status (INT32),
body_bytes_sent (INT64), http_referer, http_user_agent, line, host, file, file_date.
"""
import argparse, time
import duckdb

ZSTD_LEVEL = 1  # darkroom-storage ZSTD_LEVEL

REGEXP = r'^(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+) (\S+)" (\d+) (\S+) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("log")
    ap.add_argument("out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--method", choices=["regexp", "split"], default="regexp")
    a = ap.parse_args()
    con = duckdb.connect()
    con.execute(f"SET threads = {a.threads}")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")
    lines = (f"SELECT column0 AS l, row_number() OVER () AS line FROM read_csv('{a.log}', "
             "columns = {'column0': 'VARCHAR'}, delim = '\\x01', quote = '', escape = '', "
             "header = false, auto_detect = false, strict_mode = false)")
    if a.method == "regexp":
        names = "['addr','user','ts','method','path','proto','status','bytes','ref','ua']"
        parsed = (f"SELECT line, regexp_extract(l, '{REGEXP}', {names}) AS m FROM ({lines})")
        cols = """
            m.addr AS remote_addr, NULLIF(m.user, '-') AS remote_user,
            strptime(m.ts, '%d/%b/%Y:%H:%M:%S %z') AS event_ts,
            m.method AS request_method, m.path AS request_path, m.proto AS request_protocol,
            CAST(m.status AS INTEGER) AS status, TRY_CAST(m.bytes AS BIGINT) AS body_bytes_sent,
            NULLIF(replace(m.ref, '\\"', '"'), '-') AS http_referer,
            NULLIF(replace(m.ua, '\\"', '"'), '-') AS http_user_agent"""
    else:
        # split on '"': 0 = addr/user/[ts], 1 = request, 2 = status bytes, 3 = referer, 5 = UA
        parsed = f"SELECT line, string_split(l, '\"') AS q FROM ({lines})"
        cols = """
            split_part(q[1], ' ', 1) AS remote_addr, NULLIF(split_part(q[1], ' ', 3), '-') AS remote_user,
            strptime(substr(q[1], strpos(q[1], '[') + 1, 26), '%d/%b/%Y:%H:%M:%S %z') AS event_ts,
            split_part(q[2], ' ', 1) AS request_method, split_part(q[2], ' ', 2) AS request_path,
            split_part(q[2], ' ', 3) AS request_protocol,
            CAST(split_part(trim(q[3]), ' ', 1) AS INTEGER) AS status,
            TRY_CAST(split_part(trim(q[3]), ' ', 2) AS BIGINT) AS body_bytes_sent,
            NULLIF(q[4], '-') AS http_referer, NULLIF(replace(array_to_string(q[6:-2], '\"'), '\\"', '"'), '-') AS http_user_agent"""
    sql = f"""
        COPY (
          SELECT remote_addr, remote_user, event_ts, CAST(event_ts AS DATE) AS event_date,
                 request_method, request_path, request_protocol, status, body_bytes_sent,
                 http_referer, http_user_agent, line, 'bench-1' AS host, '{a.log}' AS file,
                 DATE '2026-03-01' AS file_date
          FROM (SELECT line, {cols} FROM ({parsed}))
        ) TO '{a.out}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {ZSTD_LEVEL})"""
    t = time.perf_counter()
    con.execute(sql)
    print(f"{time.perf_counter() - t:.3f}")


if __name__ == "__main__":
    main()
