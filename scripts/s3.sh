#!/usr/bin/env bash
# An S3-compatible server on loopback for the S3 backend's tests: moto_server (PyPI
# `moto[server]`) in a project-local virtualenv under /var/tmp. Meant to be sourced
# (scripts/services.sh calls start_s3). Safe under `set -euo pipefail`.
#
#   start_s3   creates the venv and installs moto[server] when missing, starts the server unless
#              one answers on the port, and exports DK_TEST_S3_ENDPOINT (http://127.0.0.1:<port>),
#              DK_TEST_S3_REGION and the static test credentials DK_TEST_S3_ACCESS_KEY /
#              DK_TEST_S3_SECRET_KEY (moto accepts any). Idempotent.
#   stop_s3    stops it.
#
# Environment: DK_S3_PORT (default 9310), DK_S3_DIR (default /var/tmp/dataknobs-s3; the venv is
# venv/ in it, the log moto.log), DK_MOTO_VERSION (default 5.1.22).

_s3_dir() { echo "${DK_S3_DIR:-/var/tmp/dataknobs-s3}"; }
_s3_port() { echo "${DK_S3_PORT:-9310}"; }

# 0 when an S3 server answers on the port (moto answers GET / with a bucket listing).
_s3_answers() {
  curl -fsS -m 3 "http://127.0.0.1:$1/" 2>/dev/null | grep -q 'ListAllMyBucketsResult'
}

start_s3() {
  local dir port venv lock_fd rc=0
  dir=$(_s3_dir)
  port=$(_s3_port)
  venv="$dir/venv"
  mkdir -p "$dir"
  exec {lock_fd}>"$dir/start-$port.lock"
  flock -w 600 "$lock_fd" || true
  if ! _s3_answers "$port"; then
    if [ ! -x "$venv/bin/moto_server" ]; then
      echo "s3: installing moto[server] into $venv" >&2
      if ! { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } ||
        ! "$venv/bin/pip" install -q "moto[server]==${DK_MOTO_VERSION:-5.1.22}" >"$dir/pip.log" 2>&1; then
        echo "s3: cannot install moto[server]; last lines of $dir/pip.log:" >&2
        tail -n 20 "$dir/pip.log" >&2 2>/dev/null || true
        rc=1
      fi
    fi
    if [ "$rc" -eq 0 ]; then
      echo "s3: starting moto_server on http://127.0.0.1:$port (log $dir/moto.log)" >&2
      setsid nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 </dev/null {lock_fd}>&- &
      echo $! >"$dir/moto.pid"
      for _ in $(seq 1 100); do
        _s3_answers "$port" && break
        sleep 0.2
      done
      if ! _s3_answers "$port"; then
        echo "s3: moto_server does not answer on port $port; last lines of $dir/moto.log:" >&2
        tail -n 20 "$dir/moto.log" >&2 2>/dev/null || true
        rc=1
      fi
    fi
  fi
  exec {lock_fd}>&-
  [ "$rc" -eq 0 ] || return "$rc"
  export DK_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export DK_TEST_S3_REGION=us-east-1
  export DK_TEST_S3_ACCESS_KEY=dk-test-access-key
  export DK_TEST_S3_SECRET_KEY=dk-test-secret-key
  return 0
}

stop_s3() {
  local dir
  dir=$(_s3_dir)
  [ -s "$dir/moto.pid" ] && kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
  rm -f "$dir/moto.pid"
}
