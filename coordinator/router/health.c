/*
 * health.c — the router's circuit breaker and its retry rule (router.h).
 *
 * One entry per node that has failed at least once: the times of its last
 * ROUTER_TRIP_FAILURES failures (a ring), whether its circuit is open, and
 * the good heartbeats counted since it opened. Nodes that never fail cost
 * nothing. The table is a plain array searched linearly: it holds at most
 * the fleet's nodes and is touched once per candidate per request.
 */
#include "coordinator/router/router.h"

#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"

#define MOD "router"

struct entry {
    char *node_id;
    int64_t failures[ROUTER_TRIP_FAILURES]; /* monotonic ms, a ring */
    size_t n_failures;                      /* valid entries of the ring */
    size_t next;                            /* where the next one goes */
    bool open;
    int good; /* ok heartbeats in a row since the circuit opened */
};

struct router_health {
    pthread_mutex_t mtx; /* guards everything below */
    struct entry *entries;
    size_t n, cap;
};

int router_health_create(router_health **out, mlx_err *err)
{
    router_health *h = mlx_calloc(1, sizeof *h);
    if (h == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    pthread_mutex_init(&h->mtx, NULL);
    *out = h;
    return 0;
}

void router_health_destroy(router_health *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n; i++)
        mlx_free(h->entries[i].node_id);
    mlx_free(h->entries);
    pthread_mutex_destroy(&h->mtx);
    mlx_free(h);
}

/* The entry of node_id, or NULL. Lock held. */
static struct entry *find(router_health *h, const char *node_id)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->entries[i].node_id, node_id) == 0)
            return &h->entries[i];
    return NULL;
}

/* The entry of node_id, made when absent; NULL when out of memory or the
 * table is full (the node then goes untracked, never wrongly excluded). */
static struct entry *find_or_add(router_health *h, const char *node_id)
{
    struct entry *e = find(h, node_id);
    if (e != NULL)
        return e;
    if (h->n == MLX_MAX_NODES)
        return NULL;
    if (h->n == h->cap) {
        size_t cap = h->cap == 0 ? 16 : 2 * h->cap;
        struct entry *grown = mlx_realloc(h->entries, cap * sizeof *grown);
        if (grown == NULL)
            return NULL;
        h->entries = grown;
        h->cap = cap;
    }
    char *id = mlx_strdup(node_id);
    if (id == NULL)
        return NULL;
    e = &h->entries[h->n++];
    memset(e, 0, sizeof *e);
    e->node_id = id;
    return e;
}

void router_note_failure(router_health *h, const char *node_id, int64_t now)
{
    if (h == NULL || node_id == NULL)
        return;
    pthread_mutex_lock(&h->mtx);
    struct entry *e = find_or_add(h, node_id);
    if (e != NULL) {
        e->failures[e->next] = now;
        e->next = (e->next + 1) % ROUTER_TRIP_FAILURES;
        if (e->n_failures < ROUTER_TRIP_FAILURES)
            e->n_failures++;
        e->good = 0; /* a failure while open starts the count again */
        size_t recent = 0;
        for (size_t i = 0; i < e->n_failures; i++)
            recent += now - e->failures[i] < ROUTER_TRIP_WINDOW_MS;
        if (!e->open && recent >= ROUTER_TRIP_FAILURES) {
            e->open = true;
            mlx_log_warn(MOD, "circuit open: node out of rotation",
                         "node=%s failures=%d window_ms=%d", node_id,
                         ROUTER_TRIP_FAILURES, ROUTER_TRIP_WINDOW_MS);
        }
    }
    pthread_mutex_unlock(&h->mtx);
}

void router_note_heartbeat(router_health *h, const char *node_id, bool ok)
{
    if (h == NULL || node_id == NULL)
        return;
    pthread_mutex_lock(&h->mtx);
    struct entry *e = find(h, node_id);
    if (e != NULL && e->open) {
        e->good = ok ? e->good + 1 : 0;
        if (e->good >= ROUTER_CLOSE_HEARTBEATS) {
            e->open = false;
            e->good = 0;
            e->n_failures = 0;
            e->next = 0;
            mlx_log_info(MOD, "circuit closed: node back in rotation",
                         "node=%s heartbeats=%d", node_id, ROUTER_CLOSE_HEARTBEATS);
        }
    }
    pthread_mutex_unlock(&h->mtx);
}

bool router_circuit_open(router_health *h, const char *node_id)
{
    if (h == NULL || node_id == NULL)
        return false;
    pthread_mutex_lock(&h->mtx);
    const struct entry *e = find(h, node_id);
    bool open = e != NULL && e->open;
    pthread_mutex_unlock(&h->mtx);
    return open;
}

void router_health_forget(router_health *h, const char *node_id)
{
    if (h == NULL || node_id == NULL)
        return;
    pthread_mutex_lock(&h->mtx);
    struct entry *e = find(h, node_id);
    if (e != NULL) {
        mlx_free(e->node_id);
        *e = h->entries[--h->n]; /* order does not matter */
    }
    pthread_mutex_unlock(&h->mtx);
}

bool router_may_retry(int failed_attempts, router_failure failure,
                      router_progress progress)
{
    return failure == ROUTER_FAILURE_NODE && progress == ROUTER_NOTHING_SENT &&
           failed_attempts >= 1 && failed_attempts <= ROUTER_MAX_RETRIES;
}
