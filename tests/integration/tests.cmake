# Integration tests: real mlx-agent, mlx-coordinator and mlxctl processes on
# loopback, free ports chosen at run time.
add_library(mlxharness STATIC integration/harness.c integration/cluster.c
  integration/promserver.c)
target_compile_definitions(mlxharness PUBLIC MLX_BIN_DIR="${CMAKE_BINARY_DIR}/bin")
target_link_libraries(mlxharness PUBLIC mlxtestutil mlxcommon PkgConfig::CURL PkgConfig::JANSSON)

function(mlx_integration_test name)
  add_executable(${name} integration/${name}.c)
  target_link_libraries(${name} PRIVATE mlxharness ${ARGN} PkgConfig::CMOCKA)
  add_dependencies(${name} mlx-agent mlx-coordinator mlxctl)
  add_test(NAME integration.${name} COMMAND ${name})
  set_tests_properties(integration.${name} PROPERTIES LABELS integration
                       SKIP_RETURN_CODE 77 TIMEOUT 120)
endfunction()

mlx_integration_test(it_membership mlxcommon)
mlx_integration_test(it_control_abuse mlxproto nng::nng)
mlx_integration_test(it_cli)
mlx_integration_test(it_shutdown)

add_test(NAME integration.demo
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/demo_test.sh
                 ${PROJECT_SOURCE_DIR} ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(integration.demo PROPERTIES LABELS integration TIMEOUT 120)
include(integration/cache.cmake OPTIONAL)
include(integration/engine.cmake OPTIONAL)
include(integration/pull.cmake OPTIONAL)
include(integration/bench.cmake OPTIONAL)
mlx_integration_test(it_agent_http mlxcommon)
include(integration/clients.cmake OPTIONAL)
include(integration/api.cmake OPTIONAL)
include(integration/keys.cmake OPTIONAL)
include(integration/dataplane.cmake OPTIONAL)
include(integration/dpc.cmake OPTIONAL)
include(integration/inventory.cmake OPTIONAL)
include(integration/relay.cmake OPTIONAL)
include(integration/front.cmake OPTIONAL)
include(integration/fleet_bench.cmake OPTIONAL)
include(integration/ctl.cmake OPTIONAL)
