# agent/engine: sampling, stop strings and chat formats (included by
# engine.cmake).
target_sources(mlxengine PRIVATE engine/sampler.c engine/stop.c engine/chat.c)
# A seed must give the same tokens with every compiler: no fused
# multiply-add where the source has two roundings.
set_source_files_properties(engine/sampler.c PROPERTIES COMPILE_OPTIONS -ffp-contract=off)
