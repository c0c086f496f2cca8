# Fuzz targets of `cache pull`: SRC strings, the Hub's revision JSON, response headers.
mlx_fuzz_target(fuzz_pull_source pull_source mlxcache)
mlx_fuzz_target(fuzz_hf_revision hf_revision mlxcache)
mlx_fuzz_target(fuzz_pull_headers pull_headers mlxcache)
