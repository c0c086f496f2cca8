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
#include "proto/wire.h"

/* An exchange waiting on a link: its aio, aborted when the link's last
 * connection goes. Lives on the waiting thread's stack. */
struct dpc_waiter {
    nng_aio *aio;
    bool lost; /* the connection went while it waited */
    struct dpc_waiter *next;
};

/* Whether a socket is connected, kept from NNG's pipe events (link.c). A
 * REQ socket whose peer died keeps a request queued until its timeout;
 * the link lets an exchange fail as soon as the connection is gone. Apart
 * from dpc_conn because a socket whose close was left behind
 * (mlx_nng_close) may still send events after the conn is freed: then the
 * link is left allocated. */
struct dpc_link {
    pthread_mutex_t mtx;
    pthread_cond_t changed;
    int pipes;  /* connections now */
    bool ever;  /* has been connected */
    struct dpc_waiter *waiters;
};

/* One node's socket. Referenced by the pool's table (until forgotten) and
 * by each stream or Cancel using it; the last reference closes the socket,
 * so no operation is ever in flight when it closes (NNG 1.5 needs that). */
struct dpc_conn {
    char *node_id; /* set at creation; read-only afterwards */
    char *address;
    nng_socket sock;
    struct dpc_link *link;
    _Atomic int refs;
};

/* ---- link.c ---------------------------------------------------------------- */

/* Redials of a lost connection come at most DPC_REDIAL_MAX_MS apart (a
 * refused dial costs a peer next to nothing), so an exchange waits
 * DPC_RECONNECT_GRACE_MS for one: a node that restarted is reached again,
 * a dead one is given up on within that. */
#define DPC_REDIAL_MAX_MS      300
#define DPC_RECONNECT_GRACE_MS 800
#define DPC_CONNECT_GRACE_MS   3000

struct dpc_link *dpc_link_new(void); /* NULL when out of memory */
void dpc_link_free(struct dpc_link *l);
/* The socket's pipe events (mlx_nng_req_dial_watched's callback; arg: the
 * link). */
void dpc_link_on_pipe(nng_pipe pipe, nng_pipe_ev ev, void *arg);
/* Registers w for the exchange about to start, waiting for a connection:
 * at most DPC_CONNECT_GRACE_MS for a socket never connected (its first
 * dial), DPC_RECONNECT_GRACE_MS for one that lost its connection (a redial
 * after a blip), and never longer than limit_ms. False when there is none
 * by then: the node is down or unreachable. */
bool dpc_link_enter(struct dpc_link *l, struct dpc_waiter *w, int limit_ms);
/* Starts one operation of w's exchange (start(ctx, aio)) unless the
 * connection went since dpc_link_enter; false then. Under the link's lock,
 * so a connection lost at any moment either stops the start or aborts the
 * operation. */
bool dpc_link_start(struct dpc_link *l, struct dpc_waiter *w,
                    void (*start)(nng_ctx, nng_aio *), nng_ctx ctx);
void dpc_link_leave(struct dpc_link *l, struct dpc_waiter *w);

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

/* ---- exchange.c ------------------------------------------------------------ */

/* Sends env (its request_id set) on ctx and returns the reply, checked to
 * answer the same request id (wire_free). Every failure is the node's. */
int dpc_exchange(dpc_pool *pool, struct dpc_conn *c, nng_ctx ctx, nng_aio *aio,
                 wire_envelope *env, int timeout_ms, wire_envelope **reply, dpc_error *e);
/* An Error reply as a failure: the node's 4xx refuses the request, its
 * 5xx (and a protocol complaint) is the node's failure. */
int dpc_from_error(const struct dpc_conn *c, const Fleet__Error *er, dpc_error *e);
/* A reply of the wrong kind to what was asked: the node's failure. */
int dpc_unexpected(const struct dpc_conn *c, const wire_envelope *r, const char *asked,
                   dpc_error *e);

/* Fills e (may be NULL) and returns code. */
int dpc_fail(dpc_error *e, dpc_failure failure, int status, int code, const char *fmt,
             ...) __attribute__((format(printf, 5, 6)));

#endif
