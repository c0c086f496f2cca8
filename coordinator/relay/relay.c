/* relay.c — a generation on the fleet: candidates from the registry, a node
 * from the router, the stream from the data plane, retries by the router's
 * rule (see relay.h). */
#include "coordinator/relay/relay.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rand.h"
#include "coordinator/membership/membership.h"
#include "coordinator/relay/internal.h"

#define MOD "relay"

#define DEFAULT_POLL_TIMEOUT_MS    10000
#define DEFAULT_REQUEST_TIMEOUT_MS (10 * 60 * 1000)

int relay_create(const relay_config *cfg, relay **out, mlx_err *err)
{
    *out = NULL;
    relay *r = mlx_calloc(1, sizeof *r);
    if (r == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory for the relay");
    r->cfg = *cfg;
    if (r->cfg.poll_timeout_ms <= 0)
        r->cfg.poll_timeout_ms = DEFAULT_POLL_TIMEOUT_MS;
    if (r->cfg.request_timeout_ms <= 0)
        r->cfg.request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
    pthread_mutex_init(&r->mtx, NULL);
    *out = r;
    return 0;
}

void relay_destroy(relay *r)
{
    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->mtx);
    mlx_free(r->counts);
    mlx_free(r);
}

/* ---- in-flight counts ----------------------------------------------------- */

/* The count of node_id (created at 0), or NULL when out of memory. Called
 * with r->mtx held. */
