#!/usr/bin/env bash
# The whole test suite: starts the services the tests need (scripts/services.sh: PostgreSQL and
# an OpenSearch node, moto for S3, Redis and a MiniDFSCluster for HDFS), then runs every test.
# In CI a missing service is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
# shellcheck source=scripts/services.sh
source scripts/services.sh
start_services
cargo test --all-features --all-targets "$@"
# Restarts PostgreSQL, so it runs alone, after everything else. It must run and pass as exactly
# one test: a renamed test would otherwise be "0 tests", which cargo reports as success.
restart_log=$(mktemp)
trap 'rm -f "$restart_log"' EXIT
cargo test --all-features --test integration "$@" -- --ignored --exact postgres_more::server_restart_between_queries 2>&1 | tee "$restart_log"
if ! grep -q "test result: ok. 1 passed;" "$restart_log"; then
  echo "test.sh: postgres_more::server_restart_between_queries did not run as exactly one passing test" >&2
  exit 1
fi
# Doc examples (all-targets skips them).
cargo test --all-features --doc "$@"
