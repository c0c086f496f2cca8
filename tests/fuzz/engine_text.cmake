# Fuzz target of agent/engine's tokenizers (see tests.cmake for how it is
# built and run); its vocabularies are built in memory.
mlx_fuzz_target(fuzz_tokenizer tokenizer mlxengine)
