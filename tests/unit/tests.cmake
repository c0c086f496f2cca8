include(unit/common.cmake OPTIONAL)
include(unit/fleet.cmake OPTIONAL)
include(unit/cache.cmake OPTIONAL)
include(unit/engine.cmake OPTIONAL)
