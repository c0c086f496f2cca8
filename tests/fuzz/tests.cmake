# Fuzz targets. Each is built twice: with the replay driver (always), so
# CTest feeds it the committed corpus on every build, and, with
# -DMLX_FUZZ=ON and clang, as a libFuzzer binary for real fuzzing:
#   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DMLX_FUZZ=ON
#   build-fuzz/bin/fuzz_envelope tests/fuzz/corpus/envelope
function(mlx_fuzz_target name corpus)
  add_executable(${name}_replay fuzz/${name}.c fuzz/driver.c)
  target_link_libraries(${name}_replay PRIVATE mlxtestutil ${ARGN})
  add_test(NAME fuzz.${name}
           COMMAND ${name}_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/${corpus})
  set_tests_properties(fuzz.${name} PROPERTIES LABELS "unit;fuzz" TIMEOUT 120)
  if(MLX_FUZZ)
    if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
      message(FATAL_ERROR "MLX_FUZZ needs clang (libFuzzer)")
    endif()
    add_executable(${name} fuzz/${name}.c)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${name} PRIVATE ${ARGN})
  endif()
endfunction()

mlx_fuzz_target(fuzz_envelope envelope mlxcoordinator mlxproto)
mlx_fuzz_target(fuzz_config ini mlxcommon)
mlx_fuzz_target(fuzz_ollama_ps ollama_ps mlxagent)
include(fuzz/cache.cmake OPTIONAL)
include(fuzz/engine.cmake OPTIONAL)
include(fuzz/engine_text.cmake OPTIONAL)
include(fuzz/pull.cmake OPTIONAL)
include(fuzz/engine_sample.cmake OPTIONAL)
include(fuzz/http.cmake OPTIONAL)
