/*
 * infer.c — the coordinator's OpenAI and Ollama endpoints: each generation
 * read as the agent reads it, admitted by the key gate, and run on a node
 * by the relay. (The model lists are in models.c.)
 *
 * The body is read, and the answer written, by common/api, which the agent
 * shares: a client sees the same refusals, sentences and bytes whichever
 * of the two it talks to. A call converts the api_request into the data
 * plane's request (sampling always sent, with the API's defaults that the
 * reader applied, so an agent never substitutes its own) and the relay's
 * result into api_events.
 *
 * Order of checks: the body first (so the gate knows the model to hold
 * against the key's pattern), but a body that cannot be read is refused
 * only after the gate admitted the client, so a stranger learns nothing
 * but 401. Then the coordinator's own queue: at most max_requests
 * generations at once, beyond that 503 with Retry-After, before any node
 * is asked.
 *
 * Affinity: the request's own key (OpenAI's prompt_cache_key or user), else
 * the X-Session-Id header, keeps requests that share it on one node while
 * that node is eligible (router.h).
 *
 * A whole answer is gathered on the connection's thread (infer_whole.c); a
 * streamed one runs on a thread of its own (infer_stream.c). Ollama's request with
 * nothing to generate is a load (or unload) on the fleet (relay_load),
 * answered here too.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "coordinator/http/internal.h"

#define MOD "http"

/* What the data plane carries fits what common/api writes. */
_Static_assert(MLX_MAX_TOP_LOGPROBS == API_MAX_TOP_LOGPROBS, "top_logprobs bound");
_Static_assert(MLX_MAX_TOKEN_PIECE <= API_MAX_PIECE,
               "a token's piece fits API_MAX_PIECE");

/* ---- one call -------------------------------------------------------------- */

static infer_call *call_new(admin_ctx *ctx, const api_spec *spec, const mlx_http_req *req)
{
    infer_call *c = mlx_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->ctx = ctx;
    c->spec = spec;
    c->conn = req->conn;
    c->arrived_ms = mlx_time_mono_ms();
    c->ended = true; /* nothing to end until a slot is taken */
    mlx_http_request_id(req, c->id, sizeof c->id);
    return c;
}

void infer_call_free(infer_call *c)
{
    if (c == NULL)
        return;
    if (!c->ended)
        infer_call_end(c);
    mlx_free(c->msgs);
    api_request_fini(&c->api);
    mlx_free(c);
}

/* Ollama's keep_alive as the data plane says it: the API's -1 (the
 * server's) is the wire's 0, and the API's 0 (unload when done) its -1. */
static int64_t wire_keep_alive(int64_t api_ms)
{
    if (api_ms < 0)
        return 0;
    return api_ms == 0 ? -1 : api_ms;
}

/* c->dreq from c->api; the strings stay c->api's. */
static int to_wire(infer_call *c, mlx_err *err)
{
    const api_request *a = &c->api;
    if (a->n_messages > 0) {
        c->msgs = mlx_calloc(a->n_messages, sizeof *c->msgs);
        if (c->msgs == NULL)
            return mlx_err_set(err, MLX_ENOMEM, "out of memory");
        for (size_t i = 0; i < a->n_messages; i++)
            c->msgs[i] = (dpc_message){a->messages[i].role, a->messages[i].content};
    }
    const api_sampling *s = &a->sampling;
    c->sampling = (dpc_sampling){
        .temperature = s->temperature,
        .top_k = s->top_k,
        .top_p = s->top_p,
        .min_p = s->min_p,
        .repeat_penalty = s->repeat_penalty,
        .repeat_last_n = s->repeat_last_n,
        .presence_penalty = s->presence_penalty,
        .frequency_penalty = s->frequency_penalty,
        .seed = s->seed,
    };
    c->dreq = (dpc_request){
        .request_id = c->id,
        .model = a->model,
        .prompt = a->chat ? NULL : a->prompt,
        .messages = c->msgs,
        .n_messages = a->n_messages,
        .as_user = a->as_user,
        .system = a->system,
        /* The API's -1 (and Ollama's -2, fill the context) is the wire's
         * 0: until the model stops or the context ends. */
        .max_tokens = a->max_tokens < 0 ? 0 : a->max_tokens,
        .sampling = &c->sampling,
        .stops = (const char *const *)a->stops,
        .n_stops = a->n_stops,
        .keep_alive_ms = wire_keep_alive(a->keep_alive_ms),
        .whole = !a->stream,
        .top_logprobs = a->top_logprobs,
    };
    return 0;
}

