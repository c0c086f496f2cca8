/* commands.c — the engine's commands (run, model synth), listed for main.c. */
#include "agent/engine/engine.h"
#include "agent/engine/synth.h"

const mlx_cmd *const engine_cmds[] = {
    &engine_cmd_synth,
    NULL,
};
