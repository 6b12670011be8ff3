#!/usr/bin/env bash
# Starts (on loopback) the services the tests need when they are not running, and exports
# their URLs for the tests. Sourced by scripts/test.sh. In CI (CI=true) a service that cannot
# be started (or PostgreSQL without TLS) is a failure; the backend tests also fail when their
# URL is missing.

# shellcheck source=scripts/opensearch.sh
source "$(dirname "${BASH_SOURCE[0]}")/opensearch.sh"
# shellcheck source=scripts/elasticsearch.sh
source "$(dirname "${BASH_SOURCE[0]}")/elasticsearch.sh"
# shellcheck source=scripts/s3.sh
source "$(dirname "${BASH_SOURCE[0]}")/s3.sh"
# shellcheck source=scripts/es-tls.sh
source "$(dirname "${BASH_SOURCE[0]}")/es-tls.sh"
# shellcheck source=scripts/redis.sh
source "$(dirname "${BASH_SOURCE[0]}")/redis.sh"
# shellcheck source=scripts/hdfs.sh
source "$(dirname "${BASH_SOURCE[0]}")/hdfs.sh"

_pg_ready() {
  pg_isready -q -h "$1" -p "$2" 2>/dev/null
}

# TLS on the test server (tests check sslmode=require, and that verify-full refuses a
# self-signed certificate). Idempotent: when `ssl` is already on, nothing changes. Otherwise a
# self-signed certificate is made in the data directory (once), `ssl = on` set with ALTER SYSTEM
# and the configuration reloaded.
_pg_enable_tls() {
  local host=$1 port=$2
  local q=(psql -h "$host" -p "$port" -U postgres -d postgres -Atqc)
  if [ "$("${q[@]}" 'show ssl' 2>/dev/null)" = on ]; then
    return 0
  fi
  local dir
  dir=$("${q[@]}" 'show data_directory' 2>/dev/null || true)
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    echo "services: cannot find PostgreSQL's data directory to set up TLS" >&2
    return 1
  fi
  local crt="$dir/dk-test-server.crt" key="$dir/dk-test-server.key"
  if [ ! -s "$crt" ] || [ ! -s "$key" ]; then
    if ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl) >&2 || true
    fi
    echo "services: making a self-signed TLS certificate for PostgreSQL in $dir" >&2
    if ! openssl req -new -x509 -nodes -days 3650 -subj "/CN=localhost" \
      -keyout "$key" -out "$crt" >/dev/null 2>&1; then
      echo "services: cannot write a TLS certificate in $dir" >&2
      rm -f "$crt" "$key"
      return 1
    fi
    # The server reads them as the owner of its data directory; the key must be private.
    chown "$(stat -c %U "$dir"):" "$crt" "$key" 2>/dev/null || true
    chmod 600 "$key"
  fi
  echo "services: turning TLS on in PostgreSQL" >&2
  "${q[@]}" "ALTER SYSTEM SET ssl_cert_file = '$crt'" >/dev/null &&
    "${q[@]}" "ALTER SYSTEM SET ssl_key_file = '$key'" >/dev/null &&
    "${q[@]}" "ALTER SYSTEM SET ssl = on" >/dev/null &&
    "${q[@]}" 'select pg_reload_conf()' >/dev/null || return 1
  for _ in $(seq 1 20); do
    [ "$("${q[@]}" 'show ssl' 2>/dev/null)" = on ] && return 0
    sleep 0.5
  done
  echo "services: PostgreSQL did not turn TLS on (see its log)" >&2
  return 1
}

start_postgres() {
  local host=127.0.0.1 port=5432
  if [ -n "${DK_TEST_POSTGRES_URL:-}" ]; then
    return 0
  fi
  if ! command -v pg_isready >/dev/null 2>&1; then
    echo "services: installing PostgreSQL (Debian package postgresql)" >&2
    if command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || true
    fi
  fi
  if ! _pg_ready "$host" "$port"; then
    echo "services: starting PostgreSQL" >&2
    if command -v pg_lsclusters >/dev/null 2>&1; then
      local ver
      ver=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1}')
      if [ -z "$ver" ]; then
        ver=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
        [ -n "$ver" ] && pg_createcluster "$ver" main >&2 || true
      fi
      [ -n "$ver" ] && pg_ctlcluster "$ver" main start >&2 || true
    fi
    for _ in $(seq 1 30); do
      _pg_ready "$host" "$port" && break
      sleep 1
    done
  fi
  if ! _pg_ready "$host" "$port"; then
    echo "services: PostgreSQL is not reachable at $host:$port" >&2
    return 1
  fi
  # Trust auth for the test user over loopback is what this machine kind provides; on a fresh
  # Debian install, allow it for the tests (local, loopback only).
  if ! psql -h "$host" -p "$port" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    local hba
    hba=$(su postgres -c "psql -Atc 'show hba_file'" 2>/dev/null || true)
    if [ -n "$hba" ] && [ -w "$hba" ]; then
      sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
      su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null 2>&1 || true
      sleep 1
    fi
  fi
  # Without TLS the TLS test fails; the rest of the setup still runs.
  local tls=0
  _pg_enable_tls "$host" "$port" || tls=1
  # Members of dk_pw_users must give their password (scram), so tests can check that a
  # password reaches the server intact; everyone else is trusted on loopback.
  psql -h "$host" -p "$port" -U postgres -d postgres -qc \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dk_pw_users') THEN CREATE ROLE dk_pw_users NOLOGIN; END IF; END\$\$" >/dev/null 2>&1 || true
  local hba_file
  hba_file=$(psql -h "$host" -p "$port" -U postgres -d postgres -Atc 'show hba_file' 2>/dev/null || true)
  if [ -n "$hba_file" ] && [ -w "$hba_file" ] && ! grep -q '+dk_pw_users' "$hba_file"; then
    sed -i '1i host all +dk_pw_users 127.0.0.1/32 scram-sha-256' "$hba_file"
    psql -h "$host" -p "$port" -U postgres -d postgres -Atc 'select pg_reload_conf()' >/dev/null 2>&1 || true
    sleep 1
  fi
  if ! psql -h "$host" -p "$port" -U postgres -d postgres -Atc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1; then
    psql -h "$host" -p "$port" -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null 2>&1 || true
  fi
  export DK_TEST_POSTGRES_URL="postgres://postgres@$host:$port/test"
  export DK_TEST_POSTGRES_HOST="$host" DK_TEST_POSTGRES_PORT="$port"
  return "$tls"
}

start_services() {
  local failed=0
  start_postgres || failed=1
  start_opensearch || failed=1
  # HTTPS + credentials in front of the node (the Elasticsearch TLS/auth tests).
  start_es_tls || failed=1
  # Elasticsearch 8.19 (the Elasticsearch dialect's tests), from Maven Central jars.
  start_elasticsearch || failed=1
  # S3: moto_server in a venv (the S3 backend's tests).
  start_s3 || failed=1
  # Redis (the key-value store and Redis backend's tests), with an ACL user for auth tests.
  start_redis || failed=1
  # HDFS: a MiniDFSCluster (namenode + one datanode, WebHDFS on) from Maven Central jars (the
  # HDFS backend's tests), with permissions on and a superuser-only /dk_private.
  start_hdfs || failed=1
  if [ "$failed" -ne 0 ] && [ "${CI:-}" = "true" ]; then
    echo "services: a service the tests need could not be started" >&2
    return 1
  fi
  return 0
}
