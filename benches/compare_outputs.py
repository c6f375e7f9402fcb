#!/usr/bin/env python3
"""Check that Darkroom's raw table and DuckDB's Parquet hold the same rows and values.

    python3 benches/compare_outputs.py DELTA_TABLE_DIR DUCK.parquet [MORE.parquet...]

Counts rows and computes an order-independent digest (sum and xor of a hash) of the parsed
columns in each; exits 1 if any differs from Darkroom's.
"""
import sys
import duckdb

COLS = ("remote_addr, remote_user, epoch_us(event_ts), event_date, request_method, request_path, "
        "request_protocol, status, body_bytes_sent, http_referer, http_user_agent, line")


def digest(con, source):
    sql = f"SELECT count(*), sum(hash({COLS})::HUGEINT), bit_xor(hash({COLS})) FROM {source}"
    return con.execute(sql).fetchone()


def main():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table = sys.argv[1]
    ours = digest(con, f"read_parquet('{table}/**/*.parquet')")
    print(f"  darkroom: {ours[0]} rows, digest {ours[1]} / {ours[2]}")
    ok = True
    for p in sys.argv[2:]:
        theirs = digest(con, f"read_parquet('{p}')")
        same = theirs == ours
        ok &= same
        print(f"  {p}: {theirs[0]} rows, digest {theirs[1]} / {theirs[2]} -> {'same' if same else 'DIFFERENT'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
