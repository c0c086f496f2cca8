/*
 * listing.c — the store as the serving APIs show it: each model with its
 * GGUF file (/api/tags, /v1/models), and the store's totals (/metrics).
 */
#include <stdio.h>
#include <string.h>

#include "agent/cache/cache.h"
#include "agent/cache/internal.h"
#include "common/alloc.h"

/* The file a model runs from: a *.gguf, or Ollama's "model" layer (as
 * cache_resolve_model picks it). */
static const cache_model_file *gguf_file_of(const cache_model *m)
{
    const cache_model_file *pick = NULL;
    bool ollama = strcmp(m->source, "ollama") == 0 || strcmp(m->source, "ollama-cache") == 0;
    for (size_t i = 0; i < m->n_files; i++) {
        const cache_model_file *f = &m->files[i];
        size_t n = strlen(f->path);
        bool gguf = (n >= 5 && strcmp(f->path + n - 5, ".gguf") == 0) ||
                    (ollama && strcmp(f->path, "model") == 0);
        if (gguf && (pick == NULL || strcmp(f->path, pick->path) < 0))
            pick = f;
    }
    return pick;
}

int cache_list_runnable(const char *data_dir, cache_listing **out, size_t *n, mlx_err *err)
{
    *out = NULL;
    *n = 0;
    store *s;
    int rc = store_open(data_dir, &s, err);
    if (rc != 0)
        return rc;
    cache_model_list models;
    rc = cache_list_models(s, NULL, &models, err);
    cache_listing *list = rc == 0 ? mlx_calloc(models.n + 1, sizeof *list) : NULL;
    if (rc == 0 && list == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < models.n; i++) {
        const cache_model *m = &models.items[i];
        const cache_model_file *f = gguf_file_of(m);
        if (f == NULL || m->broken)
            continue;
        cache_listing *l = &list[(*n)++];
        snprintf(l->name, sizeof l->name, "%s", m->name);
        snprintf(l->path, sizeof l->path, "%s", f->location);
        snprintf(l->digest, sizeof l->digest, "%s", f->sha256);
        snprintf(l->format, sizeof l->format, "%s", m->format);
        l->size = m->size;
        l->modified_unix_ms = m->added_unix_ms;
    }
    cache_model_list_free(&models);
    store_close(s);
    if (rc != 0) {
        mlx_free(list);
        *n = 0;
        return rc;
    }
    *out = list;
    return 0;
}

int cache_read_totals(const char *data_dir, cache_totals *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    store *s;
    int rc = store_open(data_dir, &s, err);
    if (rc != 0)
        return rc;
    cache_usage u;
    if ((rc = cache_usage_read(s, &u, err)) == 0) {
        out->blob_bytes = u.blob_bytes;
        out->dedup_given_back = u.dedup_given_back;
        out->free_bytes = u.free_bytes;
        cache_usage_free(&u);
    }
    store_close(s);
    return rc;
}
