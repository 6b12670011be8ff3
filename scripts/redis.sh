#!/usr/bin/env bash
# A Redis server on loopback for the Redis backend's tests: the Debian package `redis-server`
# (installed when missing), run as our own process with its own port and directory, no
# persistence. Meant to be sourced (scripts/services.sh calls start_redis). Safe under
# `set -euo pipefail`.
#
#   start_redis  installs redis-server (and redis-tools, for redis-benchmark) when missing,
#                starts a server unless one answers on the port, and exports
#                DK_TEST_REDIS_URL (redis://127.0.0.1:<port>, the default user without a
#                password) and, for the authentication tests, an ACL user with a password:
#                DK_TEST_REDIS_USER / DK_TEST_REDIS_PASSWORD. The same server also listens
#                with TLS (a certificate signed by a throwaway CA, made once):
#                DK_TEST_REDIS_TLS_URL (rediss://127.0.0.1:<tls port>) and DK_TEST_REDIS_TLS_CA
#                (the CA's PEM). Idempotent.
#   stop_redis   stops it.
#
# Environment: DK_REDIS_PORT (default 6390), DK_REDIS_TLS_PORT (default 6391), DK_REDIS_DIR
# (default /var/tmp/dataknobs-redis; the configuration redis.conf, the log redis.log and the
# certificates in tls/ are in it). The certificates are made by _es_tls_certs (es-tls.sh).

_redis_dir() { echo "${DK_REDIS_DIR:-/var/tmp/dataknobs-redis}"; }
_redis_port() { echo "${DK_REDIS_PORT:-6390}"; }
_redis_tls_port() { echo "${DK_REDIS_TLS_PORT:-6391}"; }
_redis_user=dk_test_user
_redis_password=dk-test-redis-password

# 0 when a Redis server answers PING on the port.
_redis_answers() {
  [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
}

# 0 when the TLS port answers PING with the test CA.
_redis_tls_answers() {
  [ "$(redis-cli --tls --cacert "$2/tls/ca.pem" -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]
}

start_redis() {
  local dir port tls_port lock_fd rc=0
  dir=$(_redis_dir)
  port=$(_redis_port)
  tls_port=$(_redis_tls_port)
  mkdir -p "$dir/tls"
  exec {lock_fd}>"$dir/start-$port.lock"
  flock -w 600 "$lock_fd" || true
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
      echo "redis: installing redis-server and redis-tools" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends redis-server redis-tools) >&2 || true
    fi
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis: redis-server is not installed and apt-get could not install it" >&2
    rc=1
  elif ! _es_tls_certs "$dir/tls"; then
    echo "redis: cannot make the TLS certificates in $dir/tls" >&2
    rc=1
  elif ! _redis_answers "$port" || ! _redis_tls_answers "$tls_port" "$dir"; then
    # A server from an older configuration (no TLS port) is replaced.
    if _redis_answers "$port"; then
      echo "redis: restarting the server on port $port to add its TLS port" >&2
      redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
      for _ in $(seq 1 50); do
        _redis_answers "$port" || break
        sleep 0.1
      done
    fi
    # The default user keeps no password (most tests); the ACL user needs one.
    cat >"$dir/redis.conf" <<EOF
bind 127.0.0.1
port $port
protected-mode no
daemonize no
dir $dir
save ""
appendonly no
databases 64
user $_redis_user on >$_redis_password ~* &* +@all
tls-port $tls_port
tls-cert-file $dir/tls/server.pem
tls-key-file $dir/tls/server.key
tls-ca-cert-file $dir/tls/ca.pem
tls-auth-clients no
EOF
    echo "redis: starting redis-server on 127.0.0.1:$port (log $dir/redis.log)" >&2
    # Started from the package's binary but not as the package's service (no systemd here).
    setsid nohup redis-server "$dir/redis.conf" >"$dir/redis.log" 2>&1 </dev/null {lock_fd}>&- &
    echo $! >"$dir/redis.pid"
    for _ in $(seq 1 100); do
      _redis_answers "$port" && _redis_tls_answers "$tls_port" "$dir" && break
      sleep 0.1
    done
    if ! _redis_answers "$port" || ! _redis_tls_answers "$tls_port" "$dir"; then
      echo "redis: no answer on port $port; last lines of $dir/redis.log:" >&2
      tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
      rc=1
    fi
  fi
  exec {lock_fd}>&-
  [ "$rc" -eq 0 ] || return "$rc"
  export DK_TEST_REDIS_URL="redis://127.0.0.1:$port"
  export DK_TEST_REDIS_USER="$_redis_user"
  export DK_TEST_REDIS_PASSWORD="$_redis_password"
  export DK_TEST_REDIS_TLS_URL="rediss://127.0.0.1:$tls_port"
  export DK_TEST_REDIS_TLS_CA="$dir/tls/ca.pem"
  return 0
}

stop_redis() {
  local dir
  dir=$(_redis_dir)
  [ -s "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  rm -f "$dir/redis.pid"
}
