/* commands.c — the engine's commands (run, model synth), listed for main.c. */
#include "agent/engine/engine.h"

const mlx_cmd *const engine_cmds[] = {
    NULL,
};
