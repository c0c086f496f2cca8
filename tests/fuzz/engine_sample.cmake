# Fuzz targets of agent/engine's stop-string matcher and chat formats (see
# tests.cmake for how they are built and run).
mlx_fuzz_target(fuzz_stop stop mlxengine)
mlx_fuzz_target(fuzz_chat chat mlxengine)
