/* commands.c — the `mlx-agent cache …` commands, listed for main.c. */
#include "agent/cache/cache.h"

extern const mlx_cmd cache_cmd_scan, cache_cmd_dedup;

const mlx_cmd *const cache_cmds[] = {
    &cache_cmd_scan,
    &cache_cmd_dedup,
    NULL,
};
