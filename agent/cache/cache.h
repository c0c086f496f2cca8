/*
 * cache.h — the model store seen from the rest of the agent: the
 * `mlx-agent cache …` commands and looking up a model by name.
 */
#ifndef MLX_AGENT_CACHE_CACHE_H
#define MLX_AGENT_CACHE_CACHE_H

#include "common/config.h"

/* The cache commands (scan, dedup, pull, …), NULL-terminated. */
extern const mlx_cmd *const cache_cmds[];

#endif
