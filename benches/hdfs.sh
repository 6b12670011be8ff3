#!/usr/bin/env bash
# The HDFS backend side by side, in one run (issue 16's figures), on the MiniDFSCluster of
# scripts/hdfs.sh (started here unless it is up):
#   scan: SELECT * FROM lake.dk_bench_parquet (≥ 200 MB of Parquet under /warehouse, written
#         once by the bench) into Arrow  vs  a plain hdfs-native loop reading the same files
#         whole, as many at once as the scan has partitions, and (for reference) the same query in
#         a bare DataFusion session (benches/hdfs_bench.rs, one process, alternating, medians)
#   kv:   2000 records, HdfsKeyValueStore insert_many / get_many (benches/hdfs_bench.rs)  vs
#         the Python seed's HDFSStoreBackend method: HdfsCLI over WebHDFS, one JSON file per
#         record, one call after another (benches/hdfs_seed.py)
# Then the table of ratios. Usage: benches/hdfs.sh. Environment: RUNS (5: dataknobs' runs, scan
# and kv), SEED_RUNS (1: the seed's runs; one takes minutes), RECORDS (2000), FANOUT ("1,8":
# also 8 concurrent insert_many/get_many calls; see hdfs_bench.rs), PARQUET_FILES (4),
# PARQUET_ROWS (2560000), PARQUET_ROW_GROUP (131072), CLOSE_PROBE (40), PROFILE (bench =
# release; dev for a quick debug-build run), RESULTS (/tmp/hdfs_bench.jsonl), MODES ("parquet
# kv").
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
RESULTS="${RESULTS:-/tmp/hdfs_bench.jsonl}"
PROFILE="${PROFILE:-bench}"
MODES="${MODES:-parquet kv}"
export RECORDS="${RECORDS:-2000}"
export FANOUT="${FANOUT:-1,8}"

# shellcheck source=scripts/hdfs.sh
source scripts/hdfs.sh
start_hdfs
PY=$(hdfs_bench_venv)
export DK_BENCH_HDFS_URL="$DK_TEST_HDFS_URL"
export DK_BENCH_WEBHDFS="$DK_TEST_HDFS_WEBHDFS"
export DK_BENCH_HDFS_USER="$DK_TEST_HDFS_USER"
# hdfs-native connects as the process's user; the seed's client names the superuser.
export HADOOP_USER_NAME="${HADOOP_USER_NAME:-$DK_TEST_HDFS_USER}"

cargo bench --profile "$PROFILE" --bench hdfs_bench --no-run
: >"$RESULTS"
keep() { grep '^{' | tee -a "$RESULTS"; }
for mode in $MODES; do
  echo "== $mode" >&2
  cargo bench -q --profile "$PROFILE" --bench hdfs_bench -- "$mode" | keep
  if [ "$mode" = kv ]; then
    echo "== kv: the seed's method (HdfsCLI, sequential; minutes)" >&2
    "$PY" benches/hdfs_seed.py kv | keep
  fi
done

python3 - "$RESULTS" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def one(engine, bench):
    return next((r for r in rows if r["engine"] == engine and r["bench"] == bench), None)
print("\n| bench | dataknobs | other | ratio (dataknobs ÷ other, throughput) |")
print("|---|---|---|---|")
d, o = one("dataknobs", "scan"), one("hdfs-native", "scan")
if d and o:
    print(f"| `SELECT *` of {d['bytes'] / 1e6:.0f} MB of Parquet, {d['partitions']} partitions "
          f"(CPU {d['cpu_s']:.2f} s)"
          f" vs hdfs-native reading the files whole, {o['files_at_once']} at once (CPU "
          f"{o['cpu_s']:.2f} s) | {d['seconds']:.3f} s, {d['mb_per_s']:,} MB/s | "
          f"{o['seconds']:.3f} s, {o['mb_per_s']:,} MB/s | **{o['seconds'] / d['seconds']:.2f}×** (median of "
          f"the rounds' own ratios: {d.get('paired_ratio', 0):.2f}×) |")
    b = one("datafusion", "scan")
    if b:
        print(f"| (for reference) the same `SELECT *` in a bare DataFusion session over the same "
              f"object store, {b['partitions']} partitions (CPU {b['cpu_s']:.2f} s) vs "
              f"hdfs-native | {b['seconds']:.3f} s, {b['mb_per_s']:,} MB/s | {o['seconds']:.3f} s, "
              f"{o['mb_per_s']:,} MB/s | {o['seconds'] / b['seconds']:.2f}× (dataknobs ÷ bare "
              f"DataFusion: {b['seconds'] / d['seconds']:.2f}×) |")
for bench in ["insert", "get"]:
    o = one("hdfscli", bench)
    for d in (r for r in rows if r["engine"] == "dataknobs" and r["bench"] == bench):
        if o is None:
            continue
        print(f"| {d['records']} records, {bench}: {d['method']} vs the seed (HdfsCLI, "
              f"sequential) | {d['seconds']:.3f} s, {d['records_per_s']:,} records/s | "
              f"{o['seconds']:.3f} s, {o['records_per_s']:,} records/s | "
              f"**{o['seconds'] / d['seconds']:.1f}×** |")
p = one("hdfs-native", "close_probe")
if p:
    print(f"\nclose probe: {p['waited']} of {p['files']} hdfs-native closes waited ≥ 0.3 s "
          f"(median {p['median_close_s']:.3f} s, max {p['max_close_s']:.3f} s)")
s = one("hdfscli", "insert")
if s:
    print(f"seed: inserts that took ≥ 0.3 s, per run: {s['inserts_over_0_3s']} of {s['records']}")
PYEOF
