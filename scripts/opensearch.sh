#!/usr/bin/env bash
# A real single-node OpenSearch on loopback for the tests, run in a JVM from Maven Central
# artifacts (tests/opensearch: pom.xml and one launcher class; no tarball, no container).
# Meant to be sourced (scripts/services.sh calls start_opensearch). Safe under `set -euo pipefail`.
#
#   start_opensearch   builds the launcher when needed (jars cached in ~/.m2, classes and
#                      classpath under /var/tmp), starts the node in the background unless one
#                      already answers on the port, waits until it answers `GET /` (and a node
#                      it started has written <home>/ready), and exports
#                      DK_TEST_OPENSEARCH_URL=http://127.0.0.1:<port>. Idempotent.
#   stop_opensearch    stops the node started for the port (SIGTERM, then SIGKILL after 30 s).
#
# Environment: DK_OPENSEARCH_PORT (HTTP, default 9200), DK_OPENSEARCH_TRANSPORT_PORT (default
# 9300-9399), DK_OPENSEARCH_DIR (default /var/tmp/dataknobs-opensearch; the node's home is
# node-<port> in it, with its log in opensearch.log), DK_OPENSEARCH_HEAP (default 1g),
# DK_OPENSEARCH_JAVA (a java binary, default: java on PATH, version 11 to 24),
# DK_OPENSEARCH_START_TIMEOUT (seconds, default 180), DK_OPENSEARCH_FRESH=1 (wipe the node's data
# before starting a new node).

_DK_OS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

_os_dir() { echo "${DK_OPENSEARCH_DIR:-/var/tmp/dataknobs-opensearch}"; }
_os_port() { echo "${DK_OPENSEARCH_PORT:-9200}"; }
_os_home() { echo "$(_os_dir)/node-$(_os_port)"; }

# 0 when an OpenSearch node answers `GET /` on the port.
_os_answers() {
  curl -fsS -m 3 "http://127.0.0.1:$1/" 2>/dev/null | grep -q '"distribution" *: *"opensearch"'
}

