# Integration tests of the model store: real mlx-agent processes on HF and
# Ollama trees built by the tests (trees.c).
add_library(mlxtrees STATIC integration/trees.c)
target_link_libraries(mlxtrees PUBLIC PkgConfig::CRYPTO)

mlx_integration_test(it_cache mlxtrees)
mlx_integration_test(it_cache_bad mlxtrees)
mlx_integration_test(it_cache_crash mlxtrees mlxcommon)
