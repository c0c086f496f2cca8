# Unit tests of the coordinator's node choice, circuit breaker and retry rule.
mlx_unit_test(test_router mlxcoordinator)
mlx_unit_test(test_stats mlxcoordinator)
