"""The Python seed's HDFS key-value store, timed: the other side of benches/hdfs.sh.

The seed's HDFSStoreBackend (event_pipeline/volnux, `backends/stores/hdfs_store.py`) keeps one
JSON file per record, `<base_path>/<schema>/<key>.json`, through HdfsCLI's WebHDFS client
(`hdfs.InsecureClient("http://host:port", user=...)`, its HDFSConnector's cursor). Its methods,
copied here call for call and run one after another as the seed runs them:

- insert_record: `exists` (`client.status(path)`, an exception meaning "no"), then
  `client.content(schema_path, strict=False)` and `client.makedirs(schema_path)` when that
  says there is no directory, then `client.write(path, BytesIO(json.dumps(state)))`
  (`overwrite=False`, HdfsCLI's default);
- get_record: `exists`, then `client.read(path)` and `json.load`.

Per insert that is GETFILESTATUS, GETCONTENTSUMMARY and CREATE (a namenode redirect, then the
datanode); per get GETFILESTATUS and OPEN (namenode redirect, then the datanode).

Prints one JSON line per bench (`insert`, `get`) with the median seconds of RUNS runs and
records/s, plus how many inserts took ≥ 0.3 s (a close that waited for the datanode's block
report: Hadoop's client, inside the datanode's WebHDFS handler, asks again after 400 ms).
Usage: hdfs_seed.py kv. Environment: DK_BENCH_WEBHDFS (http://127.0.0.1:9870),
DK_BENCH_HDFS_USER (root), RECORDS (2000), SEED_RUNS (1).
"""

import json
import os
import sys
import time
import typing
from io import BytesIO

from hdfs import InsecureClient

# Keep identical to benches/hdfs_bench.rs.
CITIES = ["Paris", "Oslo", "Lima", "Quito", "Rome", "Kyiv", "Baku", "Doha"]


class ObjectExistError(Exception):
    pass


class ObjectDoesNotExist(Exception):
    pass


class SeedHdfsStore:
    """The seed's HDFSStoreBackend, its insert/get paths."""

    def __init__(self, cursor: InsecureClient, base_path: str):
        self.cursor = cursor
        self.base_path = base_path

    def _get_schema_path(self, schema_name: str) -> str:
        return os.path.join(self.base_path, schema_name)

    def _get_record_path(self, schema_name: str, record_key: str) -> str:
        return os.path.join(self._get_schema_path(schema_name), f"{record_key}.json")

    def exists(self, schema_name: str, record_key: str) -> bool:
        try:
            return self.cursor.status(self._get_record_path(schema_name, record_key)) is not None
        except Exception:
            return False

    def insert_record(self, schema_name: str, record_key: str, state: dict):
        if self.exists(schema_name, record_key):
            raise ObjectExistError(f"Record already exists in schema '{schema_name}'")
        record_path = self._get_record_path(schema_name, record_key)
        schema_path = self._get_schema_path(schema_name)
        if not self.cursor.content(schema_path, strict=False):
            self.cursor.makedirs(schema_path)
        with BytesIO(json.dumps(state).encode("utf-8")) as bio:
            self.cursor.write(record_path, bio)

    def get_record(self, schema_name: str, record_key: str) -> dict:
        if not self.exists(schema_name, record_key):
            raise ObjectDoesNotExist(f"Record does not exist in schema '{schema_name}'")
        with self.cursor.read(self._get_record_path(schema_name, record_key)) as reader:
            return json.load(reader)


def record(i: int) -> typing.Tuple[str, dict]:
    key = f"r{i:05d}"
    return key, {"id": key, "name": f"person {i}", "age": i % 90, "city": CITIES[i % len(CITIES)]}


def main():
    if sys.argv[1:] != ["kv"]:
        sys.exit("usage: hdfs_seed.py kv")
    n = int(os.environ.get("RECORDS", "2000"))
    runs = max(1, int(os.environ.get("SEED_RUNS", "1")))
    client = InsecureClient(
        os.environ.get("DK_BENCH_WEBHDFS", "http://127.0.0.1:9870"),
        user=os.environ.get("DK_BENCH_HDFS_USER", "root"),
    )
    base = f"/volnux/dk_bench_seed_{int(time.time() * 1000)}"
    store = SeedHdfsStore(client, base)
    records = [record(i) for i in range(n)]
    # Warm-up, untimed: one record (as hdfs_bench.rs does).
    store.insert_record("warmup", *records[0])
    store.get_record("warmup", records[0][0])

    inserts, gets, slow = [], [], []
    try:
        for run in range(runs):
            schema = f"s{run}"
            waited = 0
            t = time.perf_counter()
            for key, state in records:
                t1 = time.perf_counter()
                store.insert_record(schema, key, state)
                if time.perf_counter() - t1 >= 0.3:
                    waited += 1
            inserts.append(time.perf_counter() - t)
            slow.append(waited)
            t = time.perf_counter()
            got = [store.get_record(schema, key) for key, _ in records]
            gets.append(time.perf_counter() - t)
            assert got == [state for _, state in records], "records read back differ"
    finally:
        client.delete(base, recursive=True)

    def med(v):
        return sorted(v)[len(v) // 2]

    for bench, times, extra in [
        ("insert", inserts, {"inserts_over_0_3s": slow}),
        ("get", gets, {}),
    ]:
        seconds = med(times)
        print(json.dumps({
            "engine": "hdfscli",
            "bench": bench,
            "seconds": round(seconds, 4),
            "runs": runs,
            "spread": [round(min(times), 4), round(max(times), 4)],
            "records": n,
            "method": "seed HDFSStoreBackend via HdfsCLI InsecureClient (WebHDFS), sequential",
            "records_per_s": round(n / seconds, 1),
            **extra,
        }), flush=True)


if __name__ == "__main__":
    main()
