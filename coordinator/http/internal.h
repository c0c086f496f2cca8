/*
 * internal.h — shared by the files of coordinator/http, not part of its
 * interface: the admission gate every handler but /healthz goes through,
 * the key endpoints (keys.c), the inference endpoints (infer.c) and the
 * fleet's benchmark (bench.c) that admin.c routes to, one generation in
 * flight (infer.c, infer_whole.c, infer_stream.c), and the books every generation is kept
 * in, a client's or the benchmark's (ledger.c).
 */
#ifndef MLX_COORDINATOR_HTTP_INTERNAL_H
#define MLX_COORDINATOR_HTTP_INTERNAL_H

#include "common/api/api.h"
#include "coordinator/http/admin.h"

/* The part of a handler that runs once the request is admitted; ar is the
 * admission (the key, its scope and model pattern). */
typedef void (*admin_inner)(const admin_ctx *c, const mlx_http_req *req,
                            const auth_result *ar, mlx_http_resp *resp);

/* Runs fn if auth_check admits the request and the key's request bucket has
 * room; otherwise answers 401, 403, 429 or 500. Logs the request either way. */
void admin_gated(void *ctx, const mlx_http_req *req, mlx_http_resp *resp,
                 bool admin_endpoint, admin_inner fn);

/* The gate with what an inference endpoint adds: the model the request
 * names (the key's pattern must admit it), refusals in the endpoint's
 * API's error shape, and an argument for fn. */
typedef struct admin_gate {
    bool admin_endpoint;
    const char *model; /* NULL: the request names none */
    api_kind errors;   /* API_OPENAI: the fleet's shape, which is OpenAI's */
    void (*fn)(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
               mlx_http_resp *resp, void *arg);
    void *arg;
    const char *request_id; /* NULL: the log's row names none */
    /* NULL, or a flag fn sets once the request became a generation: the
     * generation writes the request's row when it ends (ledger_end), with
     * its node and tokens, so the gate writes none. */
    const bool *logged_by_generation;
} admin_gate;

void admin_gate_run(void *ctx, const mlx_http_req *req, mlx_http_resp *resp,
                    const admin_gate *g);

/* ---- inference (infer.c) ------------------------------------------------- */

/* Takes one of the coordinator's max_requests generation slots: false when
 * all are taken (answer 503). Each slot taken is given back once. */
bool admin_slot_take(admin_ctx *ctx);
void admin_slot_give(admin_ctx *ctx);

void infer_openai_chat(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void infer_openai_completions(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void infer_ollama_generate(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void infer_ollama_chat(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);

/* ---- what clients ask about models (models.c) ---------------------------- */

void infer_openai_models(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void infer_ollama_tags(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void info_ollama_ps(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void info_ollama_show(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void info_ollama_version(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);

/* One generation on its way through the front: the request as read, as
 * the data plane carries it, and the answer being written. */
typedef struct infer_call {
    admin_ctx *ctx; /* borrowed; active counts this call until infer_call_end */
    const api_spec *spec;
    struct MHD_Connection *conn; /* valid until the response is over */
    api_request api;
    api_answer answer;
    dpc_request dreq;  /* borrows from api, msgs and sampling */
    dpc_message *msgs; /* owned */
    dpc_sampling sampling;
    char id[MLX_MAX_REQUEST_ID + 1];
    char affinity[MLX_MAX_REQUEST_ID * 2 + 1]; /* "" for none */
    char key_name[AUTH_MAX_KEY_NAME + 1];      /* "" for a bootstrap request */
    int64_t arrived_ms;                        /* monotonic */
    relay_result res;                          /* once relay_run returned */
    stats_flight flight; /* in the ledger from the slot to infer_call_end */
    bool slot;           /* a slot was taken (whatever happened next) */
    bool ended;          /* infer_call_end ran, or no slot was taken */
} infer_call;

/* Runs c's generation with the relay into sink, telling the ledger which
 * node accepted it and when text came (ledger_relay). */
void infer_relay(infer_call *c, const relay_sink *sink);

/* The data plane's tokens as common/api's, in *scratch (grown to *cap as
 * needed; caller frees), borrowing their pieces. MLX_ENOMEM. */
int infer_tokens_of(const dpc_token *tokens, size_t n, api_token **scratch, size_t *cap);

/* The relay's end as an api_event (DONE with usage and timings). */
void infer_done_event(const infer_call *c, api_event *out);

/* The relay's failure (c->res) as its HTTP status, error code word and
 * sentence. */
int infer_failure(const infer_call *c, const char **code, const char **message);

/* The generation is over: the slot given back, the generation in the
 * books (ledger_end), the request logged. Once per call; the response is
 * not touched. */
void infer_call_end(infer_call *c);
void infer_call_free(infer_call *c);

/* ---- one generation in the books (ledger.c) ------------------------------ */

/* Every generation the front relays, a client's (infer.c) or a prompt of
 * the fleet's benchmark (bench.c), goes through the same steps:
 *   1. stats_flight_begin once it holds a slot: GET /api/v1/requests lists
 *      it from then on, under its endpoint ("/api/v1/bench" for the
 *      benchmark's);
 *   2. ledger_relay runs it: the relay with the ledger told which node
 *      accepted it and when its first text came (the flight's node, the
 *      routing and time-to-first-token histograms);
 *   3. ledger_end once it is over: its tokens charged to the flight's key,
 *      the flight counted by model, node and status
 *      (mlx_coordinator_requests_total, retries, failovers), and one row in
 *      the request log under that key, with its node, tokens and latency.
 * f is the caller's from 1 to 3 (stats.h); ctx->relay must not be NULL. */
void ledger_relay(admin_ctx *ctx, stats_flight *f, const dpc_request *req,
                  const relay_route *route, const relay_sink *sink, relay_result *res);
void ledger_end(admin_ctx *ctx, stats_flight *f, const relay_result *res);

/* The relay's failure as the answer, in the API's shape (Retry-After with
 * a 503). */
void infer_answer_failure(infer_call *c, mlx_http_resp *resp);

/* ---- whole answers (infer_whole.c) --------------------------------------- */

/* Runs c's generation and answers it in one piece; ends c's call (not
 * freed). */
void infer_whole_run(infer_call *c, mlx_http_resp *resp);

/* ---- streams (infer_stream.c) ------------------------------------------- */

/* Runs c's generation on a thread of its own and answers: a plain error
 * when it fails before any text, else a stream of the API's chunks. Takes
 * c in every case. */
void infer_stream_run(infer_call *c, mlx_http_resp *resp);

/* ---- the fleet's figures (metrics.c) -------------------------------------- */

void metrics_get(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void requests_get(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);

/* ---- the fleet's benchmark (bench.c) ------------------------------------- */

/* POST /api/v1/bench: the suite on one node or every up node holding a
 * model (admin.h). */
void bench_post(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);

void keys_list(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
               mlx_http_resp *resp);
void keys_create(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                 mlx_http_resp *resp);
void keys_revoke(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                 mlx_http_resp *resp);

/* The prefix of DELETE /api/v1/keys/NAME. */
#define ADMIN_KEYS_PATH "/api/v1/keys"

#endif
