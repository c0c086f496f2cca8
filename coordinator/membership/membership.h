/*
 * membership.h — which nodes are alive, decided from heartbeat silence.
 *
 * A node's state follows from how long it has been silent, counted in its
 * own heartbeat intervals:
 *
 *   UP       heard from within suspect_after intervals
 *   SUSPECT  silent for more than suspect_after intervals: still listed,
 *            but the router stops sending it new work
 *   DOWN     silent for more than down_after intervals
 *   LEFT     said goodbye (Deregister); a heartbeat from it is refused so
 *            it registers again with fresh facts
 *
 * Transitions: UP → SUSPECT → DOWN by silence (membership_tick); any state
 * → UP on registration; SUSPECT or DOWN → UP on a heartbeat; any → LEFT on
 * deregistration. Nothing else.
 *
 * The table takes the time as an argument everywhere ("now", monotonic
 * milliseconds) and never reads a clock, so tests drive it with a fake one.
 *
 * Thread safety: none; the caller serialises access (the control server
 * holds its lock around every call).
 */
#ifndef MLX_COORDINATOR_MEMBERSHIP_H
#define MLX_COORDINATOR_MEMBERSHIP_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/limits.h"

typedef enum node_state {
    NODE_UP,
    NODE_SUSPECT,
    NODE_DOWN,
    NODE_LEFT,
} node_state;

typedef struct membership_policy {
    int64_t default_interval_ms; /* for nodes that declare no interval */
    int64_t suspect_after;       /* missed intervals before SUSPECT, >= 1 */
    int64_t down_after;          /* missed intervals before DOWN, > suspect_after */
} membership_policy;

typedef struct membership_change {
    char node_id[MLX_NODE_ID_LEN + 1];
    node_state from, to;
    int64_t silent_ms;
} membership_change;

typedef struct membership membership;

const char *membership_state_name(node_state s); /* "up", "suspect", … */
int membership_parse_state(const char *name, node_state *out);

/* The state a node in `current` should be in after silent_ms of silence. */
node_state membership_state_after(const membership_policy *p, node_state current,
                                  int64_t interval_ms, int64_t silent_ms);

/* Checks the policy; the sentence names the offending option. */
int membership_check_policy(const membership_policy *p, mlx_err *err);

int membership_create(const membership_policy *p, size_t max_nodes, membership **out,
                      mlx_err *err);
void membership_destroy(membership *m);

/* Adds a node known from the registry at start; its silence counts from now.
 * interval_ms 0 means the policy's default. */
int membership_restore(membership *m, const char *node_id, node_state state,
                       int64_t interval_ms, int64_t now, mlx_err *err);

/* A node registered: it is UP from now. MLX_EBUSY when the table is full.
 * *previous: its state before, or -1 when it was new. */
int membership_register(membership *m, const char *node_id, int64_t interval_ms,
                        int64_t now, int *previous, mlx_err *err);

/* A heartbeat: MLX_EUNKNOWNNODE for a node not in the table or LEFT (it must
 * register). Otherwise the node is UP and *previous says what it was. */
int membership_heartbeat(membership *m, const char *node_id, int64_t now,
                         node_state *previous);

/* Deregistration: the node becomes LEFT. MLX_EUNKNOWNNODE if absent. */
int membership_leave(membership *m, const char *node_id);

/* Applies silence to the nodes, changing at most max of them; describes each
 * change in out and returns how many there were. When it returns max, more
 * may be due: call again. */
size_t membership_tick(membership *m, int64_t now, membership_change *out, size_t max);

/* The state of a node; MLX_EUNKNOWNNODE if absent. */
int membership_state(const membership *m, const char *node_id, node_state *out);

size_t membership_count(const membership *m);

#endif
