/*
 * test_db.c — common/db: opening applies WAL and foreign keys, numbered
 * migrations run once each and record their version in schema_version,
 * reopening is idempotent, a newer database is refused with MLX_EDB, a
 * failing migration rolls back to the last whole version, and SQL errors
 * come back as MLX_EDB / MLX_EBUSY with SQLite's message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/db.h"
#include "tests/support/testutil.h"

static const char *const migrations[] = {
    "CREATE TABLE nodes (id TEXT PRIMARY KEY, name TEXT NOT NULL);",
    "CREATE TABLE models (node TEXT NOT NULL REFERENCES nodes(id), name TEXT);"
    "INSERT INTO nodes VALUES ('n0', 'seeded by migration 2');",
    "ALTER TABLE nodes ADD COLUMN addr TEXT;",
};

struct fixture {
    char *dir;
    char *path;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->dir = test_tmpdir("db");
    f->path = test_join(f->dir, "fleet.db");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    free(f->path);
    test_tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static sqlite3 *open_ok(const char *path, size_t n)
{
    sqlite3 *db = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    int rc = mlx_db_open(path, migrations, n, &db, &e);
    if (rc != 0)
        fail_msg("mlx_db_open: %s", e.msg);
    assert_non_null(db);
    return db;
}

static int version_of(sqlite3 *db)
{
    int v = -1;
    assert_int_equal(mlx_db_version(db, &v, NULL), 0);
    return v;
}

/* The single integer a query returns. */
static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(mlx_db_prepare(db, sql, &st, NULL), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_db_new_database_reaches_latest_version(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = open_ok(f->path, 3);
    assert_int_equal(version_of(db), 3);
    /* One row in schema_version, holding the version. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM schema_version"), 1);
    assert_int_equal(query_int(db, "SELECT version FROM schema_version"), 3);
    /* Every migration's effect is there. */
    assert_int_equal(
        mlx_db_exec(db, "INSERT INTO nodes (id, name, addr) VALUES ('a','b','c')", NULL),
        0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM models"), 0);
    mlx_db_close(db);
}

static void test_db_no_migrations_is_version_zero(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = open_ok(f->path, 0);
    assert_int_equal(version_of(db), 0);
    mlx_db_close(db);
}

static void test_db_reopen_runs_nothing_again(void **state)
{
    struct fixture *f = *state;
    mlx_db_close(open_ok(f->path, 3));
    /* Migration 2 inserts a row and migration 1 would fail if run twice. */
    sqlite3 *db = open_ok(f->path, 3);
    assert_int_equal(version_of(db), 3);
    assert_int_equal(query_int(db, "SELECT count(*) FROM nodes"), 1);
    mlx_db_close(db);
}

static void test_db_reopen_applies_only_new_migrations(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = open_ok(f->path, 1);
    assert_int_equal(version_of(db), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM nodes"), 0);
    mlx_db_close(db);
    db = open_ok(f->path, 3);
    assert_int_equal(version_of(db), 3);
    assert_int_equal(query_int(db, "SELECT count(*) FROM nodes"), 1);
    mlx_db_close(db);
}

static void test_db_newer_database_is_refused(void **state)
{
    struct fixture *f = *state;
    mlx_db_close(open_ok(f->path, 3));
    sqlite3 *db = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_db_open(f->path, migrations, 2, &db, &e), MLX_EDB);
    assert_null(db);
    assert_non_null(strstr(e.msg, f->path));
    assert_non_null(strstr(e.msg, "version 3"));
    assert_non_null(strstr(e.msg, "up to 2"));
    /* Refused means untouched: the full program still opens it at 3. */
    db = open_ok(f->path, 3);
    assert_int_equal(version_of(db), 3);
    mlx_db_close(db);
}

static void test_db_uses_wal_and_foreign_keys(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = open_ok(f->path, 3);
    sqlite3_stmt *st = NULL;
    assert_int_equal(mlx_db_prepare(db, "PRAGMA journal_mode", &st, NULL), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(query_int(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(query_int(db, "PRAGMA synchronous"), 1); /* NORMAL */
    /* Foreign keys are enforced, not just declared. */
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(
        mlx_db_exec(db, "INSERT INTO models VALUES ('no-such-node', 'm')", &e), MLX_EDB);
    assert_non_null(strstr(e.msg, "FOREIGN KEY"));
    mlx_db_close(db);
}

static void test_db_failing_migration_rolls_back_to_whole_version(void **state)
{
    struct fixture *f = *state;
    static const char *const broken[] = {
        "CREATE TABLE a (x INTEGER);",
        "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (1); THIS IS NOT SQL;",
    };
    sqlite3 *db = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_db_open(f->path, broken, 2, &db, &e), MLX_EDB);
    assert_null(db);
    assert_non_null(strstr(e.msg, f->path));
    assert_non_null(strstr(e.msg, "schema version 2"));
    assert_non_null(strstr(e.msg, "syntax error"));
    /* Version 1 was committed; nothing of migration 2 remains. */
    db = open_ok(f->path, 1);
    assert_int_equal(version_of(db), 1);
    assert_int_equal(query_int(db, "SELECT count(*) FROM a"), 0);
    assert_int_equal(
        query_int(db,
                  "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='b'"),
        0);
    mlx_db_close(db);
}

static void test_db_failing_migration_fails_without_err_too(void **state)
{
    struct fixture *f = *state;
    static const char *const broken[] = {"NOT SQL"};
    sqlite3 *db = NULL;
    assert_int_equal(mlx_db_open(f->path, broken, 1, &db, NULL), MLX_EDB);
    assert_null(db);
}

static void test_db_open_in_missing_directory_fails(void **state)
{
    struct fixture *f = *state;
    char *path = test_join(f->dir, "no/such/dir/x.db");
    sqlite3 *db = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_db_open(path, migrations, 3, &db, &e), MLX_EDB);
    assert_null(db);
    assert_non_null(strstr(e.msg, path));
    free(path);
}

static void test_db_exec_reports_sqlite_message(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = open_ok(f->path, 1);
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_db_exec(db, "SELEC 1", &e), MLX_EDB);
    assert_int_equal(e.code, MLX_EDB);
    assert_non_null(strstr(e.msg, "syntax error"));
    mlx_err_clear(&e);
    assert_int_equal(mlx_db_exec(db, "INSERT INTO nodes VALUES ('x', NULL)", &e),
                     MLX_EDB);
    assert_non_null(strstr(e.msg, "NOT NULL"));
    assert_int_equal(mlx_db_exec(db, "INSERT INTO nodes VALUES ('x', 'y')", NULL), 0);
    mlx_db_close(db);
}

static void test_db_prepare_reports_what_failed(void **state)
{
    struct fixture *f = *state;
    sqlite3 *db = open_ok(f->path, 1);
    sqlite3_stmt *st = NULL;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_db_prepare(db, "SELECT * FROM no_such_table", &st, &e), MLX_EDB);
    assert_null(st);
    assert_non_null(strstr(e.msg, "no_such_table"));
    mlx_db_close(db);
}

static void test_db_fail_maps_busy_and_names_what(void **state)
{
    (void)state;
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_db_fail(NULL, SQLITE_BUSY, &e, "saving the node"), MLX_EBUSY);
    assert_non_null(strstr(e.msg, "saving the node: "));
    assert_int_equal(mlx_db_fail(NULL, SQLITE_LOCKED, &e, "x"), MLX_EBUSY);
    mlx_err_clear(&e);
    assert_int_equal(mlx_db_fail(NULL, SQLITE_CORRUPT, &e, "reading keys"), MLX_EDB);
    assert_non_null(strstr(e.msg, "reading keys: "));
    assert_non_null(strstr(e.msg, sqlite3_errstr(SQLITE_CORRUPT)));
}

