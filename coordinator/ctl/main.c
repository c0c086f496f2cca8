/* main.c — mlxctl: the fleet CLI, a client of the coordinator's API. */
#include "common/cli.h"
#include "coordinator/ctl/ctl.h"

static const mlx_cmd *const commands[] = {
    &ctl_cmd_nodes,     &ctl_cmd_models,      &ctl_cmd_ps,    &ctl_cmd_top,
    &ctl_cmd_run,       &ctl_cmd_chat,        &ctl_cmd_bench, &ctl_cmd_keys_create,
    &ctl_cmd_keys_list, &ctl_cmd_keys_revoke, NULL,
};

static const mlx_program program = {
    .name = "mlxctl",
    .section = "mlxctl",
    .summary = "drives the fleet through the coordinator",
    .cmds = commands,
};

int main(int argc, char **argv)
{
    return mlx_cli_main(&program, argc, argv);
}
