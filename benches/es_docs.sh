#!/usr/bin/env bash
# 200,000 documents (keyword, long, double, text) on the OpenSearch test node: dataknobs
# (benches/es_docs.rs) side by side with the Python client opensearch-py and curl
# (benches/es_compare.py), each measurement in its own process, then the ratios.
#   load:   INSERT INTO es.T SELECT … (dataknobs)  vs  helpers.bulk into T_py (same mapping)
#   scan:   SELECT * FROM es.T into Arrow          vs  helpers.scan (every _source into a dict)
#   filter: WHERE n >= 100000 AND n < 100200 (200 docs, 0.1%)  vs  the same search with curl
# Usage: benches/es_docs.sh. Environment: DK_BENCH_HTTP_URL (default http://127.0.0.1:9200),
#   DK_BENCH_INDEX (dk_bench_docs), DOCS (200000), RESULTS (/tmp/es_docs.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/dataknobs-target}"
export DK_BENCH_HTTP_URL="${DK_BENCH_HTTP_URL:-http://127.0.0.1:9200}"
export DK_BENCH_ES_URL="es+$DK_BENCH_HTTP_URL"
export DK_BENCH_INDEX="${DK_BENCH_INDEX:-dk_bench_docs}"
RESULTS="${RESULTS:-/tmp/es_docs.jsonl}"
VENV=/var/tmp/dk-esbench-venv
PY="$VENV/bin/python"

curl -fsS -m 5 "$DK_BENCH_HTTP_URL/" >/dev/null || {
  echo "no server at $DK_BENCH_HTTP_URL; run scripts/services.sh first" >&2
  exit 1
}
[ -x "$PY" ] || python3 -m venv "$VENV"
"$PY" -c "import opensearchpy" 2>/dev/null || "$VENV/bin/pip" install -q "opensearch-py==2.8.0"

cargo bench --bench es_docs --no-run
: >"$RESULTS"
dk() { cargo bench -q --bench es_docs -- "$1" | grep '^{' | tee -a "$RESULTS"; }
py() { "$PY" benches/es_compare.py "$1" | tee -a "$RESULTS"; }

echo "== load" >&2
dk load
py bulk
echo "== scan" >&2
dk scan
py scan
echo "== filter" >&2
dk filter
py curl

"$PY" - "$RESULTS" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["engine"].split()[0], r["bench"]): r for r in rows}
def ratio(bench, other):
    d, o = by[("dataknobs", bench)], by[(other, bench)]
    return d, o, o["seconds"] / d["seconds"]
print("\n| bench | dataknobs | other | other/dataknobs time |")
print("|---|---|---|---|")
for bench, other in [("load", "opensearch-py"), ("scan", "opensearch-py"), ("filter", "curl")]:
    d, o, r = ratio(bench, other)
    print(f"| {bench} | {d['seconds']:.3f} s ({d['docs_per_s']:,} docs/s) | {o['engine']}: "
          f"{o['seconds']:.3f} s ({o['docs_per_s']:,} docs/s) | {r:.2f}x |")
PYEOF
