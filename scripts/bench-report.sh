#!/usr/bin/env bash
# Runs the memory benchmark and prints dataknobs' time as a ratio of plain DataFusion's.
# Usage: scripts/bench-report.sh   (uses CARGO_TARGET_DIR if set)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo bench --bench memory_scan -- --noplot "$@"
est() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['median']['point_estimate']/1e6)" "$1"; }
base="$target/criterion/filter_aggregate_1m"
df=$(est "$base/datafusion_memtable/new/estimates.json")
dk=$(est "$base/dataknobs_memory/new/estimates.json")
python3 - "$df" "$dk" <<'PY'
import sys
df, dk = float(sys.argv[1]), float(sys.argv[2])
print(f"filter+aggregate over 1M rows (median): DataFusion MemTable {df:.1f} ms, dataknobs memory {dk:.1f} ms, ratio {dk/df:.2f}x (target <= 1.5x)")
PY
