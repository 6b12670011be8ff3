#!/usr/bin/env bash
# The record API side by side with the Python seed (issue 18), in one run: dataknobs
# (benches/records.rs) and `dataknobs-data` 0.4.13 (benches/records_seed.py, both its sync and
# async flavours) on the same workload, alternating ROUNDS (2) times, then the table of ratios
# against the seed's faster flavour of each row.
#   memory:   MEM_RECORDS (100000) single creates, one batch of as many, a search over both
#   postgres: PG_RECORDS (10000; the seed's async batch fails above 10922 records: asyncpg's
#             32767 parameters) the same, on the PostgreSQL of scripts/services.sh. The seed's
#             sync flavour opens a connection per call (≈ 40 records/s): it runs with
#             SEED_PG_SYNC=1 only. Each round also measures the server alone
#             (benches/pg_records_bound.py: psycopg2 COPY in and the search's COPY out, no
#             record handling): the last column, with the ratio over the seed it allows.
#   elasticsearch: ES_RECORDS (2000; the seed's single creates take ≈ 30 ms each) the same, on the Elasticsearch 8 node of
#             scripts/elasticsearch.sh (DK_BENCH_ES_URL; the seed's `elasticsearch` 8.x client
#             refuses OpenSearch), refresh=true on every write as the seed does by default.
#   s3:       S3_RECORDS (1000; the seed writes one object per record, its batch is a loop of
#             single creates) the same, on the moto_server of scripts/s3.sh (DK_BENCH_S3_*).
#   file:     FILE_RECORDS (2000; the seed rewrites the whole JSON file on every create) the
#             same, on a JSON file (one array of records) in a temporary directory.
#   redis:    REDIS_RECORDS (10000) through the key-value store API, against the seed's
#             RedisStoreBackend (PyPI event-pipeline 2.0.0, benches/redis_seed.py, in its own
#             venv REDIS_SEED_VENV): single inserts, a batch (the seed has no bulk insert: one
#             insert_record each), single gets and a filter `city = 'Oslo'`, on the Redis
#             server of scripts/services.sh (DK_BENCH_REDIS_URL, database DK_BENCH_REDIS_DB 14);
#             each round also measures the server alone (benches/redis_records_bound.sh:
#             redis-benchmark, one connection, the same single commands and the search's
#             HGETALL).
# Environment: ROUNDS, MEM_RECORDS, PG_RECORDS, ES_RECORDS, S3_RECORDS, FILE_RECORDS,
# REDIS_RECORDS, SEARCHES (5), MODES ("memory postgres"; any of memory file postgres
# elasticsearch s3 redis), RESULTS
# (/tmp/records_bench.jsonl), PROFILE (bench = release; dev for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
RESULTS="${RESULTS:-/tmp/records_bench.jsonl}"
PROFILE="${PROFILE:-bench}"
MODES="${MODES:-memory postgres}"
ROUNDS="${ROUNDS:-2}"
export MEM_RECORDS="${MEM_RECORDS:-100000}" PG_RECORDS="${PG_RECORDS:-10000}"
export ES_RECORDS="${ES_RECORDS:-2000}" S3_RECORDS="${S3_RECORDS:-1000}"
export FILE_RECORDS="${FILE_RECORDS:-2000}" REDIS_RECORDS="${REDIS_RECORDS:-10000}"
export SEARCHES="${SEARCHES:-5}"

# shellcheck source=scripts/services.sh
source scripts/services.sh
if [[ " $MODES " == *" postgres "* ]]; then
  start_postgres
  export DK_BENCH_POSTGRES_URL="${DK_BENCH_POSTGRES_URL:-$DK_TEST_POSTGRES_URL}"
fi
if [[ " $MODES " == *" elasticsearch "* ]]; then
  start_elasticsearch
  export DK_BENCH_ES_URL="${DK_BENCH_ES_URL:-$DK_TEST_ES8_URL}"
fi
if [[ " $MODES " == *" s3 "* ]]; then
  start_s3
  export DK_BENCH_S3_ENDPOINT="${DK_BENCH_S3_ENDPOINT:-$DK_TEST_S3_ENDPOINT}"
  export DK_BENCH_S3_REGION="${DK_BENCH_S3_REGION:-$DK_TEST_S3_REGION}"
  export DK_BENCH_S3_KEY="${DK_BENCH_S3_KEY:-$DK_TEST_S3_ACCESS_KEY}"
  export DK_BENCH_S3_SECRET="${DK_BENCH_S3_SECRET:-$DK_TEST_S3_SECRET_KEY}"
  # The bucket of the dataknobs side (the seed makes its own); moto makes it on an unsigned PUT.
  export DK_BENCH_S3_BUCKET_RUST="${DK_BENCH_S3_BUCKET_RUST:-dk-bench-records}"
  curl -sS -m 30 -X PUT -o /dev/null "$DK_BENCH_S3_ENDPOINT/$DK_BENCH_S3_BUCKET_RUST"
