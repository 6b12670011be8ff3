#!/usr/bin/env bash
# What the JVM test services share (sourced by scripts/opensearch.sh and scripts/elasticsearch.sh):
#
#   _dk_java_major JAVA          the major version of a java binary
#   _dk_java                     a java 11 to 24 (the machine's default is 17), or DK_OPENSEARCH_JAVA
#   _dk_mvn_build NAME SRC BUILD CLASS
#                                compiles the launcher in SRC (pom.xml + src/main/java/dk/*.java)
#                                into BUILD/classes and writes its classpath to BUILD/classpath.txt,
#                                unless the sources are unchanged and every jar is still there
#                                (jars cached in ~/.m2); the Maven log is BUILD/../build.log.

_dk_java_major() {
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}' |
    sed 's/^1\.//'
}

_dk_java() {
  local cand major
  for cand in "${DK_OPENSEARCH_JAVA:-}" "$(command -v java 2>/dev/null || true)" \
    /usr/lib/jvm/java-17-openjdk-amd64/bin/java /usr/lib/jvm/java-21-openjdk-amd64/bin/java; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    major=$(_dk_java_major "$cand" || true)
    if [ -n "$major" ] && [ "$major" -ge 11 ] && [ "$major" -le 24 ]; then
      echo "$cand"
      return 0
    fi
  done
  echo "jvm: no java 11 to 24 found (set DK_OPENSEARCH_JAVA)" >&2
  return 1
}

_dk_mvn_build() {
  local name=$1 src=$2 build=$3 class=$4 want jar log
  local jars=()
  log="$(dirname "$build")/build.log"
  want=$(cat "$src/pom.xml" "$src"/src/main/java/dk/*.java | sha256sum | cut -d' ' -f1)
  if [ -f "$build/stamp" ] && [ "$(cat "$build/stamp")" = "$want" ] && [ -s "$build/classpath.txt" ] &&
    [ -f "$build/classes/dk/$class.class" ]; then
    IFS=: read -r -a jars <"$build/classpath.txt" || true
    for jar in "${jars[@]}"; do
      [ -f "$jar" ] || { jars=(); break; }
    done
    [ "${#jars[@]}" -gt 0 ] && return 0
  fi
  if ! command -v mvn >/dev/null 2>&1; then
    echo "$name: installing Maven (Debian package maven)" >&2
    if command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven) >&2 || true
    fi
  fi
  echo "$name: building the node launcher with Maven (log: $log)" >&2
  rm -rf "$build"
  if ! mvn -B -q -f "$src/pom.xml" "-Ddk.build.dir=$build" "-Dmdep.outputFile=$build/classpath.txt" \
    compile dependency:build-classpath >"$log" 2>&1; then
    echo "$name: Maven build failed; last lines of $log:" >&2
    tail -n 30 "$log" >&2
    return 1
  fi
  echo "$want" >"$build/stamp"
}
