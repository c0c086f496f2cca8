/*
 * reqlog.c — the request log: one row per request the HTTP front answered,
 * kept for a retention period so `mlxctl` and the admin API can show who
 * used what, and pruned by age (the time index makes pruning and listing by
 * time cheap).
 *
 * Logging is off the request's path: auth_log_request copies the entry into
 * a queue, and a writer thread stores the queue every LOG_FLUSH_MS (or once
 * LOG_BATCH entries wait) in one transaction, and prunes past the retention
 * every PRUNE_EVERY_MS. A reader (auth_log_list, auth_log_prune) stores the
 * queue first, so it sees every request logged before it was called. When
 * the disk cannot keep up, entries past LOG_QUEUE_MAX are dropped and the
 * drop is logged: serving goes on.
 */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/db.h"
#include "common/log.h"
#include "coordinator/auth/internal.h"

#define LOG_FLUSH_MS   200
#define LOG_BATCH      256
#define LOG_QUEUE_MAX  8192
#define PRUNE_EVERY_MS (60 * 1000)

/* An entry as queued: its strings copied. */
struct auth_log_row {
    int64_t time_unix_ms;
    char request_id[MLX_MAX_REQUEST_ID + 1];
    char key_name[AUTH_MAX_KEY_NAME + 1];
    char model[MLX_MAX_MODEL_NAME + 1];
    char node[MLX_NODE_ID_LEN + 1];
    uint32_t prompt_tokens, completion_tokens, latency_ms;
    int status;
};

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
    struct auth_log_queue *q = &a->log;
    pthread_mutex_lock(&q->mu);
    if (q->n == LOG_QUEUE_MAX) {
        q->dropped++;
        pthread_mutex_unlock(&q->mu);
        return 0;
    }
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : LOG_BATCH;
        struct auth_log_row *rows = mlx_realloc(q->rows, cap * sizeof *rows);
        if (rows == NULL) {
            pthread_mutex_unlock(&q->mu);
            return mlx_err_set(err, MLX_ENOMEM, "out of memory logging a request");
        }
        q->rows = rows;
        q->cap = cap;
    }
    struct auth_log_row *r = &q->rows[q->n++];
    r->time_unix_ms = e->time_unix_ms;
    snprintf(r->request_id, sizeof r->request_id, "%s",
             e->request_id ? e->request_id : "");
    snprintf(r->key_name, sizeof r->key_name, "%s", e->key_name ? e->key_name : "");
    snprintf(r->model, sizeof r->model, "%s", e->model ? e->model : "");
    snprintf(r->node, sizeof r->node, "%s", e->node ? e->node : "");
    r->prompt_tokens = e->prompt_tokens;
    r->completion_tokens = e->completion_tokens;
    r->latency_ms = e->latency_ms;
    r->status = e->status;
    if (q->n >= LOG_BATCH)
        pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

/* Stores rows[0..n) in one transaction, holding the connection so that no
 * other thread's statement joins it. */
static int store_rows(auth *a, const struct auth_log_row *rows, size_t n, mlx_err *err)
{
    sqlite3_mutex *mu = sqlite3_db_mutex(a->db);
    sqlite3_mutex_enter(mu);
    sqlite3_stmt *st = NULL;
    int rc = mlx_db_exec(a->db, "BEGIN", err);
    if (rc == 0)
        rc = mlx_db_prepare(
            a->db,
            "INSERT INTO requests (time_ms, request_id, key_name, model, node,"
            "  prompt_tokens, completion_tokens, latency_ms, status)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            &st, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct auth_log_row *r = &rows[i];
        sqlite3_bind_int64(st, 1, r->time_unix_ms);
        bind_opt(st, 2, r->request_id);
        bind_opt(st, 3, r->key_name);
        bind_opt(st, 4, r->model);
        bind_opt(st, 5, r->node);
        sqlite3_bind_int64(st, 6, r->prompt_tokens);
        sqlite3_bind_int64(st, 7, r->completion_tokens);
        sqlite3_bind_int64(st, 8, r->latency_ms);
        sqlite3_bind_int(st, 9, r->status);
        int step = sqlite3_step(st);
        if (step != SQLITE_DONE)
            rc = mlx_db_fail(a->db, step, err, "logging a request");
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc == 0)
        rc = mlx_db_exec(a->db, "COMMIT", err);
    else
        mlx_db_exec(a->db, "ROLLBACK", NULL);
    sqlite3_mutex_leave(mu);
    return rc;
}

