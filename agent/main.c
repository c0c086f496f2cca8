/* main.c — mlx-agent: the daemon and tools that run on every machine. */
#include "agent/agent.h"
#include "common/cli.h"

static const mlx_cmd *const commands[] = {
    &agent_cmd_serve,
    NULL,
};

static const mlx_program program = {
    .name = "mlx-agent",
    .section = "agent",
    .summary = "runs on every machine of the fleet",
    .cmds = commands,
};

int main(int argc, char **argv)
{
    return mlx_cli_main(&program, argc, argv);
}
