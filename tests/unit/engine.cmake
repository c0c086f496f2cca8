# Unit tests of agent/engine: the GGUF reader and writer, the block formats,
# synthetic models. The *_files tests read ../shared/testdata and skip (77)
# where it is absent.
mlx_unit_test(test_gguf mlxengine)
mlx_unit_test(test_gguf_files mlxengine)
mlx_unit_test(test_quant mlxengine)
mlx_unit_test(test_quant_files mlxengine)
mlx_unit_test(test_synth mlxengine)
mlx_unit_test(test_forward mlxengine)
