/* run.c — `mlxctl run MODEL PROMPT`: one answer from the fleet, streamed
 * to the terminal as it is made. */
#include <stdio.h>

#include "common/cli.h"
#include "coordinator/ctl/ctl.h"

static int run(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    ctl_gen_opts o = {0};
    mlx_args args = {0};
    json_t *messages = NULL;
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    if (args.argc < 2) {
        fprintf(stderr,
                "mlxctl: run needs a prompt: mlxctl run %s PROMPT; for a "
                "conversation, use mlxctl chat %s\n",
                args.argv[0], args.argv[0]);
        rc = MLX_EUSAGE;
        goto out;
    }
    if ((messages = json_array()) == NULL) {
        fprintf(stderr, "mlxctl: out of memory\n");
        rc = MLX_ENOMEM;
        goto out;
    }
    if (o.sampling.system != NULL &&
        (rc = ctl_message_add(messages, "system", o.sampling.system)) != 0)
        goto out;
    if ((rc = ctl_message_add(messages, "user", args.argv[1])) != 0)
        goto out;
    ctl_generation g = {.model = args.argv[0], .messages = messages};
    rc = ctl_generate(&o, &g);
out:
    json_decref(messages);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd ctl_cmd_run = {
    .name = "run",
    .args = "MODEL PROMPT",
    .summary = "ask a model of the fleet one question; the answer streams as it is made",
    .about = "The coordinator picks the node (one that has the model loaded first).\n"
             "The answer goes to stdout, then a newline; --json asks for the whole\n"
             "answer at once and prints the API's JSON (OpenAI's chat completion).\n"
             "For a conversation, use mlxctl chat.",
    .opts = ctl_gen_opts_table,
    .min_args = 1, /* a missing prompt gets its own sentence */
    .max_args = 2,
    .run = run,
};
