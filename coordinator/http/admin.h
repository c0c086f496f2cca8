/*
 * admin.h — the coordinator's HTTP front (admin part).
 *
 *   GET    /healthz            {"status":"ok"} while the coordinator runs; open
 *   GET    /api/v1/nodes       every node the registry knows (registry_nodes_json)
 *   GET    /api/v1/models      every model some node stores or has loaded, with
 *                              its nodes: state, stored, loaded, tokens/s
 *                              (registry_models_json)
 *   GET    /api/v1/ps          the loaded models of each live node: engine,
 *                              memory, tokens/s (registry_ps_json)
 *   GET    /api/v1/requests    the generations relayed now, a fleet
 *                              benchmark's too (stats.h)
 *   GET    /metrics            the fleet from heartbeats and the
 *                              coordinator's own series (metrics.c)
 *   GET    /api/v1/keys        every API key, revoked ones too; never a secret
 *   POST   /api/v1/keys        {name, scope, models, rpm, tpm} → 201 with the
 *                              key, the only time it is shown; 400 for bad
 *                              input, 409 when an active key has the name
 *   DELETE /api/v1/keys/NAME   revokes the key: 200, or 404 when none is active
 *   POST   /api/v1/bench       {model, node?, max_tokens?} → {model, max_tokens,
 *                              results:[{node_id, node_name, status, prompts,
 *                              ttft_p50_ms, ttft_p95_ms, tokens_per_s_p50,
 *                              prompt_tokens_per_s, wall_ms, error?, …}]}: the
 *                              suite of common/suite.h on that node, or on each
 *                              up node holding the model in turn (bench.c); a
 *                              node's failure is its row's; 400 for bad input,
 *                              404 when no (such) up node holds the model
 *
 * Inference (infer.c, infer_stream.c), the agent's API served for the fleet:
 *
 *   POST   /v1/chat/completions, /v1/completions   OpenAI's, JSON or SSE
 *   POST   /api/generate, /api/chat                Ollama's, JSON or NDJSON
 *   GET    /v1/models, /api/tags                   every model of the fleet,
 *                                                  with the nodes that hold it
 *
 * Bodies are read and answers written by common/api, as the agent does, so
 * both refuse the same bodies with the same sentences; each generation is
 * run on a node by the relay (coordinator/relay). At most max_requests run
 * at once; more are answered 503 with Retry-After. The key's model pattern
 * applies to the model a request names, and its tokens are charged when
 * the generation ends.
 *
 * Access control (coordinator/auth): every endpoint but /healthz is
 * admitted by auth_check from the Authorization header and whether the
 * client is on loopback; the /api/v1/ endpoints need the admin scope. While
 * no key exists only loopback clients are admitted (bootstrap). Refusals are
 * the fleet's JSON errors: 401 (authentication_error, with
 * WWW-Authenticate: Bearer), 403 (permission_error), and 429
 * (rate_limit_error, with Retry-After) when the key's requests-per-minute
 * bucket is empty. Each admitted or refused request goes to the request log:
 * a generation's row is written when it ends, with its node and tokens
 * (ledger.c), and a fleet benchmark adds a row per generation it ran, under
 * its key, beside its own.
 *
 * Lifecycle: admin_start serves at once; admin_stop waits for requests in
 * progress. ctx and what it points to are borrowed and must outlive the
 * server.
 */
#ifndef MLX_COORDINATOR_HTTP_ADMIN_H
#define MLX_COORDINATOR_HTTP_ADMIN_H

#include "common/err.h"
#include "common/http_server.h"
#include "coordinator/auth/auth.h"
#include "coordinator/registry/registry.h"
#include "coordinator/relay/relay.h"
#include "coordinator/stats/stats.h"

typedef struct admin_ctx {
    registry *reg;
    auth *auth;
    relay *relay;            /* NULL: the generation endpoints answer 503 */
    fleet_stats *stats;      /* the ledger of generations (/metrics, requests) */
    uint32_t max_requests;   /* generations at once; 0: no limit */
    _Atomic uint32_t active; /* generations running now (infer.c, bench.c) */
} admin_ctx;

int admin_start(const char *hostport, const admin_ctx *ctx, mlx_http_server **out,
                mlx_err *err);
void admin_stop(mlx_http_server *srv);

#endif
