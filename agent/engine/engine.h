/*
 * engine.h — GGUF llama-family inference: the `mlx-agent run` and
 * `mlx-agent model synth` commands.
 */
#ifndef MLX_AGENT_ENGINE_ENGINE_H
#define MLX_AGENT_ENGINE_ENGINE_H

#include "common/config.h"

/* The engine's commands, NULL-terminated. */
extern const mlx_cmd *const engine_cmds[];

#endif
