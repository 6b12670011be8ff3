"""Record-API benchmark, Python seed side (dataknobs-data), to compare with the Rust rewrite.

For each backend (memory, postgres, elasticsearch, s3) and each flavour (sync, async) it
measures, on a fresh store:
  single  N records created with one `create(record)` call each   (records 0..N)
  batch   N records created with one `create_batch(records)` call (records N..2N)
  search  `search(Query().filter("age", ">", 50).filter("city", "=", "Oslo"))` over the 2N
          records, SEARCHES times, median; the hit count is asserted against Python's own count.
Record n = {"name": f"person {n}", "age": 18 + n % 63, "city": CITIES[n % 10]}.
Only the seed calls are timed (time.perf_counter), not building the records or queries, nor
setting up / tearing down the store.

Backends, each through the seed's own sync and async classes:
  memory         SyncMemoryDatabase / AsyncMemoryDatabase.
  postgres       SyncPostgresDatabase / AsyncPostgresDatabase on a fresh table per run (the seed
                 creates it), dropped at the end even on failure.
  elasticsearch  SyncElasticsearchDatabase / AsyncElasticsearchDatabase with {host, port, index,
                 refresh: True (the seed's default)} on a fresh index per run (the seed creates
                 it: 1 shard, 0 replicas, dynamic mapping under `data`), deleted at the end even
                 on failure. The seed refreshes by itself (refresh=true on each single create and
                 on the bulk requests: the sync flavour sends the batch in 500-document bulk
                 chunks, each with refresh=true; the async one sends one bulk request), so no
                 refresh is added here. The seed talks to the node with the `elasticsearch` 8.x
                 client (bulk in sync, everything in async), which wants an Elasticsearch node
                 (X-Elastic-Product header): OpenSearch does not pass. The sync search sends no
                 `size` (Elasticsearch then answers 10 hits) and the async one sends
                 size=10000 unless the query has a limit; so the search here is the query above
                 with `.limit(10000)` for both flavours (what the async one does without it).
  s3             SyncS3Database / AsyncS3Database on a fresh bucket per run (created here, as the
                 async flavour does not create it) or, with DK_BENCH_S3_BUCKET, a fresh prefix in
                 that bucket; the objects (and the bucket when made here) deleted at the end even
                 on failure. One JSON object per record, key <prefix>/<uuid>.json. The seed's
                 create_batch is the base class's loop of create() calls (sync and async); its
                 search lists the prefix and GETs every object (sync: 10 threads per listed page;
                 async: one at a time), filtering in Python.

Run:  /var/tmp/dk-seed-venv/bin/python benches/records_seed.py [memory|postgres|elasticsearch|s3 ...]
      (default memory postgres)
Env:  MEM_RECORDS (100000), PG_RECORDS (10000), ES_RECORDS (2000), S3_RECORDS (1000),
      SEARCHES (5), ROUNDS (1), FLAVOURS (sync,async),
      DK_BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/test),
      DK_BENCH_ES_URL (http://127.0.0.1:9201, the Elasticsearch 8 node of scripts/elasticsearch.sh),
      DK_BENCH_S3_ENDPOINT (http://127.0.0.1:9310, moto_server of scripts/s3.sh),
      DK_BENCH_S3_BUCKET (unset: a fresh bucket per run), DK_BENCH_S3_REGION (us-east-1),
      DK_BENCH_S3_KEY / DK_BENCH_S3_SECRET (dk-test-access-key / dk-test-secret-key).
Out:  one JSON line per measurement on stdout; progress on stderr. Exit status 1 if a seed call
      raised or a result was wrong (reported as an "error" line for that bench; the rest of that
      flavour is then skipped and the next one runs).
"""
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlparse

from dataknobs_data import Query, Record

CITIES = ["Oslo", "Paris", "Lima", "Quito", "Rome", "Kyiv", "Baku", "Doha", "Lagos", "Hanoi"]
MODES = ("memory", "postgres", "elasticsearch", "s3", "file")
N = {"memory": int(os.environ.get("MEM_RECORDS", 100_000)),
     "postgres": int(os.environ.get("PG_RECORDS", 10_000)),
     "elasticsearch": int(os.environ.get("ES_RECORDS", 2_000)),
     "s3": int(os.environ.get("S3_RECORDS", 1_000)),
     "file": int(os.environ.get("FILE_RECORDS", 2_000))}
