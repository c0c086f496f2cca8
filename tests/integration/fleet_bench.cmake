# The fleet's benchmark (coordinator/http/bench.c, `mlxctl bench`): a
# coordinator and two agents serving stories260K, a row per node, each
# node's requests in its own log, the run's generations in the
# coordinator's books (metrics, request log, requests in flight), failures
# and access control.
mlx_integration_test(it_fleet_bench mlxcommon)
# Sanitized builds generate far slower.
set_tests_properties(integration.it_fleet_bench PROPERTIES TIMEOUT 300)
