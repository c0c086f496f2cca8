/*
 * pull.c — what every kind of pull shares: the list of files it brought,
 * recording them as one model, and the simplest source, a plain URL whose
 * digest the user states.
 */
#include <stdio.h>
#include <string.h>

#include "agent/cache/pull.h"
#include "common/alloc.h"

pull_file *pull_result_add(pull_result *r, const char *path)
{
    pull_file *grown = mlx_realloc(r->files, (r->n_files + 1) * sizeof *r->files);
    if (grown == NULL)
        return NULL;
    r->files = grown;
    pull_file *f = &r->files[r->n_files];
    memset(f, 0, sizeof *f);
    f->path = mlx_strdup(path);
    if (f->path == NULL)
        return NULL;
    r->n_files++;
    return f;
}

void pull_result_free(pull_result *r)
{
    for (size_t i = 0; i < r->n_files; i++)
        mlx_free(r->files[i].path);
    mlx_free(r->files);
    for (size_t i = 0; i < r->n_skipped; i++)
        mlx_free(r->skipped[i]);
    mlx_free(r->skipped);
    r->files = NULL;
    r->skipped = NULL;
    r->n_files = r->n_skipped = 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* What a loader should expect: GGUF wins, since a repository of GGUF
 * quantizations may also carry safetensors. */
static const char *model_format(const pull_result *r)
{
    const char *format = "other";
    for (size_t i = 0; i < r->n_files; i++) {
        if (ends_with(r->files[i].path, ".gguf"))
            return "gguf";
        if (ends_with(r->files[i].path, ".safetensors"))
            format = "safetensors";
    }
    return format;
}

int pull_record(store *s, pull_result *r, mlx_err *err)
{
    if (r->format == NULL)
        r->format = model_format(r);
    store_file *files = mlx_calloc(r->n_files > 0 ? r->n_files : 1, sizeof *files);
    if (files == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->n_files; i++) {
        files[i].path = r->files[i].path;
        memcpy(files[i].sha256, r->files[i].blob.sha256, sizeof files[i].sha256);
        files[i].size = r->files[i].blob.size;
    }
    store_model m = {.name = r->name,
                     .source = r->source,
                     .origin = r->origin,
                     .format = r->format,
                     .files = files,
                     .n_files = r->n_files};
    int rc = store_add_model(s, &m, err);
    mlx_free(files);
    return rc;
}

/* The digest a plain URL must have, lower-cased into out. */
static int url_digest(const char *given, char out[65], mlx_err *err)
{
    if (given == NULL || given[0] == '\0')
        return mlx_err_set(err, MLX_EUSAGE,
                           "a URL needs --sha256 HEX, the digest the file must have, so "
                           "that a changed or damaged download is refused");
    size_t n = strlen(given);
    bool ok = n == 64;
    for (size_t i = 0; ok && i < n; i++) {
        char c = given[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        out[i] = c;
    }
    if (!ok)
        return mlx_err_set(err, MLX_EUSAGE,
                           "--sha256 '%.80s' is not 64 hex digits (a SHA-256 digest)",
                           given);
    out[64] = '\0';
    return 0;
}

int pull_check(const pull_source *src, const pull_config *cfg, mlx_err *err)
{
    if (src->kind != PULL_URL)
        return 0;
    char digest[65], name[MLX_MAX_MODEL_NAME + 1];
    int rc = url_digest(cfg->sha256, digest, err);
    if (rc == 0 && cfg->name == NULL)
        rc = pull_url_model_name(src->url, name, sizeof name, err);
    return rc;
}

int pull_url(store *s, const pull_source *src, const pull_config *cfg, pull_result *out,
             mlx_err *err)
{
    out->source = STORE_SRC_URL;
    pull_blob b = {
        .url = src->url, .kind = PULL_DIGEST_SHA256, .size = PULL_SIZE_UNKNOWN};
    int rc = url_digest(cfg->sha256, b.expected, err);
    if (rc != 0)
        return rc;
    char base[MLX_MAX_MODEL_NAME + 1];
    rc = pull_url_model_name(src->url, base, sizeof base, err);
    if (cfg->name != NULL)
        snprintf(out->name, sizeof out->name, "%s", cfg->name);
    else if (rc != 0)
        return rc;
    else
        snprintf(out->name, sizeof out->name, "%s", base);
    /* The file keeps its own name inside the model, as the server had it. */
    const char *slash = strrchr(src->url, '/');
    const char *file = slash != NULL ? slash + 1 : "";
    size_t n = strcspn(file, "?#");
    char path[MLX_MAX_MODEL_NAME + 1];
    snprintf(path, sizeof path, "%.*s", (int)(n < sizeof path ? n : 0), file);
    if (store_check_name(path, NULL) != 0)
        snprintf(path, sizeof path, "model");
    snprintf(out->origin, sizeof out->origin, "%s", src->url);
    b.label = path;
    pull_file *f = pull_result_add(out, path);
    if (f == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    return pull_fetch_blob(&cfg->net, s, &b, &f->blob, err);
}
