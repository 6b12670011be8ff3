#!/usr/bin/env bash
# The S3 backend side by side with the Python seed's method on the same S3 server, for each
# server in SERVERS: dataknobs (benches/s3_bench.rs) vs boto3 (the seed's S3Database method: one
# JSON object per record, 10 threads) and curl (benches/s3_compare.py), each measurement in its
# own process, then the ratios.
#   create: batch_create of 2000 records (format=records)  vs  10-thread put_object
#   read:   batch_read of those 2000 ids                   vs  10-thread get_object + json.loads
#   scan:   SELECT * FROM lake.big (a ≥200 MB Parquet object) into Arrow  vs  curl GET of it
# Servers (SERVERS, default "moto gofakes3"):
#   moto      moto_server of scripts/services.sh (http://127.0.0.1:9310; the issue's anchor
#             figures). Python: about 300 requests/s whoever asks, and every ranged GET copies
#             the whole object, so it bounds both sides.
#   gofakes3  tests/gofakes3 (Go, in memory, conditional writes), built once into
#             /var/tmp/dk-gofakes3 and started here on http://127.0.0.1:9320 unless running.
# Usage: benches/s3.sh. Environment: SERVERS, DK_BENCH_S3_BUCKET (dk-bench), DK_BENCH_S3_KEY /
#   DK_BENCH_S3_SECRET, RECORDS (2000), WORKERS (64, dataknobs' max_workers), RESULTS
#   (/tmp/s3_bench.jsonl), PARQUET_ROWS (2500000), PROFILE (bench = release; dev for a quick
#   debug-build run).
# Python: boto3 from moto's venv (/var/tmp/dataknobs-s3/venv, made by scripts/services.sh;
#   boto3 is pip-installed there if missing); the Parquet file is made once with pyarrow in
#   /var/tmp/dk-s3-bench/venv (made and pip-installed here) as /var/tmp/dk-s3-bench/big.parquet.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
export DK_BENCH_S3_BUCKET="${DK_BENCH_S3_BUCKET:-dk-bench}"
export DK_BENCH_S3_KEY="${DK_BENCH_S3_KEY:-dk-test-access-key}"
export DK_BENCH_S3_SECRET="${DK_BENCH_S3_SECRET:-dk-test-secret-key}"
export RECORDS="${RECORDS:-2000}"
export WORKERS="${WORKERS:-64}"
SERVERS="${SERVERS:-moto gofakes3}"
RESULTS="${RESULTS:-/tmp/s3_bench.jsonl}"
PY=/var/tmp/dataknobs-s3/venv/bin/python
WORK=/var/tmp/dk-s3-bench
GEN_VENV="$WORK/venv"
PARQUET="$WORK/big.parquet"
PARQUET_ROWS="${PARQUET_ROWS:-2500000}"
GOFAKES3_DIR=/var/tmp/dk-gofakes3
GOFAKES3_URL=http://127.0.0.1:9320

[ -x "$PY" ] || {
  echo "no moto venv at /var/tmp/dataknobs-s3/venv; run scripts/services.sh first" >&2
  exit 1
}
"$PY" -c "import boto3" 2>/dev/null || /var/tmp/dataknobs-s3/venv/bin/pip install -q boto3

# The dataset: ≥200 MB of Parquet (ints, doubles, unique strings; no compression, no
# dictionaries), made once.
mkdir -p "$WORK"
if [ ! -s "$PARQUET" ]; then
  [ -x "$GEN_VENV/bin/python" ] || python3 -m venv "$GEN_VENV"
  "$GEN_VENV/bin/python" -c "import pyarrow" 2>/dev/null || "$GEN_VENV/bin/pip" install -q pyarrow
  echo "== making $PARQUET ($PARQUET_ROWS rows)" >&2
  "$GEN_VENV/bin/python" - "$PARQUET.tmp" "$PARQUET_ROWS" <<'PYEOF'
import hashlib, sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
path, rows = sys.argv[1], int(sys.argv[2])
CHUNK = 250_000
schema = pa.schema([("id", pa.int64()), ("k", pa.int32()), ("x", pa.float64()),
                    ("y", pa.float64()), ("s", pa.string()), ("t", pa.string())])
with pq.ParquetWriter(path, schema, compression="none", use_dictionary=False,
                      write_statistics=True) as w:
    for start in range(0, rows, CHUNK):
        ids = range(start, min(start + CHUNK, rows))
        n = len(ids)
        s = [hashlib.md5(str(i).encode()).hexdigest() for i in ids]
        w.write_table(pa.table({
            "id": pa.array(ids, pa.int64()),
            "k": pa.array([i % 1000 for i in ids], pa.int32()),
            "x": pc.random(n),
            "y": pc.multiply(pc.random(n), 1e6),
            "s": pa.array(s, pa.string()),
            "t": pa.array([f"row {i} of the s3 benchmark {h[:12]}" for i, h in zip(ids, s)],
                          pa.string()),
        }, schema=schema), row_group_size=CHUNK)
PYEOF
  mv "$PARQUET.tmp" "$PARQUET"
fi
OBJECT_BYTES=$(stat -c %s "$PARQUET")
[ "$OBJECT_BYTES" -ge 200000000 ] || {
  echo "$PARQUET is $OBJECT_BYTES bytes, under 200 MB: remove it and raise PARQUET_ROWS" >&2
  exit 1
}
export OBJECT_BYTES