int infer_tokens_of(const dpc_token *tokens, size_t n, api_token **scratch, size_t *cap)
{
    if (n > *cap) {
        api_token *t = mlx_realloc(*scratch, n * sizeof *t);
        if (t == NULL)
            return MLX_ENOMEM;
        *scratch = t;
        *cap = n;
    }
    for (size_t i = 0; i < n; i++) {
        const dpc_token *d = &tokens[i];
        api_token *t = &(*scratch)[i];
        *t = (api_token){
            .text = d->text, .len = d->len, .logprob = d->logprob, .n_top = d->n_top};
        for (size_t k = 0; k < d->n_top; k++)
            t->top[k] = (api_alt){d->top[k].text, d->top[k].len, d->top[k].logprob};
    }
    return 0;
}

void infer_done_event(const infer_call *c, api_event *out)
{
    const dpc_chunk *e = &c->res.end;
    *out = (api_event){
        .kind = API_EVENT_DONE,
        .finish_reason = e->finish_reason[0] != '\0' ? e->finish_reason : "stop",
        .prompt_tokens = e->prompt_tokens,
        .completion_tokens = e->completion_tokens,
        .load_ns = e->load_ns,
        .prompt_eval_ns = e->prompt_eval_ns,
        .eval_ns = e->eval_ns,
        .total_ns = e->total_ns,
    };
}

int infer_failure(const infer_call *c, const char **code, const char **message)
{
    int status = c->res.status;
    *message = c->res.err.msg[0] != '\0' ? c->res.err.msg : "the generation failed";
    switch (status) {
    case 404:
        *code = "model_not_found";
        break;
    case 502:
        *code = "node_failed";
        break;
    case 503:
        *code = "unavailable";
        break;
    case 504:
        *code = "timeout";
        break;
    default:
        /* The node's own refusal: its code says which. */
        api_status_of(c->res.err.code, code);
        break;
    }
    return status;
}

void infer_answer_failure(infer_call *c, mlx_http_resp *resp)
{
    const char *code, *message;
    int status = infer_failure(c, &code, &message);
    if (status == 503)
        mlx_http_resp_header(resp, "Retry-After", "1");
    api_error(resp, c->spec->kind, status, code, "%s", message);
}

void infer_call_end(infer_call *c)
{
    if (c->ended)
        return;
    c->ended = true;
    admin_slot_give(c->ctx);
    ledger_end(c->ctx, &c->flight, &c->res);
    mlx_log_info(MOD, "generation",
                 "id=%s endpoint=%s model=\"%s\" node=%s attempts=%d status=%d "
                 "prompt_tokens=%u completion_tokens=%u ms=%lld",
                 c->id, c->spec->endpoint, c->api.model,
                 c->res.node_id[0] ? c->res.node_id : "-", c->res.attempts, c->res.status,
                 c->res.end.prompt_tokens, c->res.end.completion_tokens,
                 (long long)(mlx_time_mono_ms() - c->arrived_ms));
}

bool admin_slot_take(admin_ctx *ctx)
{
    uint32_t before = atomic_fetch_add(&ctx->active, 1);
    if (ctx->max_requests > 0 && before >= ctx->max_requests) {
        atomic_fetch_sub(&ctx->active, 1);
        return false;
    }
    return true;
}

void admin_slot_give(admin_ctx *ctx)
{
    atomic_fetch_sub(&ctx->active, 1);
}

/* Takes a slot for c: false when all are taken. */
static bool take_slot(infer_call *c)
{
    if (!admin_slot_take(c->ctx))
        return false;
    c->slot = true;
    c->ended = false;
    stats_flight_begin(c->ctx->stats, &c->flight, c->id, c->spec->endpoint, c->api.model,
                       c->key_name, c->api.stream);
    return true;
}

void infer_relay(infer_call *c, const relay_sink *sink)
{
    ledger_relay(c->ctx, &c->flight, &c->dreq,
                 &(relay_route){.affinity_key = c->affinity}, sink, &c->res);
}

/* ---- the endpoints --------------------------------------------------------- */

/* Ollama's request that only loads (or unloads) its model: the relay loads
 * it where a generation of it would go (or unloads it wherever it is
 * loaded), and the answer is the agent's. It holds a slot (taken) and is
 * in the ledger like a generation: a load can take as long as one. */
static void load_only(infer_call *c, mlx_http_resp *resp)
{
    int64_t keep_alive = wire_keep_alive(c->api.keep_alive_ms);
    relay_load_result lr;
    relay_load(c->ctx->relay, c->api.model, keep_alive,
               &(relay_route){.affinity_key = c->affinity}, &lr);
    c->res.status = lr.status;
    c->res.err = lr.err;
    c->res.attempts = lr.attempts;
    snprintf(c->res.node_id, sizeof c->res.node_id, "%s", lr.node_id);
    if (lr.status == 200)
        mlx_http_resp_json(resp, 200,
                           api_answer_load(&c->answer,
                                           keep_alive == -1 ? "unload" : "load",
                                           lr.load_ns));
    else
        infer_answer_failure(c, resp);
    infer_call_end(c);
}

