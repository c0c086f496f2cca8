# Routing overhead: the same requests to an agent directly, through the
# coordinator and through nginx (skips, 77, where nginx is not installed).
add_executable(bench_route bench/bench_route.c bench/transport_floor.c)
target_link_libraries(bench_route PRIVATE mlxbenchutil nng::nng)
add_dependencies(bench_route mlx-agent mlx-coordinator)
