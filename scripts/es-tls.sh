#!/usr/bin/env bash
# HTTPS with credentials in front of the OpenSearch test node: nginx (Debian package) on
# loopback terminates TLS with a certificate signed by a throwaway CA, accepts one user and
# password (Basic) or one API key (`Authorization: ApiKey …`), answers 401 with an
# Elasticsearch-style error to anything else, and passes the rest to the node. This is how a
# cluster is often published (OpenSearch's security plugin and Elasticsearch's x-pack are not
# on Maven Central). Meant to be sourced (scripts/services.sh calls start_es_tls).
#
#   start_es_tls   installs nginx when missing, makes the CA and certificate once, (re)starts
#                  nginx when it does not answer, and exports DK_TEST_ES_TLS_URL
#                  (https://127.0.0.1:<port>), DK_TEST_ES_TLS_CA (the CA's PEM),
#                  DK_TEST_ES_TLS_USER, DK_TEST_ES_TLS_PASSWORD and DK_TEST_ES_TLS_API_KEY.
#                  Idempotent.
#   stop_es_tls    stops that nginx.
#
# Environment: DK_ES_TLS_PORT (default 9243), DK_ES_TLS_DIR (default /var/tmp/dataknobs-es-tls),
# DK_TEST_OPENSEARCH_URL (the node behind it, default http://127.0.0.1:9200).

_es_tls_dir() { echo "${DK_ES_TLS_DIR:-/var/tmp/dataknobs-es-tls}"; }
_es_tls_port() { echo "${DK_ES_TLS_PORT:-9243}"; }

# Test credentials: they guard a loopback port in front of a throwaway node.
_DK_ES_TLS_USER=dk_tls_user
_DK_ES_TLS_PASSWORD='s3cret:p@ss/word'
_DK_ES_TLS_API_KEY=ZGstdGVzdC1pZDpkay10ZXN0LWtleQ== # base64 of dk-test-id:dk-test-key

_es_tls_certs() {
  local dir=$1
  [ -s "$dir/ca.pem" ] && [ -s "$dir/server.pem" ] && [ -s "$dir/server.key" ] && return 0
  if ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl) >&2 || true
  fi
  echo "es-tls: making a throwaway CA and a certificate for 127.0.0.1 and localhost in $dir" >&2
  (
    set -e
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=dataknobs test CA" \
      -keyout ca.key -out ca.pem >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key \
      -out server.csr >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile server.ext -out server.pem >/dev/null 2>&1
    chmod 644 ca.pem server.pem
    chmod 600 server.key ca.key
  )
}

_es_tls_conf() {
  local dir=$1 port=$2 upstream=$3 basic
  basic=$(printf '%s:%s' "$_DK_ES_TLS_USER" "$_DK_ES_TLS_PASSWORD" | base64 -w0)
  cat >"$dir/nginx.conf" <<EOF
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_processes 1;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  client_max_body_size 512m;
  map \$http_authorization \$dk_allowed {
    "Basic $basic" 1;
    "ApiKey $_DK_ES_TLS_API_KEY" 1;
    default 0;
  }
  default_type application/json;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $dir/server.pem;
    ssl_certificate_key $dir/server.key;
    location / {
      if (\$dk_allowed = 0) {
        add_header WWW-Authenticate 'Basic realm="security" charset="UTF-8"' always;
        return 401 '{"error":{"type":"security_exception","reason":"missing or wrong authentication credentials for REST request"},"status":401}';
      }
      proxy_pass $upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_read_timeout 300s;
      proxy_request_buffering off;
    }
  }
}
EOF
}

# 0 when nginx answers on the port with our 401.
_es_tls_answers() {
  curl -sS -m 3 --cacert "$1/ca.pem" "https://127.0.0.1:$2/" 2>/dev/null | grep -q security_exception
}

start_es_tls() {
  local dir port upstream
  dir=$(_es_tls_dir)
  port=$(_es_tls_port)
  upstream=${DK_TEST_OPENSEARCH_URL:-http://127.0.0.1:9200}
  mkdir -p "$dir/tmp"
  if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "es-tls: installing nginx (Debian package nginx-light or nginx)" >&2
    if command -v apt-get >/dev/null 2>&1; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx) >&2 || true
    fi
  fi
  local nginx
  nginx=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
  if [ ! -x "$nginx" ]; then
    echo "es-tls: nginx is not installed and could not be" >&2
    return 1
  fi
  _es_tls_certs "$dir" || return 1
  _es_tls_conf "$dir" "$port" "$upstream"
  if ! _es_tls_answers "$dir" "$port"; then
    if [ -s "$dir/nginx.pid" ]; then
      kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
      sleep 0.5
    fi
    echo "es-tls: starting nginx on https://127.0.0.1:$port (log $dir/error.log)" >&2
    "$nginx" -c "$dir/nginx.conf" -p "$dir" -g "user $(id -un);" >&2 2>>"$dir/error.log" ||
      "$nginx" -c "$dir/nginx.conf" -p "$dir" >&2 2>>"$dir/error.log" || true
    for _ in $(seq 1 30); do
      _es_tls_answers "$dir" "$port" && break
      sleep 0.3
    done
  fi
  if ! _es_tls_answers "$dir" "$port"; then
    echo "es-tls: nginx does not answer on https://127.0.0.1:$port; last lines of $dir/error.log:" >&2
    tail -n 20 "$dir/error.log" >&2 2>/dev/null || true
    return 1
  fi
  export DK_TEST_ES_TLS_URL="https://127.0.0.1:$port"
  export DK_TEST_ES_TLS_CA="$dir/ca.pem"
  export DK_TEST_ES_TLS_USER="$_DK_ES_TLS_USER"
  export DK_TEST_ES_TLS_PASSWORD="$_DK_ES_TLS_PASSWORD"
  export DK_TEST_ES_TLS_API_KEY="$_DK_ES_TLS_API_KEY"
  return 0
}

stop_es_tls() {
  local dir
  dir=$(_es_tls_dir)
  [ -s "$dir/nginx.pid" ] && kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
  rm -f "$dir/nginx.pid"
}
