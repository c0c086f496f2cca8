# Integration tests of agent/engine: the `model synth` command line.
add_test(NAME integration.synth_cli
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration/synth_cli_test.sh
                 ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(integration.synth_cli PROPERTIES LABELS integration TIMEOUT 60)
mlx_integration_test(it_run mlxserving)
