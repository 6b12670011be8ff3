"""The PostgreSQL server's own bound for the postgres rows of benches/records.sh: the same
records (`{id: uuid, name, age, city}`, N = PG_RECORDS, default 10000) in a fresh table of the
same shape `(id TEXT PRIMARY KEY, name TEXT, age BIGINT, city TEXT)`, written and searched by
psycopg2 with no record handling at all:
  batch:  one `COPY … FROM STDIN (FORMAT csv)` of N records and its COMMIT (the records of the
          single-create phase are in the table first, loaded the same way, not timed);
  search: `COPY (SELECT … WHERE age > 50 AND city = 'Oslo') TO STDOUT (FORMAT binary)` over the
          2N records, its bytes discarded; median of SEARCHES (5).
A client cannot do a row faster than the server does it alone, so `bound ÷ seed` is the
largest ratio any client can show on this machine in that run.
Prints JSON lines like benches/records.rs ("engine": "server bound"). Needs psycopg2 (the
seed's virtualenv has it). DK_BENCH_POSTGRES_URL as libpq takes it; ROUND for the output.
"""
import io
import json
import os
import statistics
import time
import uuid

import psycopg2

URL = os.environ.get("DK_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
N = int(os.environ.get("PG_RECORDS", 10000))
SEARCHES = int(os.environ.get("SEARCHES", 5))
ROUND = int(os.environ.get("ROUND", 1))
CITIES = ["Oslo", "Paris", "Lima", "Rome", "Kyiv", "Baku", "Doha", "Quito", "Cairo", "Delhi"]


def csv(lo, hi):
    return "".join(f"{uuid.uuid4()},person {n},{18 + n % 63},{CITIES[n % 10]}\n"
                   for n in range(lo, hi))


class Discard(io.RawIOBase):
    def writable(self):
        return True

    def write(self, b):
        return len(b)


conn = psycopg2.connect(URL)
cur = conn.cursor()
table = f"dk_rec_bound_{os.getpid()}_{time.time_ns()}"
cur.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, name TEXT, age BIGINT, city TEXT)")
conn.commit()
try:
    first, second = csv(0, N), csv(N, 2 * N)
    cur.copy_expert(f"COPY {table} FROM STDIN (FORMAT csv)", io.StringIO(first))
    conn.commit()
    t = time.perf_counter()
    cur.copy_expert(f"COPY {table} FROM STDIN (FORMAT csv)", io.StringIO(second))
    conn.commit()
    batch = time.perf_counter() - t
    print(json.dumps({"engine": "server bound", "backend": "postgres", "bench": "batch",
                      "records": N, "seconds": round(batch, 6),
                      "records_per_s": round(N / batch, 1), "round": ROUND}))
    search = (f"COPY (SELECT id, name, age, city FROM {table} WHERE age > 50 AND city = 'Oslo')"
              " TO STDOUT (FORMAT binary)")
    times = []
    for _ in range(SEARCHES):
        t = time.perf_counter()
        cur.copy_expert(search, Discard())
        times.append(time.perf_counter() - t)
    ms = statistics.median(times) * 1000
    print(json.dumps({"engine": "server bound", "backend": "postgres", "bench": "search",
                      "records": 2 * N, "seconds": round(ms / 1000, 6), "ms": round(ms, 3),
                      "round": ROUND}))
finally:
    conn.rollback()
    cur.execute(f"DROP TABLE {table}")
    conn.commit()
