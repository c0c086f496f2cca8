include(unit/common.cmake OPTIONAL)
include(unit/fleet.cmake OPTIONAL)
