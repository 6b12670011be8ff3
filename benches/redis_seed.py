"""The seed's Redis key-value store, timed: the other side of the `redis` mode of
benches/records.sh (benches/records.rs runs dataknobs' RedisKeyValueStore on the same records).

The seed is PyPI `event-pipeline` 2.0.0, whose `backends/stores/redis_store.py` is the
RedisStoreBackend of the key-value store API reference (`insert_record`, `get_record`,
`filter_record`; redis-py 5.2.1 underneath, the version the project pins). It is called here as a
user calls it, one record at a time: per `insert_record` a PING (`is_connected`), HEXISTS, then
a MULTI/HSET/EXEC pipeline of the pickled state; per `get_record` a PING, HEXISTS and HGET; a
`filter_record` is a PING, then HSCAN with redis-py's default COUNT, unpickling every record and
comparing its attributes in Python. It has no bulk insert: its way to store a batch is one
`insert_record` per record, timed as `batch`.

Record n = {id: "r<n>", name: "person <n>", age: 18 + n % 63, city: CITIES[n % 10]} (as
benches/records.rs), as a plain object with `__getstate__`/`__setstate__` (the least a record
class of the seed needs). Workloads: `single` records 0..N, `batch` records N..2N, `get`
records 0..N (each checked), `search` `filter_record(city="Oslo")` over the 2N records,
SEARCHES times, median. One JSON line each, as benches/records_seed.py prints them. Environment:
DK_BENCH_REDIS_URL (redis://127.0.0.1:6390; the seed's connector takes no password),
DK_BENCH_REDIS_DB (14), REDIS_RECORDS (10000), SEARCHES (5), ROUND (1).
"""

import json
import os
import statistics
import sys
import time
from urllib.parse import urlparse

from event_pipeline.backends.stores.redis_store import RedisStoreBackend

CITIES = ["Oslo", "Paris", "Lima", "Quito", "Rome", "Kyiv", "Baku", "Doha", "Lagos", "Hanoi"]


class Person:
    def __init__(self, id, name, age, city):
        self.id = id
        self.name = name
        self.age = age
        self.city = city

    def __getstate__(self):
        return dict(self.__dict__)

    def __setstate__(self, state):
        self.__dict__.update(state)


def person(n):
    return Person(f"r{n}", f"person {n}", 18 + n % 63, CITIES[n % 10])


def emit(bench, records, seconds, rnd):
    line = {"engine": "seed", "flavour": "sync", "backend": "redis", "bench": bench,
            "records": records, "seconds": round(seconds, 6)}
    if bench == "search":
        line["ms"] = round(seconds * 1000, 3)
    else:
        line["records_per_s"] = round(records / seconds, 1)
    line["round"] = rnd
    print(json.dumps(line), flush=True)


def main():
    u = urlparse(os.environ.get("DK_BENCH_REDIS_URL", "redis://127.0.0.1:6390"))
    if u.password:
        sys.exit("redis_seed.py: the seed's RedisConnector takes no password; give a URL without one")
    n = int(os.environ.get("REDIS_RECORDS", "10000"))
    searches = int(os.environ.get("SEARCHES", "5"))
    rnd = int(os.environ.get("ROUND", "1"))
    store = RedisStoreBackend(host=u.hostname or "127.0.0.1", port=u.port or 6379,
                              db=int(os.environ.get("DK_BENCH_REDIS_DB", "14")))
    schema = f"dk_kv_seed_{os.getpid()}_{time.time_ns()}"
    try:
        people = [person(i) for i in range(n)]
        t = time.perf_counter()
        for p in people:
            store.insert_record(schema, p.id, p)
        emit("single", n, time.perf_counter() - t, rnd)

        more = [person(i) for i in range(n, 2 * n)]
        t = time.perf_counter()
        for p in more:
            store.insert_record(schema, p.id, p)
        emit("batch", n, time.perf_counter() - t, rnd)

        t = time.perf_counter()
        got = [store.get_record(schema, Person, p.id) for p in people]
        emit("get", n, time.perf_counter() - t, rnd)
        for g, p in zip(got, people):
            if g.__dict__ != p.__dict__:
                sys.exit(f"redis_seed.py: get_record gave {g.__dict__} for {p.__dict__}")

        want = sum(1 for i in range(2 * n) if CITIES[i % 10] == "Oslo")
        times = []
        for _ in range(searches):
            t = time.perf_counter()
            found = store.filter_record(schema, Person, city="Oslo")
            times.append(time.perf_counter() - t)
            if len(found) != want:
                sys.exit(f"redis_seed.py: filter_record found {len(found)} records, not {want}")
        emit("search", 2 * n, statistics.median(times), rnd)
    finally:
        store.connector.cursor.delete(schema)


if __name__ == "__main__":
    main()
