# Unit tests of agent/engine's sampler, stop-string matcher and chat formats.
mlx_unit_test(test_engine_sampler mlxengine)
mlx_unit_test(test_stop mlxengine)
mlx_unit_test(test_chat mlxengine)
