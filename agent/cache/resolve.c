/* resolve.c — finding a model's GGUF file by its name in the store. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/cache/cache.h"
#include "agent/cache/internal.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/db.h"

/* The location of name's GGUF file: 0, MLX_ENOENT (no such model, no
 * sentence) or another error with one. */
static int lookup(store *s, const char *name, char **path, mlx_err *err)
{
    sqlite3_stmt *st;
    /* The model's GGUF: a file named *.gguf, or Ollama's "model" layer. */
    int rc = mlx_db_prepare(
        s->db,
        "SELECT f.location, m.broken FROM files f JOIN models m "
        "ON m.id = f.model_id WHERE m.name = ? AND (f.path LIKE '%.gguf' OR "
        "(m.source IN ('ollama', 'ollama-cache') AND f.path = 'model')) ORDER BY f.path "
        "LIMIT 1",
        &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = MLX_ENOENT;
    else if (sqlite3_column_int(st, 1) != 0)
        rc = mlx_err_set(err, MLX_ECORRUPT,
                         "model '%s' is broken (verify found a corrupt blob); pull it again",
                         name);
    else if ((*path = mlx_strdup((const char *)sqlite3_column_text(st, 0))) == NULL)
        rc = mlx_err_set(err, MLX_ENOMEM, "out of memory");
    sqlite3_finalize(st);
    return rc;
}

static void record_use(store *s, const char *name)
{
    sqlite3_stmt *use;
    if (mlx_db_prepare(s->db, "UPDATE models SET last_used_unix_ms = ? WHERE name = ?",
                       &use, NULL) == 0) {
        sqlite3_bind_int64(use, 1, mlx_time_wall_ms());
        sqlite3_bind_text(use, 2, name, -1, SQLITE_STATIC);
        sqlite3_step(use);
        sqlite3_finalize(use);
    }
}

int cache_resolve_model(const char *data_dir, const char *name, char **path, mlx_err *err)
{
    *path = NULL;
    int rc = store_check_name(name, err);
    if (rc != 0)
        return rc;
    store *s;
    if ((rc = store_open(data_dir, &s, err)) != 0)
        return rc;
    char tagged[MLX_MAX_MODEL_NAME + 16];
    const char *found = name;
    rc = lookup(s, name, path, err);
    /* An Ollama name without a tag means its "latest", as in Ollama. */
    const char *last = strrchr(name, '/');
    if (rc == MLX_ENOENT && strchr(last != NULL ? last : name, ':') == NULL) {
        snprintf(tagged, sizeof tagged, "%s:latest", name);
        found = tagged;
        rc = lookup(s, tagged, path, err);
    }
    if (rc == MLX_ENOENT)
        rc = mlx_err_set(err, MLX_ENOENT,
                         "no model named '%s' in the store; pull it ('mlx-agent cache pull "
                         "…') or add a GGUF file ('mlx-agent cache add FILE --name %s')",
                         name, name);
    if (rc == 0)
        record_use(s, found);
    store_close(s);
    return rc;
}

int cache_locate_model(const char *data_dir, const char *model, char **path, mlx_err *err)
{
    struct stat st;
    if (stat(model, &st) == 0 && S_ISREG(st.st_mode)) {
        *path = mlx_strdup(model);
        return *path != NULL ? 0 : mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    *path = NULL;
    /* Not a file: a name of the store, unless it can only be a path. */
    if (strchr(model, '/') != NULL && store_check_name(model, NULL) != 0)
        return mlx_err_set(err, MLX_ENOENT, "no such GGUF file: '%s'", model);
    int rc = cache_resolve_model(data_dir, model, path, err);
    if (rc == MLX_ENOENT)
        rc = mlx_err_set(err, MLX_ENOENT,
                         "'%s' is neither a GGUF file nor a model of the store; give the path "
                         "of a file, pull the model ('mlx-agent cache pull …') or add a file "
                         "('mlx-agent cache add FILE --name %s')",
                         model, model);
    return rc;
}
