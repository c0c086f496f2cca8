/*
 * pool.c — the data-plane client's connections: one REQ socket per node,
 * dialed on first use and dropped when the node is forgotten.
 *
 * The table is a small array searched linearly under the pool's mutex: it
 * holds one entry per node of the fleet and a request looks in it once.
 * Dialing is non-blocking (mlx_nng_req_dial), so holding the mutex across
 * it never waits on the network.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/nng_util.h"
#include "common/parse.h"
#include "coordinator/dataplane/internal.h"

#define MOD                       "dpc"
#define DEFAULT_TIMEOUT_MS        30000
#define DEFAULT_CANCEL_TIMEOUT_MS 2000
/* Ollama gives a model's load five minutes (OLLAMA_LOAD_TIMEOUT); a node
 * that dies meanwhile is noticed at once by its link. */
#define DEFAULT_LOAD_TIMEOUT_MS (5 * 60 * 1000)
/* How long the last reference waits for NNG to close a socket (see
 * mlx_nng_close). */
#define CLOSE_TIMEOUT_MS 2000

int dpc_fail(dpc_error *e, dpc_failure failure, int status, int code, const char *fmt,
             ...)
{
    if (e == NULL)
        return code;
    e->failure = failure;
    e->status = status;
    va_list ap;
    va_start(ap, fmt);
    mlx_err_vset(&e->err, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *dpc_failure_name(dpc_failure f)
{
    switch (f) {
    case DPC_OK:
        return "ok";
    case DPC_NODE_FAILED:
        return "node_failed";
    case DPC_REFUSED:
        return "refused";
    }
    return "unknown";
}

int dpc_open(const dpc_options *opt, dpc_pool **out, mlx_err *err)
{
    dpc_pool *pool = mlx_calloc(1, sizeof *pool);
    if (pool == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    if (opt != NULL)
        pool->opt = *opt;
    if (pool->opt.timeout_ms <= 0)
        pool->opt.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (pool->opt.cancel_timeout_ms <= 0)
        pool->opt.cancel_timeout_ms = DEFAULT_CANCEL_TIMEOUT_MS;
    if (pool->opt.load_timeout_ms <= 0)
        pool->opt.load_timeout_ms = DEFAULT_LOAD_TIMEOUT_MS;
    if (pool->opt.max_msg == 0)
        pool->opt.max_msg = MLX_MAX_DATA_MSG;
    pthread_mutex_init(&pool->mtx, NULL);
    *out = pool;
    return 0;
}

void dpc_conn_release(struct dpc_conn *c)
{
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (mlx_nng_close(c->sock, CLOSE_TIMEOUT_MS) != 0)
        mlx_log_warn(MOD, "a data-plane socket did not close in time; leaving it to exit",
                     "node=%s address=%s", c->node_id, c->address);
    else
        dpc_link_free(c->link); /* else left: the socket may still report to it */
    mlx_free(c->node_id);
    mlx_free(c->address);
    mlx_free(c);
}

void dpc_close(dpc_pool *pool)
{
    if (pool == NULL)
        return;
    for (size_t i = 0; i < pool->n; i++)
        dpc_conn_release(pool->conns[i]);
    mlx_free(pool->conns);
    pthread_mutex_destroy(&pool->mtx);
    mlx_free(pool);
}

/* Index of node_id in the table, or pool->n. Lock held. */
static size_t find(const dpc_pool *pool, const char *node_id)
{
    size_t i = 0;
    while (i < pool->n && strcmp(pool->conns[i]->node_id, node_id) != 0)
        i++;
    return i;
}

/* Takes entry i out of the table, giving up the table's reference. Lock
 * held; the release happens after unlocking (it may wait on NNG). */
static struct dpc_conn *take(dpc_pool *pool, size_t i)
{
    struct dpc_conn *c = pool->conns[i];
    pool->conns[i] = pool->conns[--pool->n];
    return c;
}

void dpc_forget(dpc_pool *pool, const char *node_id)
{
    if (pool == NULL || node_id == NULL)
        return;
    struct dpc_conn *gone = NULL;
    pthread_mutex_lock(&pool->mtx);
    size_t i = find(pool, node_id);
    if (i < pool->n)
        gone = take(pool, i);
    pthread_mutex_unlock(&pool->mtx);
    if (gone != NULL) {
        mlx_log_info(MOD, "connection forgotten", "node=%s address=%s", gone->node_id,
                     gone->address);
        dpc_conn_release(gone);
    }
}

size_t dpc_connections(dpc_pool *pool)
{
    pthread_mutex_lock(&pool->mtx);
    size_t n = pool->n;
    pthread_mutex_unlock(&pool->mtx);
    return n;
}

/* A new connection dialing address (in the background). */
static int conn_dial(const dpc_pool *pool, const char *node_id, const char *address,
                     struct dpc_conn **out, dpc_error *e)
{
    struct dpc_conn *c = mlx_calloc(1, sizeof *c);
    if (c != NULL) {
        c->node_id = mlx_strdup(node_id);
        c->address = mlx_strdup(address);
        c->link = dpc_link_new();
    }
    if (c == NULL || c->node_id == NULL || c->address == NULL || c->link == NULL) {
        if (c != NULL) {
            mlx_free(c->node_id);
            mlx_free(c->address);
            dpc_link_free(c->link);
        }
        mlx_free(c);
        return dpc_fail(e, DPC_NODE_FAILED, 503, MLX_ENOMEM, "out of memory");
    }
    mlx_err err;
    mlx_err_clear(&err);
    int rc = mlx_nng_req_dial_watched(address, pool->opt.max_msg, pool->opt.timeout_ms,
                                      DPC_REDIAL_MAX_MS, dpc_link_on_pipe, c->link,
                                      &c->sock, &err);
    if (rc != 0) {
        mlx_free(c->node_id);
        mlx_free(c->address);
        dpc_link_free(c->link);
        mlx_free(c);
        return dpc_fail(e, DPC_NODE_FAILED, 502, rc,
                        "cannot dial node %s's data plane: %s; check the address it "
                        "advertises (mlx-agent serve --advertise)",
                        node_id, err.msg);
    }
    atomic_store(&c->refs, 1);
    *out = c;
    return 0;
}

int dpc_conn_get(dpc_pool *pool, const char *node_id, const char *address,
                 struct dpc_conn **out, dpc_error *e)
{
    if (node_id == NULL || node_id[0] == '\0' ||
        !mlx_text_is_clean(node_id, MLX_MAX_REQUEST_ID))
        return dpc_fail(e, DPC_REFUSED, 500, MLX_EINVAL,
                        "the node id given to the data-plane client is empty or not "
                        "printable; pass the registry's id");
    if (address == NULL || strncmp(address, "tcp://", 6) != 0)
        return dpc_fail(e, DPC_NODE_FAILED, 502, MLX_EINVAL,
                        "node %s has no data-plane address of the form tcp://HOST:PORT; "
                        "it must register again",
                        node_id);
    struct dpc_conn *stale = NULL;
    int rc = 0;
    pthread_mutex_lock(&pool->mtx);
    size_t i = find(pool, node_id);
    if (i < pool->n && strcmp(pool->conns[i]->address, address) != 0) {
        stale = take(pool, i); /* the node registered with another address */
        i = pool->n;
    }
    if (i == pool->n) {
        if (pool->n == pool->cap) {
            size_t cap = pool->cap == 0 ? 16 : 2 * pool->cap;
            struct dpc_conn **grown = mlx_realloc(pool->conns, cap * sizeof *grown);
            if (grown == NULL)
                rc = dpc_fail(e, DPC_NODE_FAILED, 503, MLX_ENOMEM, "out of memory");
            else {
                pool->conns = grown;
                pool->cap = cap;
            }
        }
        struct dpc_conn *c = NULL;
        if (rc == 0)
            rc = conn_dial(pool, node_id, address, &c, e);
        if (rc == 0) {
            pool->conns[pool->n++] = c;
            mlx_log_info(MOD, "dialing node", "node=%s address=%s", node_id, address);
        }
    }
    if (rc == 0) {
        *out = pool->conns[i];
        atomic_fetch_add(&(*out)->refs, 1);
    }
    pthread_mutex_unlock(&pool->mtx);
    dpc_conn_release(stale);
    return rc;
}
