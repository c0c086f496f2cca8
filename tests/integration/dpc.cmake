# Integration test of the coordinator's data-plane client
# (coordinator/dataplane): a serving agent with stories260K, killed and
# restarted on its address.
mlx_integration_test(it_dpc mlxserving mlxcoordinator)
# Sanitized builds generate far slower.
set_tests_properties(integration.it_dpc PROPERTIES TIMEOUT 300)
