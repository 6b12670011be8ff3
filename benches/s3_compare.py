"""The other side of benches/s3.sh: boto3 (the Python seed's S3Database method: one JSON
object per record, a 10-thread pool of put_object / get_object) and curl on the same S3
server (moto) and the same record shape as benches/s3_bench.rs. One measurement per process;
prints one JSON line like the Rust side.

  s3_compare.py create   put_object of RECORDS JSON records under a fresh prefix
                         py/<stamp>-<run>/r00000.json …, 10 threads, timed per run
  s3_compare.py read     get_object + json.loads of RECORDS objects written once beforehand
                         (untimed), 10 threads, timed per run
  s3_compare.py curl     GET of the Parquet object ENDPOINT/BUCKET/ds/big.parquet with curl
                         (unsigned, path-style), output to /dev/null; one warm-up run

Environment: DK_BENCH_S3_ENDPOINT (default http://127.0.0.1:9310), DK_BENCH_S3_BUCKET
(dk-bench), DK_BENCH_S3_KEY / DK_BENCH_S3_SECRET (dk-test-access-key / dk-test-secret-key),
RECORDS (2000), RUNS (5 for create/read, 3 for curl), OBJECT_KEY (ds/big.parquet).
"""
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

ENDPOINT = os.environ.get("DK_BENCH_S3_ENDPOINT", "http://127.0.0.1:9310").rstrip("/")
BUCKET = os.environ.get("DK_BENCH_S3_BUCKET", "dk-bench")
KEY = os.environ.get("DK_BENCH_S3_KEY", "dk-test-access-key")
SECRET = os.environ.get("DK_BENCH_S3_SECRET", "dk-test-secret-key")
RECORDS = int(os.environ.get("RECORDS", "2000"))
OBJECT_KEY = os.environ.get("OBJECT_KEY", "ds/big.parquet")
THREADS = 10  # the seed's S3Database default
ENGINE = "boto3 (10 threads, the seed's method)"
# Keep identical to benches/s3_bench.rs.
CITIES = ["Paris", "Oslo", "Lima", "Quito", "Rome", "Kyiv", "Baku", "Doha"]


def client():
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        # One pooled connection per thread (botocore's default pool is 10 too).
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=THREADS),
    )


def record(i):
    return {"id": f"r{i:05}", "name": f"person {i}", "age": i % 90,
            "city": CITIES[i % len(CITIES)]}


def put_all(s3, prefix, pool):
    def put(i):
        r = record(i)
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{r['id']}.json", Body=json.dumps(r),
                      ContentType="application/json")
    list(pool.map(put, range(RECORDS)))


def delete_prefix(s3, prefix):
    keys = [f"{prefix}/r{i:05}.json" for i in range(RECORDS)]
    for at in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=BUCKET, Delete={
            "Objects": [{"Key": k} for k in keys[at:at + 1000]], "Quiet": True})


def out(bench, seconds, runs, **extra):
    print(json.dumps({"engine": ENGINE, "bench": bench, "seconds": round(seconds, 4),
                      "runs": runs, **extra}), flush=True)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    stamp = time.time_ns() // 1_000_000
    if mode == "create":
        runs = int(os.environ.get("RUNS", "5"))
        s3 = client()
        times = []
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            for run in range(runs):
                prefix = f"py/{stamp}-{run}"
                start = time.perf_counter()
                put_all(s3, prefix, pool)
                times.append(time.perf_counter() - start)
                delete_prefix(s3, prefix)  # untimed: keeps the server's bucket small
        seconds = statistics.median(times)
        out("create", seconds, runs, records=RECORDS, records_per_s=round(RECORDS / seconds))
    elif mode == "read":
        runs = int(os.environ.get("RUNS", "5"))
        s3 = client()
        prefix = f"py/read-{stamp}"
        keys = [f"{prefix}/r{i:05}.json" for i in range(RECORDS)]

        def get(key):
            return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

        times = []
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            put_all(s3, prefix, pool)
            for _ in range(runs):
                start = time.perf_counter()
                got = list(pool.map(get, keys))
                times.append(time.perf_counter() - start)
                assert len(got) == RECORDS and got[-1]["id"] == f"r{RECORDS - 1:05}", got[-1]
        delete_prefix(s3, prefix)
        seconds = statistics.median(times)
        out("read", seconds, runs, records=RECORDS, records_per_s=round(RECORDS / seconds))
    elif mode == "curl":
        runs = int(os.environ.get("RUNS", "3"))
        url = f"{ENDPOINT}/{BUCKET}/{OBJECT_KEY}"
        cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url]
        times, size = [], 0
        for _ in range(runs + 1):  # the first is a warm-up
            start = time.perf_counter()
            got = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            times.append(time.perf_counter() - start)
            code, size = got.split()
            assert code == "200", got
        size = int(size)
        seconds = statistics.median(times[1:])
        # Named "scan" so the driver sets it beside `s3_bench scan`.
        print(json.dumps({"engine": "curl (GET of the object)", "bench": "scan",
                          "seconds": round(seconds, 4), "runs": runs, "bytes": size,
                          "mb_per_s": round(size / seconds / 1e6, 1)}), flush=True)
    else:
        print("s3_compare.py: give a mode (create, read, curl); run benches/s3.sh for the "
              "comparison", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
