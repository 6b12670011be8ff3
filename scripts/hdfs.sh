#!/usr/bin/env bash
# A real HDFS on loopback for the HDFS backend's tests: Hadoop's MiniDFSCluster (a namenode and
# one datanode in one JVM) run from Maven Central artifacts (tests/hdfs: pom.xml and one launcher
# class; no Hadoop distribution, no container). Meant to be sourced (scripts/services.sh calls
# start_hdfs). Safe under `set -euo pipefail`.
#
#   start_hdfs       builds the launcher when needed (jars cached in ~/.m2, classes and classpath
#                    under <dir>/build), starts the cluster in the background unless one already
#                    answers on the ports, waits until it is set up (namenode RPC and WebHDFS
#                    answer, and a cluster it started has written <dir>/ready), and exports
#                    DK_TEST_HDFS_URL=hdfs://127.0.0.1:<port>,
#                    DK_TEST_HDFS_WEBHDFS=http://127.0.0.1:<http port> and DK_TEST_HDFS_USER (the
#                    superuser: the owner of /, the OS user running the cluster). Idempotent.
#   stop_hdfs        stops the cluster it started (SIGTERM, then SIGKILL after 30 s).
#   hdfs_bench_venv  creates (once) a venv with HdfsCLI (PyPI `hdfs`, a WebHDFS client) for the
#                    benchmarks and prints its python's path.
#
# The cluster: simple authentication (the client names its user), HDFS permissions and ACLs on,
# replication 1, the datanode registered as 127.0.0.1 (its data-transfer, HTTP and IPC ports are
# ephemeral unless DK_HDFS_DATANODE_PORT is set). Formatted afresh on every start, then has
# /warehouse and /volnux (mode 777) and /dk_private (mode 700, the superuser's). Otherwise
# Hadoop's defaults: e.g. a close often races the datanode's report of the last block, loses, and
# the client waits before asking again (400 ms in Hadoop's client, used by WebHDFS writes; 500 ms
# in hdfs-native); the one setting that avoids it on the server side,
# dfs.namenode.file.close.num-committed-allowed, does nothing with one replica.
#
# Environment: DK_HDFS_PORT (namenode RPC, default 9000), DK_HDFS_HTTP_PORT (namenode HTTP and
# WebHDFS, default 9870), DK_HDFS_DATANODE_PORT (default 0: any free port), DK_HDFS_DIR (default
# /var/tmp/dataknobs-hdfs; the file system is under data/ in it, the log is node.log; one cluster
# per directory), DK_HDFS_HEAP (default 512m), DK_HDFS_JAVA (a java binary, 17 or later; default:
# java on PATH), DK_HDFS_START_TIMEOUT (seconds, default 120), DK_HDFS_VERBOSE=1 (keep Hadoop's
# INFO log and the audit log after start-up), DK_HDFS_CONF (more Hadoop settings, "key=value
# key=value", e.g. dfs.client.block.write.locateFollowingBlock.initial.delay.ms=20 for faster
# WebHDFS closes), DK_HDFSCLI_VERSION (default 2.7.3).

_DK_HDFS_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/jvm.sh
source "$_DK_HDFS_REPO/scripts/jvm.sh"

_hdfs_dir() { echo "${DK_HDFS_DIR:-/var/tmp/dataknobs-hdfs}"; }
_hdfs_port() { echo "${DK_HDFS_PORT:-9000}"; }
_hdfs_http_port() { echo "${DK_HDFS_HTTP_PORT:-9870}"; }

# The owner of / (the superuser) when WebHDFS answers on the HTTP port, else nothing (status 1).
_hdfs_superuser() {
  local user
  user=$(curl -fsS -m 3 "http://127.0.0.1:$1/webhdfs/v1/?op=GETFILESTATUS&user.name=$(id -un)" 2>/dev/null |
    sed -n 's/.*"owner" *: *"\([^"]*\)".*/\1/p' || true)
  [ -n "$user" ] && echo "$user"
}

