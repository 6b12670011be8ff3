#!/usr/bin/env bash
# The Redis server's own bound for the `redis` rows of benches/records.sh: what a C client
# (redis-benchmark, one connection, one request at a time) gets from the same server for the
# single calls dataknobs makes, and for the search's one HGETALL of 2 × REDIS_RECORDS records
# like the bench's. Prints JSON lines as records.rs does, engine "server bound":
#   single  HSETNX of a new field with a record's JSON (dataknobs' insert_record)
#   get     HGET of an existing field (get_record)
#   search  HGETALL of the hash (the request a filter_record of that size sends), ms
# Environment: DK_BENCH_REDIS_URL (redis://127.0.0.1:6390), DK_BENCH_REDIS_DB (14),
# REDIS_RECORDS (10000), ROUND (1).
set -euo pipefail
url="${DK_BENCH_REDIS_URL:-redis://127.0.0.1:6390}"
hostport="${url#redis://}"
hostport="${hostport%%/*}"
host="${hostport%%:*}"
port="${hostport##*:}"
[ "$port" = "$hostport" ] && port=6379
db="${DK_BENCH_REDIS_DB:-14}"
n="${REDIS_RECORDS:-10000}"
round="${ROUND:-1}"
key="dk_kv_bound_$$_$(date +%s%N)"
cli() { redis-cli -h "$host" -p "$port" -n "$db" "$@"; }
trap 'cli del "$key" "$key:w" >/dev/null 2>&1 || true' EXIT

# 2n records {id, name, age, city} under fields of redis-benchmark's __rand_int__ form.
cli eval "
local cities = {'Oslo','Paris','Lima','Quito','Rome','Kyiv','Baku','Doha','Lagos','Hanoi'}
for i = 0, tonumber(ARGV[1]) - 1 do
  redis.call('HSET', KEYS[1], string.format('%012d', i),
    cjson.encode({id = 'r' .. i, name = 'person ' .. i, age = 18 + i % 63, city = cities[i % 10 + 1]}))
end
return redis.call('HLEN', KEYS[1])" 1 "$key" $((2 * n)) >/dev/null

# requests/s of one redis-benchmark command (its CSV: the rate is the 7th field from the end).
rate() {
  redis-benchmark -h "$host" -p "$port" --dbnum "$db" -c 1 -q --csv "$@" |
    tail -n 1 | awk -F',' '{ gsub(/"/, "", $(NF-6)); print $(NF-6) }'
}
json='{"id":"r1","name":"person 1","age":19,"city":"Paris"}'
single=$(rate -n "$n" -r 100000000000 HSETNX "$key:w" __rand_int__ "$json")
get=$(rate -n "$n" -r $((2 * n)) HGET "$key" __rand_int__)
whole=$(rate -n 21 HGETALL "$key")
python3 - "$n" "$round" "$single" "$get" "$whole" <<'PYEOF'
import json, sys
n, rnd = int(sys.argv[1]), int(sys.argv[2])
single, get, whole = (float(v) for v in sys.argv[3:6])
for bench, extra in [
    ("single", {"records": n, "records_per_s": single,
                "method": "redis-benchmark -c 1: HSETNX of a record's JSON"}),
    ("get", {"records": n, "records_per_s": get, "method": "redis-benchmark -c 1: HGET"}),
    ("search", {"records": 2 * n, "ms": round(1000 / whole, 3),
                "method": f"redis-benchmark -c 1: HGETALL of {2 * n} records"}),
]:
    print(json.dumps({"engine": "server bound", "backend": "redis", "bench": bench,
                      **extra, "round": rnd}))
PYEOF
