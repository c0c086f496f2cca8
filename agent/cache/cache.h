/*
 * cache.h — the model store seen from the rest of the agent: the
 * `mlx-agent cache …` commands and looking up a model by name.
 */
#ifndef MLX_AGENT_CACHE_CACHE_H
#define MLX_AGENT_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/limits.h"
#include "common/sha256.h"

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

/* A model of the store that can run (it has a GGUF file and is not
 * broken), as the serving APIs list it (/api/tags, /v1/models). */
typedef struct cache_listing {
    char name[MLX_MAX_MODEL_NAME + 1];
    char path[1024];              /* its GGUF file */
    char digest[MLX_SHA256_HEX]; /* that file's sha256; "" while not known */
    char format[16];              /* the store's record: "gguf" */
    uint64_t size;                /* of all its files */
    int64_t modified_unix_ms;     /* when it was added or last pulled */
} cache_listing;

/* By name. *out: mlx_free. */
int cache_list_runnable(const char *data_dir, cache_listing **out, size_t *n,
                        mlx_err *err);

/* What the store holds and gave back, for /metrics. */
typedef struct cache_totals {
    uint64_t blob_bytes;       /* all blobs of the store */
    uint64_t dedup_given_back; /* by every dedup --apply so far */
    uint64_t free_bytes;       /* on the store's file system */
} cache_totals;

int cache_read_totals(const char *data_dir, cache_totals *out, mlx_err *err);

#endif
