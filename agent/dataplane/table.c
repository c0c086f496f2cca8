/* table.c — the data plane's generations by request id: a fixed table under
 * one mutex, reference counts, and the reaping of generations whose
 * coordinator stopped asking. */
#include <string.h>

#include "agent/dataplane/internal.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"

void dp_gen_release(dataplane *dp, struct gen *g)
{
    pthread_mutex_lock(&dp->mtx);
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&dp->mtx);
    if (!last)
        return;
    runtime_job_free(g->job); /* cancels if still running */
    mlx_buf_fini(&g->pending);
    mlx_buf_fini(&g->pending_lp);
    pthread_mutex_destroy(&g->use);
    mlx_free(g);
}

/* The generation named id, referenced (dp_gen_release), or NULL. */
struct gen *dp_gen_find(dataplane *dp, const char *id)
{
    struct gen *found = NULL;
    pthread_mutex_lock(&dp->mtx);
    for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS && found == NULL; i++) {
        if (dp->table[i] != NULL && strcmp(dp->table[i]->id, id) == 0) {
            found = dp->table[i];
            found->refs++;
            found->last_ms = mlx_time_mono_ms();
        }
    }
    pthread_mutex_unlock(&dp->mtx);
    return found;
}

/* Drops g from the table (once; later calls do nothing). */
void dp_gen_forget(dataplane *dp, struct gen *g)
{
    bool dropped = false;
    pthread_mutex_lock(&dp->mtx);
    for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS; i++) {
        if (dp->table[i] == g) {
            dp->table[i] = NULL;
            dp->n_gens--;
            dropped = true;
            break;
        }
    }
    pthread_mutex_unlock(&dp->mtx);
    if (dropped)
        dp_gen_release(dp, g);
}

/* Cancels and forgets generations nobody has asked about for idle_ms. */
void dp_reap_idle(dataplane *dp)
{
    struct gen *idle[64];
    size_t n = 0;
    int64_t now = mlx_time_mono_ms();
    pthread_mutex_lock(&dp->mtx);
    if (now - dp->last_reap_ms >= WAKE_MS) {
        dp->last_reap_ms = now;
        for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS && n < 64; i++) {
            struct gen *g = dp->table[i];
            /* refs > 1: a handler is using it right now */
            if (g != NULL && g->refs == 1 && now - g->last_ms >= dp->idle_ms) {
                dp->table[i] = NULL;
                dp->n_gens--;
                idle[n++] = g;
            }
        }
    }
    pthread_mutex_unlock(&dp->mtx);
    for (size_t i = 0; i < n; i++) {
        mlx_log_warn(MOD, "generation forgotten: no Next came; cancelled",
                     "id=%s model=\"%s\" idle_ms=%d", idle[i]->id, idle[i]->model,
                     dp->idle_ms);
        dp_gen_release(dp, idle[i]);
    }
}

int dp_gen_add(dataplane *dp, struct gen *g)
{
    int rc = MLX_EBUSY;
    pthread_mutex_lock(&dp->mtx);
    size_t free_at = MLX_MAX_DATA_REQUESTS;
    for (size_t i = 0; i < MLX_MAX_DATA_REQUESTS; i++) {
        if (dp->table[i] == NULL) {
            if (free_at == MLX_MAX_DATA_REQUESTS)
                free_at = i;
        } else if (strcmp(dp->table[i]->id, g->id) == 0) {
            rc = MLX_EEXIST;
            free_at = MLX_MAX_DATA_REQUESTS;
            break;
        }
    }
    if (free_at < MLX_MAX_DATA_REQUESTS) {
        dp->table[free_at] = g;
        dp->n_gens++;
        g->refs++;
        g->last_ms = mlx_time_mono_ms();
        rc = 0;
    }
    pthread_mutex_unlock(&dp->mtx);
    return rc;
}
