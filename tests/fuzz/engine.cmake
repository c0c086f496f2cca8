# Fuzz targets of agent/engine (see tests.cmake for how they are built and
# run). The corpus is written by fuzz/gen_gguf_corpus.py.
mlx_fuzz_target(fuzz_gguf gguf mlxengine)

# Each committed malformed file is refused with its own sentence, through
# both the mapped and the in-memory reader, and each valid one opens.
add_executable(gguf_corpus_test fuzz/gguf_corpus_test.c)
target_link_libraries(gguf_corpus_test PRIVATE mlxengine mlxtestutil)
add_test(NAME fuzz.gguf_corpus
         COMMAND gguf_corpus_test ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/gguf)
set_tests_properties(fuzz.gguf_corpus PROPERTIES LABELS "unit;fuzz" TIMEOUT 60)
mlx_fuzz_target(fuzz_model model mlxengine)
