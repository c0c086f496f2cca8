/* auth.c — opening the auth database: its migrations and the handle. */
#include <string.h>

#include "common/alloc.h"
#include "common/db.h"
#include "coordinator/auth/internal.h"

static const char *const migrations[] = {
    /* 1: keys and the request log. A key's name is unique among active keys
     * only, so a revoked key stays listed and its name can be reused. */
    "CREATE TABLE keys ("
    "  id           INTEGER PRIMARY KEY,"
    "  name         TEXT NOT NULL,"
    "  prefix       TEXT NOT NULL UNIQUE,"
    "  salt         BLOB NOT NULL,"
    "  hash         BLOB NOT NULL,"
    "  scope        TEXT NOT NULL CHECK (scope IN ('infer','admin')),"
    "  models       TEXT NOT NULL,"
    "  rpm          INTEGER NOT NULL,"
    "  tpm          INTEGER NOT NULL,"
    "  created_ms   INTEGER NOT NULL,"
    "  last_used_ms INTEGER NOT NULL DEFAULT 0,"
    "  revoked_ms   INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE UNIQUE INDEX keys_active_name ON keys (name) WHERE revoked_ms = 0;"
    "CREATE TABLE requests ("
    "  id                INTEGER PRIMARY KEY,"
    "  time_ms           INTEGER NOT NULL,"
    "  request_id        TEXT,"
    "  key_name          TEXT,"
    "  model             TEXT,"
    "  node              TEXT,"
    "  prompt_tokens     INTEGER NOT NULL,"
    "  completion_tokens INTEGER NOT NULL,"
    "  latency_ms        INTEGER NOT NULL,"
    "  status            INTEGER NOT NULL"
    ");"
    "CREATE INDEX requests_time ON requests (time_ms);",
};

const char *auth_scope_name(auth_scope s)
{
    return s == AUTH_SCOPE_ADMIN ? "admin" : "infer";
}

int auth_scope_parse(const char *text, auth_scope *out, mlx_err *err)
{
    if (text != NULL && strcmp(text, "infer") == 0) {
        *out = AUTH_SCOPE_INFER;
        return 0;
    }
    if (text != NULL && strcmp(text, "admin") == 0) {
        *out = AUTH_SCOPE_ADMIN;
        return 0;
    }
    return mlx_err_set(err, MLX_EINVAL,
                       "unknown key scope '%s': use 'infer' or 'admin'",
                       text != NULL ? text : "");
}

int auth_open(const char *path, auth **out, mlx_err *err)
{
    auth *a = mlx_calloc(1, sizeof *a);
    if (a == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory opening the key database");
    int rc = mlx_db_open(path, migrations, sizeof migrations / sizeof migrations[0],
                         &a->db, err);
    if (rc != 0) {
        mlx_free(a);
        return rc;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->keys_mu, NULL);
    if ((rc = auth_log_start(a, err)) != 0) {
        auth_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

void auth_close(auth *a)
{
    if (a == NULL)
        return;
    auth_log_stop(a);
    auth_limits_free(a);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->keys_mu);
    mlx_db_close(a->db);
    mlx_free(a);
}

int auth_db_run(auth *a, sqlite3_stmt *st, int *changes, mlx_err *err, const char *what)
{
    /* The connection is shared by every thread: sqlite3_changes and the
     * error message describe the connection's latest statement, so they are
     * read under its mutex, before another thread's statement can run. */
    sqlite3_mutex *mu = sqlite3_db_mutex(a->db);
    sqlite3_mutex_enter(mu);
    int step = sqlite3_step(st);
    int rc = step == SQLITE_DONE ? 0 : mlx_db_fail(a->db, step, err, what);
    if (changes != NULL)
        *changes = sqlite3_changes(a->db);
    sqlite3_mutex_leave(mu);
    sqlite3_finalize(st);
    return rc;
}
