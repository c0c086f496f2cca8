/*
 * cmd.h — what the `mlx-agent cache …` command files share (cache-internal):
 * their common options, opening the store, printing JSON.
 */
#ifndef MLX_AGENT_CACHE_CMD_H
#define MLX_AGENT_CACHE_CMD_H

#include <jansson.h>
#include <stddef.h>

#include "agent/cache/internal.h"
#include "common/cli.h"
#include "common/json.h"

/* clang-format off */
/* The rows every cache command has; type is the command's option struct,
 * with fields named data and json. */
#define CACHE_OPT_DATA(type)                                                      \
    {"data", 0, MLX_OPT_PATH, offsetof(type, data), "~/.mlxfleet", "DIR",         \
     "data directory (node id, model store, history)"}
#define CACHE_OPT_JSON(type)                                                      \
    {"json", 0, MLX_OPT_BOOL, offsetof(type, json), "false", NULL,                \
     "print one JSON object"}
/* Where the other tools keep their models (fields hf, ollama, dirs). */
#define CACHE_OPT_ROOTS(type)                                                     \
    {"hf", 0, MLX_OPT_PATH, offsetof(type, hf), "", "DIR",                        \
     "HuggingFace hub cache; empty: $HF_HUB_CACHE, $HF_HOME/hub or "             \
     "~/.cache/huggingface/hub"},                                                 \
    {"ollama", 0, MLX_OPT_PATH, offsetof(type, ollama), "", "DIR",                \
     "Ollama models folder; empty: $OLLAMA_MODELS or ~/.ollama/models"},          \
    {"dir", 0, MLX_OPT_LIST, offsetof(type, dirs), NULL, "DIR",                   \
     "another folder of .gguf/.safetensors files (repeatable)"}
/* clang-format on */

/* Opens the store and finishes or rolls back whatever an interrupted
 * command left (cache_recover). *out: store_close. */
int cache_cmd_open(const char *data_dir, store **out, mlx_err *err);

/* The caches to scan: the flags when set, else where HuggingFace and Ollama
 * look themselves. *hf and *ollama: mlx_free. */
int cache_cmd_roots(const char *hf_flag, const char *ollama_flag, char **hf,
                    char **ollama, mlx_err *err);

/* store_check_name for a name typed on the command line: MLX_EUSAGE (exit
 * status 2) with the sentence when it is not a valid model name. */
int cache_cmd_check_name(const char *name, mlx_err *err);

/* "3 min ago", "2 days ago", "never" for a wall-clock time in ms. */
void cache_cmd_ago(int64_t unix_ms, char *out, size_t size);

#endif
