/*
 * stats.h — what the coordinator counts of the generations it relays: the
 * ones in flight now (GET /api/v1/requests) and the totals since it
 * started (its own series on /metrics).
 *
 * The front registers each generation when it takes a slot, tells the
 * ledger the node that accepted it and the first text, and ends it with
 * the relay's result; requests refused before a slot (a key, the queue,
 * the body) are counted by stats_count alone. Everything here is the
 * coordinator's own view: a node's figures come from its heartbeats, and
 * are the registry's to show.
 *
 * Series (written by stats_write_metrics):
 *   mlx_coordinator_requests_total{model,node,node_id,status}  counter
 *   mlx_coordinator_retries_total                           counter
 *   mlx_coordinator_failovers_total                         counter
 *   mlx_coordinator_requests_active                         gauge
 *   mlx_coordinator_routing_seconds                         histogram
 *   mlx_coordinator_time_to_first_token_seconds             histogram
 *
 * A model label comes from clients, so the number of distinct
 * (model, node, status) series is capped (STATS_MAX_SERIES); past it, new
 * ones are counted under model "other", as the agent does (its few series,
 * one per node and status, come on top).
 *
 * Thread safety: every function may be called from any thread.
 * Lifecycle: stats_create, …, stats_destroy once no flight is left.
 */
#ifndef MLX_COORDINATOR_STATS_H
#define MLX_COORDINATOR_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/limits.h"

#define STATS_MAX_SERIES 2048
#define STATS_KEY_NAME   64 /* bytes of a key name kept, with its NUL */

typedef struct fleet_stats fleet_stats;

int stats_create(fleet_stats **out, mlx_err *err);
void stats_destroy(fleet_stats *s); /* NULL is a no-op */

/* One generation in flight. The caller owns the memory (the front embeds
 * it in its call) and keeps it alive from stats_flight_begin to
 * stats_flight_end; the ledger links it into its list meanwhile. */
typedef struct stats_flight {
    char id[MLX_MAX_REQUEST_ID + 1];
    char endpoint[32];
    char model[MLX_MAX_MODEL_NAME + 1];
    char key_name[STATS_KEY_NAME];
    bool stream;
    int64_t started_unix_ms, started_mono_ms;
    /* written under the ledger's lock: */
    char node_id[MLX_NODE_ID_LEN + 1]; /* the node running it; "" while routed */
    int attempts;                      /* nodes it was sent to so far */
    int64_t first_text_mono_ms;        /* 0: no text yet */
    uint64_t text_bytes;
    struct stats_flight *prev, *next;
} stats_flight;

/* Fills the flight's start (the strings are copied, cut to fit) and links
 * it. model may be NULL. */
void stats_flight_begin(fleet_stats *s, stats_flight *f, const char *id,
                        const char *endpoint, const char *model, const char *key_name,
                        bool stream);

/* The generation goes to node_id: the first node chosen ends its routing
 * time. */
void stats_flight_node(fleet_stats *s, stats_flight *f, const char *node_id);

/* n bytes of text reached the client: the first is the time to first
 * token. */
void stats_flight_text(fleet_stats *s, stats_flight *f, size_t n);

/* Unlinks the flight and counts it with its end: status, the node that
 * last ran it (node_id "" when none did) and the nodes tried: each after
 * the first is a retry, and a generation that ended 200 after a retry is a
 * failover. */
void stats_flight_end(fleet_stats *s, stats_flight *f, int status, const char *node_id,
                      int tried);

/* Counts a request answered before it became a generation (no node). */
void stats_count(fleet_stats *s, const char *model, int status);

/* {"requests":[{id, endpoint, model, key, stream, node_id, attempts,
 *   state: "routing"|"generating", started_at, started_at_unix_ms,
 *   elapsed_ms, ttft_ms|null, text_bytes}]} oldest first; NULL when out
 * of memory. Caller decrefs. */
json_t *stats_requests_json(fleet_stats *s);

/* The name shown for node_id (its registered name), or NULL when unknown;
 * the string must live until the next call. */
typedef const char *(*stats_node_name_fn)(void *arg, const char *node_id);

/* The series listed above; active is the front's count of generations
 * running now; name_of labels nodes by name (the id when it answers
 * NULL). */
void stats_write_metrics(fleet_stats *s, mlx_buf *b, uint32_t active,
                         stats_node_name_fn name_of, void *arg);

#endif
