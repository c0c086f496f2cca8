# agent/engine kernels: the scalar path everywhere, AVX2 and AVX-512 on
# x86-64, NEON on arm64 (included by engine.cmake). Only the path files get
# the SIMD flags, so the rest of the binary still runs on CPUs without them;
# kernels.c picks a path at run time and learns from MLX_KERNELS_* which
# ones were built.
target_sources(mlxengine PRIVATE engine/kernels.c engine/kernels_scalar.c)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(mlx_kernel_simd engine/kernels_avx2.c engine/kernels_avx2_q.c engine/kernels_avx2_vec.c
                      engine/kernels_avx2_k.c)
  set(mlx_kernel_flags -mavx2 -mfma -mf16c)
  set(mlx_kernel_path MLX_KERNELS_AVX2)
  # The AVX-512 path: its own files, with the AVX-512 flags on top of
  # AVX2's, where the compiler knows them.
  include(CheckCCompilerFlag)
  check_c_compiler_flag("-mavx512f -mavx512bw -mavx512vl -mavx512vnni" mlx_have_avx512vnni)
  if(mlx_have_avx512vnni)
    set(mlx_avx512_simd engine/kernels_avx512.c engine/kernels_avx512_q.c
                        engine/kernels_avx512_k.c)
    target_sources(mlxengine PRIVATE ${mlx_avx512_simd})
    set_source_files_properties(
      ${mlx_avx512_simd}
      PROPERTIES COMPILE_OPTIONS
                 "-mavx2;-mfma;-mf16c;-mavx512f;-mavx512bw;-mavx512vl;-mavx512vnni;-ffp-contract=off")
    list(APPEND mlx_kernel_path MLX_KERNELS_AVX512)
  endif()
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  # NEON needs no flag on arm64; SDOT does, for its own file only.
  set(mlx_kernel_simd engine/kernels_neon.c engine/kernels_neon_q.c)
  set(mlx_kernel_flags)
  set(mlx_kernel_path MLX_KERNELS_NEON)
  target_sources(mlxengine PRIVATE engine/kernels_neon_qdot.c)
  set_source_files_properties(engine/kernels_neon_qdot.c PROPERTIES COMPILE_OPTIONS
                              "-march=armv8.2-a+dotprod;-ffp-contract=off")
endif()
# The quantized dot products' float steps are fixed (kernels_int.h), so
# every path returns the same bits: no contraction into fused multiply-adds.
set_source_files_properties(engine/kernels_scalar.c PROPERTIES COMPILE_OPTIONS
                            -ffp-contract=off)
if(mlx_kernel_simd)
  target_sources(mlxengine PRIVATE ${mlx_kernel_simd})
  list(APPEND mlx_kernel_flags -ffp-contract=off)
  set_source_files_properties(${mlx_kernel_simd} PROPERTIES COMPILE_OPTIONS
                              "${mlx_kernel_flags}")
  set_source_files_properties(engine/kernels.c PROPERTIES COMPILE_DEFINITIONS
                              "${mlx_kernel_path}")
endif()
