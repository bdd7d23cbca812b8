#!/usr/bin/env bash
# The PostgreSQL (+ Redis cache) pass of `make test`: the same suite, another backend.
# Without a reachable server it says so in one line and skips, unless
# PARLEY_REQUIRE_POSTGRES=1 (CI), where a missing server fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
db_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
cache_url="${TEST_CACHE_URL:-redis://127.0.0.1:6379/15}"
shown_db="$(printf '%s' "$db_url" | sed -E 's#//([^:/@]+):[^@]*@#//\1:***@#')"

if ! "$python" scripts/service_available.py "$db_url"; then
  if [ "${PARLEY_REQUIRE_POSTGRES:-0}" = "1" ]; then
    echo "PostgreSQL is required (PARLEY_REQUIRE_POSTGRES=1) but does not answer at $shown_db" >&2
    exit 1
  fi
  echo "PostgreSQL does not answer at $shown_db: skipping the PostgreSQL pass (set TEST_DATABASE_URL to run it)."
  exit 0
fi
if ! "$python" scripts/service_available.py "$cache_url"; then
  if [ "${PARLEY_REQUIRE_POSTGRES:-0}" = "1" ]; then
    echo "Redis is required with PostgreSQL (PARLEY_REQUIRE_POSTGRES=1) but does not answer at $cache_url" >&2
    exit 1
  fi
  echo "Redis does not answer at $cache_url: the PostgreSQL pass uses the file cache."
  cache_url=""
fi
echo "== PostgreSQL pass: $shown_db${cache_url:+ with Redis cache $cache_url}"
export PARLEY_TEST_DATABASE_URL="$db_url"
if [ -n "$cache_url" ]; then export PARLEY_TEST_CACHE_URL="$cache_url"; fi
exec "$python" -m pytest "$@"
