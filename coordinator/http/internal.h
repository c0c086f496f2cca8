/*
 * internal.h — shared by the files of coordinator/http, not part of its
 * interface: the admission gate every handler but /healthz goes through,
 * the key endpoints (keys.c), the inference endpoints (infer.c) and the
 * fleet's benchmark (bench.c) that admin.c routes to, and one generation in
 * flight (infer.c, infer_stream.c).
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
 * node accepted it and when text came. */
void infer_relay(infer_call *c, const relay_sink *sink);

/* The data plane's tokens as common/api's, in *scratch (grown to *cap as
 * needed; caller frees), borrowing their pieces. MLX_ENOMEM. */
int infer_tokens_of(const dpc_token *tokens, size_t n, api_token **scratch, size_t *cap);

/* The relay's end as an api_event (DONE with usage and timings). */
void infer_done_event(const infer_call *c, api_event *out);

/* The relay's failure (c->res) as its HTTP status, error code word and
 * sentence. */
int infer_failure(const infer_call *c, const char **code, const char **message);

/* The generation is over: tokens charged to the key, the slot given back,
 * the request logged. Once per call; the response is not touched. */
void infer_call_end(infer_call *c);
void infer_call_free(infer_call *c);

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
