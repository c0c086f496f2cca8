# Access control of the coordinator (API keys, bootstrap rule, rate limits)
# driven over HTTP and through mlxctl.
mlx_integration_test(it_keys)
