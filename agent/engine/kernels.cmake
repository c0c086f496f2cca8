# agent/engine kernels: the scalar path everywhere, AVX2 on x86-64, NEON on
# arm64 (included by engine.cmake). Only the path files get the SIMD flags,
# so the rest of the binary still runs on CPUs without them; kernels.c picks
# a path at run time and learns from MLX_KERNELS_* which ones were built.
target_sources(mlxengine PRIVATE engine/kernels.c engine/kernels_scalar.c)
# The quantized dot products' float steps are fixed (kernels_int.h), so
# every path returns the same bits: no contraction into fused multiply-adds.
set(mlx_kernel_sources engine/kernels_scalar.c)
set_source_files_properties(${mlx_kernel_sources} PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
