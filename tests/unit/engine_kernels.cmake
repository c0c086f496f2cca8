# Unit tests of agent/engine's kernels (tests/unit/test_kernels.c): every
# path this CPU runs against the scalar one and quant.h's references. The
# test is written without cmocka, so the same file also cross-compiles for
# arm64 and runs under qemu (cross_neon.sh) to check the NEON path.
add_executable(test_kernels unit/test_kernels.c)
target_link_libraries(test_kernels PRIVATE mlxengine)
add_test(NAME unit.test_kernels COMMAND test_kernels)
set_tests_properties(unit.test_kernels PROPERTIES LABELS unit SKIP_RETURN_CODE 77 TIMEOUT 300)
# The NEON path on any machine: cross-compiled for aarch64 and run under
# qemu with and without the dot-product instructions (skips, 77, without
# the cross compiler or qemu).
add_test(NAME unit.test_kernels_neon_qemu
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/unit/cross_neon.sh ${PROJECT_SOURCE_DIR}
                 ${CMAKE_CURRENT_BINARY_DIR}/cross_neon)
set_tests_properties(unit.test_kernels_neon_qemu PROPERTIES LABELS unit SKIP_RETURN_CODE 77
                     TIMEOUT 300)
# The x86-64 binary on a CPU without AVX2 (qemu's Nehalem): only the scalar
# path is offered, MLX_KERNELS=avx2 falls back, and nothing outside the
# AVX2 files was compiled for AVX2. Not in sanitizer builds, which qemu's
# user mode does not run.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$" AND NOT MLX_SANITIZE
   AND NOT MLX_FUZZ)
  add_test(NAME unit.test_kernels_no_avx2_qemu
           COMMAND sh -c "command -v qemu-x86_64 >/dev/null || { echo 'skipped: qemu-x86_64 is not installed (Debian: qemu-user)'; exit 77; }; exec qemu-x86_64 -cpu Nehalem \"$0\" --expect-best=scalar" $<TARGET_FILE:test_kernels>)
  set_tests_properties(unit.test_kernels_no_avx2_qemu PROPERTIES LABELS unit
                       SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
