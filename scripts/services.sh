#!/usr/bin/env bash
# Starts (on loopback) the services the tests need when they are not running, and exports
# their URLs for the tests. Sourced by scripts/test.sh. Each backend issue adds its service.
start_services() {
  # The memory backend needs no service. Later: PostgreSQL (DK_TEST_POSTGRES_URL), Redis
  # (DK_TEST_REDIS_URL), osmem-server (DK_TEST_ES_URL), moto_server (DK_TEST_S3_URL).
  :
}
