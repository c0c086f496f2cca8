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
 * The model inventory sits beside the nodes: per node, the models of its
 * store (node_models, replaced wholesale when the agent sends its list) and
 * the models its runtime has loaded with their memory, engine and speed
 * (node_loaded, replaced on every heartbeat), plus the node's request load.
 * Readers see either the old list or the new one, never half of each.
 *
 * "Loaded" in every view below means: the node's latest heartbeat reported
 * the model loaded by the agent's own engine ("mlx", the one the data plane
 * serves from), and the node is up or suspect — the last figures of a silent
 * node are history, not its present. Models another engine (Ollama) holds
 * are shown by registry_ps_json only.
 *
 * File: <data>/coordinator.db, schema by numbered migrations (common/db.h).
 *
 * Thread safety: all functions are safe; SQLite serialises the statements and
 * a mutex keeps the multi-statement replacements whole.
 */
#ifndef MLX_COORDINATOR_REGISTRY_H
#define MLX_COORDINATOR_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
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
 *   hardware:{…}, metrics:{…}|null, load:{requests_running, requests_queued}}]}
 * sorted by name, then id. *out: caller json_decref's. */
int registry_nodes_json(registry *r, json_t **out, mlx_err *err);

/* ---- model inventory (models.c) ------------------------------------------ */

/* A model of a node's store. Strings borrowed; "" where not known. */
typedef struct registry_stored {
    const char *name;
    const char *format; /* "gguf" */
    uint64_t size_bytes;
    const char *digest; /* sha256 hex of the main file */
    const char *architecture, *parameters, *quantization;
} registry_stored;

/* A model a node has loaded. Strings borrowed. */
typedef struct registry_loaded {
    const char *name;
    const char *engine; /* "mlx" (the agent's own), "ollama" */
    uint64_t memory_bytes;
    double tokens_per_s; /* generated over the agent's last sample interval */
} registry_loaded;

/* Replaces the store list of node id with models[0..n) (a name given twice
 * keeps its last entry). MLX_ENOENT when the id has no row; on any failure
 * the previous list stays. */
int registry_set_store(registry *r, const char *id, const registry_stored *models,
                       size_t n, mlx_err *err);

/* Replaces the loaded models of node id with models[0..n) and records its
 * request load. MLX_ENOENT when the id has no row; on failure nothing
 * changes. */
int registry_set_loaded(registry *r, const char *id, const registry_loaded *models,
                        size_t n, uint32_t requests_running, uint32_t requests_queued,
                        mlx_err *err);

/* {"models":[{name, format, size_bytes, digest, architecture, parameters,
 *   quantization, nodes:[{id, name, state, stored, loaded, tokens_per_s,
 *   memory_bytes}]}]}: every model some node stores or has loaded (engine
 * "mlx"), by name; its nodes by name, then id. The model's own fields
 * come from a node that stores it ("" where none says).
 * *out: caller json_decref's. */
int registry_models_json(registry *r, json_t **out, mlx_err *err);

/* {"nodes":[{id, name, state, models:[{name, engine, memory_bytes,
 *   tokens_per_s}]}]}: the loaded models of every up or suspect node that
 * has any, by node name then id, models by name. *out: caller decrefs. */
int registry_ps_json(registry *r, json_t **out, mlx_err *err);

/* A node that stores or runs a model, for the router. Strings are borrowed
 * for the duration of the callback only. */
typedef struct registry_candidate {
    const char *node_id;
    const char *node_name;
    const char *address; /* the data-plane address to dial */
    const char *state;   /* "up", "suspect", "down", "left" */
    bool loaded;         /* as defined above: never true unless up or suspect */
    bool stored;         /* in the node's store (it can load it) */
    double tokens_per_s; /* of this model on that node; 0 when not loaded */
    uint32_t requests_running, requests_queued; /* the node's latest Load */
} registry_candidate;

/* Returns nonzero to stop; that value is then returned by
 * registry_candidates. Runs under the registry's lock: it must not call the
 * registry, and should only copy what it needs. */
typedef int (*registry_candidate_fn)(void *arg, const registry_candidate *c);

/* Calls fn for every node that stores or has loaded model, nodes of every
 * state (the caller decides what it dials), in order of preference: up
 * before suspect before the rest; within a state loaded before stored only;
 * then fewer requests running + queued; then id. 0 also when no node has it
 * (fn never called). */
int registry_candidates(registry *r, const char *model, registry_candidate_fn fn,
                        void *arg, mlx_err *err);

#endif
