"""The non-dataknobs side of benches/pg_lineitem.sh, and its report.

DuckDB (its postgres extension from the PyPI package duckdb-ext-postgres), ConnectorX and psql
on the same PostgreSQL tables that the dataknobs bench (benches/pg_lineitem.rs) uses. Every
measurement runs in its own process, so peak RSS (ru_maxrss) belongs to that one tool.

  pg_compare.py run TOOL BENCH    one measurement; prints one JSON line
                                   {"engine","bench","seconds","runs","rss_mb","rows"}
      duckdb load        CREATE TABLE pg.<T>_duckdb AS SELECT * FROM read_parquet(...)
      psql load          \\copy <T>_copy FROM 'DIR/csv/lineitem.csv' (FORMAT csv, HEADER true)
      duckdb scan        the all-columns aggregate (SCAN below) over pg.<T>
      duckdb scan_arrow  SELECT * FROM pg.<T> streamed as Arrow record batches (not kept)
      connectorx scan_arrow   cx.read_sql(url, "SELECT * FROM <T>", return_type="arrow")
      connectorx_p2 scan_arrow  the same, partition_on="l_orderkey", partition_num=2
      psql_floor scan    PostgreSQL's own part of a scan: the same two ctid-range binary COPYs
                         the dataknobs scan sends, run by two psql \\copy to /dev/null at once
                         (a client that does nothing with the rows)
      psql filter        FILTER below, server round trip measured by psql's \\timing
      duckdb filter      FILTER below over pg.<T>
  pg_compare.py report RESULTS.jsonl   times, peak RSS, ratios dataknobs/other, targets

Environment: DK_BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/test), TPCH_DIR (the
directory with parquet/lineitem.parquet and csv/lineitem.csv), DK_BENCH_TABLE (lineitem_bench),
RUNS (per bench: load 1, scan 3, filter 5).
"""
import importlib.metadata
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import urllib.parse

