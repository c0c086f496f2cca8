# Unit tests of the coordinator's access control: API keys, admission, rate
# limits and the request log.
mlx_unit_test(test_auth mlxcoordinator)
