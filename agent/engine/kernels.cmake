# agent/engine kernels: the scalar path everywhere, AVX2 on x86-64, NEON on
# arm64 (included by engine.cmake). Only the path files get the SIMD flags,
# so the rest of the binary still runs on CPUs without them; kernels.c picks
# a path at run time and learns from MLX_KERNELS_* which ones were built.
target_sources(mlxengine PRIVATE engine/kernels.c engine/kernels_scalar.c)
set(mlx_kernel_sources engine/kernels_scalar.c)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(mlx_avx2_sources engine/kernels_avx2.c engine/kernels_avx2_q.c)
  target_sources(mlxengine PRIVATE ${mlx_avx2_sources})
  set_source_files_properties(${mlx_avx2_sources} PROPERTIES COMPILE_OPTIONS
                              "-mavx2;-mfma;-mf16c;-ffp-contract=off")
  set_source_files_properties(engine/kernels.c PROPERTIES COMPILE_DEFINITIONS MLX_KERNELS_AVX2)
endif()
# The quantized dot products' float steps are fixed (kernels_int.h), so
# every path returns the same bits: no contraction into fused multiply-adds.
set_source_files_properties(${mlx_kernel_sources} PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
