/*
 * store.h — the agent's content-addressed model store (cache-internal).
 *
 * Layout under the data directory:
 *   blobs/sha256/<hex>   one file per distinct content, never modified
 *   tmp/                 downloads and imports in progress (same filesystem,
 *                        so a finished one is renamed into place atomically)
 *   agent.db             SQLite: models → files → blobs, sources, pins,
 *                        last use, sizes (schema by numbered migrations)
 *
 * A model is a name (validated by store_check_name) and a list of files,
 * each a relative path inside the model ("model.gguf", "config.json") and
 * the blob holding its bytes. Adding a model whose name exists replaces it
 * in one transaction; blobs no model uses any more are left for gc.
 *
 * Lifecycle: store_open, calls, store_close.
 * Thread safety: one store per thread; several processes may share a data
 * directory (SQLite serialises them; blob renames are atomic).
 */
#ifndef MLX_AGENT_CACHE_STORE_H
#define MLX_AGENT_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/sha256.h"

typedef struct store store;

typedef enum store_source {
    STORE_SRC_LOCAL,  /* cache add FILE */
    STORE_SRC_HF,     /* pulled from the HuggingFace Hub */
    STORE_SRC_OLLAMA, /* pulled from an Ollama registry */
    STORE_SRC_URL,    /* pulled from a plain URL */
    STORE_SRC_PEER,   /* replicated from another node */
} store_source;

typedef struct store_file {
    const char *path; /* inside the model: "model.gguf"; validated like a name */
    char sha256[MLX_SHA256_HEX];
    uint64_t size;
} store_file;

typedef struct store_model {
    const char *name; /* "hf:ORG/NAME", "llama3.2:1b", a name given at add */
    store_source source;
    const char *origin; /* where it came from, for status: a URL or "hf:ORG/NAME@REV" */
    const char *format; /* "gguf", "safetensors", "other" */
    const store_file *files;
    size_t n_files;
} store_model;

/* Opens (creating) the store in data_dir. *out: store_close. */
int store_open(const char *data_dir, store **out, mlx_err *err);
void store_close(store *s);

/* Borrowed paths of the store's folders. */
const char *store_tmp_dir(const store *s);

/* Writes the path of blob hex into out (size >= PATH_MAX is always enough). */
void store_blob_path(const store *s, const char *hex, char *out, size_t size);
bool store_has_blob(const store *s, const char *hex);

/* Moves tmp_path (inside store_tmp_dir) into place as blob hex: fsync, then
 * an atomic rename; when the blob already exists tmp_path is removed. The
 * caller has checked the digest while writing; size is checked here. */
int store_put_blob(store *s, const char *tmp_path, const char *hex, uint64_t size,
                   mlx_err *err);

/* Records m, whose blobs must all be present. Replaces a model of the same
 * name in one transaction. */
int store_add_model(store *s, const store_model *m, mlx_err *err);

/* Model names: 1..200 bytes of [A-Za-z0-9._:/@+-], no "..", no leading "/",
 * no empty path segment. MLX_EINVAL with a sentence saying what is wrong. */
int store_check_name(const char *name, mlx_err *err);

#endif
