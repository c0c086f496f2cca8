/*
 * internal.h — what pool.c and stream.c of the data-plane client share:
 * the per-node connection and the pool that finds them.
 */
#ifndef MLX_COORDINATOR_DATAPLANE_INTERNAL_H
#define MLX_COORDINATOR_DATAPLANE_INTERNAL_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>

#include "coordinator/dataplane/dataplane_client.h"

/* One node's socket. Referenced by the pool's table (until forgotten) and
 * by each stream or Cancel using it; the last reference closes the socket,
 * so no operation is ever in flight when it closes (NNG 1.5 needs that). */
struct dpc_conn {
    char *node_id; /* set at creation; read-only afterwards */
    char *address;
    nng_socket sock;
    _Atomic int refs;
};

struct dpc_pool {
    dpc_options opt;     /* with defaults filled in; read-only */
    pthread_mutex_t mtx; /* guards the table */
    struct dpc_conn **conns;
    size_t n, cap;
};

/* The connection to node_id at address, referenced, dialing it when the
 * pool has none (or one to another address). Failures are the node's. */
int dpc_conn_get(dpc_pool *pool, const char *node_id, const char *address,
                 struct dpc_conn **out, dpc_error *e);
void dpc_conn_release(struct dpc_conn *c);

/* Fills e (may be NULL) and returns code. */
int dpc_fail(dpc_error *e, dpc_failure failure, int status, int code, const char *fmt,
             ...) __attribute__((format(printf, 5, 6)));

#endif
