/*
 * control.h — the coordinator's control-plane server.
 *
 * Listens with a REP socket and serves agents on MLX_CONTROL_CONTEXTS NNG
 * contexts at once, so one slow agent never holds up the others. Each
 * request is one envelope (proto/wire.h):
 *
 *   Register    → RegisterReply: the node is recorded and UP
 *   Heartbeat   → HeartbeatReply, or Error UNKNOWN_NODE (register again)
 *   Deregister  → Ack: the node is LEFT
 *   anything malformed, too big, of another major version or unexpected
 *               → Error with a sentence, and a warning in our log
 *
 * A message over MLX_MAX_CONTROL_MSG gets Error TOO_BIG. Frames larger than
 * MLX_MAX_CONTROL_FRAME are dropped by NNG with the connection that sent
 * them, before any memory is spent on them.
 *
 * A ticker applies membership's silence rule every MEMBERSHIP_TICK_MS and
 * writes each state change to the registry and the log.
 *
 * Lifecycle:
 *   1. control_start restores membership from the registry (silence counts
 *      from now), binds and starts serving.
 *   2. control_stop stops serving, waits for handlers in progress and frees.
 *      The registry is borrowed and must outlive the server.
 *
 * Thread safety: control_stop from one thread; everything else is internal.
 */
#ifndef MLX_COORDINATOR_CONTROL_H
#define MLX_COORDINATOR_CONTROL_H

#include "common/err.h"
#include "coordinator/membership/membership.h"
#include "coordinator/registry/registry.h"

typedef struct control control;

/* What the rest of the coordinator learns from the control plane, for the
 * router's circuit breaker and the data-plane pool. Each may be NULL; they
 * are called on the server's threads, on_node_gone with its lock held, so
 * they must be quick and must not call back into the control server. */
typedef struct control_hooks {
    /* A heartbeat from node_id was received and recorded. */
    void (*on_heartbeat)(void *arg, const char *node_id);
    /* node_id became DOWN by silence, or LEFT by saying goodbye. */
    void (*on_node_gone)(void *arg, const char *node_id, node_state state);
    void *arg;
} control_hooks;

typedef struct control_config {
    const char *url; /* tcp://HOST:PORT to listen on */
    membership_policy policy;
    control_hooks hooks;
} control_config;

int control_start(const control_config *cfg, registry *reg, control **out, mlx_err *err);
void control_stop(control *c);

#endif