# gofakes3: built from tests/gofakes3 (Go module proxy) once, started unless already up.
start_gofakes3() {
  curl -fsS -m 2 -o /dev/null "$GOFAKES3_URL/" 2>/dev/null && return 0
  mkdir -p "$GOFAKES3_DIR"
  if [ ! -x "$GOFAKES3_DIR/gofakes3" ]; then
    echo "== building gofakes3 into $GOFAKES3_DIR" >&2
    (cd tests/gofakes3 && go build -o "$GOFAKES3_DIR/gofakes3" .)
  fi
  nohup "$GOFAKES3_DIR/gofakes3" -addr "${GOFAKES3_URL#http://}" >"$GOFAKES3_DIR/log" 2>&1 &
  for _ in $(seq 50); do
    curl -fsS -m 2 -o /dev/null "$GOFAKES3_URL/" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "gofakes3 did not start; see $GOFAKES3_DIR/log" >&2
  exit 1
}

# PROFILE=dev measures a debug build (minutes to build instead of half an hour; slower).
PROFILE="${PROFILE:-bench}"
cargo bench --profile "$PROFILE" --bench s3_bench --no-run
: >"$RESULTS"
# Each result line gets the server's name.
tag() { grep '^{' | sed "s/^{/{\"server\":\"$SERVER\",/" | tee -a "$RESULTS"; }
dk() { cargo bench -q --profile "$PROFILE" --bench s3_bench -- "$1" | tag; }
py() { "$PY" benches/s3_compare.py "$1" | tag; }

for SERVER in $SERVERS; do
  case "$SERVER" in
    moto) export DK_BENCH_S3_ENDPOINT=http://127.0.0.1:9310 ;;
    gofakes3) start_gofakes3; export DK_BENCH_S3_ENDPOINT="$GOFAKES3_URL" ;;
    *) echo "unknown server $SERVER (moto, gofakes3)" >&2; exit 1 ;;
  esac
  export SERVER
  ENDPOINT="${DK_BENCH_S3_ENDPOINT%/}"
  curl -fsS -m 5 -o /dev/null "$ENDPOINT/" || {
    echo "no S3 server at $ENDPOINT; run scripts/services.sh first" >&2
    exit 1
  }
  echo "== server $SERVER at $ENDPOINT" >&2
  # Both make the bucket on an unsigned PUT (moto: 200 whether or not it is there already;
  # gofakes3: 409 when it is).
  curl -sS -m 30 -X PUT -o /dev/null "$ENDPOINT/$DK_BENCH_S3_BUCKET"

  # Upload the object as BUCKET/ds/big.parquet unless it is there with the same size. The
  # Content-Type matters: moto may hang on a large PUT it takes for a form.
"$PY" - "$PARQUET" "$OBJECT_BYTES" <<'PYEOF'
import os, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from boto3.s3.transfer import TransferConfig
path, size = sys.argv[1], int(sys.argv[2])
bucket = os.environ["DK_BENCH_S3_BUCKET"]
s3 = boto3.client("s3", endpoint_url=os.environ["DK_BENCH_S3_ENDPOINT"],
                  aws_access_key_id=os.environ["DK_BENCH_S3_KEY"],
                  aws_secret_access_key=os.environ["DK_BENCH_S3_SECRET"],
                  region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
try:
    have = s3.head_object(Bucket=bucket, Key="ds/big.parquet")["ContentLength"]
except ClientError:
    have = None
if have != size:
    print(f"== uploading {path} ({size:,} bytes) to {bucket}/ds/big.parquet", file=sys.stderr)
    s3.upload_file(path, bucket, "ds/big.parquet",
                   ExtraArgs={"ContentType": "application/octet-stream"},
                   Config=TransferConfig(multipart_chunksize=64 * 1024 * 1024))
    have = s3.head_object(Bucket=bucket, Key="ds/big.parquet")["ContentLength"]
    assert have == size, (have, size)
PYEOF

  echo "== create" >&2
  dk create
  py create
  echo "== read" >&2
  dk read
  py read
  echo "== scan" >&2
  dk scan
  py curl
done

"$PY" - "$RESULTS" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["server"], r["engine"].split()[0], r["bench"]): r for r in rows}
servers = list(dict.fromkeys(r["server"] for r in rows))
print("\n| server | bench | dataknobs | other | ratio (dataknobs ÷ other, throughput) |")
print("|---|---|---|---|---|")
for server in servers:
    for bench, other, unit in [("create", "boto3", "records_per_s"),
                               ("read", "boto3", "records_per_s"), ("scan", "curl", "mb_per_s")]:
        d, o = by.get((server, "dataknobs", bench)), by.get((server, other, bench))
        if d is None or o is None:
            continue
        label = "records/s" if unit == "records_per_s" else "MB/s"
        if d.get(unit) is None or not o.get(unit):
            ratio = "n/a"
        else:
            ratio = f"{d[unit] / o[unit]:.2f}x {label}"
        fmt = (lambda r: f"{r[unit]:,} {label}") if unit == "records_per_s" else \
              (lambda r: f"{r[unit]} {label}")
        print(f"| {server} | {bench} | {d['seconds']:.3f} s ({fmt(d)}) | {o['engine']}: "
              f"{o['seconds']:.3f} s ({fmt(o)}) | {ratio} |")
PYEOF
