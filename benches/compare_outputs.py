#!/usr/bin/env python3
"""Check that Darkroom's raw table and DuckDB's Parquet hold the same rows and values.

    python3 benches/compare_outputs.py DELTA_TABLE_DIR DUCK.parquet [MORE.parquet...]

Counts rows and computes an order-independent digest (sum and xor of a hash) of the parsed
columns in each; exits 1 if any differs from Darkroom's.
"""
import glob, json, os, sys
from urllib.parse import unquote
import duckdb

COLS = ("remote_addr, remote_user, epoch_us(event_ts), event_date, request_method, request_path, "
        "request_protocol, status, body_bytes_sent, http_referer, http_user_agent, line")


def digest(con, source):
    sql = f"SELECT count(*), sum(hash({COLS})::HUGEINT), bit_xor(hash({COLS})) FROM {source}"
    return con.execute(sql).fetchone()


def active_files(table):
    """The data files of a Delta table's latest version (adds minus removes, in log order);
    files replaced by a later overwrite stay on disk until vacuum and must not be read."""
    files = {}
    for log in sorted(glob.glob(os.path.join(table, "_delta_log", "*.json"))):
        for line in open(log):
            action = json.loads(line)
            if "add" in action:
                files[action["add"]["path"]] = True
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    return [os.path.join(table, unquote(p)) for p in files]


def main():
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    table = sys.argv[1]
    paths = ", ".join(f"'{p}'" for p in active_files(table))
    ours = digest(con, f"read_parquet([{paths}])")
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