# 0 when something (OpenSearch or not) accepts connections on the port.
_os_port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The pid of our node for this home when it is running, else nothing.
_os_running_pid() {
  local pid
  pid=$(cat "$1/pid" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'dk\.OpenSearchNode'; then
    echo "$pid"
  fi
}

# shellcheck source=scripts/jvm.sh
source "$_DK_OS_REPO/scripts/jvm.sh"

# Starts the node in the background (setsid + nohup: it outlives the caller's shell and process group); sets
# _DK_OS_LAUNCHED to its pid. It must not inherit start_opensearch's lock.
_os_launch() {
  local dir home port java major locale heap
  dir=$(_os_dir)
  home=$(_os_home)
  port=$(_os_port)
  java=$(_dk_java) || return 1
  major=$(_dk_java_major "$java")
  # What a distribution's launcher sets: COMPAT date/locale data while the JDK still has it.
  locale=SPI,COMPAT
  [ "$major" -ge 23 ] && locale=SPI,CLDR
  heap=${DK_OPENSEARCH_HEAP:-1g}
  if [ "${DK_OPENSEARCH_FRESH:-}" = 1 ]; then
    rm -rf "$home/data"
  fi
  mkdir -p "$home/tmp"
  rm -f "$home/ready" "$home/pid"
  [ -f "$home/opensearch.log" ] && mv -f "$home/opensearch.log" "$home/opensearch.log.1"
  echo "opensearch: starting a node on 127.0.0.1:$port (home $home, log $home/opensearch.log)" >&2
  # shellcheck disable=SC2086
  setsid nohup "$java" -Xms256m "-Xmx$heap" -XX:+UseG1GC -Xss1m \
    "-XX:ErrorFile=$home/hs_err_pid%p.log" \
    -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true -XX:-OmitStackTraceInFastThrow \
    -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true \
    -Dio.netty.recycler.maxCapacityPerThread=0 -Dio.netty.allocator.numDirectArenas=0 \
    -Dlog4j.shutdownHookEnabled=false -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true \
    "-Djava.locale.providers=$locale" "-Djava.io.tmpdir=$home/tmp" \
    "-Ddk.opensearch.home=$home" "-Ddk.opensearch.port=$port" \
    "-Ddk.opensearch.transport.port=${DK_OPENSEARCH_TRANSPORT_PORT:-9300-9399}" \
    ${DK_OPENSEARCH_JAVA_OPTS:-} \
    -cp "$dir/build/classes:$(cat "$dir/build/classpath.txt")" dk.OpenSearchNode \
    >"$home/opensearch.log" 2>&1 </dev/null {lock_fd}>&- &
  _DK_OS_LAUNCHED=$!
}

start_opensearch() {
  local dir home port url timeout deadline lock_fd rc=0 pid
  dir=$(_os_dir)
  port=$(_os_port)
  home=$(_os_home)
  url="http://127.0.0.1:$port"
  if [ -n "${DK_TEST_OPENSEARCH_URL:-}" ] && [ "$DK_TEST_OPENSEARCH_URL" != "$url" ]; then
    return 0 # pointed at another node on purpose
  fi
  if _os_answers "$port"; then
    export DK_TEST_OPENSEARCH_URL="$url"
    return 0
  fi
  mkdir -p "$dir" "$home"
  # One starter at a time (parallel callers wait here, then find the node answering).
  exec {lock_fd}>"$dir/start-$port.lock"
  flock -w 900 "$lock_fd" || true
  timeout=${DK_OPENSEARCH_START_TIMEOUT:-180}
  if ! _os_answers "$port"; then
    pid=$(_os_running_pid "$home")
    if [ -n "$pid" ]; then
      echo "opensearch: node $pid is already starting; waiting for it" >&2
    elif _os_port_taken "$port"; then
      echo "opensearch: 127.0.0.1:$port is taken by something that is not OpenSearch (set DK_OPENSEARCH_PORT)" >&2
      rc=1
    else
      _DK_OS_LAUNCHED=
      _dk_mvn_build opensearch "$_DK_OS_REPO/tests/opensearch" "$dir/build" OpenSearchNode &&
        _os_launch || rc=1
      pid=${_DK_OS_LAUNCHED:-}
    fi
    deadline=$((SECONDS + timeout))
    # Our node answers `GET /` a moment before it has set itself up and written <home>/ready.
    while [ "$rc" -eq 0 ] && { ! _os_answers "$port" || { [ -n "$pid" ] && [ ! -f "$home/ready" ]; }; }; do
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "opensearch: no answer on $url after ${timeout}s; last lines of $home/opensearch.log:" >&2
        rc=1
      elif ! kill -0 "$pid" 2>/dev/null && ! pgrep -f "dk.opensearch.home=$home " >/dev/null; then
        # (setsid may fork when the caller has job control: then $pid is gone at once and the
        # JVM is found by its command line.)
        echo "opensearch: the node exited while starting; last lines of $home/opensearch.log:" >&2
        rc=1
      else
        sleep 0.3
        continue
      fi
      tail -n 40 "$home/opensearch.log" >&2 2>/dev/null || true
    done
  fi
  exec {lock_fd}>&-
  [ "$rc" -eq 0 ] || return "$rc"
  export DK_TEST_OPENSEARCH_URL="$url"
  # Indexes the tests left behind in earlier runs (their names start with dkt_).
  curl -fsS -m 60 -X DELETE "$url/dkt_*" >/dev/null 2>&1 || true
  return 0
}

stop_opensearch() {
  local home pid
  home=$(_os_home)
  pid=$(_os_running_pid "$home")
  [ -n "$pid" ] || return 0
  echo "opensearch: stopping node $pid" >&2
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$home/pid" "$home/ready"
  if [ "${DK_TEST_OPENSEARCH_URL:-}" = "http://127.0.0.1:$(_os_port)" ]; then
    unset DK_TEST_OPENSEARCH_URL
  fi
  return 0
}
