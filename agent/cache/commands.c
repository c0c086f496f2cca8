/* commands.c — the `mlx-agent cache …` commands, listed for main.c. */
#include "agent/cache/cache.h"

const mlx_cmd *const cache_cmds[] = {
    NULL,
};
