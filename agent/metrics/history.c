/*
 * history.c — the machine's figures over time, in <data>/metrics.db.
 *
 * Three resolutions, each a table of the same columns:
 *   samples_1s   every sample, kept for an hour
 *   samples_1m   one-minute averages, kept for 7 days
 *   samples_1h   one-hour averages, kept for 90 days
 * Averages are built from the finer table for every whole period not yet
 * built (INSERT OR REPLACE, so running compaction twice changes nothing).
 * Its own file rather than agent.db: a write every second would otherwise
 * queue behind the store's long transactions.
 */
#include <stdio.h>
#include <string.h>

#include "agent/metrics/metrics.h"
#include "common/alloc.h"
#include "common/db.h"
#include "common/path.h"

#define COLUMNS                                                                          \
    "cpu_percent, memory_used, memory_total, swap_used, swap_total, memory_wired, "      \
    "memory_compressed, load1, load5, load15, disk_free, net_rx_bps, net_tx_bps, "       \
    "gpu_percent, tokens_per_s"

#define TABLE(name)                                                                      \
    "CREATE TABLE " name " (unix_ms INTEGER PRIMARY KEY, cpu_percent REAL, "             \
    "memory_used INTEGER, memory_total INTEGER, swap_used INTEGER, swap_total INTEGER, " \
    "memory_wired INTEGER, memory_compressed INTEGER, load1 REAL, load5 REAL, "          \
    "load15 REAL, disk_free INTEGER, net_rx_bps REAL, net_tx_bps REAL, "                 \
    "gpu_percent REAL, tokens_per_s REAL);"

static const char *const migrations[] = {
    TABLE("samples_1s") TABLE("samples_1m") TABLE(
        "samples_1h") "CREATE TABLE bench_runs (id INTEGER PRIMARY KEY, unix_ms INTEGER "
                      "NOT NULL, "
                      "model TEXT NOT NULL, prompts INTEGER NOT NULL, tokens_per_s REAL, "
                      "ttft_p50_ms REAL, latency_p50_ms REAL, latency_p95_ms REAL, "
                      "latency_p99_ms REAL);"
                      "CREATE INDEX bench_runs_time ON bench_runs(unix_ms);",
};

static const struct resolution {
    const char *table;
    int64_t period_ms; /* of one row */
    int64_t keep_ms;
} resolutions[] = {
    [METRICS_RES_1S] = {"samples_1s", 1000, 3600 * 1000LL},
    [METRICS_RES_1M] = {"samples_1m", 60 * 1000, 7 * 24 * 3600 * 1000LL},
    [METRICS_RES_1H] = {"samples_1h", 3600 * 1000, 90 * 24 * 3600 * 1000LL},
};

struct metrics_history {
    sqlite3 *db;
};

int metrics_history_open(const char *data_dir, metrics_history **out, mlx_err *err)
{
    *out = NULL;
    metrics_history *h = mlx_calloc(1, sizeof *h);
    char *path = mlx_path_join(data_dir, "metrics.db");
    if (h == NULL || path == NULL) {
        mlx_free(h);
        mlx_free(path);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    int rc = mlx_db_open(path, migrations, sizeof migrations / sizeof migrations[0],
                         &h->db, err);
    mlx_free(path);
    if (rc != 0) {
        mlx_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void metrics_history_close(metrics_history *h)
{
    if (h == NULL)
        return;
    mlx_db_close(h->db);
    mlx_free(h);
}

int metrics_history_add(metrics_history *h, const metrics_sample *s, double tokens_per_s,
                        mlx_err *err)
{
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(h->db,
                            "INSERT OR REPLACE INTO samples_1s (unix_ms, " COLUMNS
                            ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            &st, err);
    if (rc != 0)
        return rc;
    int i = 1;
    sqlite3_bind_int64(st, i++, s->unix_ms);
    sqlite3_bind_double(st, i++, s->cpu_percent);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)s->memory_used_bytes);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)s->memory_total_bytes);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)s->swap_used_bytes);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)s->swap_total_bytes);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)s->memory_wired_bytes);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)s->memory_compressed_bytes);
    sqlite3_bind_double(st, i++, s->load[0]);
    sqlite3_bind_double(st, i++, s->load[1]);
    sqlite3_bind_double(st, i++, s->load[2]);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)s->disk_free_bytes);
    sqlite3_bind_double(st, i++, s->net_rx_bytes_per_s);
    sqlite3_bind_double(st, i++, s->net_tx_bytes_per_s);
    if (s->gpu_percent >= 0)
        sqlite3_bind_double(st, i++, s->gpu_percent);
    else
        sqlite3_bind_null(st, i++); /* unknown stays unknown in averages */
    sqlite3_bind_double(st, i++, tokens_per_s);
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? 0
                              : mlx_db_fail(h->db, src, err, "cannot record a sample");
}

