# Integration tests of the serving API (agent/http) against a serving agent
# with stories260K: /metrics through a real Prometheus, and malformed input.
add_library(mlxserving STATIC integration/serving.c integration/bad_requests.c)
target_link_libraries(mlxserving PUBLIC mlxharness PkgConfig::CMOCKA)

mlx_integration_test(it_prometheus mlxcommon mlxserving m)
mlx_integration_test(it_api_bad_input mlxcommon mlxserving)
# Sanitized builds generate far slower; Prometheus takes a while to start.
set_tests_properties(integration.it_prometheus integration.it_api_bad_input
                     PROPERTIES TIMEOUT 300)
