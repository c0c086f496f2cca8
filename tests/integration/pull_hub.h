/*
 * pull_hub.h — the test side of mlx-test-hub (tests/support/hub_fixture.c)
 * and of the store a pull fills: starting the fixture on a free port, its
 * faults and counters, running `cache pull`, and checking every blob of a
 * data directory against its name.
 *
 * Failures end the test through cmocka (fail_msg); the fixture is a
 * registered process, killed at exit if a test dies first.
 */
#ifndef MLX_TESTS_PULL_HUB_H
#define MLX_TESTS_PULL_HUB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tests/integration/harness.h"

typedef struct hub {
    h_proc *proc;
    int port;
    char base[64]; /* http://127.0.0.1:PORT */
} hub;

/* Writes config to dir/hub.json and starts the fixture; waits until it
 * answers /healthz. */
void hub_start(hub *h, const char *dir, const char *config);
void hub_stop(hub *h);

/* GET base + path_and_query; fails the test unless it answers 200. */
void hub_get(const hub *h, const char *path_and_query);

/* Replaces the faults of blob: query such as "truncate=1000", or "" for none. */
void hub_fault(const hub *h, const char *blob, const char *query);
void hub_reset(const hub *h);

/* A counter of blob ("gets", "heads", "ranges", "bytes", "size"), or one of
 * the whole hub when blob is NULL ("auth_seen", "auth_localhost"). */
int64_t hub_count(const hub *h, const char *blob, const char *field);

/* The SHA-256 (hex) of blob as the fixture serves it; static storage. */
const char *hub_sha256(const hub *h, const char *blob);

/* Runs `mlx-agent cache pull SRC --data DATA --hf-endpoint … --ollama-registry …`
 * followed by extra (NULL-terminated, may be NULL). Returns the exit status;
 * out and err (caller frees) may be NULL. */
int hub_pull(const hub *h, const char *data, const char *src, const char *const *extra,
             char **out, char **err);

/* The argument vector of that command (static storage), for h_spawn. */
const char *const *hub_pull_args(const hub *h, const char *data, const char *src);

/* SHA-256 hex of a file into out (65 bytes); false when unreadable. */
bool file_sha256(const char *path, char out[65]);

/* Blobs under data/blobs/sha256 whose content does not hash to their name. */
int store_bad_blobs(const char *data, int *n_blobs);

/* The models of `cache status --json` (caller decrefs), or NULL. */
json_t *store_models(const char *data);

/* The model called name in models, or NULL (borrowed). */
json_t *store_model(json_t *models, const char *name);

/* Size of a file, -1 when absent. */
int64_t file_size(const char *path);

#endif
