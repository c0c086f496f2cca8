#!/bin/sh
# Runs every benchmark on a Release build and prints its results:
#   tests/bench/run.sh            (MLX_BENCH_KEEP=DIR keeps the engine's
#                                  synthetic models between runs)
# The numbers recorded in the README's performance section come from here.
set -eu
cd "$(dirname "$0")/../.."
deploy/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j "$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)" \
    --target bench_cache bench_tokenizer bench_engine bench_kernels bench_http \
    bench_route >/dev/null
build-bench/bin/bench_cache
build-bench/bin/bench_tokenizer || [ $? -eq 77 ] # 77: no shared test data
build-bench/bin/bench_engine ${MLX_BENCH_KEEP:+--keep "$MLX_BENCH_KEEP"}
build-bench/bin/bench_kernels
build-bench/bin/bench_http || [ $? -eq 77 ] # 77: no shared test data
build-bench/bin/bench_route || [ $? -eq 77 ] # 77: no nginx
