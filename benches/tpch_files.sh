#!/usr/bin/env bash
# TPC-H SF1 lineitem, Q1 and Q6, Parquet and CSV: dataknobs vs bare DataFusion (one Rust
# process) and DuckDB (PyPI duckdb, same files, same machine, right after), then the ratios.
# Parquet runs twice: DataFusion's default settings ("default") and with filter pushdown into
# the decoder plus filter reordering on both Rust sides ("tuned").
# Usage: benches/tpch_files.sh [DATA_DIR]   (default /var/tmp/dataknobs-tpch)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-/var/tmp/dataknobs-tpch}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
command -v tpchgen-cli >/dev/null || cargo install tpchgen-cli
if [ ! -f "$DIR/parquet/lineitem.parquet" ]; then
  mkdir -p "$DIR/parquet" "$DIR/csv"
  tpchgen-cli parquet -s 1 --tables=lineitem --output-dir="$DIR/parquet"
  tpchgen-cli csv -s 1 --tables=lineitem --output-dir="$DIR/csv"
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c "import duckdb" 2>/dev/null || .venv/bin/pip install -q duckdb
TPCH_DIR="$DIR" cargo bench --bench tpch_files | tee /tmp/tpch_rust.jsonl
.venv/bin/python benches/tpch_duckdb.py "$DIR" /tmp/tpch_rust.jsonl
