#!/usr/bin/env bash
# Record API on a JSON/NDJSON file: dataknobs vs the Python seed package, same workload, one run.
# Usage: benches/file_records.sh [PYTHON_SEARCHES]  (the seed takes seconds per search)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import dataknobs_data" 2>/dev/null || .venv/bin/pip install -q dataknobs-data
cargo bench --bench file_records | tee /tmp/file_records_rust.jsonl
.venv/bin/python benches/file_records_seed.py "${1:-10}" | tee /tmp/file_records_seed.jsonl
python3 - <<'PY'
import json
rust = [json.loads(l) for l in open("/tmp/file_records_rust.jsonl") if l.startswith("{")]
seed = [json.loads(l) for l in open("/tmp/file_records_seed.jsonl") if l.startswith("{")][0]
for r in rust:
    print(f"{r['format']:7} creates/s {r['creates_per_s']:>9.0f} vs seed {seed['creates_per_s']:>7} "
          f"({r['creates_per_s'] / seed['creates_per_s']:.1f}x)  search {r['search_ms']:.2f} ms vs seed "
          f"{seed['search_ms']:.1f} ms ({seed['search_ms'] / r['search_ms']:.0f}x faster)")
PY
