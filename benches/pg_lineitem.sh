#!/usr/bin/env bash
# TPC-H SF1 lineitem (6.0M rows) through PostgreSQL: dataknobs (benches/pg_lineitem.rs) side by
# side with DuckDB's postgres extension, ConnectorX and psql (benches/pg_compare.py), each tool
# in its own process, then a table of times, peak RSS and ratios.
#   load:       dataknobs CTAS pg.T from the Parquet file | DuckDB CTAS pg.T_duckdb from the
#               same file (LOAD_ROUNDS rounds, default 3, alternating) | psql \copy T_copy from
#               the CSV file
#   scan:       an aggregate over every column of T (dataknobs, DuckDB; psql_floor: PostgreSQL
#               alone, two ctid-range COPYs to /dev/null), and SELECT * into
#               Arrow (dataknobs and DuckDB streaming; ConnectorX 1 and 2 partitions)
#   filter:     SELECT * FROM T WHERE l_orderkey < 6000 (6018 rows; no index, ANALYZEd)
# Usage: benches/pg_lineitem.sh [DATA_DIR]   (default /var/tmp/dataknobs-tpch)
# Environment: DK_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test),
#   DK_BENCH_TABLE (lineitem_bench), SKIP_LOAD=1 (reuse T from an earlier run),
#   KEEP_TABLES=1 (keep T_duckdb and T_copy), RESULTS (/tmp/pg_lineitem.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$(realpath -m "${1:-/var/tmp/dataknobs-tpch}")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
export DK_BENCH_POSTGRES_URL="${DK_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export DK_BENCH_TABLE="${DK_BENCH_TABLE:-lineitem_bench}"
export TPCH_DIR="$DIR"
URL="$DK_BENCH_POSTGRES_URL"
T="$DK_BENCH_TABLE"
RESULTS="${RESULTS:-/tmp/pg_lineitem.jsonl}"
VENV=/var/tmp/dk-pgbench-venv
PY="$VENV/bin/python"

pg() { psql "$URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
pg -Atc 'SELECT 1' >/dev/null || {
  echo "PostgreSQL is not reachable at $URL" >&2
  exit 1
}

# Python side: DuckDB + its postgres extension (same version), ConnectorX, pyarrow.
[ -x "$PY" ] || python3 -m venv "$VENV"
"$PY" -c "import duckdb, connectorx, pyarrow, importlib.metadata as m; m.files('duckdb-ext-postgres')" \
  2>/dev/null ||
  "$VENV/bin/pip" install -q "duckdb==1.4.4" "duckdb-ext-postgres==1.4.4.*" connectorx pyarrow

# Data: the same files as benches/tpch_files.sh (tpchgen-cli from PATH, else from PyPI).
TPCHGEN="$(command -v tpchgen-cli || echo "$VENV/bin/tpchgen-cli")"
if [ ! -f "$DIR/parquet/lineitem.parquet" ] || [ ! -f "$DIR/csv/lineitem.csv" ]; then
  [ -x "$TPCHGEN" ] || "$VENV/bin/pip" install -q tpchgen-cli
fi
if [ ! -f "$DIR/parquet/lineitem.parquet" ]; then
  mkdir -p "$DIR/parquet" "$DIR/csv"
  "$TPCHGEN" parquet -s 1 --tables=lineitem --output-dir="$DIR/parquet"
  "$TPCHGEN" csv -s 1 --tables=lineitem --output-dir="$DIR/csv" --overwrite
fi
if [ ! -f "$DIR/csv/lineitem.csv" ]; then
  mkdir -p "$DIR/csv"
  "$TPCHGEN" csv -s 1 --tables=lineitem --output-dir="$DIR/csv"
fi

# Build first, so that no measurement waits for the compiler.
cargo bench --bench pg_lineitem --no-run

: >"$RESULTS"
# dk MODE: the dataknobs bench in its own process; a failure is recorded, not fatal.
dk() {
  local out
  if out="$(cargo bench -q --bench pg_lineitem -- "$1" | grep '^{')"; then
    echo "$out" | tee -a "$RESULTS"
  else
    echo "{\"engine\":\"dataknobs\",\"bench\":\"$1\",\"error\":\"failed (see above)\"}" | tee -a "$RESULTS"
  fi
}
# other TOOL BENCH: one pg_compare.py measurement in its own process.
other() {
  local out
  if out="$("$PY" benches/pg_compare.py run "$1" "$2")"; then
    echo "$out" | tee -a "$RESULTS"
  else
    echo "{\"engine\":\"$1\",\"bench\":\"$2\",\"error\":\"failed (see above)\"}" | tee -a "$RESULTS"
  fi
}

if [ "${SKIP_LOAD:-0}" != 1 ]; then
  echo "== load (each after a CHECKPOINT)" >&2
  pg -c "DROP TABLE IF EXISTS $T, ${T}_duckdb, ${T}_copy"
  # Loads vary by seconds from run to run (checkpoints, WAL): LOAD_ROUNDS rounds of
  # dataknobs then DuckDB, alternating, each after a CHECKPOINT; the report takes medians.
  for round in $(seq "${LOAD_ROUNDS:-3}"); do
    echo "-- load round $round" >&2
    pg -c CHECKPOINT || true
    dk load
    pg -c CHECKPOINT || true
    other duckdb load
  done
  pg -c CHECKPOINT || true
  other psql load
  # The dataknobs table is the one every tool scans below; if its load failed, scan a copy so
  # that the other measurements still run (the report shows the failed load).
  if [ "$(pg -Atc "SELECT to_regclass('$T') IS NOT NULL")" != t ]; then
    echo "warning: $T was not loaded by dataknobs; scanning a copy of ${T}_copy" >&2
    pg -c "CREATE TABLE $T AS TABLE ${T}_copy"
  fi
  # Same starting point for every reader: hint bits set, visibility map, statistics.
  for t in "$T" "${T}_duckdb" "${T}_copy"; do
    pg -c "VACUUM (ANALYZE) $t" || true
  done
fi
# Warm the OS page cache for the scanned table once, for everybody.
pg -Atc "SELECT count(*) FROM $T" >/dev/null

echo "== scan" >&2
dk scan
other duckdb scan
other psql_floor scan
dk scan_arrow
other duckdb scan_arrow
other connectorx scan_arrow
other connectorx_p2 scan_arrow

echo "== filter" >&2
dk filter
other psql filter
other duckdb filter

"$PY" benches/pg_compare.py report "$RESULTS"
if [ "${KEEP_TABLES:-0}" != 1 ]; then
  pg -c "DROP TABLE IF EXISTS ${T}_duckdb, ${T}_copy"
fi
