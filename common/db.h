/*
 * db.h — SQLite opened the way every fleet database is opened.
 *
 * WAL journal (readers never block the writer), synchronous=NORMAL (a power
 * cut may lose the last commits, never corrupt the file), foreign keys on,
 * a busy timeout so two processes sharing a database wait instead of failing.
 *
 * Schema changes are numbered migrations: migrations[i] is the SQL that takes
 * the schema from version i to i+1. The current version lives in the one-row
 * table schema_version; each migration runs in its own transaction with the
 * version bump, so a crash leaves the database at a whole version. A database
 * newer than the program is refused rather than guessed at.
 *
 * Thread safety: the connection is opened in serialized mode and may be used
 * from several threads; statements belong to one thread.
 */
#ifndef MLX_COMMON_DB_H
#define MLX_COMMON_DB_H

#include <sqlite3.h>
#include <stddef.h>

#include "common/err.h"

/* Opens (creating if needed) the database at path and brings it to version n.
 * *out: close with mlx_db_close. */
int mlx_db_open(const char *path, const char *const *migrations, size_t n, sqlite3 **out,
                mlx_err *err);
void mlx_db_close(sqlite3 *db);

/* The schema version recorded in the database (0 for a new one). */
int mlx_db_version(sqlite3 *db, int *out, mlx_err *err);

/* Runs one or more statements that return no rows. */
int mlx_db_exec(sqlite3 *db, const char *sql, mlx_err *err);

int mlx_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, mlx_err *err);

/* Turns an SQLite result code into MLX_EDB (or MLX_EBUSY) with a sentence
 * "what: sqlite's message". */
int mlx_db_fail(sqlite3 *db, int sqlite_rc, mlx_err *err, const char *what);

#endif
