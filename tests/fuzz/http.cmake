# Fuzz target of agent/http's request parsing (see tests.cmake for how it
# is built and run): the bodies of the four generation endpoints.
mlx_fuzz_target(fuzz_api_request api_request mlxagent)
