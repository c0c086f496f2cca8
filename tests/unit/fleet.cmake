# Unit tests of the wire contract, the coordinator's membership, registry and
# register checks, and the agent's metrics and identity.
mlx_unit_test(test_wire mlxproto)
mlx_unit_test(test_wire_dataplane mlxproto)
mlx_unit_test(test_membership mlxcoordinator)
mlx_unit_test(test_registry mlxcoordinator)
mlx_unit_test(test_registry_models mlxcoordinator)
mlx_unit_test(test_facts mlxcoordinator)
mlx_unit_test(test_metrics mlxagent)
mlx_unit_test(test_identity mlxagent)
mlx_unit_test(test_history mlxagent)
mlx_unit_test(test_sampler mlxagent)
