# Fuzz targets of the model store: Ollama manifests and model names.
mlx_fuzz_target(fuzz_manifest manifest mlxcache)
mlx_fuzz_target(fuzz_model_name model_name mlxcache)