/* After the gate admitted the client: the body's verdict, the queue, then
 * the generation. */
struct admission {
    infer_call *c;
    bool taken;      /* a stream took c: it may be freed already */
    bool generation; /* c took a slot: ledger_end writes its log row */
};

static void admitted(const admin_ctx *ctx, const mlx_http_req *req, const auth_result *ar,
                     mlx_http_resp *resp, void *arg)
{
    struct admission *adm = arg;
    infer_call *c = adm->c;
    snprintf(c->key_name, sizeof c->key_name, "%s", ar->key_name);
    mlx_http_resp_header(resp, "X-Request-Id", "%s", c->id);
    if (c->ctx->relay == NULL) {
        api_error(
            resp, c->spec->kind, 503, "unavailable",
            "this coordinator relays no generations; try again once it has started");
        return;
    }
    bool nothing = c->api.chat ? c->api.n_messages == 0
                               : c->api.prompt == NULL || c->api.prompt[0] == '\0';
    if (!take_slot(c)) {
        mlx_http_resp_header(resp, "Retry-After", "1");
        api_error(resp, c->spec->kind, 503, "overloaded",
                  "the coordinator is running %u generations, its limit "
                  "(--max-requests); try again shortly",
                  (unsigned)c->ctx->max_requests);
        return;
    }
    adm->generation = true;
    if (c->spec->kind == API_OLLAMA && nothing) {
        load_only(c, resp);
        return;
    }
    if (c->api.stream) {
        adm->taken = true; /* the stream outlives this handler */
        infer_stream_run(c, resp);
        return;
    }
    infer_whole_run(c, resp);
}

/* The gate admitted the client, but the body cannot be read. */
static void refuse_body(const admin_ctx *ctx, const mlx_http_req *req,
                        const auth_result *ar, mlx_http_resp *resp, void *arg)
{
    const infer_call *c = ((const struct admission *)arg)->c;
    const mlx_err *err = &c->res.err;
    const char *code;
    int status = api_status_of(err->code, &code);
    api_error(resp, c->spec->kind, status, code, "%s", err->msg);
}

static void serve(void *vctx, const mlx_http_req *req, mlx_http_resp *resp,
                  const api_spec *spec)
{
    admin_ctx *ctx = vctx;
    infer_call *c = call_new(ctx, spec, req);
    if (c == NULL) {
        api_error(resp, spec->kind, 507, "insufficient_memory", "out of memory");
        return;
    }
    mlx_err err;
    mlx_err_clear(&err);
    int rc = api_request_parse(spec, req->body, req->body_len, &c->api, &err);
    if (rc == 0)
        rc = to_wire(c, &err);
    struct admission adm = {c, false, false};
    admin_gate g = {.admin_endpoint = false,
                    .errors = spec->kind,
                    .fn = admitted,
                    .arg = &adm,
                    .logged_by_generation = &adm.generation};
    /* The gate logs the model after fn, when a stream may have freed c. */
    char model[MLX_MAX_MODEL_NAME + 1];
    if (rc != 0) {
        c->res.err = err;
        c->res.err.code = rc;
        g.fn = refuse_body;
    } else {
        snprintf(model, sizeof model, "%s", c->api.model);
        g.model = model;
        api_answer_init(&c->answer, &c->api, c->id, mlx_time_wall_ms() / 1000);
        const char *session =
            req->conn != NULL ? mlx_http_header(req, "X-Session-Id") : NULL;
        const char *key = c->api.affinity != NULL ? c->api.affinity : session;
        if (key != NULL)
            snprintf(c->affinity, sizeof c->affinity, "%s", key);
    }
    admin_gate_run(ctx, req, resp, &g);
    /* A generation is counted when it ends; a request refused before it
     * became one (key, queue, body) here. */
    if (!adm.taken && !c->slot)
        stats_count(ctx->stats, g.model, resp->status);
    if (!adm.taken)
        infer_call_free(c);
}

void infer_openai_chat(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    serve(ctx, req, resp, &api_openai_chat);
}

void infer_openai_completions(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    serve(ctx, req, resp, &api_openai_completions);
}

void infer_ollama_generate(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    serve(ctx, req, resp, &api_ollama_generate);
}

void infer_ollama_chat(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    serve(ctx, req, resp, &api_ollama_chat);
}
