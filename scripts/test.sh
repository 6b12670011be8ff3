#!/usr/bin/env bash
# The whole test suite: starts the services the tests need (none yet for the memory backend;
# backend issues add PostgreSQL, Redis, OpenSearch (osmem-server) and S3 (moto) here), then runs
# every test. In CI a missing service is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
# shellcheck source=scripts/services.sh
source scripts/services.sh
start_services
cargo test --all-features --all-targets "$@"
# Restarts PostgreSQL, so it runs alone, after everything else.
cargo test --all-features --test integration "$@" -- --ignored --exact postgres_more::server_restart_between_queries
# Doc examples (all-targets skips them).
cargo test --all-features --doc "$@"
