# The serving API driven by the official openai and ollama npm packages
# (tests/clients): one CTest test per file, each starting its own agents.
# The packages are installed by `npm ci` in tests/clients (tests/run.sh
# does it); without them each test fails and says so, rather than skipping.
set(MLX_CLIENTS_DIR ${PROJECT_SOURCE_DIR}/tests/clients)
set(MLX_TESTDATA_DIR ${PROJECT_SOURCE_DIR}/../shared/testdata)
find_program(MLX_NODE node)

foreach(area openai ollama concurrency disconnect overflow coordinator fleet failover admission)
  set(name integration.clients.${area})
  if(MLX_NODE)
    add_test(NAME ${name}
             COMMAND ${MLX_NODE} ${MLX_CLIENTS_DIR}/run.mjs ${CMAKE_BINARY_DIR}/bin
                     ${MLX_TESTDATA_DIR} ${area}.test.mjs
             WORKING_DIRECTORY ${MLX_CLIENTS_DIR})
  else()
    add_test(NAME ${name}
             COMMAND sh -c "echo 'node is not installed; run deploy/install-deps.sh, then npm ci in ${MLX_CLIENTS_DIR}' >&2; exit 1")
  endif()
  set_tests_properties(${name} PROPERTIES LABELS integration SKIP_RETURN_CODE 77
                       TIMEOUT 120)
endforeach()
