#!/usr/bin/env bash
# The Redis backend side by side with redis-benchmark and plain redis-rs loops on the Redis
# server of scripts/services.sh (benches/redis_bench.rs: scan, key lookups, INSERT; one JSON
# object per figure). Usage: benches/redis.sh. Environment: DK_BENCH_REDIS_URL
# (DK_TEST_REDIS_URL, else redis://127.0.0.1:6390), DK_BENCH_REDIS_DB (15, flushed), RECORDS
# (100000), BATCH (1000), RUNS (3), PROFILE (bench = release; dev for a quick debug run),
# RESULTS (/tmp/redis_bench.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
export DK_BENCH_REDIS_URL="${DK_BENCH_REDIS_URL:-${DK_TEST_REDIS_URL:-redis://127.0.0.1:6390}}"
RESULTS="${RESULTS:-/tmp/redis_bench.jsonl}"
if [ "${PROFILE:-bench}" = dev ]; then
  cargo bench --profile dev --bench redis_bench -- | tee "$RESULTS"
else
  cargo bench --bench redis_bench -- | tee "$RESULTS"
fi