URL = os.environ.get("DK_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
TABLE = os.environ.get("DK_BENCH_TABLE", "lineitem_bench")
DEFAULT_RUNS = {"load": 1, "scan": 3, "scan_arrow": 3, "filter": 5}

# Keep these identical to benches/pg_lineitem.rs ({T} = the table).
SCAN = ("SELECT count(*) AS n, max(l_orderkey), max(l_partkey), max(l_suppkey), "
        "max(l_linenumber), sum(l_quantity), sum(l_extendedprice), sum(l_discount), sum(l_tax), "
        "max(l_returnflag), max(l_linestatus), max(l_shipdate), max(l_commitdate), "
        "max(l_receiptdate), max(l_shipinstruct), max(l_shipmode), sum(length(l_comment)) "
        "FROM {T}")
FILTER = "SELECT * FROM {T} WHERE l_orderkey < 6000"

# The psql \copy target: the types dataknobs and DuckDB give the Parquet columns
# (int64 -> bigint, int32 -> integer, decimal(15,2) -> numeric(15,2), string -> text/varchar,
# date32 -> date).
COPY_DDL = """CREATE TABLE {T} (
  l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL,
  l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL,
  l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
  l_tax numeric(15,2) NOT NULL, l_returnflag text NOT NULL, l_linestatus text NOT NULL,
  l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
  l_shipinstruct text NOT NULL, l_shipmode text NOT NULL, l_comment text NOT NULL)"""


def runs_for(bench):
    return int(os.environ.get("RUNS") or DEFAULT_RUNS[bench])


def tpch_dir():
    d = os.environ.get("TPCH_DIR")
    if not d:
        sys.exit("TPCH_DIR is not set")
    return d


def psql(sql, *extra):
    """Runs SQL with psql (-X: no ~/.psqlrc, stop at the first error); returns stdout."""
    out = subprocess.run(["psql", URL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", *extra,
                          "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout


def libpq_keywords(url):
    """postgres://user:pw@host:port/db -> 'dbname=db host=host port=port user=user ...'."""
    u = urllib.parse.urlparse(url)
    kw = {"dbname": (u.path or "/").lstrip("/") or None, "host": u.hostname,
          "port": u.port, "user": urllib.parse.unquote(u.username) if u.username else None,
          "password": urllib.parse.unquote(u.password) if u.password else None}
    kw.update(urllib.parse.parse_qsl(u.query))
    return " ".join(f"{k}={v}" for k, v in kw.items() if v is not None)


def duckdb_postgres_extension():
    """The postgres extension file shipped by the duckdb-ext-postgres wheel."""
    import duckdb
    if os.environ.get("DK_DUCKDB_PG_EXT"):
        return os.environ["DK_DUCKDB_PG_EXT"]
    files = [f for f in importlib.metadata.files("duckdb-ext-postgres") or []
             if str(f).endswith("postgres_scanner.duckdb_extension")]
    wanted = [f for f in files if f"/v{duckdb.__version__}/" in str(f)]
    if not (wanted or files):
        sys.exit("duckdb-ext-postgres ships no postgres_scanner.duckdb_extension")
    if not wanted:
        print(f"warning: no postgres extension built for duckdb {duckdb.__version__}; "
              f"trying {files[0]}", file=sys.stderr)
    return str((wanted or files)[0].locate())


def duckdb_attached():
    """A DuckDB connection with the postgres extension loaded and PostgreSQL attached as pg."""
    import duckdb
    con = duckdb.connect(config={"allow_unsigned_extensions": "true",
                                 "autoinstall_known_extensions": "false"})
    con.execute(f"LOAD '{duckdb_postgres_extension()}'")
    con.execute(f"ATTACH '{libpq_keywords(URL)}' AS pg (TYPE postgres)")
    return con


def timed(fn, runs):
    """Median seconds of `runs` calls of fn (which returns a row count), and that count."""
    times, rows = [], None
    for _ in range(runs):
        start = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), rows


def rss_mb():
    """Peak RSS of this process and (separately) of its waited-for children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, kids


def run(tool, bench):
    runs = runs_for(bench)
    child_rss = False  # psql: report the psql process, not this Python
    if (tool, bench) == ("duckdb", "load"):
        t = f"{TABLE}_duckdb"
        path = os.path.join(tpch_dir(), "parquet", "lineitem.parquet")
        con = duckdb_attached()

        def load():
            psql(f"DROP TABLE IF EXISTS {t}")
            con.execute("CALL pg_clear_cache()")
            start = time.perf_counter()
            con.execute(f"CREATE TABLE pg.{t} AS SELECT * FROM read_parquet('{path}')")
            return time.perf_counter() - start

        secs = statistics.median(load() for _ in range(runs))
        rows = int(psql(f"SELECT count(*) FROM {t}"))
    elif (tool, bench) == ("psql", "load"):
        t = f"{TABLE}_copy"
        path = os.path.join(tpch_dir(), "csv", "lineitem.csv")
        child_rss = True
        times = []
        for _ in range(runs):
            psql(f"DROP TABLE IF EXISTS {t}")
            psql(COPY_DDL.format(T=t))
            start = time.perf_counter()
            out = subprocess.run(
                ["psql", URL, "-X", "-v", "ON_ERROR_STOP=1", "-c",
                 f"\\copy {t} FROM '{path}' WITH (FORMAT csv, HEADER true)"],
                check=True, capture_output=True, text=True).stdout
            times.append(time.perf_counter() - start)
        secs = statistics.median(times)
        rows = int(re.search(r"COPY (\d+)", out).group(1))
    elif (tool, bench) == ("duckdb", "scan"):
        con = duckdb_attached()
        sql = SCAN.replace("{T}", f"pg.{TABLE}")
        result = []

        def scan():
            result[:] = con.execute(sql).fetchall()
            return result[0][0]

        secs, rows = timed(scan, runs)
        print(f"duckdb scan result: {result}", file=sys.stderr)
    elif (tool, bench) == ("duckdb", "scan_arrow"):
        con = duckdb_attached()

        def scan():
            reader = con.execute(f"SELECT * FROM pg.{TABLE}").fetch_record_batch()
            return sum(b.num_rows for b in reader)

        secs, rows = timed(scan, runs)
    elif tool in ("connectorx", "connectorx_p2") and bench == "scan_arrow":
        import connectorx as cx
        url = URL.replace("postgres://", "postgresql://", 1)
        part = {"partition_on": "l_orderkey", "partition_num": 2} if tool == "connectorx_p2" else {}

        def scan():
            table = cx.read_sql(url, f"SELECT * FROM {TABLE}", return_type="arrow", **part)
            return table.num_rows

        secs, rows = timed(scan, runs)
    elif (tool, bench) == ("psql_floor", "scan"):
        child_rss = True
        pages = int(psql(f"SELECT pg_relation_size('{TABLE}') / 8192"))
        half = -(-pages // 2)
        ranges = [f"ctid < '({half},0)'::tid", f"ctid >= '({half},0)'::tid"]

        def scan():
            procs = [subprocess.Popen(
                ["psql", URL, "-X", "-v", "ON_ERROR_STOP=1", "-c",
                 f"\\copy (SELECT * FROM {TABLE} WHERE {r}) TO '/dev/null' WITH (FORMAT binary)"],
                stdout=subprocess.PIPE, text=True) for r in ranges]
            outs = [p.communicate()[0] for p in procs]
            if any(p.returncode for p in procs):
                sys.exit("psql \\copy failed")
            return sum(int(re.search(r"COPY (\d+)", o).group(1)) for o in outs)

        secs, rows = timed(scan, runs)
    elif (tool, bench) == ("psql", "filter"):
        child_rss = True
        sql = FILTER.replace("{T}", TABLE)
        script = "\\timing on\n\\o /dev/null\n" + f"{sql};\n" * runs
        out = subprocess.run(["psql", URL, "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=script,
                             check=True, capture_output=True, text=True).stdout
        times = [float(ms) / 1000 for ms in re.findall(r"^Time: ([\d.]+) ms", out, re.M)]
        assert len(times) == runs, out
        secs = statistics.median(times)
        rows = int(psql(f"SELECT count(*) FROM ({sql}) q"))
    elif (tool, bench) == ("duckdb", "filter"):
        con = duckdb_attached()
        sql = FILTER.replace("{T}", f"pg.{TABLE}")
        secs, rows = timed(lambda: con.execute(sql).fetch_arrow_table().num_rows, runs)
    else:
        sys.exit(f"unknown tool/bench: {tool} {bench}")
    own, kids = rss_mb()
    print(json.dumps({"engine": tool if (tool, bench) != ("psql", "load") else "psql_copy",
                      "bench": bench, "seconds": round(secs, 4), "runs": runs,
                      "rss_mb": round(kids if child_rss else own, 1), "rows": rows}))


# (bench, other engine) -> (target for dataknobs seconds / other seconds, strict?)
# The full-scan target (<= 0.9x DuckDB, <= 300 MB) names two forms, an aggregate that
# forces every column through and a projection of all columns into Arrow: both are reported.
TARGETS = {("load", "duckdb"): (1.0, False), ("load", "psql_copy"): (1.0, True),
           ("scan", "duckdb"): (0.9, False), ("scan_arrow", "duckdb"): (0.9, False),
           ("filter", "psql"): (1.2, False)}
RSS_TARGET_MB = {"scan": 300, "scan_arrow": 300}
BENCH_ORDER = ["load", "scan", "scan_arrow", "filter"]


def report(path):
    raw = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            raw.append(json.loads(line))
    # Several records of one engine and bench (load rounds): the median time, all runs, the
    # highest RSS; a failed round makes the whole result a failure.
    rows, seen = [], {}
    for r in raw:
        key = (r["bench"], r["engine"])
        if key not in seen:
            seen[key] = []
            rows.append(key)
        seen[key].append(r)
    merged = []
    for key in rows:
        group = seen[key]
        failed = [r for r in group if "seconds" not in r]
        if failed:
            merged.append(failed[0])
            continue
        m = dict(group[0])
        m["seconds"] = statistics.median(r["seconds"] for r in group)
        m["runs"] = sum(r["runs"] for r in group)
        m["rss_mb"] = max(r["rss_mb"] for r in group)
        if len(group) > 1:
            m["all"] = [round(r["seconds"], 2) for r in group]
        merged.append(m)
    rows = merged
    print()
    print(f"PostgreSQL benchmark, TPC-H lineitem, table {TABLE} "
          "(ratio = dataknobs seconds / that engine's seconds; < 1 means dataknobs is faster)")
    print(f"{'bench':11} {'engine':14} {'seconds':>9} {'runs':>4} {'rows':>9} {'peak RSS MB':>11} "
          f"{'dk/this':>8}  target")
    misses = []
    for bench in sorted({r["bench"] for r in rows},
                        key=lambda b: BENCH_ORDER.index(b) if b in BENCH_ORDER else 99):
        group = [r for r in rows if r["bench"] == bench]
        dk = next((r for r in group if r["engine"] == "dataknobs" and "seconds" in r), None)
        if not any(r["engine"] == "dataknobs" for r in group):
            misses.append(f"{bench}: no dataknobs result")
        for r in sorted(group, key=lambda r: r["engine"] != "dataknobs"):
            if "seconds" not in r:
                print(f"{bench:11} {r['engine']:14} FAILED {r.get('error', '')}")
                misses.append(f"{bench} {r['engine']} failed")
                continue
            ratio, target = "", ""
            if r is not dk and dk:
                q = dk["seconds"] / r["seconds"]
                ratio = f"{q:8.2f}"
                if (bench, r["engine"]) in TARGETS:
                    limit, strict = TARGETS[(bench, r["engine"])]
                    ok = q < limit if strict else q <= limit
                    target = f"{'<' if strict else '<='} {limit}x {'ok' if ok else 'MISSED'}"
                    if not ok:
                        misses.append(f"{bench}: dataknobs/{r['engine']} = {q:.2f} "
                                      f"(target {'<' if strict else '<='} {limit})")
            if r is dk and bench in RSS_TARGET_MB:
                ok = r["rss_mb"] <= RSS_TARGET_MB[bench]
                target = f"RSS <= {RSS_TARGET_MB[bench]} MB {'ok' if ok else 'MISSED'}"
                if not ok:
                    misses.append(f"{bench}: dataknobs peak RSS {r['rss_mb']} MB "
                                  f"(target <= {RSS_TARGET_MB[bench]})")
            print(f"{bench:11} {r['engine']:14} {r['seconds']:9.3f} {r['runs']:4} "
                  f"{r.get('rows', ''):>9} {r['rss_mb']:11.0f} {ratio:>8}  {target}"
                  + (f"  (runs: {r['all']})" if "all" in r else ""))
        floor = next((r for r in group if r["engine"] == "psql_floor" and "seconds" in r), None)
        duck = next((r for r in group if r["engine"] == "duckdb" and "seconds" in r), None)
        if floor and duck:
            print(f"{'':11} psql_floor (PostgreSQL's COPY output with the thinnest client: libpq and "
                  f"TLS, no decoding) takes {floor['seconds'] / duck['seconds']:.2f}x DuckDB's time")
        counts = {r.get("rows") for r in group if "seconds" in r}
        if len(counts) > 1:
            misses.append(f"{bench}: the engines disagree on the row count: {sorted(counts)}")
    print()
    # The loaded tables' column types: a load comparison is only fair when they match.
    try:
        out = psql("SELECT table_name, string_agg(CASE WHEN data_type = 'character varying' "
                   "THEN 'text' ELSE data_type END || CASE WHEN data_type = 'numeric' THEN "
                   "coalesce('(' || numeric_precision || ',' || numeric_scale || ')', '') "
                   "ELSE '' END, ', ' ORDER BY ordinal_position) "
                   "FROM information_schema.columns WHERE table_schema = 'public' AND "
                   f"table_name IN ('{TABLE}', '{TABLE}_duckdb', '{TABLE}_copy') "
                   "GROUP BY table_name ORDER BY table_name")
        types = dict(line.split("|", 1) for line in out.splitlines() if "|" in line)
        for name, sig in types.items():
            print(f"columns of {name}: {sig}")
        if len(set(types.values())) > 1:
            misses.append("the loaded tables have different column types (see above)")
    except subprocess.CalledProcessError as e:
        print(f"(could not read the column types: {e.stderr.strip()})")
    print()
    print("all targets met" if not misses else "NOT MET:\n  " + "\n  ".join(misses))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "report":
        report(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