/* Builds the averages of `to` from `from` for every whole period of `to`
 * that ended before now and is newer than the last one built. */
static int roll_up(metrics_history *h, const struct resolution *from,
                   const struct resolution *to, int64_t now_ms, mlx_err *err)
{
    char sql[1024];
    int64_t end = now_ms - now_ms % to->period_ms;
    snprintf(sql, sizeof sql,
             "INSERT OR REPLACE INTO %s (unix_ms, " COLUMNS ") "
             "SELECT unix_ms - unix_ms %% %lld AS period, avg(cpu_percent), "
             "avg(memory_used), max(memory_total), avg(swap_used), max(swap_total), "
             "avg(memory_wired), avg(memory_compressed), avg(load1), avg(load5), "
             "avg(load15), min(disk_free), avg(net_rx_bps), avg(net_tx_bps), "
             "avg(gpu_percent), avg(tokens_per_s) FROM %s "
             "WHERE unix_ms >= (SELECT coalesce(max(unix_ms) + %lld, 0) FROM %s) "
             "AND unix_ms < %lld GROUP BY period",
             to->table, (long long)to->period_ms, from->table, (long long)to->period_ms,
             to->table, (long long)end);
    return mlx_db_exec(h->db, sql, err);
}

int metrics_history_compact(metrics_history *h, int64_t now_ms, mlx_err *err)
{
    int rc = mlx_db_exec(h->db, "BEGIN IMMEDIATE", err);
    if (rc != 0)
        return rc;
    rc = roll_up(h, &resolutions[METRICS_RES_1S], &resolutions[METRICS_RES_1M], now_ms,
                 err);
    if (rc == 0)
        rc = roll_up(h, &resolutions[METRICS_RES_1M], &resolutions[METRICS_RES_1H],
                     now_ms, err);
    for (size_t i = 0; rc == 0 && i < sizeof resolutions / sizeof resolutions[0]; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "DELETE FROM %s WHERE unix_ms < %lld",
                 resolutions[i].table, (long long)(now_ms - resolutions[i].keep_ms));
        rc = mlx_db_exec(h->db, sql, err);
    }
    if (rc == 0)
        return mlx_db_exec(h->db, "COMMIT", err);
    mlx_db_exec(h->db, "ROLLBACK", NULL);
    return rc;
}

