/* commands.c — the `mlx-agent cache …` commands, listed for main.c. */
#include "agent/cache/cache.h"

extern const mlx_cmd cache_cmd_status, cache_cmd_scan, cache_cmd_dedup, cache_cmd_pull,
    cache_cmd_add, cache_cmd_rm, cache_cmd_pin, cache_cmd_unpin, cache_cmd_gc,
    cache_cmd_verify, cache_cmd_doctor;

const mlx_cmd *const cache_cmds[] = {
    &cache_cmd_status, &cache_cmd_scan,   &cache_cmd_dedup,  &cache_cmd_pull,
    &cache_cmd_add,    &cache_cmd_rm,     &cache_cmd_pin,    &cache_cmd_unpin,
    &cache_cmd_gc,     &cache_cmd_verify, &cache_cmd_doctor, NULL,
};
