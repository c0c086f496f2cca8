# engine_describe against engine_load, on synthetic models and (where
# ../shared/testdata exists) the shared ones; skips (77) without them.
mlx_unit_test(test_describe mlxengine)
