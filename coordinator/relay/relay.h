/*
 * relay.h — one generation run on the fleet: the node chosen, the request
 * sent over the data plane, the text passed on as it comes, and another
 * node tried when the first fails before any text reached the client.
 *
 * The relay joins the pieces that each decide one thing: the registry says
 * which nodes hold the model and in what state (membership writes states
 * there as they change, so a suspect or down node is passed over at once),
 * the router picks among them (router.h: loaded before stored, affinity,
 * power of two choices, circuit breaker, retry rule), and the data-plane
 * client runs the generation (dataplane_client.h). The relay counts the
 * requests it has in flight on each node, which is the router's measure of
 * load, and reports every node failure to the circuit breaker.
 *
 * It knows nothing of HTTP or of the APIs' formats: the front gives it the
 * request as the data plane carries it and a sink for the text; the result
 * says how it ended, with an HTTP status for the front to answer with.
 *
 *   failure before any text   retried on another node (at most
 *                             ROUTER_MAX_RETRIES times), never for a
 *                             refused request (4xx)
 *   failure after some text   the generation ends with status 502 and the
 *                             sentence; the front ends its stream with an
 *                             error, as the text already sent cannot be
 *                             taken back
 *   client gone               Cancel reaches the agent; status 499
 *   no node                   404 naming the model, or 503
 *   deadline passed           Cancel, status 504
 *
 * Thread safety: relay_run and relay_load may be called from any number of
 * threads.
 * Lifecycle: relay_create, relay_run…, relay_destroy after the last run.
 * The registry, pool and health are borrowed and must outlive the relay.
 */
#ifndef MLX_COORDINATOR_RELAY_H
#define MLX_COORDINATOR_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/limits.h"
#include "coordinator/dataplane/dataplane_client.h"
#include "coordinator/registry/registry.h"
#include "coordinator/router/router.h"

typedef struct relay relay;

typedef struct relay_config {
    registry *reg;          /* borrowed */
    dpc_pool *pool;         /* borrowed */
    router_health *health;  /* borrowed; NULL: no circuit breaker */
    int poll_timeout_ms;    /* one Next round trip; 0: 10 s */
    int request_timeout_ms; /* a whole generation; 0: 10 min */
} relay_config;

int relay_create(const relay_config *cfg, relay **out, mlx_err *err);
void relay_destroy(relay *r); /* NULL is a no-op */

/* Where the text goes. text returns 0, or nonzero when the client is gone
 * (the generation is then cancelled); gone (may be NULL) is asked between
 * chunks, so a client that left while no text came is noticed too; started
 * (may be NULL) is told each node the request is sent to, before it is sent
 * (a short answer read whole comes back with the node's acceptance), so a
 * caller can say where a request runs and how long routing took.
 *
 * tokens (may be NULL) takes text's place for a request with
 * top_logprobs: it is given each chunk's text with the log probabilities
 * of the tokens that came with it (dpc_chunk: text, tokens; borrowed for
 * the call), for every chunk that has either, and returns as text does. */
typedef struct relay_sink {
    int (*text)(void *arg, const char *p, size_t n);
    bool (*gone)(void *arg);
    void (*started)(void *arg, const char *node_id);
    void *arg;
    int (*tokens)(void *arg, const dpc_chunk *chunk);
} relay_sink;

/* Where a request may go. affinity_key: NULL or "" for none. node_id:
 * NULL or "" for any node; else that node only, when the router would
 * choose it (up, holding the model, breaker closed), and no other node is
 * tried when it fails (a benchmark of one node). */
typedef struct relay_route {
    const char *affinity_key;
    const char *node_id;
} relay_route;

typedef struct relay_result {
    int status;                        /* 200 when the generation ended normally */
    mlx_err err;                       /* the sentence when status is not 200 */
    bool streamed;                     /* some text (or tokens) reached the sink */
    int attempts;                      /* nodes tried */
    char node_id[MLX_NODE_ID_LEN + 1]; /* the node that served (or last tried) */
    dpc_chunk end; /* with status 200: finish reason, usage, timings (no text,
                      no tokens) */
} relay_result;

/* Runs req (its model names what to route on) on the best node route
 * allows (NULL: any), retrying as the router allows. Always fills *out;
 * returns 0 when out->status is 200, else an MLX_E* code. */
int relay_run(relay *r, const dpc_request *req, const relay_route *route,
              const relay_sink *sink, relay_result *out);

/* The coordinator's requests in flight on node_id now (for /metrics and the
 * admin API). */
uint32_t relay_in_flight(relay *r, const char *node_id);

/* ---- load-only requests (load.c) ----------------------------------------- */

/* What relay_load did. */
typedef struct relay_load_result {
    int status;                        /* 200 when the model is loaded (or unloaded) */
    mlx_err err;                       /* the sentence when status is not 200 */
    int attempts;                      /* nodes tried (a load) */
    char node_id[MLX_NODE_ID_LEN + 1]; /* the node that loaded it (or last
                                          tried); for an unload, the one
                                          that failed it, else "" */
    int64_t load_ns; /* the load's time: 0 when it was loaded already, and
                        for an unload */
    int unloaded;    /* an unload: the nodes that unloaded it (those whose
                        heartbeat said they had it loaded) */
} relay_load_result;

/* Ollama's request with nothing to generate; route NULL: any node.
 * keep_alive_ms as the wire has it (dpc_request's): 0 the agent's, more
 * that long once idle: the model is loaded on the node a generation of it
 * would be sent to (the router's pick with route's affinity; loaded nodes
 * first, so usually one that has it already), retried on another node
 * when that one fails as relay_run retries. -1: unloaded from every node
 * route allows whose heartbeat says it has the model loaded; done (200)
 * also when none has (as Ollama), 404 naming the model when no node holds
 * it at all, and the first failure when a node could not unload it.
 * Always fills *out; returns 0 when out->status is 200, else an MLX_E*
 * code. */
int relay_load(relay *r, const char *model, int64_t keep_alive_ms,
               const relay_route *route, relay_load_result *out);

#endif
