/*
 * registry.h — the coordinator's durable record of the fleet (SQLite).
 *
 * One row per node ever registered, keyed by the node id the agent keeps in
 * its data directory, so a node that comes back is the same row. The row
 * holds what the node said at registration (name, addresses, hardware as
 * JSON), its latest heartbeat (time and metrics as JSON) and its membership
 * state, which is written on every change so the admin API and a restarted
 * coordinator see what the membership module decided.
 *
 * File: <data>/coordinator.db, schema by numbered migrations (common/db.h).
 *
 * Thread safety: all functions are safe; SQLite serialises the writes.
 */
#ifndef MLX_COORDINATOR_REGISTRY_H
#define MLX_COORDINATOR_REGISTRY_H

#include <jansson.h>
#include <stdint.h>

#include "common/err.h"

typedef struct registry registry;

/* What a node says about itself when it registers. All strings borrowed. */
typedef struct registry_node {
    const char *id;
    const char *name;
    const char *address; /* data-plane address the coordinator dials */
    const char *http;    /* the agent's HTTP API */
    const char *version; /* agent release */
    int64_t heartbeat_ms;
    const char *hardware_json; /* a JSON object */
} registry_node;

int registry_open(const char *path, registry **out, mlx_err *err);
void registry_close(registry *r);

/* Inserts the node or refreshes its row; it becomes "up" with last_seen now. */
int registry_register(registry *r, const registry_node *n, int64_t now_unix_ms,
                      mlx_err *err);

/* Records a heartbeat; MLX_ENOENT when the id has no row. */
int registry_heartbeat(registry *r, const char *id, const char *metrics_json,
                       int64_t now_unix_ms, mlx_err *err);

/* MLX_ENOENT when the id has no row. */
int registry_set_state(registry *r, const char *id, const char *state, mlx_err *err);

/* Calls fn for every node (to rebuild membership at start). */
typedef int (*registry_each_fn)(void *arg, const char *id, const char *state,
                                int64_t heartbeat_ms);
int registry_each(registry *r, registry_each_fn fn, void *arg, mlx_err *err);

/* {"nodes":[{id, name, address, http, version, state, heartbeat_ms,
 *   registered_at, registered_at_unix_ms, last_seen, last_seen_unix_ms,
 *   hardware:{…}, metrics:{…}|null}]}
 * sorted by name, then id. *out: caller json_decref's. */
int registry_nodes_json(registry *r, json_t **out, mlx_err *err);

#endif
