"""Record-API benchmark, Python seed side (dataknobs-data), to compare with the Rust rewrite.

For each backend (memory, postgres) and each flavour (sync, async) it measures, on a fresh store:
  single  N records created with one `create(record)` call each   (records 0..N)
  batch   N records created with one `create_batch(records)` call (records N..2N)
  search  `search(Query().filter("age", ">", 50).filter("city", "=", "Oslo"))` over the 2N
          records, SEARCHES times, median; the hit count is asserted against Python's own count.
Record n = {"name": f"person {n}", "age": 18 + n % 63, "city": CITIES[n % 10]}.
Only the seed calls are timed (time.perf_counter), not building the records or queries.
PostgreSQL uses a fresh table per run (the seed creates it), dropped at the end even on failure.

Run:  /var/tmp/dk-seed-venv/bin/python benches/records_seed.py [memory|postgres ...]   (default both)
Env:  MEM_RECORDS (100000), PG_RECORDS (10000), SEARCHES (5), ROUNDS (1), FLAVOURS (sync,async),
      DK_BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/test)
Out:  one JSON line per measurement on stdout; progress on stderr. Exit status 1 if a seed call
      raised (reported as an "error" line; that flavour's search is then skipped).
"""
import asyncio
import json
import os
import statistics
import sys
import time
from urllib.parse import unquote, urlparse

import psycopg2
from dataknobs_data import Query, Record
from dataknobs_data.backends.memory import AsyncMemoryDatabase, SyncMemoryDatabase
from dataknobs_data.backends.postgres import AsyncPostgresDatabase, SyncPostgresDatabase

CITIES = ["Oslo", "Paris", "Lima", "Quito", "Rome", "Kyiv", "Baku", "Doha", "Lagos", "Hanoi"]
N_MEM = int(os.environ.get("MEM_RECORDS", 100_000))
N_PG = int(os.environ.get("PG_RECORDS", 10_000))
SEARCHES = int(os.environ.get("SEARCHES", 5))
ROUNDS = int(os.environ.get("ROUNDS", 1))
PG_URL = os.environ.get("DK_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
failed = False


def record(n):
    return Record({"name": f"person {n}", "age": 18 + n % 63, "city": CITIES[n % 10]})


def expected(total):
    return sum(1 for n in range(total) if 18 + n % 63 > 50 and CITIES[n % 10] == "Oslo")


def query():
    return Query().filter("age", ">", 50).filter("city", "=", "Oslo")


def emitter(flavour, backend, rnd):
    def emit(bench, records, seconds=None, error=None):
        line = {"engine": "seed", "flavour": flavour, "backend": backend, "bench": bench,
                "records": records}
        if error is not None:
            line["error"] = error
        elif bench == "search":
            line.update(seconds=round(seconds, 6), ms=round(seconds * 1000, 3))
        else:
            line.update(seconds=round(seconds, 6), records_per_s=round(records / seconds, 1))
        line["round"] = rnd
        print(json.dumps(line), flush=True)
    return emit


def batch_failed(emit, n, e):
    global failed
    failed = True
    print(f"  batch create failed: {type(e).__name__}: {e}", file=sys.stderr)
    emit("batch", n, error=f"{type(e).__name__}: {e}")


def run_sync(db, n, emit):
    recs = [record(i) for i in range(n)]
    t = time.perf_counter()
    for r in recs:
        db.create(r)
    emit("single", n, time.perf_counter() - t)

    recs = [record(i) for i in range(n, 2 * n)]
    t = time.perf_counter()
    try:
        ids = db.create_batch(recs)
    except Exception as e:  # a seed limitation is reported, not hidden
        return batch_failed(emit, n, e)
    emit("batch", n, time.perf_counter() - t)
    assert len(ids) == n, (len(ids), n)

    want, times = expected(2 * n), []
    for _ in range(SEARCHES):
        q = query()
        t = time.perf_counter()
        found = db.search(q)
        times.append(time.perf_counter() - t)
        assert len(found) == want, (len(found), want)
    emit("search", 2 * n, statistics.median(times))


async def run_async(db, n, emit):
    recs = [record(i) for i in range(n)]
    t = time.perf_counter()
    for r in recs:
        await db.create(r)
    emit("single", n, time.perf_counter() - t)

    recs = [record(i) for i in range(n, 2 * n)]
    t = time.perf_counter()
    try:
        ids = await db.create_batch(recs)
    except Exception as e:
        return batch_failed(emit, n, e)
    emit("batch", n, time.perf_counter() - t)
    assert len(ids) == n, (len(ids), n)

    want, times = expected(2 * n), []
    for _ in range(SEARCHES):
        q = query()
        t = time.perf_counter()
        found = await db.search(q)
        times.append(time.perf_counter() - t)
        assert len(found) == want, (len(found), want)
    emit("search", 2 * n, statistics.median(times))


def bench(backend, flavour, rnd):
    emit = emitter(flavour, backend, rnd)
    n = N_MEM if backend == "memory" else N_PG
    print(f"round {rnd}: {backend}/{flavour}, {n} records", file=sys.stderr, flush=True)
    if backend == "memory":
        if flavour == "sync":
            with SyncMemoryDatabase({}) as db:
                run_sync(db, n, emit)
        else:
            async def go():
                async with AsyncMemoryDatabase({}) as db:
                    await run_async(db, n, emit)
            asyncio.run(go())
        return

    u = urlparse(PG_URL)
    table = f"dk_seed_bench_{os.getpid()}_{time.time_ns()}"
    config = {"host": u.hostname or "localhost", "port": u.port or 5432,
              "database": unquote(u.path.lstrip("/")) or "postgres",
              "user": unquote(u.username or "postgres"), "password": unquote(u.password or ""),
              "table": table}
    print(f"  table public.{table}", file=sys.stderr, flush=True)
    try:
        if flavour == "sync":
            with SyncPostgresDatabase(config) as db:  # connect() creates the table
                run_sync(db, n, emit)
        else:
            async def go():
                async with AsyncPostgresDatabase(config) as db:
                    await run_async(db, n, emit)
            asyncio.run(go())
    finally:
        conn = psycopg2.connect(PG_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS public.{table}")
        conn.close()


def main():
    backends = sys.argv[1:] or ["memory", "postgres"]
    for b in backends:
        if b not in ("memory", "postgres"):
            sys.exit(f"usage: {sys.argv[0]} [memory|postgres ...]")
    for rnd in range(1, ROUNDS + 1):
        for backend in backends:
            for flavour in os.environ.get("FLAVOURS", "sync,async").split(","):
                bench(backend, flavour, rnd)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
