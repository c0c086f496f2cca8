/* fuzz_config.c — the INI configuration parser with every option kind. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct values {
    char *text;
    char *path;
    int64_t number;
    bool flag;
    mlx_strlist list;
    char *address;
};

static const mlx_opt opts[] = {
    {"text", 0, MLX_OPT_STR, offsetof(struct values, text), "x", "S", "a string"},
    {"path", 0, MLX_OPT_PATH, offsetof(struct values, path), "~/p", "DIR", "a path"},
    {"number", 0, MLX_OPT_INT, offsetof(struct values, number), "1", "N", "a number", -5,
     5000},
    {"flag", 0, MLX_OPT_BOOL, offsetof(struct values, flag), "false", NULL, "a flag"},
    {"list", 0, MLX_OPT_LIST, offsetof(struct values, list), NULL, "DIR", "a list"},
    {"address", 0, MLX_OPT_STR, offsetof(struct values, address), "127.0.0.1:1",
     "HOST:PORT", "an address", .check = mlx_check_hostport},
    {NULL},
};

static const mlx_cmd cmd = {.name = "fuzz", .summary = "fuzz", .opts = opts};
static const mlx_cmd *const cmds[] = {&cmd, NULL};
static const mlx_program prog = {.name = "fuzz", .section = "agent", .cmds = cmds};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = mlx_strndup((const char *)data, size);
    if (text == NULL)
        return 0;
    struct values v;
    memset(&v, 0, sizeof v);
    mlx_config_parse_ini(&prog, &cmd, text, "fuzz.ini", &v, NULL);
    mlx_config_free(&cmd, &v);
    mlx_free(text);
    return 0;
}
