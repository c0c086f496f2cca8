# agent/engine: GGUF inference (included by agent/CMakeLists.txt).
add_library(mlxengine STATIC
  engine/commands.c
  engine/gguf.c engine/gguf_get.c engine/gguf_tensors.c engine/gguf_types.c
  engine/gguf_write.c engine/gguf_emit.c
  engine/quant.c engine/quant_k.c
  engine/synth.c engine/synth_vocab.c engine/synth_cmd.c
  engine/engine.c engine/describe.c engine/model.c engine/forward.c engine/batch.c engine/seq.c engine/pool.c)
target_link_libraries(mlxengine PUBLIC mlxcommon)
# Quantizing and making synthetic weights must give the same bytes with
# every compiler: no fused multiply-add where the source has two roundings.
set_source_files_properties(engine/quant.c engine/quant_k.c engine/synth.c
                            PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
include(engine/text.cmake OPTIONAL)
include(engine/sample.cmake OPTIONAL)
include(engine/kernels.cmake OPTIONAL)
