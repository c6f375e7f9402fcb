#!/usr/bin/env python3
"""The reference engines of the funnel benchmark: one query over the Parquet event log with
ClickHouse (chdb, in-process) or DuckDB, timed.

    python3 benches/funnel_ref.py FILE --engine chdb|duckdb --query funnel|funnel_platform|dau
                                  [--threads 2] [--runs 5]

The SQL is benches/funnel_queries/{engine}_{query}.sql, with {file} (the path, quoted as an
SQL string) and {threads} filled in. Every run queries the file itself (nothing is loaded
into tables; DuckDB gets a fresh in-memory database each run), and the time of a run is the
query and the fetch of its rows. Prints one JSON line:
  {"engine", "query", "threads", "runs": [seconds...], "median", "cpu": [user+sys seconds of
   the process per run...], "rss_base_mb" (after import), "peak_rss_mb" (the process, over
   all runs), "result": [[row values...]...]}
with the rows sorted, dates as 'YYYY-MM-DD' and numbers as numbers, so that the results of
different engines compare as JSON.
"""
import argparse, csv, io, json, os, resource, statistics, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
QUERIES = ("funnel", "funnel_platform", "dau")


def load_sql(engine, query, file, threads):
    with open(os.path.join(HERE, "funnel_queries", f"{engine}_{query}.sql")) as f:
        sql = f.read()
    return sql.replace("{file}", file.replace("'", "''")).replace("{threads}", str(threads))


def normalise(rows):
    """Values as JSON-comparable: ints as ints, everything else as its text; rows sorted."""
    out = []
    for row in rows:
        vals = []
        for v in row:
            if isinstance(v, bool):
                v = int(v)
            if isinstance(v, (int, float)):
                vals.append(int(v) if float(v).is_integer() else v)
                continue
            s = str(v)
            try:
                vals.append(int(s))
            except ValueError:
                vals.append(s)
        out.append(vals)
    return sorted(out, key=lambda r: [(0, x) if isinstance(x, (int, float)) else (1, x) for x in r])


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--engine", choices=["chdb", "duckdb"], required=True)
    ap.add_argument("--query", choices=QUERIES, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    file = os.path.abspath(a.file)
    sql = load_sql(a.engine, a.query, file, a.threads)

    if a.engine == "chdb":
        import chdb

        def run():
            text = chdb.query(sql, "CSV").bytes().decode()
            return list(csv.reader(io.StringIO(text)))
    else:
        import duckdb

        def run():
            con = duckdb.connect(":memory:")
            con.execute(f"SET threads = {a.threads}")
            con.execute("SET TimeZone = 'UTC'")
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()

    rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpus, result = [], [], None
    for _ in range(a.runs):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        rows = run()
        times.append(round(time.perf_counter() - t0, 4))
        cpus.append(round(cpu_seconds() - c0, 3))
        rows = normalise(rows)
        if result is not None and rows != result:
            print(f"{a.engine} {a.query}: runs gave different results", file=sys.stderr)
            sys.exit(1)
        result = rows
    print(json.dumps({
        "engine": a.engine,
        "query": a.query,
        "threads": a.threads,
        "runs": times,
        "median": statistics.median(times),
        "cpu": cpus,
        "rss_base_mb": round(rss_base / 1024),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "result": result,
    }))


if __name__ == "__main__":
    main()
