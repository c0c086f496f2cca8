# Integration test of the agent's data plane (agent/dataplane): a serving
# agent with stories260K, dialed over NNG as the coordinator will.
mlx_integration_test(it_dataplane mlxserving mlxproto nng::nng)
# Sanitized builds generate far slower.
set_tests_properties(integration.it_dataplane PROPERTIES TIMEOUT 300)
