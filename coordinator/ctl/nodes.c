/* nodes.c — `mlxctl nodes`: the fleet at a glance. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/cli.h"
#include "coordinator/ctl/ctl.h"

struct nodes_opts {
    ctl_opts common;
};

static const mlx_opt nodes_opts[] = {
    CTL_COMMON_OPTS(struct nodes_opts),
    {NULL},
};

static void print_table(const json_t *nodes)
{
    static const char *const headers[] = {"NAME",    "ID",        "STATE",
                                          "ADDRESS", "CPU",       "MEMORY",
                                          "LOAD",    "DISK FREE", "LAST SEEN"};
    ctl_table *t = ctl_table_new(headers, sizeof headers / sizeof headers[0]);
    size_t i;
    const json_t *n;
    json_array_foreach(nodes, i, n)
    {
        const char *state = json_string_value(json_object_get(n, "state"));
        const json_t *m = json_object_get(n, "metrics");
        ctl_table_cell(t, CTL_PLAIN, "%s", json_string_value(json_object_get(n, "name")));
        ctl_table_cell(t, CTL_PLAIN, "%s", json_string_value(json_object_get(n, "id")));
        ctl_table_cell(t, ctl_state_color(state ? state : ""), "%s", state ? state : "?");
        ctl_table_cell(t, CTL_PLAIN, "%s",
                       json_string_value(json_object_get(n, "address")));
        /* A silent node's last figures are history, not its present. */
        bool live =
            state != NULL && (strcmp(state, "up") == 0 || strcmp(state, "suspect") == 0);
        if (live && json_is_object(m)) {
            char used[16], total[16], disk[16];
            ctl_format_bytes(ctl_json_u64(m, "memory_used_bytes"), used, sizeof used);
            ctl_format_bytes(ctl_json_u64(m, "memory_total_bytes"), total, sizeof total);
            ctl_format_bytes(ctl_json_u64(m, "disk_free_bytes"), disk, sizeof disk);
            ctl_table_cell(t, CTL_PLAIN, "%.0f%%",
                           json_number_value(json_object_get(m, "cpu_percent")));
            ctl_table_cell(t, CTL_PLAIN, "%s / %s", used, total);
            ctl_table_cell(t, CTL_PLAIN, "%.2f",
                           json_number_value(json_object_get(m, "load1")));
            ctl_table_cell(t, CTL_PLAIN, "%s", disk);
        } else {
            for (int k = 0; k < 4; k++)
                ctl_table_cell(t, CTL_DIM, "-");
        }
        char age[16];
        ctl_format_age((int64_t)ctl_json_u64(n, "last_seen_unix_ms"), age, sizeof age);
        ctl_table_cell(t, CTL_PLAIN, "%s ago", age);
    }
    ctl_table_print(t);
    ctl_table_free(t);
}

static int nodes(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    static const ctl_list_view v = {
        "/api/v1/nodes", "nodes",
        "No nodes have registered yet. Start an agent with "
        "'mlx-agent serve --coordinator tcp://HOST:7400'.",
        print_table};
    struct nodes_opts o = {0};
    mlx_args args = {0};
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc == 0 && !args.help)
        rc = ctl_list(&o.common, &v);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd ctl_cmd_nodes = {
    .name = "nodes",
    .summary = "list the nodes of the fleet with their state and load",
    .about =
        "States: up (heartbeating), suspect (missed a few heartbeats), down (silent\n"
        "for longer), left (stopped cleanly).",
    .opts = nodes_opts,
    .run = nodes,
};
