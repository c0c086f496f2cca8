# `cache pull` against mlx-test-hub, a HuggingFace Hub and Ollama registry on
# loopback (tests/support/hub_fixture.c), with faults the tests choose.
add_executable(mlx-test-hub support/hub_fixture.c support/hub_serve.c)
target_link_libraries(mlx-test-hub PRIVATE mlxtestutil mlxcommon PkgConfig::MHD
                      PkgConfig::JANSSON PkgConfig::CRYPTO)

foreach(name it_pull it_pull_crash)
  mlx_integration_test(${name} mlxcommon PkgConfig::CRYPTO)
  target_sources(${name} PRIVATE integration/pull_hub.c)
  add_dependencies(${name} mlx-test-hub)
endforeach()
set_tests_properties(integration.it_pull integration.it_pull_crash PROPERTIES TIMEOUT 180)
