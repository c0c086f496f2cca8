# Integration test of the coordinator's relay (coordinator/relay): two
# serving agents with stories260K behind a registry, the router and the
# data-plane client; one agent is killed to see the request fail over.
mlx_integration_test(it_relay mlxserving mlxcoordinator)
# Sanitized builds generate far slower.
set_tests_properties(integration.it_relay PROPERTIES TIMEOUT 300)
