/* main.c — mlx-agent: the daemon and tools that run on every machine. */
#include <stddef.h>

#include "agent/agent.h"
#include "agent/cache/cache.h"
#include "agent/engine/engine.h"
#include "agent/metrics/metrics.h"
#include "common/cli.h"

static const mlx_cmd *const agent_cmds[] = {
    &agent_cmd_serve,
    &agent_cmd_run,
    &agent_cmd_bench,
    &metrics_cmd_history,
    NULL,
};

/* Each module lists its own commands; the program shows them in this order. */
static const mlx_cmd *const *const groups[] = {agent_cmds, cache_cmds, engine_cmds};

int main(int argc, char **argv)
{
    static const mlx_cmd *commands[64];
    size_t n = 0;
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
        for (const mlx_cmd *const *c = groups[g]; *c != NULL; c++)
            if (n + 1 < sizeof commands / sizeof commands[0])
                commands[n++] = *c;
    commands[n] = NULL;

    const mlx_program program = {
        .name = "mlx-agent",
        .section = "agent",
        .summary = "runs on every machine of the fleet",
        .cmds = commands,
    };
    return mlx_cli_main(&program, argc, argv);
}
