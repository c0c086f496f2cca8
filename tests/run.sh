#!/bin/sh
# Builds everything and runs every test through CTest, as CI does:
#   1. a Release build with -Werror: unit, fuzz-corpus, style and
#      integration tests (real processes on loopback);
#   2. an AddressSanitizer + UBSan build: the unit tests and fuzz corpora.
# Installs missing dependencies first (deploy/install-deps.sh, npm ci).
set -eu
cd "$(dirname "$0")/.."
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)

deploy/install-deps.sh
# The official openai and ollama clients the API tests drive, as pinned in
# tests/clients/package-lock.json.
(cd tests/clients && npm ci --prefer-offline --no-audit --no-fund --loglevel=error)

cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DMLX_WERROR=ON
cmake --build build-test -j "$jobs"
ctest --test-dir build-test -L unit -j "$jobs" --output-on-failure
# Integration tests run one at a time: they measure membership windows.
ctest --test-dir build-test -L integration --output-on-failure

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMLX_WERROR=ON -DMLX_SANITIZE=ON
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan -L unit -j "$jobs" --output-on-failure
echo "All tests passed."
