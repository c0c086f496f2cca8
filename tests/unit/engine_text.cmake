# Unit tests of the engine's tokenizers (agent/engine/tokenizer*.c). The
# *_files test reads ../shared/testdata and skips (77) where it is absent.
mlx_unit_test(test_tokenizer_files mlxengine)
mlx_unit_test(test_tokenizer mlxengine)
mlx_unit_test(test_tokenizer_pre mlxengine)
