# agent/cache: the content-addressed model store (included by agent/CMakeLists.txt).
add_library(mlxcache STATIC
  cache/cmd_scan.c cache/commands.c cache/dedup.c cache/hash.c cache/inventory.c cache/manifest.c
  cache/resolve.c cache/scan.c cache/schema.c cache/store.c)
target_link_libraries(mlxcache PUBLIC mlxcommon)
include(cache/pull.cmake OPTIONAL)