SEARCHES = int(os.environ.get("SEARCHES", 5))
ROUNDS = int(os.environ.get("ROUNDS", 1))
PG_URL = os.environ.get("DK_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
ES_URL = os.environ.get("DK_BENCH_ES_URL", "http://127.0.0.1:9201")
ES_SEARCH_LIMIT = 10_000  # the async seed's default size, Elasticsearch's max_result_window
S3_ENDPOINT = os.environ.get("DK_BENCH_S3_ENDPOINT", "http://127.0.0.1:9310")
S3_BUCKET = os.environ.get("DK_BENCH_S3_BUCKET", "")
S3_REGION = os.environ.get("DK_BENCH_S3_REGION", "us-east-1")
S3_KEY = os.environ.get("DK_BENCH_S3_KEY", "dk-test-access-key")
S3_SECRET = os.environ.get("DK_BENCH_S3_SECRET", "dk-test-secret-key")
failed = False


class Wrong(Exception):
    """A seed call returned a wrong result."""


def record(n):
    return Record({"name": f"person {n}", "age": 18 + n % 63, "city": CITIES[n % 10]})


def expected(total):
    return sum(1 for n in range(total) if 18 + n % 63 > 50 and CITIES[n % 10] == "Oslo")


def query(backend):
    q = Query().filter("age", ">", 50).filter("city", "=", "Oslo")
    return q.limit(ES_SEARCH_LIMIT) if backend == "elasticsearch" else q


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


def check_ids(ids, n):
    if len(ids) != n:
        raise Wrong(f"create_batch returned {len(ids)} ids for {n} records")


def check_hits(found, want):
    if len(found) != want:
        raise Wrong(f"search found {len(found)} records, expected {want}")


def run_sync(db, backend, n, emit, stage):
    recs = [record(i) for i in range(n)]
    stage[0] = "single"
    t = time.perf_counter()
    for r in recs:
        db.create(r)
    emit("single", n, time.perf_counter() - t)

    recs = [record(i) for i in range(n, 2 * n)]
    stage[0] = "batch"
    t = time.perf_counter()
    ids = db.create_batch(recs)
    seconds = time.perf_counter() - t
    check_ids(ids, n)
    emit("batch", n, seconds)

    stage[0] = "search"
    want, times = expected(2 * n), []
    for _ in range(SEARCHES):
        q = query(backend)
        t = time.perf_counter()
        found = db.search(q)
        times.append(time.perf_counter() - t)
        check_hits(found, want)
    emit("search", 2 * n, statistics.median(times))


async def run_async(db, backend, n, emit, stage):
    recs = [record(i) for i in range(n)]
    stage[0] = "single"
    t = time.perf_counter()
    for r in recs:
        await db.create(r)
    emit("single", n, time.perf_counter() - t)

    recs = [record(i) for i in range(n, 2 * n)]
    stage[0] = "batch"
    t = time.perf_counter()
    ids = await db.create_batch(recs)
    seconds = time.perf_counter() - t
    check_ids(ids, n)
    emit("batch", n, seconds)

    stage[0] = "search"
    want, times = expected(2 * n), []
    for _ in range(SEARCHES):
        q = query(backend)
        t = time.perf_counter()
        found = await db.search(q)
        times.append(time.perf_counter() - t)
        check_hits(found, want)
    emit("search", 2 * n, statistics.median(times))


def drive(flavour, backend, n, emit, stage, sync_cls, async_cls, config, async_config=None,
          after_async=None):
    """Runs the workload on a fresh store of the seed class for the flavour."""
    if flavour == "sync":
        stage[0] = "connect"
        with sync_cls(config) as db:  # connect() creates the table / index / bucket
            run_sync(db, backend, n, emit, stage)
    else:
        async def go():
            try:
                stage[0] = "connect"
                async with async_cls(async_config or config) as db:
                    await run_async(db, backend, n, emit, stage)
            finally:
                if after_async:  # untimed: close the pooled client inside its event loop
                    await after_async()
        asyncio.run(go())


def bench_memory(flavour, n, emit, stage):
    from dataknobs_data.backends.memory import AsyncMemoryDatabase, SyncMemoryDatabase
    drive(flavour, "memory", n, emit, stage, SyncMemoryDatabase, AsyncMemoryDatabase, {})


def bench_postgres(flavour, n, emit, stage):
    import psycopg2
    from dataknobs_data.backends.postgres import AsyncPostgresDatabase, SyncPostgresDatabase
    u = urlparse(PG_URL)
    table = f"dk_seed_bench_{os.getpid()}_{time.time_ns()}"
    config = {"host": u.hostname or "localhost", "port": u.port or 5432,
              "database": unquote(u.path.lstrip("/")) or "postgres",
              "user": unquote(u.username or "postgres"), "password": unquote(u.password or ""),
              "table": table}
    print(f"  table public.{table}", file=sys.stderr, flush=True)
    try:
        drive(flavour, "postgres", n, emit, stage, SyncPostgresDatabase, AsyncPostgresDatabase,
              config)
    finally:
        conn = psycopg2.connect(PG_URL)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS public.{table}")
        conn.close()


def bench_elasticsearch(flavour, n, emit, stage):
    from dataknobs_data.backends.elasticsearch import SyncElasticsearchDatabase
    from dataknobs_data.backends import elasticsearch_async as es_async
    u = urlparse(ES_URL)
    if u.scheme != "http":  # the sync seed builds http://host:port itself
        raise SystemExit(f"DK_BENCH_ES_URL must be http://host:port, not {ES_URL}")
    index = f"dk_seed_bench_{os.getpid()}_{time.time_ns()}"
    config = {"host": u.hostname or "localhost", "port": u.port or 9200, "index": index,
              "refresh": True}
    print(f"  index {index} on {ES_URL}", file=sys.stderr, flush=True)
    if expected(2 * n) > ES_SEARCH_LIMIT:
        raise Wrong(f"{expected(2 * n)} hits exceed the search limit {ES_SEARCH_LIMIT}")
    try:
        # The sync seed prints every HTTP response of its requests-based calls (all but the
        # bulk), pretty-printed, to sys.stderr: that work stays in the timings, its output goes
        # to /dev/null instead of flooding the terminal.
        with open(os.devnull, "w") as sink, contextlib.redirect_stderr(
                sink if flavour == "sync" else sys.stderr):
            drive(flavour, "elasticsearch", n, emit, stage, SyncElasticsearchDatabase,
                  es_async.AsyncElasticsearchDatabase, config,
                  after_async=es_async._client_manager.close_all)
    finally:
        req = urllib.request.Request(f"{ES_URL.rstrip('/')}/{index}", method="DELETE")
        try:
            urllib.request.urlopen(req, timeout=60).close()
        except urllib.error.HTTPError as e:
            if e.code != 404:  # 404: the seed never created it
                raise


def bench_s3(flavour, n, emit, stage):
    import boto3
    from botocore.exceptions import ClientError
    from dataknobs_data.backends.s3 import SyncS3Database
    from dataknobs_data.backends.s3_async import AsyncS3Database
    tag = f"{os.getpid()}-{time.time_ns()}"
    bucket = S3_BUCKET or f"dk-seed-bench-{tag}"
    prefix = f"dk_seed_bench_{tag}"
    s3 = boto3.client("s3", endpoint_url=S3_ENDPOINT, region_name=S3_REGION,
                      aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)
    made = False
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket) if S3_REGION == "us-east-1" else s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": S3_REGION})
        made = True
    print(f"  s3://{bucket}/{prefix}/ on {S3_ENDPOINT}", file=sys.stderr, flush=True)
    common = {"bucket": bucket, "prefix": prefix, "endpoint_url": S3_ENDPOINT}
    # The two seed classes name the region and credentials differently.
    sync_config = {**common, "region": S3_REGION, "access_key_id": S3_KEY,
                   "secret_access_key": S3_SECRET}
    async_config = {**common, "region_name": S3_REGION, "aws_access_key_id": S3_KEY,
                    "aws_secret_access_key": S3_SECRET}
    try:
        drive(flavour, "s3", n, emit, stage, SyncS3Database, AsyncS3Database, sync_config,
              async_config)
    finally:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                 Prefix=prefix + "/"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        if made:
            s3.delete_bucket(Bucket=bucket)


