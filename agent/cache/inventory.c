/*
 * inventory.c — what a scan found, recorded as models of the store, so
 * that `run llama3.2:1b` finds a model Ollama downloaded without copying it.
 *
 * A model scanned in place keeps its bytes where its tool put them; its
 * files' locations point there. Models of a scanned source that are gone
 * from it are dropped, so the store never points at deleted files.
 */
#include <stdio.h>
#include <string.h>

#include "agent/cache/internal.h"
#include "common/db.h"

static const char *format_of(const scan_result *r, size_t first, size_t end)
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

static int record_model(store *s, const scan_result *r, size_t first, size_t end,
                        mlx_err *err)
{
    uint64_t size = 0;
    for (size_t i = first; i < end; i++)
        size += r->files[i].size;
    const scan_file *f = &r->files[first];
    const char *slash = strrchr(f->location, '/');
    char origin[4096];
    snprintf(origin, sizeof origin, "%.*s", (int)(slash - f->location), f->location);
    sqlite3_int64 id;
    int rc = cache_begin_model(s, f->model, cache_origin_name(f->origin), origin,
                               format_of(r, first, end), size, &id, err);
    for (size_t i = first; rc == 0 && i < end; i++)
        rc = cache_insert_file(s, id, r->files[i].path, r->files[i].size,
                               r->files[i].sha256, r->files[i].location, err);
    return rc;
}

int cache_record_scan(store *s, const scan_result *r, mlx_err *err)
{
    int rc = mlx_db_exec(s->db, "BEGIN IMMEDIATE", err);
    if (rc != 0)
        return rc;
    /* Forget what earlier scans found; this one says what is there now. */
    rc = mlx_db_exec(
        s->db, "DELETE FROM models WHERE source IN ('hf-cache', 'ollama-cache', 'dir')",
        err);
    for (size_t i = 0; rc == 0 && i < r->n;) {
        size_t j = i;
        while (j < r->n && strcmp(r->files[j].model, r->files[i].model) == 0)
            j++;
        rc = record_model(s, r, i, j, err);
        i = j;
    }
    if (rc == 0)
        return mlx_db_exec(s->db, "COMMIT", err);
    mlx_db_exec(s->db, "ROLLBACK", NULL);
    return rc;
}
