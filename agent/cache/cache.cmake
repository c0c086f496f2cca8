# agent/cache: the content-addressed model store (included by agent/CMakeLists.txt).
add_library(mlxcache STATIC
  cache/add.c cache/dedup.c cache/doctor.c cache/fileops.c cache/gc.c cache/hash.c
  cache/inuse.c cache/inventory.c cache/manifest.c cache/models.c cache/resolve.c cache/listing.c
  cache/scan.c cache/schema.c cache/store.c cache/usage.c cache/verify.c
  cache/cmd_check.c cache/cmd_models.c cache/cmd_scan.c cache/cmd_status.c
  cache/cmd_util.c cache/commands.c)
target_link_libraries(mlxcache PUBLIC mlxcommon)
include(cache/pull.cmake OPTIONAL)
