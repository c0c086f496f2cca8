/* models.c — `mlxctl models` and `mlxctl ps`: the fleet's model inventory,
 * what each node stores and what it has loaded. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/cli.h"
#include "coordinator/ctl/ctl.h"

struct models_opts {
    ctl_opts common;
};

static const mlx_opt models_opts[] = {
    CTL_COMMON_OPTS(struct models_opts),
    {NULL},
};

/* "a, b" of the names of nodes whose flag is true (all when flag is NULL);
 * "-" for none. */
static void node_names(const json_t *nodes, const char *flag, mlx_buf *out)
{
    size_t i;
    const json_t *n;
    json_array_foreach(nodes, i, n)
    {
        if (flag != NULL && !json_is_true(json_object_get(n, flag)))
            continue;
        mlx_buf_printf(out, "%s%s", out->len ? ", " : "", ctl_json_str(n, "name"));
    }
    if (out->len == 0)
        mlx_buf_printf(out, "-");
}

static void print_models(const json_t *models)
{
    static const char *const headers[] = {"MODEL", "SIZE", "FORMAT", "NODES",
                                          "LOADED ON"};
    ctl_table *t = ctl_table_new(headers, sizeof headers / sizeof headers[0]);
    size_t i;
    const json_t *m;
    json_array_foreach(models, i, m)
    {
        const json_t *nodes = json_object_get(m, "nodes");
        char size[16];
        ctl_format_bytes(ctl_json_u64(m, "size_bytes"), size, sizeof size);
        mlx_buf stored, loaded;
        mlx_buf_init(&stored, 1 << 16);
        mlx_buf_init(&loaded, 1 << 16);
        node_names(nodes, "stored", &stored);
        node_names(nodes, "loaded", &loaded);
        ctl_table_cell(t, CTL_PLAIN, "%s", ctl_json_str(m, "name"));
        ctl_table_cell(t, CTL_PLAIN, "%s", size);
        const char *format = ctl_json_str(m, "format");
        ctl_table_cell(t, CTL_PLAIN, "%s", format[0] ? format : "-");
        ctl_table_cell(t, CTL_PLAIN, "%s", mlx_buf_str(&stored));
        ctl_table_cell(t, strcmp(mlx_buf_str(&loaded), "-") == 0 ? CTL_DIM : CTL_GREEN,
                       "%s", mlx_buf_str(&loaded));
        mlx_buf_fini(&stored);
        mlx_buf_fini(&loaded);
    }
    ctl_table_print(t);
    ctl_table_free(t);
}

static void print_ps(const json_t *nodes)
{
    static const char *const headers[] = {"NODE", "MODEL", "MEMORY", "TOKENS/S",
                                          "ENGINE"};
    ctl_table *t = ctl_table_new(headers, sizeof headers / sizeof headers[0]);
    size_t i, k;
    const json_t *n, *m;
    json_array_foreach(nodes, i, n)
    {
        json_array_foreach(json_object_get(n, "models"), k, m)
        {
            char memory[16];
            ctl_format_bytes(ctl_json_u64(m, "memory_bytes"), memory, sizeof memory);
            ctl_table_cell(t, CTL_PLAIN, "%s", ctl_json_str(n, "name"));
            ctl_table_cell(t, CTL_PLAIN, "%s", ctl_json_str(m, "name"));
            ctl_table_cell(t, CTL_PLAIN, "%s", memory);
            ctl_table_cell(t, CTL_PLAIN, "%.1f",
                           json_number_value(json_object_get(m, "tokens_per_s")));
            ctl_table_cell(t, CTL_PLAIN, "%s", ctl_json_str(m, "engine"));
        }
    }
    ctl_table_print(t);
    ctl_table_free(t);
}

static int show(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv,
                const ctl_list_view *v)
{
    struct models_opts o = {0};
    mlx_args args = {0};
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc == 0 && !args.help)
        rc = ctl_list(&o.common, v);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

static int models(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    static const ctl_list_view v = {
        "/api/v1/models", "models",
        "No node has a model in its store yet. Add one on a node with "
        "'mlx-agent cache add FILE --name NAME' or 'mlx-agent cache pull SOURCE'.",
        print_models};
    return show(prog, cmd, argc, argv, &v);
}

static int ps(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    static const ctl_list_view v = {
        "/api/v1/ps", "nodes",
        "No node has a model loaded. A model loads on its first request, or with "
        "'mlx-agent run MODEL PROMPT' on the node.",
        print_ps};
    return show(prog, cmd, argc, argv, &v);
}

const mlx_cmd ctl_cmd_models = {
    .name = "models",
    .summary = "list the models of the fleet: which nodes store them, which run them",
    .about = "NODES are the nodes whose store holds the model; LOADED ON those that\n"
             "have it in memory now (only nodes that are up or suspect).",
    .opts = models_opts,
    .run = models,
};

const mlx_cmd ctl_cmd_ps = {
    .name = "ps",
    .summary = "list the models loaded on each node, with memory and speed",
    .about = "TOKENS/S is what the model generated over the node's last sample\n"
             "interval; 0 while idle. Nodes that are down or left are not shown.",
    .opts = models_opts,
    .run = ps,
};
