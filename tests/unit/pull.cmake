# Unit tests of `cache pull`: the parsers of sources, headers and the Hub's listing.
mlx_unit_test(test_pull_source mlxcache)
