/* db.c — opening, pragmas and numbered migrations. */
#include "common/db.h"

#include <stdio.h>

int mlx_db_fail(sqlite3 *db, int sqlite_rc, mlx_err *err, const char *what)
{
    int code =
        (sqlite_rc == SQLITE_BUSY || sqlite_rc == SQLITE_LOCKED) ? MLX_EBUSY : MLX_EDB;
    return mlx_err_set(err, code, "%s: %s", what,
                       db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(sqlite_rc));
}

int mlx_db_exec(sqlite3 *db, const char *sql, mlx_err *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return 0;
    int code = (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) ? MLX_EBUSY : MLX_EDB;
    mlx_err_set(err, code, "database statement failed: %s",
                msg != NULL ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return code;
}

int mlx_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, mlx_err *err)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, out, NULL);
    if (rc != SQLITE_OK)
        return mlx_db_fail(db, rc, err, "preparing a database statement");
    return 0;
}

int mlx_db_version(sqlite3 *db, int *out, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(db, "SELECT version FROM schema_version", &st, err);
    if (rc != 0)
        return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else if (step == SQLITE_DONE)
        *out = 0;
    else
        rc = mlx_db_fail(db, step, err, "reading the schema version");
    sqlite3_finalize(st);
    return rc;
}

static int migrate(sqlite3 *db, const char *path, const char *const *migrations, size_t n,
                   mlx_err *err)
{
    int rc = mlx_db_exec(
        db,
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
        "INSERT INTO schema_version SELECT 0 "
        "WHERE NOT EXISTS (SELECT 1 FROM schema_version);",
        err);
    if (rc != 0)
        return rc;
    int version;
    if ((rc = mlx_db_version(db, &version, err)) != 0)
        return rc;
    if (version < 0 || (size_t)version > n)
        return mlx_err_set(
            err, MLX_EDB,
            "database %s has schema version %d but this program knows only up "
            "to %zu; use a newer release or another --data directory",
            path, version, n);
    for (size_t i = (size_t)version; i < n; i++) {
        if ((rc = mlx_db_exec(db, "BEGIN IMMEDIATE", err)) != 0)
            return rc;
        char bump[64];
        snprintf(bump, sizeof bump, "UPDATE schema_version SET version = %zu", i + 1);
        rc = mlx_db_exec(db, migrations[i], err);
        if (rc == 0)
            rc = mlx_db_exec(db, bump, err);
        if (rc == 0)
            rc = mlx_db_exec(db, "COMMIT", err);
        if (rc != 0) {
            mlx_db_exec(db, "ROLLBACK", NULL);
            return mlx_err_prefix(err, rc, "migrating %s to schema version %zu", path,
                                  i + 1);
        }
    }
    return 0;
}

int mlx_db_open(const char *path, const char *const *migrations, size_t n, sqlite3 **out,
                mlx_err *err)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        mlx_err_set(err, MLX_EDB, "cannot open database %s: %s", path,
                    db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return MLX_EDB;
    }
    sqlite3_busy_timeout(db, 5000);
    rc = mlx_db_exec(db,
                     "PRAGMA journal_mode=WAL;"
                     "PRAGMA synchronous=NORMAL;"
                     "PRAGMA foreign_keys=ON;",
                     err);
    if (rc != 0) {
        mlx_err_prefix(err, rc, "opening %s", path);
    } else {
        rc = migrate(db, path, migrations, n, err);
    }
    if (rc != 0) {
        sqlite3_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void mlx_db_close(sqlite3 *db)
{
    sqlite3_close(db);
}