static void test_db_writer_lock_held_elsewhere_is_busy(void **state)
{
    struct fixture *f = *state;
    sqlite3 *a = open_ok(f->path, 1);
    sqlite3 *b = open_ok(f->path, 1);
    sqlite3_busy_timeout(b, 0); /* fail at once rather than wait 5 s */
    assert_int_equal(mlx_db_exec(a, "BEGIN IMMEDIATE", NULL), 0);
    mlx_err e;
    mlx_err_clear(&e);
    assert_int_equal(mlx_db_exec(b, "BEGIN IMMEDIATE", &e), MLX_EBUSY);
    assert_int_equal(e.code, MLX_EBUSY);
    assert_int_equal(mlx_db_exec(a, "COMMIT", NULL), 0);
    assert_int_equal(mlx_db_exec(b, "BEGIN IMMEDIATE; COMMIT", NULL), 0);
    mlx_db_close(a);
    mlx_db_close(b);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_db_new_database_reaches_latest_version),
        T(test_db_no_migrations_is_version_zero),
        T(test_db_reopen_runs_nothing_again),
        T(test_db_reopen_applies_only_new_migrations),
        T(test_db_newer_database_is_refused),
        T(test_db_uses_wal_and_foreign_keys),
        T(test_db_failing_migration_rolls_back_to_whole_version),
        T(test_db_failing_migration_fails_without_err_too),
        T(test_db_open_in_missing_directory_fails),
        T(test_db_exec_reports_sqlite_message),
        T(test_db_prepare_reports_what_failed),
        T(test_db_fail_maps_busy_and_names_what),
        T(test_db_writer_lock_held_elsewhere_is_busy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