def bench_file(flavour, n, emit, stage):
    import shutil
    import tempfile
    from dataknobs_data.backends.file import AsyncFileDatabase, SyncFileDatabase
    d = tempfile.mkdtemp(prefix="dk_seed_file_")
    try:
        drive(flavour, "file", n, emit, stage, SyncFileDatabase, AsyncFileDatabase,
              {"path": os.path.join(d, "people.json"), "format": "json"})
    finally:
        shutil.rmtree(d, ignore_errors=True)


BENCHES = {"memory": bench_memory, "postgres": bench_postgres,
           "elasticsearch": bench_elasticsearch, "s3": bench_s3, "file": bench_file}


def bench(backend, flavour, rnd):
    global failed
    emit = emitter(flavour, backend, rnd)
    n = N[backend]
    print(f"round {rnd}: {backend}/{flavour}, {n} records", file=sys.stderr, flush=True)
    stage = ["setup"]
    try:
        BENCHES[backend](flavour, n, emit, stage)
    except Exception as e:  # a seed limitation is reported, not hidden
        failed = True
        bench_name = stage[0] if stage[0] in ("single", "batch", "search") else "single"
        error = f"{type(e).__name__}: {e}"
        if bench_name != stage[0]:
            error = f"{stage[0]}: {error}"
        print(f"  {backend}/{flavour} {stage[0]} failed: {error}", file=sys.stderr, flush=True)
        emit(bench_name, 2 * n if bench_name == "search" else n, error=error)


def main():
    backends = sys.argv[1:] or ["memory", "postgres"]
    for b in backends:
        if b not in MODES:
            sys.exit(f"usage: {sys.argv[0]} [{'|'.join(MODES)} ...]")
    for rnd in range(1, ROUNDS + 1):
        for backend in backends:
            for flavour in os.environ.get("FLAVOURS", "sync,async").split(","):
                bench(backend, flavour, rnd)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
