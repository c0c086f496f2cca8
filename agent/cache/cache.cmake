# agent/cache: the content-addressed model store (included by agent/CMakeLists.txt).
add_library(mlxcache STATIC
  cache/commands.c
  cache/resolve.c)
target_link_libraries(mlxcache PUBLIC mlxcommon)
include(cache/pull.cmake OPTIONAL)
