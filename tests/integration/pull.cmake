# `cache pull` against mlx-test-hub, a HuggingFace Hub and Ollama registry on
# loopback (tests/support/hub_fixture.c), with faults the tests choose.
add_executable(mlx-test-hub support/hub_fixture.c)
target_link_libraries(mlx-test-hub PRIVATE mlxtestutil mlxcommon PkgConfig::MHD
                      PkgConfig::JANSSON PkgConfig::CRYPTO)

foreach(name it_pull it_pull_crash)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/integration/${name}.c)
    mlx_integration_test(${name} PkgConfig::SQLITE PkgConfig::CRYPTO)
    add_dependencies(${name} mlx-test-hub)
  endif()
endforeach()
