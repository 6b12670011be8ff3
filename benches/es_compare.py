"""The other side of benches/es_docs.sh: the Python client (opensearch-py) and curl on the
same server and documents as benches/es_docs.rs. One measurement per process; prints one JSON
line like the Rust side.

  es_compare.py bulk    helpers.bulk of the same 200k documents into <T>_py (same mapping as
                        <T>, chunk_size 5000), then one refresh, timed together
  es_compare.py scan    helpers.scan over <T> (size 10000, every hit's _source into a dict)
  es_compare.py curl    the selective search (200 docs) sent with curl, output to /dev/null

Environment: DK_BENCH_HTTP_URL (default http://127.0.0.1:9200), DK_BENCH_INDEX
(dk_bench_docs), DOCS (200000), RUNS.
"""
import json
import os
import statistics
import subprocess
import sys
import time

from opensearchpy import OpenSearch, helpers

URL = os.environ.get("DK_BENCH_HTTP_URL", "http://127.0.0.1:9200")
T = os.environ.get("DK_BENCH_INDEX", "dk_bench_docs")
DOCS = int(os.environ.get("DOCS", "200000"))
# Keep identical to benches/es_docs.rs.
FILTER = {"query": {"bool": {"filter": [{"range": {"n": {"gte": 100000, "lt": 100200}}}]}},
          "size": 10000}


def out(tool, bench, seconds, runs, rows):
    print(json.dumps({"engine": tool, "bench": bench, "seconds": round(seconds, 4),
                      "runs": runs, "rows": rows, "docs_per_s": round(rows / seconds)}))


def main():
    mode = sys.argv[1]
    client = OpenSearch(URL, timeout=120)
    if mode == "bulk":
        py = T + "_py"
        mapping = client.indices.get_mapping(index=T)[T]["mappings"]
        mapping.pop("_meta", None)
        client.indices.delete(index=py, ignore=[404])
        client.indices.create(index=py, body={"mappings": mapping})

        def docs():
            for v in range(1, DOCS + 1):
                yield {"_index": py, "_source": {
                    "kw": f"k{v % 1000}", "n": v, "d": v * 0.5,
                    "t": f"document number {v} about search engines and rust"}}

        start = time.perf_counter()
        ok, errors = helpers.bulk(client, docs(), chunk_size=5000, stats_only=True)
        client.indices.refresh(index=py)
        seconds = time.perf_counter() - start
        assert ok == DOCS and errors == 0, (ok, errors)
        out("opensearch-py helpers.bulk", "load", seconds, 1, DOCS)
    elif mode == "scan":
        runs = int(os.environ.get("RUNS", "3"))
        rows = sum(1 for _ in helpers.scan(client, index=T, size=10000))  # warm-up
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            n = sum(1 for _ in helpers.scan(client, index=T, size=10000))
            times.append(time.perf_counter() - start)
            assert n == rows
        out("opensearch-py helpers.scan", "scan", statistics.median(times), runs, rows)
    elif mode == "curl":
        runs = int(os.environ.get("RUNS", "10"))
        cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-XPOST",
               "-H", "Content-Type: application/json", "-d", json.dumps(FILTER),
               f"{URL}/{T}/_search"]
        hits = client.search(index=T, body=FILTER)["hits"]["hits"]
        times = []
        for _ in range(runs + 1):
            start = time.perf_counter()
            code = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            times.append(time.perf_counter() - start)
            assert code == "200", code
        out("curl", "filter", statistics.median(times[1:]), runs, len(hits))


if __name__ == "__main__":
    main()