# 0 when something accepts connections on the port.
_hdfs_port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# 0 when WebHDFS answers and the namenode's RPC port is open.
_hdfs_answers() {
  _hdfs_superuser "$2" >/dev/null && _hdfs_port_taken "$1"
}

# The pid of our cluster for the directory when it is running, else nothing.
_hdfs_running_pid() {
  local pid
  pid=$(cat "$1/pid" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'dk\.HdfsNode'; then
    echo "$pid"
  fi
}

# 0 when a cluster answers and is set up: ours has written <dir>/ready; another's (not started
# from this directory) is taken as it is.
_hdfs_up() {
  local dir=$1 port=$2 http=$3
  _hdfs_answers "$port" "$http" && { [ -f "$dir/ready" ] || [ -z "$(_hdfs_running_pid "$dir")" ]; }
}

# A java binary, version 17 or later (Hadoop 3.5 is built for 17).
_hdfs_java() {
  local cand major
  for cand in "${DK_HDFS_JAVA:-}" "$(command -v java 2>/dev/null || true)" \
    /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-21-openjdk-amd64/bin/java; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    major=$(_dk_java_major "$cand" || true)
    if [ -n "$major" ] && [ "$major" -ge 17 ]; then
      echo "$cand"
      return 0
    fi
  done
  echo "hdfs: no java 17 or later found (set DK_HDFS_JAVA)" >&2
  return 1
}

# Starts the cluster in the background (setsid + nohup: it outlives the caller's shell and
# process group); sets _DK_HDFS_LAUNCHED to its pid. It must not inherit start_hdfs's lock.
_hdfs_launch() {
  local dir=$1 port=$2 http=$3 java
  java=$(_hdfs_java) || return 1
  mkdir -p "$dir/tmp"
  rm -f "$dir/ready" "$dir/pid"
  [ -f "$dir/node.log" ] && mv -f "$dir/node.log" "$dir/node.log.1"
  echo "hdfs: starting MiniDFSCluster on hdfs://127.0.0.1:$port, WebHDFS http://127.0.0.1:$http (log $dir/node.log)" >&2
  # The --add-opens allow the reflection on JDK internals some Hadoop code does (it starts without
  # them on Java 17, but some code paths need them).
  setsid nohup "$java" -Xms64m "-Xmx${DK_HDFS_HEAP:-512m}" -XX:+UseG1GC -Xss1m \
    "-XX:ErrorFile=$dir/hs_err_pid%p.log" -XX:-OmitStackTraceInFastThrow \
    -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djava.net.preferIPv4Stack=true \
    --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED \
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED \
    --add-opens=java.base/java.util.concurrent=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED \
    "-Djava.io.tmpdir=$dir/tmp" \
    "-Ddk.hdfs.home=$dir" "-Ddk.hdfs.port=$port" "-Ddk.hdfs.http.port=$http" \
    "-Ddk.hdfs.datanode.port=${DK_HDFS_DATANODE_PORT:-0}" "-Ddk.hdfs.verbose=${DK_HDFS_VERBOSE:-0}" \
    "-Ddk.hdfs.conf=${DK_HDFS_CONF:-}" \
    -cp "$dir/build/classes:$(cat "$dir/build/classpath.txt")" dk.HdfsNode \
    >"$dir/node.log" 2>&1 </dev/null {lock_fd}>&- &
  _DK_HDFS_LAUNCHED=$!
}

start_hdfs() {
  local dir port http url webhdfs timeout deadline lock_fd rc=0 pid user
  dir=$(_hdfs_dir)
  port=$(_hdfs_port)
  http=$(_hdfs_http_port)
  url="hdfs://127.0.0.1:$port"
  webhdfs="http://127.0.0.1:$http"
  if ! _hdfs_up "$dir" "$port" "$http"; then
    mkdir -p "$dir"
    # One starter at a time (parallel callers wait here, then find the cluster up).
    exec {lock_fd}>"$dir/start.lock"
    flock -w 900 "$lock_fd" || true
    timeout=${DK_HDFS_START_TIMEOUT:-120}
    if ! _hdfs_up "$dir" "$port" "$http"; then
      pid=$(_hdfs_running_pid "$dir")
      if [ -n "$pid" ]; then
        echo "hdfs: cluster $pid is already starting; waiting for it" >&2
      elif _hdfs_port_taken "$port" || _hdfs_port_taken "$http"; then
        echo "hdfs: 127.0.0.1:$port or :$http is taken by something that is not HDFS (set DK_HDFS_PORT / DK_HDFS_HTTP_PORT)" >&2
        rc=1
      else
        _DK_HDFS_LAUNCHED=
        _dk_mvn_build hdfs "$_DK_HDFS_REPO/tests/hdfs" "$dir/build" HdfsNode &&
          _hdfs_launch "$dir" "$port" "$http" || rc=1
        pid=${_DK_HDFS_LAUNCHED:-}
      fi
      deadline=$((SECONDS + timeout))
      # WebHDFS answers a moment before the cluster has made its directories and written ready.
      while [ "$rc" -eq 0 ] && { ! _hdfs_answers "$port" "$http" || [ ! -f "$dir/ready" ]; }; do
        if [ "$SECONDS" -ge "$deadline" ]; then
          echo "hdfs: the cluster is not up after ${timeout}s; last lines of $dir/node.log:" >&2
          rc=1
        elif ! kill -0 "$pid" 2>/dev/null && ! pgrep -f "dk.hdfs.home=$dir " >/dev/null; then
          # (setsid may fork when the caller has job control: then $pid is gone at once and the
          # JVM is found by its command line.)
          echo "hdfs: the cluster exited while starting; last lines of $dir/node.log:" >&2
          rc=1
        else
          sleep 0.3
          continue
        fi
        tail -n 40 "$dir/node.log" >&2 2>/dev/null || true
      done
    fi
    exec {lock_fd}>&-
  fi
  [ "$rc" -eq 0 ] || return "$rc"
  user=$(_hdfs_superuser "$http") || {
    echo "hdfs: WebHDFS on $webhdfs stopped answering" >&2
    return 1
  }
  export DK_TEST_HDFS_URL="$url"
  export DK_TEST_HDFS_WEBHDFS="$webhdfs"
  export DK_TEST_HDFS_USER="$user"
  return 0
}

stop_hdfs() {
  local dir pid
  dir=$(_hdfs_dir)
  pid=$(_hdfs_running_pid "$dir")
  [ -n "$pid" ] || return 0
  echo "hdfs: stopping cluster $pid" >&2
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/pid" "$dir/ready"
  if [ "${DK_TEST_HDFS_URL:-}" = "hdfs://127.0.0.1:$(_hdfs_port)" ]; then
    unset DK_TEST_HDFS_URL DK_TEST_HDFS_WEBHDFS DK_TEST_HDFS_USER
  fi
  return 0
}

hdfs_bench_venv() {
  local dir venv lock_fd rc=0
  dir=$(_hdfs_dir)
  venv="$dir/venv"
  mkdir -p "$dir"
  exec {lock_fd}>"$dir/venv.lock"
  flock -w 600 "$lock_fd" || true
  if ! "$venv/bin/python" -c 'import hdfs' >/dev/null 2>&1; then
    echo "hdfs: installing HdfsCLI (PyPI hdfs) into $venv" >&2
    if ! { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } ||
      ! "$venv/bin/pip" install -q "hdfs==${DK_HDFSCLI_VERSION:-2.7.3}" >"$dir/pip.log" 2>&1; then
      echo "hdfs: cannot install HdfsCLI; last lines of $dir/pip.log:" >&2
      tail -n 20 "$dir/pip.log" >&2 2>/dev/null || true
      rc=1
    fi
  fi
  exec {lock_fd}>&-
  [ "$rc" -eq 0 ] || return "$rc"
  echo "$venv/bin/python"
}
