/* config_fixture.c — the program and fixture the config tests share. */
#include "tests/unit/config_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "tests/support/testutil.h"

static const mlx_opt serve_opts[] = {
    {"data", 0, MLX_OPT_PATH, offsetof(struct vals, data), "~/.mlxfleet", "DIR",
     "data directory", 0, 0, NULL},
    {"name", 0, MLX_OPT_STR, offsetof(struct vals, name), NULL, "NAME", "node name", 0, 0,
     NULL},
    {"coordinator", 0, MLX_OPT_STR, offsetof(struct vals, coordinator),
     "tcp://127.0.0.1:7400", "URL", "coordinator address", 0, 0, mlx_check_nng_url},
    {"log-level", 0, MLX_OPT_STR, offsetof(struct vals, log_level), "info", "LEVEL",
     "lowest level logged", 0, 0, mlx_check_log_level},
    {"heartbeat-ms", 0, MLX_OPT_INT, offsetof(struct vals, heartbeat_ms), "1000", "N",
     "heartbeat period", 100, 60000, NULL},
    {"threads", 't', MLX_OPT_INT, offsetof(struct vals, threads), NULL, "N",
     "worker threads", 0, 0, NULL},
    {"json", 0, MLX_OPT_BOOL, offsetof(struct vals, json), NULL, NULL, "print JSON", 0, 0,
     NULL},
    {"dir", 0, MLX_OPT_LIST, offsetof(struct vals, dirs), NULL, "DIR", "model directory",
     0, 0, NULL},
    {NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0, NULL},
};

static const mlx_opt run_opts[] = {
    {"tokens", 'n', MLX_OPT_INT, offsetof(struct vals, tokens), "16", "N",
     "tokens to make", 1, 4096, NULL},
    {"temp", 0, MLX_OPT_FLOAT, offsetof(struct vals, temp), "0.8", "T", "temperature", 0,
     0, NULL},
    {NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0, NULL},
};

static const mlx_opt scan_opts[] = {
    {"hf", 0, MLX_OPT_PATH, offsetof(struct vals, hf), NULL, "DIR", "Hugging Face cache",
     0, 0, NULL},
    {"dir", 0, MLX_OPT_LIST, offsetof(struct vals, dirs), NULL, "DIR", "model directory",
     0, 0, NULL},
    {NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0, NULL},
};

/* A model's --name is for one run: not the node's name serve reads from
 * MLX_NAME or a file. */
static const mlx_opt add_opts[] = {
    {"name", 0, MLX_OPT_STR, offsetof(struct vals, name), NULL, "NAME", "model name", 0,
     0, NULL, .cli_only = true},
    {"apply", 0, MLX_OPT_BOOL, offsetof(struct vals, apply), "false", NULL, "do it", 0, 0,
     NULL, .cli_only = true},
    {NULL, 0, 0, 0, NULL, NULL, NULL, 0, 0, NULL},
};

const mlx_cmd cmd_serve = {
    "serve", NULL, "run the agent", "Serves models.", serve_opts, 0, 0, NULL};
const mlx_cmd cmd_run = {"run", "MODEL PROMPT", "generate text", NULL, run_opts, 2, 2,
                         NULL};
const mlx_cmd cmd_scan = {"cache scan", NULL, "find models", NULL, scan_opts, 0, 0, NULL};
const mlx_cmd cmd_add = {"cache add", "FILE", "add a model", NULL, add_opts, 0, 1, NULL};
static const mlx_cmd *const cmds[] = {&cmd_serve, &cmd_run, &cmd_scan, &cmd_add, NULL};
const mlx_program prog = {"mlx-agent", "agent", "the fleet's agent", cmds};

/* Every variable the table above could read, cleared around each test. */
static const char *const env_names[] = {
    "MLX_DATA",    "MLX_NAME",  "MLX_COORDINATOR", "MLX_LOG_LEVEL", "MLX_HEARTBEAT_MS",
    "MLX_THREADS", "MLX_JSON",  "MLX_DIR",         "MLX_HF",        "MLX_TOKENS",
    "MLX_CONFIG",  "MLX_APPLY", "MLX_TEMP",
};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
}

int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->dir = test_tmpdir("config");
    f->ini = test_join(f->dir, "fleet.ini");
    const char *home = getenv("HOME");
    f->old_home = home != NULL ? strdup(home) : NULL;
    setenv("HOME", "/home/tester", 1);
    clear_env();
    f->cmd = &cmd_serve;
    mlx_err_clear(&f->err);
    *state = f;
    return 0;
}

int teardown(void **state)
{
    struct fixture *f = *state;
    mlx_alloc_fail_reset();
    mlx_config_free(f->cmd, &f->v);
    mlx_config_free_args(&f->args);
    clear_env();
    if (f->old_home != NULL)
        setenv("HOME", f->old_home, 1);
    else
        unsetenv("HOME");
    free(f->old_home);
    free(f->ini);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* Loads f->cmd from the NULL-terminated words that follow; frees what an
 * earlier load in the same test left first. */
int load(struct fixture *f, ...)
{
    static char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, f);
    for (const char *w = va_arg(ap, const char *); w != NULL;
         w = va_arg(ap, const char *)) {
        assert_true(argc < 31);
        argv[argc++] = (char *)w;
    }
    va_end(ap);
    argv[argc] = NULL;
    mlx_config_free(f->cmd, &f->v);
    mlx_config_free_args(&f->args);
    memset(&f->v, 0, sizeof f->v);
    mlx_err_clear(&f->err);
    return mlx_config_load(&prog, f->cmd, argc, argv, &f->v, &f->args, &f->err);
}

void assert_msg_has(const struct fixture *f, const char *part)
{
    if (strstr(f->err.msg, part) == NULL)
        fail_msg("error sentence \"%s\" lacks \"%s\"", f->err.msg, part);
}
