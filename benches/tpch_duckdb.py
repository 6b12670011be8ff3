"""DuckDB on the same TPC-H files, then a table of ratios with the Rust results."""
import json, statistics, sys, time

import duckdb

Q1 = """SELECT l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice),
 sum(l_extendedprice * (1 - l_discount)), sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)),
 avg(l_quantity), avg(l_extendedprice), avg(l_discount), count(*) FROM {T}
 WHERE l_shipdate <= DATE '1998-12-01' - INTERVAL '90' DAY
 GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"""
Q6 = """SELECT sum(l_extendedprice * l_discount) FROM {T}
 WHERE l_shipdate >= DATE '1994-01-01' AND l_shipdate < DATE '1995-01-01'
 AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24"""

d, rust = sys.argv[1], sys.argv[2]
runs = 5
con = duckdb.connect()
src = {"parquet": f"read_parquet('{d}/parquet/lineitem.parquet')",
       "csv": f"read_csv('{d}/csv/lineitem.csv', header=true)"}
duck = {}
for fmt, t in src.items():
    for name, q in (("q1", Q1), ("q6", Q6)):
        sql = q.replace("{T}", t)
        con.execute(sql).fetchall()
        times = []
        for _ in range(runs):
            s = time.perf_counter(); con.execute(sql).fetchall(); times.append(time.perf_counter() - s)
        duck[(fmt, name)] = statistics.median(times)
# Rust rows: one per (format, variant, query); variant "default" = DataFusion defaults,
# "tuned" = Parquet filter pushdown + reordering (DuckDB always runs with its defaults).
print(f"{'format':8} {'variant':8} {'query':5} {'DataFusion':>10} {'dataknobs':>10} {'DuckDB':>8} "
      f"{'dk/DF':>6} {'DF/DuckDB':>9} {'dk/DuckDB':>9}")
for line in open(rust):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    k = (r["format"], r["query"])
    print(f"{r['format']:8} {r.get('variant', 'default'):8} {r['query']:5} {r['datafusion_s']:10.3f} "
          f"{r['dataknobs_s']:10.3f} {duck[k]:8.3f} {r['ratio']:6.2f} "
          f"{r['datafusion_s'] / duck[k]:9.2f} {r['dataknobs_s'] / duck[k]:9.2f}")
