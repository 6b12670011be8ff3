"""The server's own bound for the record search of benches/records.sh (elasticsearch mode):
the same 4,000 records {id, name, age 18-80, city of 10} in a fresh index of the Elasticsearch
node, and the search `age > 50 AND city = 'Oslo'` sent as one `_search` (size 10,000, `_source`,
`track_total_hits: false`) over one kept-alive HTTP connection with the standard library: no
client, no decoding beyond reading the bytes. Prints the median of RUNS (50) and the server's
own `took`; and the bound of the batch row: one `_bulk?refresh=true` of ES_RECORDS (2,000) of
those records into a fresh index (median of 5, index creation not timed).

Usage: python3 benches/es_search_bound.py  (DK_BENCH_ES_URL, default http://127.0.0.1:9201)
"""
import http.client
import json
import os
import statistics
import time
from urllib.parse import urlparse

URL = os.environ.get("DK_BENCH_ES_URL", "http://127.0.0.1:9201").removeprefix("es+")
RUNS = int(os.environ.get("RUNS", 50))
N = 2 * int(os.environ.get("ES_RECORDS", 2000))
CITIES = ["Oslo", "Paris", "Lima", "Rome", "Kyiv", "Baku", "Doha", "Quito", "Cairo", "Delhi"]
u = urlparse(URL)
conn = http.client.HTTPConnection(u.hostname, u.port or 9200)


def call(method, path, body=None, ndjson=False):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    ctype = "application/x-ndjson" if ndjson else "application/json"
    conn.request(method, path, body=data, headers={"Content-Type": ctype})
    r = conn.getresponse()
    raw = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: HTTP {r.status}: {raw[:300]!r}")
    return raw


index = f"dk_bound_{os.getpid()}_{time.time_ns()}"
call("PUT", f"/{index}", {"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                          "mappings": {"properties": {"id": {"type": "keyword"},
                                                      "name": {"type": "keyword"},
                                                      "age": {"type": "long"},
                                                      "city": {"type": "keyword"}}}})
lines = []
for n in range(N):
    lines.append(json.dumps({"index": {"_id": str(n)}}))
    lines.append(json.dumps({"id": str(n), "name": f"person {n}", "age": 18 + n % 63,
                             "city": CITIES[n % len(CITIES)]}))
call("POST", f"/{index}/_bulk?refresh=true", ("\n".join(lines) + "\n").encode(), ndjson=True)
body = {"query": {"bool": {"filter": [{"range": {"age": {"gt": 50}}},
                                      {"term": {"city": "Oslo"}}]}},
        "_source": ["id", "name", "age", "city"], "size": 10000, "sort": ["_doc"],
        "track_total_hits": False}
for _ in range(5):
    call("POST", f"/{index}/_search", body)
times, took = [], []
for _ in range(RUNS):
    t = time.perf_counter()
    raw = call("POST", f"/{index}/_search", body)
    times.append(time.perf_counter() - t)
    reply = json.loads(raw)
    took.append(reply["took"])
hits = len(reply["hits"]["hits"])
call("DELETE", f"/{index}")
bulk_times = []
half = "\n".join(lines[:N]) + "\n"
for i in range(5):
    other = f"{index}_bulk{i}"
    call("PUT", f"/{other}", {"settings": {"number_of_shards": 1, "number_of_replicas": 0}})
    t = time.perf_counter()
    call("POST", f"/{other}/_bulk?refresh=true", half.encode(), ndjson=True)
    bulk_times.append(time.perf_counter() - t)
    call("DELETE", f"/{other}")
print(json.dumps({"engine": "http.client", "backend": "elasticsearch", "bench": "batch_bound",
                  "records": N // 2, "ms": round(statistics.median(bulk_times) * 1000, 3),
                  "records_per_s": round(N / 2 / statistics.median(bulk_times))}))
print(json.dumps({"engine": "http.client", "backend": "elasticsearch", "bench": "search_bound",
                  "records": N, "hits": hits, "ms": round(statistics.median(times) * 1000, 3),
                  "took_ms": statistics.median(took), "runs": RUNS}))
