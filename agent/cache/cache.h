/*
 * cache.h — the model store seen from the rest of the agent: the
 * `mlx-agent cache …` commands and looking up a model by name.
 */
#ifndef MLX_AGENT_CACHE_CACHE_H
#define MLX_AGENT_CACHE_CACHE_H

#include "common/config.h"
#include "common/err.h"

/* The cache commands (scan, dedup, pull, …), NULL-terminated. */
extern const mlx_cmd *const cache_cmds[];

/* The GGUF file of the model called name in the store of data_dir ("hf:ORG/NAME",
 * "llama3.2:1b", a name given at add); records the use for gc. *path: mlx_free.
 * MLX_ENOENT with a sentence saying how to get the model when it is absent. */
int cache_resolve_model(const char *data_dir, const char *name, char **path,
                        mlx_err *err);

/* What a person means by MODEL on a command line: the path of a GGUF file
 * when such a file exists, else the name of a model of the store (as
 * cache_resolve_model). *path: mlx_free. */
int cache_locate_model(const char *data_dir, const char *model, char **path,
                       mlx_err *err);

#endif
