# Unit tests of agent/runtime: models loaded on demand, slots, queues,
# cancellation and keep-alive, on synthetic models written by the test.
mlx_unit_test(test_runtime mlxagent)
