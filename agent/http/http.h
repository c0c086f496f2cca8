/*
 * http.h — the agent's local HTTP API.
 *
 * Serves, on --http (loopback by default):
 *   GET  /healthz               liveness and the node id
 *   GET  /metrics               Prometheus text: the node and its models
 *   GET  /blobs/sha256/<hex>    a blob of the store, with Range, for peers
 *   HEAD /blobs/sha256/<hex>    its size, without the bytes
 * and, when a runtime serves models:
 *   GET  /v1/models, POST /v1/chat/completions, POST /v1/completions
 *        OpenAI's API: JSON answers, or Server-Sent Events with "stream"
 *   GET  /api/tags, GET /api/ps, POST /api/show, GET /api/version,
 *   POST /api/generate, POST /api/chat
 *        Ollama's API: JSON answers, or NDJSON streams (its default)
 * Errors are JSON: {"error":{"message","type","code"}} on the OpenAI and
 * fleet endpoints, {"error":"message"} on Ollama's, since that is what
 * Ollama's clients read.
 *
 * Lifecycle: agent_http_start binds and serves at once; agent_http_stop
 * waits for requests in progress and frees. What the config borrows must
 * outlive the server.
 * Thread safety: requests are served concurrently on their own threads.
 */
#ifndef MLX_AGENT_HTTP_H
#define MLX_AGENT_HTTP_H

#include <stddef.h>

#include "agent/metrics/metrics.h"
#include "agent/runtime/runtime.h"
#include "common/err.h"

typedef struct agent_http agent_http;

typedef struct agent_http_config {
    const char *hostport;     /* --http */
    const char *data_dir;     /* the store's blobs live under it */
    const char *node_id;      /* borrowed */
    const char *node_name;    /* borrowed; a label on every node series */
    metrics_sampler *sampler; /* borrowed */
    size_t max_body;          /* request bodies above this get 413 */
    runtime *rt;              /* borrowed; NULL: no model endpoints */
    metrics_inference *inference; /* borrowed; may be NULL */
} agent_http_config;

int agent_http_start(const agent_http_config *cfg, agent_http **out, mlx_err *err);
void agent_http_stop(agent_http *h);

#endif
