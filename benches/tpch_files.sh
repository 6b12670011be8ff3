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
# Python side (DuckDB, tpchgen-cli from PyPI): the same virtualenv as benches/pg_lineitem.sh.
VENV=/var/tmp/dk-pgbench-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import duckdb" 2>/dev/null || "$VENV/bin/pip" install -q "duckdb==1.4.4"
TPCHGEN="$(command -v tpchgen-cli || echo "$VENV/bin/tpchgen-cli")"
if [ ! -f "$DIR/parquet/lineitem.parquet" ] || [ ! -f "$DIR/csv/lineitem.csv" ]; then
  [ -x "$TPCHGEN" ] || "$VENV/bin/pip" install -q tpchgen-cli
  mkdir -p "$DIR/parquet" "$DIR/csv"
  [ -f "$DIR/parquet/lineitem.parquet" ] ||
    "$TPCHGEN" parquet -s 1 --tables=lineitem --output-dir="$DIR/parquet"
  [ -f "$DIR/csv/lineitem.csv" ] ||
    "$TPCHGEN" csv -s 1 --tables=lineitem --output-dir="$DIR/csv"
fi
TPCH_DIR="$DIR" cargo bench --bench tpch_files | tee /tmp/tpch_rust.jsonl
"$VENV/bin/python" benches/tpch_duckdb.py "$DIR" /tmp/tpch_rust.jsonl
