# Integration tests of `mlx-agent bench --suite` and `mlx-agent history`, on a
# synthetic model the test writes with `mlx-agent model synth`.
mlx_integration_test(it_bench_suite m)
