/*
 * cmd_status.c — `mlx-agent cache status [NAME]`: the store at a glance, or
 * one model with its files.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "agent/cache/cmd.h"

struct status_opts {
    char *data;
    bool json;
};

static const mlx_opt status_opts[] = {
    CACHE_OPT_DATA(struct status_opts),
    CACHE_OPT_JSON(struct status_opts),
    {NULL},
};

static json_t *model_json(const cache_model *m)
{
    json_t *files = json_array();
    for (size_t k = 0; k < m->n_files; k++) {
        const cache_model_file *f = &m->files[k];
        json_array_append_new(files, json_pack("{s:s, s:s?, s:I, s:s}", "path", f->path,
                                               "sha256", f->sha256[0] ? f->sha256 : NULL,
                                               "size_bytes", (json_int_t)f->size,
                                               "location", f->location));
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:b, s:o}", "name",
                     m->name, "source", m->source, "origin", m->origin, "format",
                     m->format, "size_bytes", (json_int_t)m->size, "added_unix_ms",
                     (json_int_t)m->added_unix_ms, "last_used_unix_ms",
                     (json_int_t)m->last_used_unix_ms, "pinned", m->pinned, "broken",
                     m->broken, "files", files);
}

static json_t *status_json(const store *s, const cache_model_list *models,
                           const cache_usage *u)
{
    json_t *list = json_array(), *partials = json_array();
    for (size_t i = 0; i < models->n; i++)
        json_array_append_new(list, model_json(&models->items[i]));
    for (size_t i = 0; i < u->n_partials; i++)
        json_array_append_new(
            partials, json_pack("{s:s, s:I, s:I}", "path", u->partials[i].path, "bytes",
                                (json_int_t)u->partials[i].bytes, "modified_unix_ms",
                                (json_int_t)u->partials[i].modified_unix_ms));
    return json_pack("{s:s, s:o, s:{s:I, s:I}, s:o, s:I, s:I}", "data_dir", s->data_dir,
                     "models", list, "blobs", "count", (json_int_t)u->blobs, "bytes",
                     (json_int_t)u->blob_bytes, "partial_downloads", partials,
                     "dedup_given_back_bytes", (json_int_t)u->dedup_given_back,
                     "free_bytes", (json_int_t)u->free_bytes);
}

static void print_summary(const store *s, const cache_model_list *models,
                          const cache_usage *u)
{
    char blobs[32], back[32], free_b[32];
    cache_format_bytes(u->blob_bytes, blobs, sizeof blobs);
    cache_format_bytes(u->dedup_given_back, back, sizeof back);
    cache_format_bytes(u->free_bytes, free_b, sizeof free_b);
    printf("Store %s: %zu %s, %zu %s (%s), %s given back by dedup, %s free.\n",
           s->data_dir, models->n, models->n == 1 ? "model" : "models", u->blobs,
           u->blobs == 1 ? "blob" : "blobs", blobs, back, free_b);
    if (models->n == 0) {
        printf("\nNo models yet: 'mlx-agent cache pull SRC' downloads one, 'cache scan' "
               "finds the ones HuggingFace and Ollama keep.\n");
        return;
    }
    printf("\n%-44s  %-12s  %-11s  %10s  %-13s  %s\n", "NAME", "SOURCE", "FORMAT", "SIZE",
           "LAST USED", "");
    for (size_t i = 0; i < models->n; i++) {
        const cache_model *m = &models->items[i];
        char sz[32], used[32];
        cache_format_bytes(m->size, sz, sizeof sz);
        cache_cmd_ago(m->last_used_unix_ms, used, sizeof used);
        printf("%-44s  %-12s  %-11s  %10s  %-13s  %s%s\n", m->name, m->source, m->format,
               sz, used, m->pinned ? "pinned " : "", m->broken ? "BROKEN" : "");
    }
    if (u->n_partials > 0) {
        char sz[32];
        cache_format_bytes(u->partial_bytes, sz, sizeof sz);
        printf("\n%zu unfinished downloads (%s) in %s: run the same pull again to "
               "resume.\n",
               u->n_partials, sz, store_tmp_dir(s));
    }
}

static void print_model(const cache_model *m)
{
    char sz[32], used[32];
    cache_format_bytes(m->size, sz, sizeof sz);
    cache_cmd_ago(m->last_used_unix_ms, used, sizeof used);
    printf(
        "%s\n  source    %s (%s)\n  format    %s\n  size      %s\n  last used %s\n%s%s",
        m->name, m->source, m->origin, m->format, sz, used, m->pinned ? "  pinned\n" : "",
        m->broken ? "  BROKEN: verify found a corrupt file; pull it again\n" : "");
    printf("\n  %-32s  %10s  %-19s  %s\n", "FILE", "SIZE", "SHA256", "LOCATION");
    for (size_t k = 0; k < m->n_files; k++) {
        const cache_model_file *f = &m->files[k];
        cache_format_bytes(f->size, sz, sizeof sz);
        printf("  %-32s  %10s  %-19.19s  %s\n", f->path, sz,
               f->sha256[0] ? f->sha256 : "(not hashed yet)", f->location);
    }
}

static int status(const mlx_program *prog, const mlx_cmd *cmd, int argc, char **argv)
{
    struct status_opts o = {0};
    mlx_args args = {0};
    mlx_err err;
    mlx_err_clear(&err);
    store *s = NULL;
    cache_model_list models = {0};
    cache_usage u = {0};
    const char *name = NULL;
    int rc = mlx_cli_load(prog, cmd, argc, argv, &o, &args);
    if (rc != 0 || args.help)
        goto out;
    name = args.argc > 0 ? args.argv[0] : NULL;
    if ((name == NULL || (rc = cache_cmd_check_name(name, &err)) == 0) &&
        (rc = cache_cmd_open(o.data, &s, &err)) == 0 &&
        (rc = cache_list_models(s, name, &models, &err)) == 0 &&
        (rc = cache_usage_read(s, &u, &err)) == 0 && name != NULL && models.n == 0)
        rc = mlx_err_set(
            &err, MLX_ENOENT,
            "no model named '%s' in the store; 'mlx-agent cache status' lists "
            "them",
            name);
    if (rc != 0) {
        mlx_cli_fail(prog, rc, &err);
        goto out;
    }
    if (o.json && name != NULL)
        rc = mlx_json_print(model_json(&models.items[0]), &err);
    else if (o.json)
        rc = mlx_json_print(status_json(s, &models, &u), &err);
    else if (name != NULL)
        print_model(&models.items[0]);
    else
        print_summary(s, &models, &u);
out:
    cache_usage_free(&u);
    cache_model_list_free(&models);
    store_close(s);
    mlx_config_free(cmd, &o);
    mlx_config_free_args(&args);
    return rc;
}

const mlx_cmd cache_cmd_status = {
    .name = "cache status",
    .args = "[NAME]",
    .summary = "the models of the store, its size and unfinished downloads",
    .about = "Without NAME: every model with its source, size and last use, the blobs\n"
             "and what de-duplication gave back. With NAME: that model and its files.",
    .opts = status_opts,
    .min_args = 0,
    .max_args = 1,
    .run = status,
};