fi
REDIS_VENV="${REDIS_SEED_VENV:-/var/tmp/dk-redis-seed-venv}"
if [[ " $MODES " == *" redis "* ]]; then
  start_redis
  export DK_BENCH_REDIS_URL="${DK_BENCH_REDIS_URL:-$DK_TEST_REDIS_URL}"
  # The seed's Redis store: event-pipeline imports cloudpickle without declaring it, and
  # declares no redis client (its own project pins redis 5.2.1).
  if ! "$REDIS_VENV/bin/python" -c "import event_pipeline.backends.stores.redis_store" 2>/dev/null; then
    [ -x "$REDIS_VENV/bin/python" ] || python3 -m venv "$REDIS_VENV"
    "$REDIS_VENV/bin/pip" install -q "event-pipeline==2.0.0" "redis==5.2.1" "cloudpickle==3.1.3"
  fi
fi
VENV="${SEED_VENV:-/var/tmp/dk-seed-venv}"
# The seed and the clients its backends import (postgres: psycopg2, asyncpg; elasticsearch:
# elasticsearch[async] 8.x; s3: boto3, aioboto3), installed when one is missing.
if ! "$VENV/bin/python" -c "import dataknobs_data, psycopg2, asyncpg, elasticsearch, boto3, aioboto3" 2>/dev/null; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "dataknobs-data[postgres,elasticsearch,s3]==0.4.13"
fi

cargo bench --profile "$PROFILE" --bench records --no-run
: >"$RESULTS"
keep() { grep '^{' | tee -a "$RESULTS"; }
for round in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    echo "== round $round: $mode, dataknobs" >&2
    ROUNDS=1 cargo bench -q --profile "$PROFILE" --bench records -- "$mode" |
      sed "s/\"round\":1/\"round\":$round/" | keep
    echo "== round $round: $mode, the seed" >&2
    if [ "$mode" = redis ]; then
      ROUND="$round" "$REDIS_VENV/bin/python" benches/redis_seed.py | keep
      echo "== round $round: $mode, the server alone" >&2
      ROUND="$round" bash benches/redis_records_bound.sh | keep
      continue
    fi
    # Both flavours, for elasticsearch and s3 too (both work there).
    flavours=(sync async)
    [ "$mode" = postgres ] && [ -z "${SEED_PG_SYNC:-}" ] && flavours=(async)
    for f in "${flavours[@]}"; do
      FLAVOURS="$f" ROUNDS=1 "$VENV/bin/python" benches/records_seed.py "$mode" |
        sed "s/\"round\": 1/\"round\": $round/" | keep
    done
    if [ "$mode" = postgres ]; then
      echo "== round $round: $mode, the server alone" >&2
      ROUND="$round" "$VENV/bin/python" benches/pg_records_bound.py | keep
    fi
  done
done

python3 - "$RESULTS" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def rate(r):  # higher is better
    return r["records_per_s"] if r["bench"] != "search" else 1000.0 / r["ms"]
def shown(r):
    return f"{r['records_per_s']:,.0f} rec/s" if r["bench"] != "search" else f"{r['ms']:,.1f} ms"
print("\n| workload | seed (faster flavour, each round) | dataknobs (each round) | ratio "
      "| server alone (ratio it allows) |")
print("|---|---|---|---|---|")
names = {"single": "single creates", "batch": "one batch of", "get": "single reads",
         "search": "search over"}
for backend in ["memory", "file", "postgres", "elasticsearch", "s3", "redis"]:
    for bench in ["single", "batch", "get", "search"]:
        ours = [r for r in rows if r["engine"] == "dataknobs" and r["backend"] == backend
                and r["bench"] == bench]
        seed = [r for r in rows if r["engine"] == "seed" and r["backend"] == backend
                and r["bench"] == bench and "error" not in r]
        if not ours or not seed:
            continue
        best = {}
        for r in seed:
            if r["round"] not in best or rate(r) > rate(best[r["round"]]):
                best[r["round"]] = r
        ratios = [rate(o) / rate(best[o["round"]]) for o in ours if o["round"] in best]
        s = ", ".join(f"{shown(best[k])} ({best[k]['flavour']})" for k in sorted(best))
        d = ", ".join(shown(o) for o in ours)
        lo, hi = min(ratios), max(ratios)
        span = f"{lo:.1f}×" if abs(hi - lo) < 0.05 else f"{lo:.1f}–{hi:.1f}×"
        bound = [r for r in rows if r["engine"] == "server bound" and r["backend"] == backend
                 and r["bench"] == bench and r["round"] in best]
        b = "—"
        if bound:
            allowed = [rate(r) / rate(best[r["round"]]) for r in bound]
            b = ", ".join(shown(r) for r in bound)
            b += f" ({min(allowed):.1f}–{max(allowed):.1f}×)"
        what = f"{names[bench]} {ours[0]['records']:,}"
        if backend == "redis" and bench == "search":
            what += " (`city = 'Oslo'`)"
        if backend == "redis" and bench == "batch":
            what += " (the seed: one insert_record each)"
        print(f"| {backend}: {what} | {s} | {d} | **{span}** "
              f"| {b} |")
PYEOF