static struct in_flight *count_of(relay *r, const char *node_id)
{
    for (size_t i = 0; i < r->n_counts; i++)
        if (strcmp(r->counts[i].node_id, node_id) == 0)
            return &r->counts[i];
    if (r->n_counts == r->cap_counts) {
        size_t cap = r->cap_counts ? 2 * r->cap_counts : 16;
        struct in_flight *v = mlx_realloc(r->counts, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        r->counts = v;
        r->cap_counts = cap;
    }
    struct in_flight *c = &r->counts[r->n_counts++];
    snprintf(c->node_id, sizeof c->node_id, "%s", node_id);
    c->n = 0;
    return c;
}

static void count_add(relay *r, const char *node_id, int delta)
{
    pthread_mutex_lock(&r->mtx);
    struct in_flight *c = count_of(r, node_id);
    if (c != NULL)
        c->n = (uint32_t)((int64_t)c->n + delta);
    pthread_mutex_unlock(&r->mtx);
}

void relay_count_add(relay *r, const char *node_id, int delta)
{
    count_add(r, node_id, delta);
}

uint32_t relay_in_flight(relay *r, const char *node_id)
{
    uint32_t n = 0;
    pthread_mutex_lock(&r->mtx);
    for (size_t i = 0; i < r->n_counts; i++)
        if (strcmp(r->counts[i].node_id, node_id) == 0)
            n = r->counts[i].n;
    pthread_mutex_unlock(&r->mtx);
    return n;
}

/* ---- candidates ------------------------------------------------------------ */

int relay_keep_holder(void *arg, const registry_candidate *c)
{
    struct holders *h = arg;
    if (h->only != NULL && strcmp(c->node_id, h->only) != 0)
        return 0;
    if (h->n == MLX_MAX_NODES)
        return 0; /* more than a fleet may have: the rest are not looked at */
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 8;
        struct holder *v = mlx_realloc(h->v, cap * sizeof *v);
        if (v == NULL)
            return MLX_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    struct holder *o = &h->v[h->n];
    node_state state;
    if (membership_parse_state(c->state, &state) != 0)
        return 0; /* a state this coordinator does not know: not a candidate */
    snprintf(o->node_id, sizeof o->node_id, "%s", c->node_id);
    snprintf(o->address, sizeof o->address, "%s", c->address);
    o->state = state;
    o->loaded = c->loaded;
    o->stored = c->stored;
    o->tokens_per_s = c->tokens_per_s;
    h->n++;
    return 0;
}

router_outcome relay_pick(relay *r, const char *model, const relay_route *route,
                          const char *const *tried, size_t n_tried, uint64_t *rng,
                          struct holder *picked, mlx_err *err)
{
    struct holders h = {.only = route->node_id};
    router_candidate *cands = NULL;
    router_outcome o = ROUTER_NO_MODEL;
    if (registry_candidates(r->cfg.reg, model, relay_keep_holder, &h, err) != 0)
        goto out;
    cands = mlx_calloc(h.n ? h.n : 1, sizeof *cands);
    if (cands == NULL) {
        mlx_err_set(err, MLX_ENOMEM, "out of memory choosing a node");
        goto out;
    }
    for (size_t i = 0; i < h.n; i++)
        cands[i] = (router_candidate){
            .node_id = h.v[i].node_id,
            .address = h.v[i].address,
            .state = h.v[i].state,
            .loaded = h.v[i].loaded,
            .stored = h.v[i].stored,
            .in_flight = relay_in_flight(r, h.v[i].node_id),
            .tokens_per_s = h.v[i].tokens_per_s,
        };
    router_query q = {
        .candidates = cands,
        .n_candidates = h.n,
        .affinity_key = route->affinity_key,
        .exclude = tried,
        .n_exclude = n_tried,
        .health = r->cfg.health,
    };
    size_t at;
    o = router_pick_node(&q, rng, &at);
    if (o == ROUTER_PICKED)
        *picked = h.v[at];
    else
        router_outcome_error(o, model, err);
out:
    mlx_free(cands);
    mlx_free(h.v);
    return o;
}

/* ---- the next node ---------------------------------------------------------- */

void relay_tries_init(struct relay_tries *t)
{
    memset(t, 0, sizeof *t);
    if (mlx_rand_bytes(&t->rng, sizeof t->rng, NULL) != 0)
        t->rng = (uint64_t)mlx_time_mono_ns();
}

int relay_next_node(relay *r, const char *model, const relay_route *route,
                    struct relay_tries *t, struct holder *node, int *status, mlx_err *err)
{
    mlx_err_clear(err);
    router_outcome o =
        relay_pick(r, model, route, t->tried, (size_t)t->n, &t->rng, node, err);
    if (o != ROUTER_PICKED) {
        /* After a failed try, "all tried" is that try's failure. */
        *status = t->n > 0 && o == ROUTER_ALL_EXCLUDED ? 502 : router_outcome_status(o);
        if (err->code == 0)
            mlx_err_set(err, MLX_EIO, "no node could be chosen");
        return err->code;
    }
    snprintf(t->ids[t->n], sizeof t->ids[0], "%s", node->node_id);
    t->tried[t->n] = t->ids[t->n];
    t->n++;
    return 0;
}

/* ---- one attempt ----------------------------------------------------------- */

typedef enum attempt_end {
    ATTEMPT_DONE,        /* the generation ended; out->end is set */
    ATTEMPT_NODE_FAILED, /* the node failed: maybe another */
    ATTEMPT_REFUSED,     /* the request is bad: answer with its status */
    ATTEMPT_CLIENT_GONE,
    ATTEMPT_TIMED_OUT,
} attempt_end;

static attempt_end attempt(relay *r, const struct holder *node, const dpc_request *req,
                           const relay_sink *sink, int64_t deadline_ms, relay_result *out)
{
    dpc_stream *s = NULL;
    dpc_error e;
    if (sink->started != NULL)
        sink->started(sink->arg, node->node_id);
    if (dpc_infer(r->cfg.pool, node->node_id, node->address, req, &s, &e) != 0) {
        out->status = e.status;
        out->err = e.err;
        return e.failure == DPC_REFUSED ? ATTEMPT_REFUSED : ATTEMPT_NODE_FAILED;
    }
    attempt_end end;
    for (;;) {
        int64_t left = deadline_ms - mlx_time_mono_ms();
        if (left <= 0) {
            mlx_err_set(&out->err, MLX_ETIMEDOUT,
                        "the generation took longer than the coordinator's %d ms limit",
                        r->cfg.request_timeout_ms);
            out->status = 504;
            end = ATTEMPT_TIMED_OUT;
            break;
        }
        if (sink->gone != NULL && sink->gone(sink->arg)) {
            end = ATTEMPT_CLIENT_GONE;
            break;
        }
        dpc_chunk chunk;
        int timeout = left < r->cfg.poll_timeout_ms ? (int)left : r->cfg.poll_timeout_ms;
        if (dpc_next(s, timeout, &chunk, &e) != 0) {
            out->status = e.status;
            out->err = e.err;
            end = e.failure == DPC_REFUSED ? ATTEMPT_REFUSED : ATTEMPT_NODE_FAILED;
            break;
        }
        if (chunk.len > 0 || (sink->tokens != NULL && chunk.n_tokens > 0)) {
            out->streamed = true;
            int gone = sink->tokens != NULL
                           ? sink->tokens(sink->arg, &chunk)
                           : sink->text(sink->arg, chunk.text, chunk.len);
            if (gone != 0) {
                end = ATTEMPT_CLIENT_GONE;
                break;
            }
        }
        if (chunk.done) {
            out->end = chunk;
            out->end.text = NULL;
            out->end.len = 0;
            out->end.tokens = NULL;
            out->end.n_tokens = 0;
            out->status = 200;
            end = ATTEMPT_DONE;
            break;
        }
    }
    if (end == ATTEMPT_CLIENT_GONE || end == ATTEMPT_TIMED_OUT)
        dpc_cancel(s); /* the agent stops before its next token */
    dpc_stream_free(s);
    return end;
}

/* ---- the run ------------------------------------------------------------------ */

int relay_run(relay *r, const dpc_request *req, const relay_route *route,
              const relay_sink *sink, relay_result *out)
{
    memset(out, 0, sizeof *out);
    relay_route rt = route != NULL ? *route : (relay_route){0};
    if (rt.node_id != NULL && rt.node_id[0] == '\0')
        rt.node_id = NULL;
    route = &rt;
    int64_t deadline_ms = mlx_time_mono_ms() + r->cfg.request_timeout_ms;
    struct relay_tries tries;
    relay_tries_init(&tries);
    for (;;) {
        struct holder node;
        int rc =
            relay_next_node(r, req->model, route, &tries, &node, &out->status, &out->err);
        if (rc != 0)
            return rc;
        snprintf(out->node_id, sizeof out->node_id, "%s", node.node_id);
        out->attempts = tries.n;

        count_add(r, node.node_id, +1);
        attempt_end end = attempt(r, &node, req, sink, deadline_ms, out);
        count_add(r, node.node_id, -1);

        switch (end) {
        case ATTEMPT_DONE:
            return 0;
        case ATTEMPT_REFUSED:
            return out->err.code ? out->err.code : MLX_EINVAL;
        case ATTEMPT_CLIENT_GONE:
            out->status = 499;
            mlx_err_set(&out->err, MLX_ECLOSED,
                        "the client went away; generation cancelled");
            return MLX_ECLOSED;
        case ATTEMPT_TIMED_OUT:
            return MLX_ETIMEDOUT;
        case ATTEMPT_NODE_FAILED:
            break;
        }
        router_note_failure(r->cfg.health, node.node_id, mlx_time_mono_ms());
        mlx_log_warn(MOD, "node failed a generation",
                     "node=%s model=\"%s\" attempt=%d "
                     "streamed=%d err=\"%s\"",
                     node.node_id, req->model, out->attempts, out->streamed,
                     out->err.msg);
        router_progress progress =
            out->streamed ? ROUTER_FIRST_TOKEN_SENT : ROUTER_NOTHING_SENT;
        bool pinned = route->node_id != NULL;
        if (pinned || !router_may_retry(out->attempts, ROUTER_FAILURE_NODE, progress) ||
            out->attempts > ROUTER_MAX_RETRIES) {
            out->status = 502;
            mlx_err_prefix(&out->err, MLX_EIO, "node %s failed %s", node.node_id,
                           out->streamed ? "in the middle of the answer"
                           : pinned      ? "and the request was for that node only"
                                         : "and no other node could take the request");
            return MLX_EIO;
        }
    }
}
