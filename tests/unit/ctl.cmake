# Unit tests of mlxctl's parts that need no coordinator: the reader of
# Server-Sent Events, built from its source (mlxctl is a program, not a library).
mlx_unit_test(test_ctl_sse mlxcommon)
target_sources(test_ctl_sse PRIVATE ${PROJECT_SOURCE_DIR}/coordinator/ctl/sse.c)
