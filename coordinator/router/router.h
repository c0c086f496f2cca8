/*
 * router.h — which node serves a generation: the coordinator's choice among
 * the nodes that hold a model, its circuit breaker, and its retry rule.
 *
 * The choice is pure: the caller gathers the candidates (from membership,
 * the registry's model inventory and its own in-flight counts) and the
 * router only decides, so every rule is tested without a cluster.
 *
 *   1. Eligible: state UP (SUSPECT and DOWN are honoured at once), not in
 *      the request's exclude list (nodes already tried), circuit closed.
 *   2. Tiers: nodes with the model loaded in memory first; only when none
 *      is eligible, nodes with it in their store (they must load it).
 *   3. With an affinity key (the request's `user`, `prompt_cache_key` or
 *      X-Session-Id), rendezvous hashing over the tier: the node with the
 *      highest hash(key, node_id) wins, so a conversation keeps reaching the
 *      node that holds its prompt cache while that node stays eligible, and
 *      adding or removing another node never moves it. When its node drops
 *      out, the key moves to the next-highest node of the tier.
 *   4. Without one, power of two choices: two distinct random nodes of the
 *      tier, each scored score = (in_flight + 1) / speed, speed being
 *      tokens_per_s (a node that reports 0, not yet measured, counts at the
 *      tier's mean measured speed, or 1 when none is measured). The two
 *      compete in proportion to 1/score rather than the lower score always
 *      winning: a strict comparison would never send a request to the
 *      slowest node, whose speed would then never be measured again.
 *   5. None eligible: the outcome says why, so the HTTP front answers 404
 *      naming the model (no node holds it) or 503 (all down, all tried).
 *
 * Circuit breaker (router_health): ROUTER_TRIP_FAILURES failures of a node
 * within ROUTER_TRIP_WINDOW_MS open its circuit — it is out of rotation —
 * until ROUTER_CLOSE_HEARTBEATS good heartbeats in a row close it again.
 * Times are passed in (monotonic ms); the module never reads a clock.
 *
 * Retry rule (router_may_retry): at most ROUTER_MAX_RETRIES retries on
 * other nodes, only for a node's failure (unreachable, timed out, 5xx),
 * never for a refused request (4xx), and never once the first token has
 * gone to the client.
 *
 * Ownership: candidates and their strings are borrowed for the call.
 * Thread safety: router_pick_node keeps no state (the RNG state is the
 * caller's, one per thread); router_health is guarded by its own mutex.
 */
#ifndef MLX_COORDINATOR_ROUTER_H
#define MLX_COORDINATOR_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "coordinator/membership/membership.h"

#define ROUTER_TRIP_FAILURES    3
#define ROUTER_TRIP_WINDOW_MS   30000
#define ROUTER_CLOSE_HEARTBEATS 3
#define ROUTER_MAX_RETRIES      2

/* One node that might serve the request. */
typedef struct router_candidate {
    const char *node_id; /* borrowed */
    const char *address; /* data-plane URL; borrowed, not read by the router */
    node_state state;
    bool loaded;         /* the model is in its memory */
    bool stored;         /* the model is in its store */
    uint32_t in_flight;  /* the coordinator's requests on it now */
    double tokens_per_s; /* measured generation speed; 0: unknown */
} router_candidate;

typedef struct router_health router_health;

typedef struct router_query {
    const router_candidate *candidates; /* borrowed */
    size_t n_candidates;
    const char *affinity_key;   /* NULL or "": none */
    const char *const *exclude; /* node ids already tried; borrowed */
    size_t n_exclude;
    router_health *health; /* NULL: no circuit breaker */
} router_query;

typedef enum router_outcome {
    ROUTER_PICKED,       /* *picked names the node */
    ROUTER_NO_MODEL,     /* no candidate loads or stores the model: 404 */
    ROUTER_ALL_DOWN,     /* holders exist, none up with a closed circuit: 503 */
    ROUTER_ALL_EXCLUDED, /* every available holder was already tried: 503 */
} router_outcome;

/* Chooses a node; *picked is an index into q->candidates with
 * ROUTER_PICKED. rng: the caller's state, any value to start with, advanced
 * by the call. */
router_outcome router_pick_node(const router_query *q, uint64_t *rng, size_t *picked);

/* The HTTP status for an outcome (200, 404, 503) and a short name for logs. */
int router_outcome_status(router_outcome o);
const char *router_outcome_name(router_outcome o);

/* Fills err with the sentence for a client when o is not ROUTER_PICKED and
 * returns MLX_ENOENT (no model) or MLX_EBUSY; 0 for ROUTER_PICKED. */
int router_outcome_error(router_outcome o, const char *model, mlx_err *err);

/* ---- circuit breaker --------------------------------------------------- */

int router_health_create(router_health **out, mlx_err *err);
void router_health_destroy(router_health *h); /* NULL is a no-op */

/* A request to node failed as a node's failure (not a refused request).
 * now: monotonic ms. Opens the circuit on the third within the window. */
void router_note_failure(router_health *h, const char *node_id, int64_t now);

/* A heartbeat from node: ok when it came and was healthy. While the circuit
 * is open, ROUTER_CLOSE_HEARTBEATS ok in a row close it; a bad one starts
 * the count again. */
void router_note_heartbeat(router_health *h, const char *node_id, bool ok);

/* True while node's circuit is open. */
bool router_circuit_open(router_health *h, const char *node_id);

/* Drops what is known about a node (it left the fleet). */
void router_health_forget(router_health *h, const char *node_id);

/* ---- retries ------------------------------------------------------------ */

typedef enum router_failure {
    ROUTER_FAILURE_NODE,    /* unreachable, timed out, closed, or the node's 5xx */
    ROUTER_FAILURE_REQUEST, /* the request was refused (4xx) */
} router_failure;

typedef enum router_progress {
    ROUTER_NOTHING_SENT,     /* the client has had no token yet */
    ROUTER_FIRST_TOKEN_SENT, /* the client has text: a retry would repeat it */
} router_progress;

/* Whether to try another node after the failed_attempts-th attempt (1 for
 * the first) failed with failure, the client having seen progress. */
bool router_may_retry(int failed_attempts, router_failure failure,
                      router_progress progress);

#endif
