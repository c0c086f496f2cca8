/*
 * reqlog.c — the request log: one row per request the HTTP front answered,
 * kept for a retention period so `mlxctl` and the admin API can show who
 * used what, and pruned by age (the time index makes pruning and listing by
 * time cheap).
 */
#include <string.h>

#include "common/db.h"
#include "coordinator/auth/internal.h"

/* NULL and "" are stored as NULL: "no key", "no model". */
static void bind_opt(sqlite3_stmt *st, int col, const char *s)
{
    if (s != NULL && s[0] != '\0')
        sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, col);
}

int auth_log_request(auth *a, const auth_log_entry *e, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(a->db,
                            "INSERT INTO requests (time_ms, request_id, key_name, model, node,"
                            "  prompt_tokens, completion_tokens, latency_ms, status)"
                            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                            &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, e->time_unix_ms);
    bind_opt(st, 2, e->request_id);
    bind_opt(st, 3, e->key_name);
    bind_opt(st, 4, e->model);
    bind_opt(st, 5, e->node);
    sqlite3_bind_int64(st, 6, e->prompt_tokens);
    sqlite3_bind_int64(st, 7, e->completion_tokens);
    sqlite3_bind_int64(st, 8, e->latency_ms);
    sqlite3_bind_int(st, 9, e->status);
    return auth_db_run(a, st, NULL, err, "logging a request");
}

int auth_log_prune(auth *a, int64_t now_unix_ms, int64_t retention_ms, uint64_t *deleted,
                   mlx_err *err)
{
    if (deleted != NULL)
        *deleted = 0;
    if (retention_ms < 0)
        return mlx_err_set(err, MLX_EINVAL,
                           "the request log retention is negative; give a duration >= 0");
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(a->db, "DELETE FROM requests WHERE time_ms < ?1", &st, err);
    if (rc != 0)
        return rc;
    /* now - retention cannot overflow for real clocks; saturate anyway. */
    int64_t cutoff =
        now_unix_ms > INT64_MIN + retention_ms ? now_unix_ms - retention_ms : INT64_MIN;
    sqlite3_bind_int64(st, 1, cutoff);
    int changes = 0;
    rc = auth_db_run(a, st, &changes, err, "pruning the request log");
    if (rc == 0 && deleted != NULL)
        *deleted = (uint64_t)changes;
    return rc;
}

static const char *column_text(sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    return s != NULL ? s : "";
}

int auth_log_list(auth *a, int64_t since_unix_ms, uint32_t limit, auth_log_fn fn,
                  void *arg, mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(a->db,
                            "SELECT time_ms, request_id, key_name, model, node,"
                            "  prompt_tokens, completion_tokens, latency_ms, status"
                            " FROM requests WHERE time_ms >= ?1"
                            " ORDER BY time_ms, id LIMIT ?2",
                            &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, since_unix_ms);
    sqlite3_bind_int64(st, 2, limit);
    int step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        auth_log_entry e = {
            .time_unix_ms = sqlite3_column_int64(st, 0),
            .request_id = column_text(st, 1),
            .key_name = column_text(st, 2),
            .model = column_text(st, 3),
            .node = column_text(st, 4),
            .prompt_tokens = (uint32_t)sqlite3_column_int64(st, 5),
            .completion_tokens = (uint32_t)sqlite3_column_int64(st, 6),
            .latency_ms = (uint32_t)sqlite3_column_int64(st, 7),
            .status = sqlite3_column_int(st, 8),
        };
        rc = fn(arg, &e);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = mlx_db_fail(a->db, step, err, "reading the request log");
    sqlite3_finalize(st);
    return rc;
}