int metrics_history_query(metrics_history *h, metrics_resolution res, int64_t since_ms,
                          metrics_point **out, size_t *n, mlx_err *err)
{
    *out = NULL;
    *n = 0;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT unix_ms, " COLUMNS " FROM %s WHERE unix_ms >= ? ORDER BY unix_ms",
             resolutions[res].table);
    sqlite3_stmt *st;
    int rc = mlx_db_prepare(h->db, sql, &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, since_ms);
    size_t cap = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            metrics_point *grown = mlx_realloc(*out, ncap * sizeof **out);
            if (grown == NULL) {
                rc = mlx_err_set(err, MLX_ENOMEM, "out of memory reading history");
                break;
            }
            *out = grown;
            cap = ncap;
        }
        metrics_point *p = &(*out)[(*n)++];
        metrics_sample *s = &p->sample;
        memset(p, 0, sizeof *p);
        int c = 0;
        s->unix_ms = sqlite3_column_int64(st, c++);
        s->cpu_percent = sqlite3_column_double(st, c++);
        s->memory_used_bytes = (uint64_t)sqlite3_column_int64(st, c++);
        s->memory_total_bytes = (uint64_t)sqlite3_column_int64(st, c++);
        s->swap_used_bytes = (uint64_t)sqlite3_column_int64(st, c++);
        s->swap_total_bytes = (uint64_t)sqlite3_column_int64(st, c++);
        s->memory_wired_bytes = (uint64_t)sqlite3_column_int64(st, c++);
        s->memory_compressed_bytes = (uint64_t)sqlite3_column_int64(st, c++);
        s->load[0] = sqlite3_column_double(st, c++);
        s->load[1] = sqlite3_column_double(st, c++);
        s->load[2] = sqlite3_column_double(st, c++);
        s->disk_free_bytes = (uint64_t)sqlite3_column_int64(st, c++);
        s->net_rx_bytes_per_s = sqlite3_column_double(st, c++);
        s->net_tx_bytes_per_s = sqlite3_column_double(st, c++);
        s->gpu_percent = sqlite3_column_type(st, c) == SQLITE_NULL
                             ? -1.0
                             : sqlite3_column_double(st, c);
        c++;
        p->tokens_per_s = sqlite3_column_double(st, c++);
    }
    sqlite3_finalize(st);
    if (rc == 0 && src != SQLITE_DONE)
        rc = mlx_db_fail(h->db, src, err, "cannot read history");
    if (rc != 0) {
        mlx_free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int metrics_history_add_bench(metrics_history *h, const metrics_bench_run *r,
                              mlx_err *err)
{
    sqlite3_stmt *st;
    int rc =
        mlx_db_prepare(h->db,
                       "INSERT INTO bench_runs (unix_ms, model, prompts, tokens_per_s, "
                       "ttft_p50_ms, latency_p50_ms, latency_p95_ms, latency_p99_ms) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, r->unix_ms);
    sqlite3_bind_text(st, 2, r->model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, r->prompts);
    sqlite3_bind_double(st, 4, r->tokens_per_s);
    sqlite3_bind_double(st, 5, r->ttft_p50_ms);
    sqlite3_bind_double(st, 6, r->latency_ms[0]);
    sqlite3_bind_double(st, 7, r->latency_ms[1]);
    sqlite3_bind_double(st, 8, r->latency_ms[2]);
    int src = sqlite3_step(st);
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? 0
                              : mlx_db_fail(h->db, src, err, "cannot record a bench run");
}

int metrics_history_benches(metrics_history *h, int64_t since_ms, metrics_bench_run **out,
                            size_t *n, mlx_err *err)
{
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc =
        mlx_db_prepare(h->db,
                       "SELECT unix_ms, model, prompts, tokens_per_s, ttft_p50_ms, "
                       "latency_p50_ms, latency_p95_ms, latency_p99_ms FROM bench_runs "
                       "WHERE unix_ms >= ? ORDER BY unix_ms, id",
                       &st, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(st, 1, since_ms);
    size_t cap = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            metrics_bench_run *grown = mlx_realloc(*out, ncap * sizeof **out);
            if (grown == NULL) {
                rc = mlx_err_set(err, MLX_ENOMEM, "out of memory reading bench history");
                break;
            }
            *out = grown;
            cap = ncap;
        }
        metrics_bench_run *r = &(*out)[(*n)++];
        memset(r, 0, sizeof *r);
        r->unix_ms = sqlite3_column_int64(st, 0);
        const unsigned char *model = sqlite3_column_text(st, 1);
        snprintf(r->model, sizeof r->model, "%s",
                 model != NULL ? (const char *)model : "");
        r->prompts = sqlite3_column_int(st, 2);
        r->tokens_per_s = sqlite3_column_double(st, 3);
        r->ttft_p50_ms = sqlite3_column_double(st, 4);
        for (int i = 0; i < 3; i++)
            r->latency_ms[i] = sqlite3_column_double(st, 5 + i);
    }
    sqlite3_finalize(st);
    if (rc == 0 && src != SQLITE_DONE)
        rc = mlx_db_fail(h->db, src, err, "cannot read bench history");
    if (rc != 0) {
        mlx_free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}
