# Serving over HTTP: requests/s and time to first token at 1, 8 and 64
# clients, and what the agent adds to the engine's time (skips, 77, without
# the shared stories260K). It starts the agent through mlxbenchutil rather
# than mlxserving, which carries cmocka and the integration tests' assertions.
add_executable(bench_http bench/bench_http.c)
target_link_libraries(bench_http PRIVATE mlxbenchutil)
add_dependencies(bench_http mlx-agent)
