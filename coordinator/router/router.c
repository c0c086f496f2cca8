/*
 * router.c — the choice of a node for a generation (see router.h for the
 * rules): eligibility, tiers, rendezvous hashing and power of two choices.
 *
 * Nothing here allocates: each candidate's tier goes in an array on the
 * stack (at most MLX_MAX_NODES candidates are looked at), and members of a
 * tier are found by walking it, which at the fleet's size costs far less
 * than a request's first token.
 */
#include "coordinator/router/router.h"

#include <string.h>

/* splitmix64: one 64-bit state, every value a fine seed. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *state)
{
    return (double)(rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform in [0, n), n > 0. */
static size_t rng_below(uint64_t *state, size_t n)
{
    size_t i = (size_t)(rng_unit(state) * (double)n);
    return i < n ? i : n - 1;
}

/* The rendezvous weight of (key, node): FNV-1a over both, then mixed so
 * nearby inputs give unrelated weights. */
static uint64_t rendezvous_weight(const char *key, const char *node_id)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3u;
    h = (h ^ 0xffu) * 0x100000001b3u; /* no byte of text: ("ab","c") != ("a","bc") */
    for (const unsigned char *p = (const unsigned char *)node_id; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3u;
    uint64_t state = h;
    return rng_next(&state);
}

/* ---- eligibility ---------------------------------------------------------- */

enum tier { TIER_NONE, TIER_LOADED, TIER_STORED };

static bool holds(const router_candidate *c)
{
    return c->node_id != NULL && (c->loaded || c->stored);
}

static bool available(const router_query *q, const router_candidate *c)
{
    return holds(c) && c->state == NODE_UP &&
           (q->health == NULL || !router_circuit_open(q->health, c->node_id));
}

static bool excluded(const router_query *q, const router_candidate *c)
{
    for (size_t i = 0; i < q->n_exclude; i++)
        if (q->exclude[i] != NULL && strcmp(q->exclude[i], c->node_id) == 0)
            return true;
    return false;
}

/* ---- choosing within a tier ----------------------------------------------- */

static size_t pick_rendezvous(const router_query *q, const enum tier *tiers, enum tier t)
{
    size_t best = SIZE_MAX;
    uint64_t best_w = 0;
    for (size_t i = 0; i < q->n_candidates; i++) {
        if (tiers[i] != t)
            continue;
        const char *id = q->candidates[i].node_id;
        uint64_t w = rendezvous_weight(q->affinity_key, id);
        /* equal weights (never in practice): the smaller id, so it is stable */
        if (best == SIZE_MAX || w > best_w ||
            (w == best_w && strcmp(id, q->candidates[best].node_id) < 0)) {
            best = i;
            best_w = w;
        }
    }
    return best;
}

/* The n-th member (from 0) of tier t. */
static size_t nth_of_tier(const router_query *q, const enum tier *tiers, enum tier t,
                          size_t n)
{
    for (size_t i = 0; i < q->n_candidates; i++)
        if (tiers[i] == t && n-- == 0)
            return i;
    return SIZE_MAX; /* not reached: n < the tier's size */
}

/* Requests per second the node can take: speed over its queue. */
static double capacity(const router_candidate *c, double unknown_speed)
{
    double speed = c->tokens_per_s > 0 ? c->tokens_per_s : unknown_speed;
    return speed / ((double)c->in_flight + 1.0);
}

static size_t pick_two_choices(const router_query *q, const enum tier *tiers, enum tier t,
                               size_t size, uint64_t *rng)
{
    if (size == 1)
        return nth_of_tier(q, tiers, t, 0);
    double known_sum = 0;
    size_t known = 0;
    for (size_t i = 0; i < q->n_candidates; i++) {
        if (tiers[i] == t && q->candidates[i].tokens_per_s > 0) {
            known_sum += q->candidates[i].tokens_per_s;
            known++;
        }
    }
    double unknown_speed = known > 0 ? known_sum / (double)known : 1.0;
    size_t a = rng_below(rng, size);
    size_t b = rng_below(rng, size - 1);
    if (b >= a)
        b++; /* two distinct members */
    size_t ia = nth_of_tier(q, tiers, t, a);
    size_t ib = nth_of_tier(q, tiers, t, b);
    double ca = capacity(&q->candidates[ia], unknown_speed);
    double cb = capacity(&q->candidates[ib], unknown_speed);
    return rng_unit(rng) * (ca + cb) < ca ? ia : ib;
}

router_outcome router_pick_node(const router_query *q, uint64_t *rng, size_t *picked)
{
    /* Each candidate is classified once: a circuit may open under us, and
     * the walks below must all see the same tiers. */
    enum tier tiers[MLX_MAX_NODES];
    size_t n = q->n_candidates < MLX_MAX_NODES ? q->n_candidates : MLX_MAX_NODES;
    router_query view = *q;
    view.n_candidates = n;
    bool any_holder = false, any_available = false;
    size_t n_loaded = 0, n_stored = 0;
    for (size_t i = 0; i < n; i++) {
        const router_candidate *c = &q->candidates[i];
        bool up = available(q, c);
        any_holder = any_holder || holds(c);
        any_available = any_available || up;
        tiers[i] = !up || excluded(q, c) ? TIER_NONE
                   : c->loaded           ? TIER_LOADED
                                         : TIER_STORED;
        n_loaded += tiers[i] == TIER_LOADED;
        n_stored += tiers[i] == TIER_STORED;
    }
    if (!any_holder)
        return ROUTER_NO_MODEL;
    if (!any_available)
        return ROUTER_ALL_DOWN;
    if (n_loaded + n_stored == 0)
        return ROUTER_ALL_EXCLUDED;
    enum tier t = n_loaded > 0 ? TIER_LOADED : TIER_STORED;
    size_t size = n_loaded > 0 ? n_loaded : n_stored;
    if (q->affinity_key != NULL && q->affinity_key[0] != '\0')
        *picked = pick_rendezvous(&view, tiers, t);
    else
        *picked = pick_two_choices(&view, tiers, t, size, rng);
    return ROUTER_PICKED;
}

int router_outcome_status(router_outcome o)
{
    switch (o) {
    case ROUTER_PICKED:
        return 200;
    case ROUTER_NO_MODEL:
        return 404;
    case ROUTER_ALL_DOWN:
    case ROUTER_ALL_EXCLUDED:
        break;
    }
    return 503;
}

const char *router_outcome_name(router_outcome o)
{
    switch (o) {
    case ROUTER_PICKED:
        return "picked";
    case ROUTER_NO_MODEL:
        return "no_model";
    case ROUTER_ALL_DOWN:
        return "all_down";
    case ROUTER_ALL_EXCLUDED:
        return "all_excluded";
    }
    return "unknown";
}

int router_outcome_error(router_outcome o, const char *model, mlx_err *err)
{
    const char *m = model != NULL ? model : "";
    switch (o) {
    case ROUTER_PICKED:
        return 0;
    case ROUTER_NO_MODEL:
        return mlx_err_set(
            err, MLX_ENOENT,
            "no node of the fleet holds model '%.200s'; check the name, or "
            "add it to a node's store (mlx-agent cache pull)",
            m);
    case ROUTER_ALL_DOWN:
        return mlx_err_set(
            err, MLX_EBUSY,
            "every node holding model '%.200s' is down, suspect or failing; "
            "retry shortly, or check the nodes with mlxctl nodes",
            m);
    case ROUTER_ALL_EXCLUDED:
        break;
    }
    return mlx_err_set(err, MLX_EBUSY,
                       "every node holding model '%.200s' failed this request; retry "
                       "shortly",
                       m);
}
