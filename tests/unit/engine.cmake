# Unit tests of agent/engine: the GGUF reader and writer, the block formats,
# synthetic models. The *_files tests read ../shared/testdata and skip (77)
# where it is absent.
mlx_unit_test(test_gguf mlxengine)
mlx_unit_test(test_gguf_files mlxengine)
mlx_unit_test(test_quant mlxengine)
mlx_unit_test(test_quant_files mlxengine)
mlx_unit_test(test_synth mlxengine)
mlx_unit_test(test_forward mlxengine)
# Every kernel path's forward pass against the scalar path's (no cmocka, no
# JSON, so cross_neon.sh also builds it for arm64 and runs it under qemu).
add_executable(forward_paths unit/forward_paths.c)
target_link_libraries(forward_paths PRIVATE mlxengine)
add_test(NAME unit.forward_paths
         COMMAND forward_paths ${PROJECT_SOURCE_DIR}/../shared/testdata)
set_tests_properties(unit.forward_paths PROPERTIES LABELS unit
                     SKIP_RETURN_CODE 77 TIMEOUT 300)
