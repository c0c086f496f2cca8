/*
 * internal.h — what the files of coordinator/relay share; not included
 * elsewhere.
 *
 *   relay.c  a generation: the pick, the attempts, the retries
 *   load.c   a load-only request: the same pick and retries, or every node
 *            that has the model loaded for an unload
 */
#ifndef MLX_COORDINATOR_RELAY_INTERNAL_H
#define MLX_COORDINATOR_RELAY_INTERNAL_H

#include <pthread.h>

#include "coordinator/relay/relay.h"

/* The coordinator's own count of requests on a node: the router's load. */
struct in_flight {
    char node_id[MLX_NODE_ID_LEN + 1];
    uint32_t n;
};

struct relay {
    relay_config cfg;
    pthread_mutex_t mtx; /* guards the counts */
    struct in_flight *counts;
    size_t n_counts, cap_counts;
};

/* A candidate copied out of the registry's callback, with its strings. */
struct holder {
    char node_id[MLX_NODE_ID_LEN + 1];
    char address[MLX_MAX_ADDRESS + 1];
    node_state state;
    bool loaded, stored;
    double tokens_per_s;
};

struct holders {
    struct holder *v; /* mlx_free */
    size_t n, cap;
    const char *only; /* keep this node only; NULL: every node */
};

/* Adds a request on node_id to the in-flight counts (delta +1), or takes
 * it away (-1). */
void relay_count_add(relay *r, const char *node_id, int delta);

/* registry_candidates' callback: copies each candidate into the struct
 * holders at arg (MLX_ENOMEM when it cannot grow). */
int relay_keep_holder(void *arg, const registry_candidate *c);

/* Picks a node for model among those route allows and not in tried (the
 * router's rules); fills *picked, or err with the outcome's sentence. */
router_outcome relay_pick(relay *r, const char *model, const relay_route *route,
                          const char *const *tried, size_t n_tried, uint64_t *rng,
                          struct holder *picked, mlx_err *err);

/* The nodes one request has been sent to, so the router passes them over
 * on a retry. */
struct relay_tries {
    uint64_t rng;
    int n;
    char ids[ROUTER_MAX_RETRIES + 1][MLX_NODE_ID_LEN + 1];
    const char *tried[ROUTER_MAX_RETRIES + 1];
};

void relay_tries_init(struct relay_tries *t);

/* Picks the node for model's next try (relay_pick, passing over those
 * tried) and records it in t. Otherwise fills *status (after a failed
 * try, "all tried" is 502, that try's failure) and err, and returns err's
 * code. */
int relay_next_node(relay *r, const char *model, const relay_route *route,
                    struct relay_tries *t, struct holder *node, int *status,
                    mlx_err *err);

#endif
