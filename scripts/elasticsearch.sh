#!/usr/bin/env bash
# A real single-node Elasticsearch 8.19 on loopback for the tests of the Elasticsearch dialect,
# run in a JVM from Maven Central artifacts (tests/elasticsearch: pom.xml and one launcher
# class). Central has no rest-root, painless, reindex or x-pack module, so the node answers
# `GET /` with 405 and has no scripts nor `_delete_by_query` (see docs/notes/elasticsearch.md).
# Meant to be sourced (scripts/services.sh calls start_elasticsearch).
#
#   start_elasticsearch   builds the launcher when needed (jars in ~/.m2, classes under
#                         /var/tmp), starts the node unless one answers on the port, waits for
#                         it, deletes the test indexes (dkt_*) of earlier runs and exports
#                         DK_TEST_ES8_URL=http://127.0.0.1:<port>. Idempotent.
#   stop_elasticsearch    stops it.
#
# Environment: DK_ES8_PORT (default 9201), DK_ES8_DIR (default /var/tmp/dataknobs-elasticsearch),
# DK_ES8_HEAP (default 512m), DK_ES8_START_TIMEOUT (seconds, default 180).

_DK_ES8_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/jvm.sh
source "$_DK_ES8_REPO/scripts/jvm.sh"

_es8_dir() { echo "${DK_ES8_DIR:-/var/tmp/dataknobs-elasticsearch}"; }
_es8_port() { echo "${DK_ES8_PORT:-9201}"; }

# 0 when an Elasticsearch node answers on the port.
_es8_answers() {
  curl -fsS -m 3 -o /dev/null -D - "http://127.0.0.1:$1/_cluster/health" 2>/dev/null |
    grep -qi '^x-elastic-product: *Elasticsearch'
}

start_elasticsearch() {
  local dir port home url pid java cp=() mods=() jar deadline lock_fd rc=0
  dir=$(_es8_dir)
  port=$(_es8_port)
  home="$dir/node-$port"
  url="http://127.0.0.1:$port"
  mkdir -p "$dir" "$home/tmp"
  exec {lock_fd}>"$dir/start-$port.lock"
  flock -w 900 "$lock_fd" || true
  if ! _es8_answers "$port"; then
    pid=$(cat "$home/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'dk\.ElasticsearchNode'; then
      echo "elasticsearch: node $pid is already starting; waiting for it" >&2
    elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "elasticsearch: 127.0.0.1:$port is taken by something else (set DK_ES8_PORT)" >&2
      rc=1
    elif _dk_mvn_build elasticsearch "$_DK_ES8_REPO/tests/elasticsearch" "$dir/build" ElasticsearchNode; then
      java=$(_dk_java) || rc=1
      IFS=: read -r -a all <"$dir/build/classpath.txt" || true
      for jar in "${all[@]}"; do
        case "$jar" in
          */io/netty/* | */transport-netty4-*) mods+=("$jar") ;;
          *) cp+=("$jar") ;;
        esac
      done
      rm -f "$home/ready" "$home/pid"
      [ -f "$home/es.log" ] && mv -f "$home/es.log" "$home/es.log.1"
      echo "elasticsearch: starting a node on $url (log $home/es.log)" >&2
      if [ "$rc" -eq 0 ]; then
        (
          IFS=:
          setsid nohup "$java" -Xms256m "-Xmx${DK_ES8_HEAP:-512m}" -XX:+UseG1GC \
            -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Dio.netty.noUnsafe=true \
            -Dlog4j2.disable.jmx=true -Dlog4j2.formatMsgNoLookups=true \
            -Djava.locale.providers=SPI,COMPAT "-Djava.io.tmpdir=$home/tmp" \
            "-Ddk.es.home=$home" "-Ddk.es.port=$port" "-Ddk.es.module.jars=${mods[*]}" \
            -cp "$dir/build/classes:${cp[*]}" dk.ElasticsearchNode \
            >"$home/es.log" 2>&1 </dev/null {lock_fd}>&- &
        )
      fi
    else
      rc=1
    fi
    deadline=$((SECONDS + ${DK_ES8_START_TIMEOUT:-180}))
    while [ "$rc" -eq 0 ] && { [ ! -f "$home/ready" ] || ! _es8_answers "$port"; }; do
      if [ "$SECONDS" -ge "$deadline" ] || ! pgrep -f "dk.es.home=$home " >/dev/null; then
        echo "elasticsearch: no node on $url; last lines of $home/es.log:" >&2
        tail -n 40 "$home/es.log" >&2 2>/dev/null || true
        rc=1
        break
      fi
      sleep 0.5
    done
  fi
  exec {lock_fd}>&-
  [ "$rc" -eq 0 ] || return "$rc"
  export DK_TEST_ES8_URL="$url"
  curl -fsS -m 60 -X DELETE "$url/dkt_*" >/dev/null 2>&1 || true
  return 0
}

stop_elasticsearch() {
  local home pid
  home="$(_es8_dir)/node-$(_es8_port)"
  pid=$(cat "$home/pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  rm -f "$home/ready" "$home/pid"
}
