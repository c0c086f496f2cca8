# Benchmarks: built with the tests, run by tests/bench/run.sh, never by CTest
# (they print ratios and times; nothing in them is asserted).
add_executable(bench_cache bench/bench_cache.c)
target_link_libraries(bench_cache PRIVATE mlxharness mlxtrees mlxcommon)
add_dependencies(bench_cache mlx-agent)
# Tokenizer throughput on the shared War and Peace (skips, 77, without it).
add_executable(bench_tokenizer bench/bench_tokenizer.c)
target_link_libraries(bench_tokenizer PRIVATE mlxengine mlxtestutil)
# The engine against the machine: bandwidth roofline, prompts, sequences.
add_executable(bench_engine bench/bench_engine.c)
target_link_libraries(bench_engine PRIVATE mlxharness mlxcommon Threads::Threads)
add_dependencies(bench_engine mlx-agent)
# Kernel throughput per weight type and CPU path: GB/s of weights, GFLOP/s.
add_executable(bench_kernels bench/bench_kernels.c)
target_link_libraries(bench_kernels PRIVATE mlxengine mlxtestutil)
# What the serving benchmarks share: an agent, clients, percentiles.
add_library(mlxbenchutil STATIC bench/benchutil.c bench/benchclient.c)
target_link_libraries(mlxbenchutil PUBLIC mlxharness mlxcommon PkgConfig::CURL
                      PkgConfig::JANSSON Threads::Threads)
include(bench/http.cmake OPTIONAL)
include(bench/route.cmake OPTIONAL)
