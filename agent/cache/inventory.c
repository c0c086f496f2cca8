/*
 * inventory.c — what a scan found, recorded as models of the store, so
 * that `run llama3.2:1b` finds a model Ollama downloaded without copying it.
 *
 * A model scanned in place keeps its bytes where its tool put them; its
 * files' locations point there. A rescan updates the models it finds in
 * place (their pins and last use survive) and drops the ones that are gone
 * from the folders it scanned, so the store never points at deleted files.
 * A name the store itself holds (pulled, added) is never shadowed by a
 * copy found in a cache: the store's model is the one that runs.
 *
 * The store's own blobs take part in the search for duplicates too
 * (cache_scan_store), as origin "store", but are never recorded again.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/db.h"

int cache_scan_store(store *s, scan_result *r, mlx_err *err)
{
    cache_model_list models;
    int rc = cache_list_models(s, NULL, &models, err);
    for (size_t i = 0; rc == 0 && i < models.n; i++) {
        const cache_model *m = &models.items[i];
        if (cache_source_in_place(m->source))
            continue;
        for (size_t k = 0; rc == 0 && k < m->n_files; k++)
            rc = cache_scan_add(r, ORIGIN_STORE, m->name, m->files[k].path,
                                m->files[k].location, m->files[k].sha256);
    }
    cache_model_list_free(&models);
    if (rc == MLX_ENOMEM)
        return mlx_err_set(err, rc, "out of memory");
    return rc;
}

const char *cache_scan_format(const scan_result *r, size_t first, size_t end)
{
    const char *format = "other";
    for (size_t i = first; i < end; i++) {
        size_t n = strlen(r->files[i].path);
        if (n > 5 && strcmp(r->files[i].path + n - 5, ".gguf") == 0)
            return "gguf";
        if (r->files[i].origin == ORIGIN_OLLAMA && strcmp(r->files[i].path, "model") == 0)
            return "gguf"; /* Ollama's model layer is a GGUF file */
        if (n > 12 && strcmp(r->files[i].path + n - 12, ".safetensors") == 0)
            format = "safetensors";
    }
    return format;
}

/* The source recorded for a model found by a scan. */
static const char *scan_source(cache_origin o)
{
    return o == ORIGIN_HF ? "hf-cache" : o == ORIGIN_OLLAMA ? "ollama-cache" : "dir";
}

/* The source of the model called name, or "" when there is none. */
static void source_of(store *s, const char *name, char *out, size_t size)
{
    sqlite3_stmt *st;
    out[0] = '\0';
    if (cache_stmt(s, "SELECT source FROM models WHERE name = ?", &st, NULL) != 0)
        return;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
}

/* Notes name as found by this scan; false when it was found already. */
static bool first_sighting(sqlite3_stmt *seen, const char *name)
{
    sqlite3_reset(seen);
    sqlite3_bind_text(seen, 1, name, -1, SQLITE_STATIC);
    return sqlite3_step(seen) == SQLITE_DONE;
}

static int record_model(store *s, scan_result *r, size_t first, size_t end,
                        sqlite3_stmt *seen, mlx_err *err)
{
    const scan_file *f = &r->files[first];
    if (!first_sighting(seen, f->model)) {
        cache_scan_problem(r,
                           "%s: another model found by this scan is called '%s' too; "
                           "skipped",
                           f->location, f->model);
        return 0;
    }
    char source[32];
    source_of(s, f->model, source, sizeof source);
    if (source[0] != '\0' && !cache_source_in_place(source)) {
        cache_scan_problem(r,
                           "'%s' in %s is also a model of the store; the store's copy "
                           "is the one used",
                           f->model, f->location);
        return 0;
    }
    uint64_t size = 0;
    for (size_t i = first; i < end; i++)
        size += r->files[i].size;
    const char *slash = strrchr(f->location, '/');
    char origin[PATH_MAX];
    snprintf(origin, sizeof origin, "%.*s", (int)(slash - f->location), f->location);
    sqlite3_int64 id;
    int rc = cache_begin_model(s, f->model, scan_source(f->origin), origin,
                               cache_scan_format(r, first, end), size, &id, err);
    for (size_t i = first; rc == 0 && i < end; i++)
        rc = cache_insert_file(s, id, r->files[i].path, r->files[i].size,
                               r->files[i].sha256, r->files[i].location, err);
    return rc;
}

/* True when path is inside one of the scanned roots. */
static bool under_roots(const char *path, char **roots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(roots[i]);
        if (strncmp(path, roots[i], len) == 0 && path[len] == '/')
            return true;
    }
    return false;
}

static int drop_model(store *s, const char *name, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(s->db, "DELETE FROM models WHERE name = ?", &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    return step == SQLITE_DONE ? 0 : mlx_db_fail(s->db, step, err, "cannot drop a model");
}

/* Drops the in-place models this scan did not see whose files were under a
 * folder it scanned (or whose files are all gone). */
static int drop_vanished(store *s, sqlite3_stmt *seen, const scan_roots *roots,
                         mlx_err *err)
{
    char *real[2 + 64];
    size_t n_real = 0;
    const char *given[2 + 64];
    size_t n_given = 0;
    if (roots->hf != NULL && roots->hf[0] != '\0')
        given[n_given++] = roots->hf;
    if (roots->ollama != NULL && roots->ollama[0] != '\0')
        given[n_given++] = roots->ollama;
    for (size_t i = 0; i < roots->n_dirs && n_given < sizeof given / sizeof given[0]; i++)
        given[n_given++] = roots->dirs[i];
    for (size_t i = 0; i < n_given; i++)
        if ((real[n_real] = realpath(given[i], NULL)) != NULL)
            n_real++;

    cache_model_list models;
    int rc = cache_list_models(s, NULL, &models, err);
    for (size_t i = 0; rc == 0 && i < models.n; i++) {
        const cache_model *m = &models.items[i];
        if (!cache_source_in_place(m->source))
            continue;
        if (!first_sighting(seen, m->name))
            continue; /* this scan found it */
        bool scanned = m->n_files == 0, present = false;
        for (size_t k = 0; k < m->n_files; k++) {
            scanned |= under_roots(m->files[k].location, real, n_real);
            present |= access(m->files[k].location, F_OK) == 0;
        }
        if (scanned || !present)
            rc = drop_model(s, m->name, err);
    }
    cache_model_list_free(&models);
    for (size_t i = 0; i < n_real; i++)
        free(real[i]); /* realpath's allocation */
    return rc;
}

int cache_record_scan(store *s, scan_result *r, const scan_roots *roots, mlx_err *err)
{
    sqlite3_stmt *seen = NULL;
    int rc =
        mlx_db_exec(s->db,
                    "CREATE TEMP TABLE IF NOT EXISTS scan_seen (name TEXT PRIMARY KEY);"
                    "DELETE FROM scan_seen; BEGIN IMMEDIATE",
                    err);
    if (rc != 0)
        return rc;
    rc = mlx_db_prepare(s->db, "INSERT INTO scan_seen VALUES (?)", &seen, err);
    for (size_t i = 0; rc == 0 && i < r->n;) {
        size_t j = i;
        while (j < r->n && strcmp(r->files[j].model, r->files[i].model) == 0)
            j++;
        if (r->files[i].origin != ORIGIN_STORE)
            rc = record_model(s, r, i, j, seen, err);
        i = j;
    }
    if (rc == 0)
        rc = drop_vanished(s, seen, roots, err);
    sqlite3_finalize(seen);
    if (rc == 0)
        return mlx_db_exec(s->db, "COMMIT", err);
    mlx_db_exec(s->db, "ROLLBACK", NULL);
    return rc;
}
