/*
 * internal.h — what the auth files share; nothing outside coordinator/auth
 * includes it.
 */
#ifndef MLX_COORDINATOR_AUTH_INTERNAL_H
#define MLX_COORDINATOR_AUTH_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>

#include "coordinator/auth/auth.h"

/* One key's two buckets (limits.c). Levels are scaled by 60,000 (ms per
 * minute) so that refilling rpm per minute adds exactly rpm per
 * millisecond: integer arithmetic, no rounding drift. */
typedef struct auth_bucket {
    char name[AUTH_MAX_KEY_NAME + 1];
    uint32_t rpm, tpm;   /* limits, 0 = unlimited */
    int64_t req_level;   /* requests × 60,000, <= rpm × 60,000 */
    int64_t tok_level;   /* tokens × 60,000, >= -tpm × 60,000 (debt) */
    int64_t last_ms;     /* the "now" the levels were refilled to */
} auth_bucket;

/* The request log's queue and its writer (reqlog.c). */
struct auth_log_queue {
    pthread_mutex_t mu; /* guards all but thread and flush_mu */
    pthread_cond_t cv;  /* a batch is ready, or stop */
    struct auth_log_row *rows;
    size_t n, cap;
    uint64_t dropped;
    int64_t retention_ms; /* 0: keep every entry */
    bool prune_now; /* prune at the next turn: the retention changed */
    bool stop, started;
    pthread_mutex_t flush_mu; /* one store of the queue at a time */
    pthread_t thread;
};

struct auth {
    sqlite3 *db;
    pthread_mutex_t mu;     /* guards buckets, nbuckets, cap */
    auth_bucket *buckets;   /* one per key seen since open, unordered */
    size_t nbuckets, cap;
    pthread_mutex_t keys_mu; /* guards the two below (keys.c) */
    bool active_known;       /* any_active holds the database's answer */
    bool any_active;         /* some key is active */
    struct auth_log_queue log;
};

/* Starts the request log's writer; auth_log_stop stores what is queued and
 * joins it (reqlog.c). */
int auth_log_start(auth *a, mlx_err *err);
void auth_log_stop(auth *a);

/* Creates or updates name's bucket limits (kept levels are clamped). */
int auth_limits_set(auth *a, const char *name, uint32_t rpm, uint32_t tpm, mlx_err *err);
/* Forgets name's bucket (revoked key). */
void auth_limits_drop(auth *a, const char *name);
void auth_limits_free(auth *a);

/* Reads the limits of the active key name: MLX_ENOENT when none. */
int auth_key_limits(auth *a, const char *name, uint32_t *rpm, uint32_t *tpm,
                    mlx_err *err);

/* Runs a prepared no-row statement and finalizes it; *changes gets the rows
 * hit (may be NULL). */
int auth_db_run(auth *a, sqlite3_stmt *st, int *changes, mlx_err *err, const char *what);

#endif