/* Stores what the queue holds. flush_mu keeps the writer and a reader from
 * storing at once, so rows go in the order they were logged. */
static int flush(auth *a, mlx_err *err)
{
    struct auth_log_queue *q = &a->log;
    pthread_mutex_lock(&q->flush_mu);
    pthread_mutex_lock(&q->mu);
    struct auth_log_row *rows = q->rows;
    size_t n = q->n;
    uint64_t dropped = q->dropped;
    q->rows = NULL;
    q->n = q->cap = 0;
    q->dropped = 0;
    pthread_mutex_unlock(&q->mu);
    int rc = n > 0 ? store_rows(a, rows, n, err) : 0;
    pthread_mutex_unlock(&q->flush_mu);
    if (dropped > 0)
        mlx_log_warn("auth", "the request log fell behind; entries dropped",
                     "dropped=%llu", (unsigned long long)dropped);
    mlx_free(rows);
    return rc;
}

static void *writer(void *arg)
{
    auth *a = arg;
    struct auth_log_queue *q = &a->log;
    int64_t last_prune = mlx_time_mono_ms();
    pthread_mutex_lock(&q->mu);
    while (!q->stop) {
        if (q->n < LOG_BATCH && !q->prune_now) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += (long)LOG_FLUSH_MS * 1000000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&q->cv, &q->mu, &until);
        }
        int64_t retention = q->retention_ms;
        bool prune_now = q->prune_now;
        q->prune_now = false;
        pthread_mutex_unlock(&q->mu);
        mlx_err err;
        mlx_err_clear(&err);
        if (flush(a, &err) != 0)
            mlx_log_warn("auth", "cannot store the request log", "err=\"%s\"", err.msg);
        int64_t now = mlx_time_mono_ms();
        if (retention > 0 && (prune_now || now - last_prune >= PRUNE_EVERY_MS)) {
            last_prune = now;
            uint64_t deleted = 0;
            if (auth_log_prune(a, mlx_time_wall_ms(), retention, &deleted, &err) != 0)
                mlx_log_warn("auth", "cannot prune the request log", "err=\"%s\"",
                             err.msg);
            else if (deleted > 0)
                mlx_log_info("auth", "request log pruned", "deleted=%llu",
                             (unsigned long long)deleted);
        }
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int auth_log_start(auth *a, mlx_err *err)
{
    struct auth_log_queue *q = &a->log;
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_init(&q->flush_mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->retention_ms = AUTH_LOG_RETENTION_MS;
    if (pthread_create(&q->thread, NULL, writer, a) != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->flush_mu);
        pthread_mutex_destroy(&q->mu);
        return mlx_err_set(err, MLX_ENOMEM, "cannot start the request log's writer");
    }
    q->started = true;
    return 0;
}

void auth_log_stop(auth *a)
{
    struct auth_log_queue *q = &a->log;
    if (!q->started)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = true;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    mlx_err err;
    mlx_err_clear(&err);
    if (flush(a, &err) != 0)
        mlx_log_warn("auth", "cannot store the request log", "err=\"%s\"", err.msg);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->flush_mu);
    pthread_mutex_destroy(&q->mu);
    q->started = false;
}

void auth_log_set_retention(auth *a, int64_t retention_ms)
{
    pthread_mutex_lock(&a->log.mu);
    a->log.retention_ms = retention_ms > 0 ? retention_ms : 0;
    a->log.prune_now = true; /* at once, then every PRUNE_EVERY_MS */
    pthread_cond_signal(&a->log.cv);
    pthread_mutex_unlock(&a->log.mu);
}

int auth_log_prune(auth *a, int64_t now_unix_ms, int64_t retention_ms, uint64_t *deleted,
                   mlx_err *err)
{
    if (deleted != NULL)
        *deleted = 0;
    if (retention_ms < 0)
        return mlx_err_set(err, MLX_EINVAL,
                           "the request log retention is negative; give a duration >= 0");
    int rc = flush(a, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    rc = mlx_db_prepare(a->db, "DELETE FROM requests WHERE time_ms < ?1", &st, err);
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
    int rc = flush(a, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *st;
    rc = mlx_db_prepare(a->db,
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
