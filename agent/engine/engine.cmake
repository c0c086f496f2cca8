# agent/engine: GGUF inference (included by agent/CMakeLists.txt).
add_library(mlxengine STATIC
  engine/commands.c)
target_link_libraries(mlxengine PUBLIC mlxcommon)
include(engine/text.cmake OPTIONAL)
