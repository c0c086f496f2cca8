# Benchmarks: built with the tests, run by tests/bench/run.sh, never by CTest
# (they print ratios and times; nothing in them is asserted).
add_executable(bench_cache bench/bench_cache.c)
target_link_libraries(bench_cache PRIVATE mlxharness mlxtrees mlxcommon)
add_dependencies(bench_cache mlx-agent)
