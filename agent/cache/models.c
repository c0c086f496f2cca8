/*
 * models.c — the models recorded in agent.db: listing, removing, pinning.
 *
 * Two kinds of model live side by side. A model of the store (pulled,
 * added, replicated) owns its bytes in <data>/blobs. A model scanned in
 * place (sources "hf-cache", "ollama-cache", "dir") only points at files
 * another tool keeps; the store never deletes those, so rm refuses them and
 * gc never picks them.
 */
#include <stdio.h>
#include <string.h>

#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/db.h"

bool cache_source_in_place(const char *source)
{
    return strcmp(source, "hf-cache") == 0 || strcmp(source, "ollama-cache") == 0 ||
           strcmp(source, "dir") == 0;
}

static char *column_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    return mlx_strdup(v != NULL ? (const char *)v : "");
}

void cache_model_list_free(cache_model_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        cache_model *m = &l->items[i];
        mlx_free(m->name);
        mlx_free(m->source);
        mlx_free(m->origin);
        mlx_free(m->format);
        for (size_t k = 0; k < m->n_files; k++) {
            mlx_free(m->files[k].path);
            mlx_free(m->files[k].location);
        }
        mlx_free(m->files);
    }
    mlx_free(l->items);
    memset(l, 0, sizeof *l);
}

static int read_files(store *s, sqlite3_int64 id, cache_model *m, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(s->db,
                            "SELECT path, size, sha256, location FROM files "
                            "WHERE model_id = ? ORDER BY path",
                            &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        cache_model_file *grown = mlx_realloc(m->files, (m->n_files + 1) * sizeof *grown);
        if (grown == NULL) {
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
            break;
        }
        m->files = grown;
        cache_model_file *f = &m->files[m->n_files];
        memset(f, 0, sizeof *f);
        f->path = column_dup(st, 0);
        f->location = column_dup(st, 3);
        m->n_files++;
        if (f->path == NULL || f->location == NULL)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
        f->size = (uint64_t)sqlite3_column_int64(st, 1);
        const unsigned char *hex = sqlite3_column_text(st, 2);
        if (hex != NULL && cache_is_digest((const char *)hex))
            memcpy(f->sha256, hex, MLX_SHA256_HEX);
    }
    sqlite3_finalize(st);
    return rc;
}

int cache_list_models(store *s, const char *name, cache_model_list *out, mlx_err *err)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc =
        mlx_db_prepare(s->db,
                       "SELECT id, name, source, origin, format, size, added_unix_ms, "
                       "last_used_unix_ms, pinned, broken FROM models "
                       "WHERE ?1 IS NULL OR name = ?1 ORDER BY name",
                       &st, err);
    if (rc != 0)
        return rc;
    if (name != NULL)
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        cache_model *grown = mlx_realloc(out->items, (out->n + 1) * sizeof *grown);
        if (grown == NULL) {
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
            break;
        }
        out->items = grown;
        cache_model *m = &out->items[out->n++];
        memset(m, 0, sizeof *m);
        m->name = column_dup(st, 1);
        m->source = column_dup(st, 2);
        m->origin = column_dup(st, 3);
        m->format = column_dup(st, 4);
        m->size = (uint64_t)sqlite3_column_int64(st, 5);
        m->added_unix_ms = sqlite3_column_int64(st, 6);
        m->last_used_unix_ms = sqlite3_column_int64(st, 7);
        m->pinned = sqlite3_column_int(st, 8) != 0;
        m->broken = sqlite3_column_int(st, 9) != 0;
        if (m->name == NULL || m->source == NULL || m->origin == NULL ||
            m->format == NULL)
            rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
        else
            rc = read_files(s, sqlite3_column_int64(st, 0), m, err);
    }
    sqlite3_finalize(st);
    if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = mlx_db_fail(s->db, step, err, "cannot list the models");
    if (rc != 0)
        cache_model_list_free(out);
    return rc;
}

/* The source of the model called name; MLX_ENOENT with a sentence if none. */
static int find_source(store *s, const char *name, char *source, size_t size,
                       mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(s->db, "SELECT source FROM models WHERE name = ?", &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(source, size, "%s", v != NULL ? (const char *)v : "");
    } else {
        rc = mlx_err_set(err, MLX_ENOENT,
                         "no model named '%s' in the store; 'mlx-agent cache status' "
                         "lists them",
                         name);
    }
    sqlite3_finalize(st);
    return rc;
}

int cache_remove_model(store *s, const char *name, mlx_err *err)
{
    char source[32];
    int rc = store_check_name(name, err);
    if (rc == 0)
        rc = find_source(s, name, source, sizeof source, err);
    if (rc != 0)
        return rc;
    if (cache_source_in_place(source))
        return mlx_err_set(err, MLX_EPERM,
                           "'%s' lives in %s, which the store only reads; remove it "
                           "with the tool that downloaded it (for Ollama: ollama rm)",
                           name,
                           strcmp(source, "hf-cache") == 0 ? "the HuggingFace cache"
                           : strcmp(source, "ollama-cache") == 0
                               ? "Ollama's models folder"
                               : "a --dir folder");
    sqlite3_stmt *st;
    if ((rc = mlx_db_prepare(s->db, "DELETE FROM models WHERE name = ?", &st, err)) != 0)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0
                               : mlx_db_fail(s->db, step, err, "cannot remove a model");
}

int cache_pin_model(store *s, const char *name, bool pinned, mlx_err *err)
{
    char source[32];
    int rc = store_check_name(name, err);
    if (rc == 0)
        rc = find_source(s, name, source, sizeof source, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    if ((rc = mlx_db_prepare(s->db, "UPDATE models SET pinned = ? WHERE name = ?", &st,
                             err)) != 0)
        return rc;
    sqlite3_bind_int(st, 1, pinned ? 1 : 0);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : mlx_db_fail(s->db, step, err, "cannot pin a model");
}
