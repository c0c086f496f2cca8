# Unit tests of the model store (agent/cache): names, manifests, blobs,
# models, gc and the files other processes use.
mlx_unit_test(test_cache_manifest mlxcache)
mlx_unit_test(test_cache_store mlxcache)
