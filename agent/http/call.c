/*
 * call.c — one generation from request to answer, for every API.
 *
 * The request goes to the runtime; the answer's status waits for the first
 * event, so a model that cannot be found or a prompt past the context is a
 * plain 404 or 400 even for a streamed request. Then either the whole
 * answer is gathered and written at once, or the response becomes a stream
 * that turns each event into the API's chunks as it comes.
 *
 * The body is read, and the answer's bytes written, by common/api (which
 * the coordinator shares): a call converts the api_request into the
 * runtime's request and each runtime event into an api_event.
 *
 * While it waits, a call looks every POLL_MS whether its client is still
 * there; one that went away cancels the generation, so its slot is free
 * before the next token.
 */
#include <stdio.h>
#include <string.h>

#include "agent/http/internal.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"

#define MOD "http"
#define POLL_MS 50
#define STREAM_CHUNK_MAX (4u << 20) /* one event's bytes; a token is far less */
#define WHOLE_TEXT_MAX (64u << 20)

/* What common/api and the runtime both bound must agree. */
_Static_assert(API_MAX_TOP_LOGPROBS == RUNTIME_MAX_TOP_LOGPROBS, "top_logprobs bound");
_Static_assert(API_MAX_PIECE >= ENGINE_MAX_PIECE, "a token's piece fits API_MAX_PIECE");

static api_call *call_new(agent_http *h, const api_spec *spec, const mlx_http_req *req)
{
    api_call *c = mlx_calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->h = h;
    c->spec = spec;
    c->conn = req->conn;
    c->created_s = mlx_time_wall_ms() / 1000;
    c->arrived_ns = mlx_time_mono_ns();
    c->status = 500;
    mlx_http_request_id(req, c->id, sizeof c->id);
    mlx_buf_init(&c->text, WHOLE_TEXT_MAX);
    mlx_buf_init(&c->out, STREAM_CHUNK_MAX);
    return c;
}

engine_sampling api_call_sampling(const api_sampling *s)
{
    return (engine_sampling){
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
}

/* c->req from c->api: the strings stay c->api's. */
static int to_runtime(api_call *c, mlx_err *err)
{
    const api_request *a = &c->api;
    c->msgs = mlx_calloc(a->n_messages + 1, sizeof *c->msgs);
    if (c->msgs == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    for (size_t i = 0; i < a->n_messages; i++)
        c->msgs[i] = (engine_msg){a->messages[i].role, a->messages[i].content};
    c->req = (runtime_request){
        .model = a->model,
        .prompt = a->prompt,
        .messages = c->msgs,
        .n_messages = a->n_messages,
        .as_user = a->as_user,
        .system = a->system,
        .sampling = api_call_sampling(&a->sampling),
        .max_tokens = a->max_tokens,
        .stops = a->stops,
        .n_stops = a->n_stops,
        .top_logprobs = a->top_logprobs,
        .keep_alive_ms = a->keep_alive_ms,
        .request_id = c->id,
    };
    return 0;
}

int api_call_parse(agent_http *h, const mlx_http_req *req, const api_spec *spec,
                   api_call **out, mlx_err *err)
{
    *out = NULL;
    api_call *c = call_new(h, spec, req);
    if (c == NULL)
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    int rc = api_request_parse(spec, req->body, req->body_len, &c->api, err);
    if (rc == 0)
        rc = to_runtime(c, err);
    /* The sampler's own limits (repeat_penalty above 0, …), refused here
     * with the request's other mistakes rather than when it is scheduled. */
    if (rc == 0)
        rc = engine_sampling_check(&c->req.sampling, err);
    if (rc != 0) {
        api_call_free(c);
        return rc;
    }
    api_answer_init(&c->answer, &c->api, c->id, c->created_s);
    *out = c;
    return 0;
}

api_call *api_call_read(agent_http *h, const mlx_http_req *req, mlx_http_resp *resp,
                        const api_spec *spec)
{
    if (h->cfg.rt == NULL) {
        api_error(resp, spec->kind, 503, "unavailable", "this agent serves no models");
        api_count(h, spec->endpoint, "", 503);
        return NULL;
    }
    api_call *c;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = api_call_parse(h, req, spec, &c, &err);
    if (rc != 0) {
        const char *code;
        int status = api_status_of(rc, &code);
        api_error(resp, spec->kind, status, code, "%s", mlx_err_text(&err, rc));
        api_count(h, spec->endpoint, "", status);
        return NULL;
    }
    return c;
}

void api_call_free(api_call *c)
{
    if (c == NULL)
        return;
    runtime_job_free(c->job);
    mlx_free(c->msgs);
    api_request_fini(&c->api);
    mlx_free(c->tokens);
    mlx_free(c->scratch);
    mlx_buf_fini(&c->text);
    mlx_buf_fini(&c->out);
    mlx_free(c);
}

void api_count(agent_http *h, const char *endpoint, const char *model, int status)
{
    if (h->cfg.inference != NULL)
        metrics_inference_request(h->cfg.inference, endpoint, model, status);
}

/* The call is over: counted and logged, once. */
static void record(api_call *c, const runtime_event *done)
{
    const char *model = c->started ? c->req.model : "";
    if (c->h->cfg.inference != NULL) {
        metrics_inference_request(c->h->cfg.inference, c->spec->endpoint, model, c->status);
        if (done != NULL)
            metrics_inference_generation(c->h->cfg.inference, model, done->prompt_tokens,
                                         (double)done->prompt_ns / 1e9,
                                         done->completion_tokens,
                                         (double)done->gen_ns / 1e9);
    }
    mlx_log_info(MOD, "request", "id=%s endpoint=%s model=\"%s\" status=%d ms=%lld", c->id,
                 c->spec->endpoint, c->req.model != NULL ? c->req.model : "", c->status,
                 (long long)((mlx_time_mono_ns() - c->arrived_ns) / 1000000));
}

/* The next event, looking after the client at each one and while none
 * comes: MLX_ECLOSED when it went away (the generation is then cancelled,
 * before its next token). */
static int next_event(api_call *c, runtime_event *ev)
{
    for (;;) {
        bool got = runtime_job_next(c->job, ev, POLL_MS) == 0;
        if (c->conn != NULL && mlx_http_client_gone(c->conn)) {
            runtime_job_cancel(c->job);
            return MLX_ECLOSED;
        }
        if (got)
            return 0;
    }
}

/* An error event (or a refusal) as the answer. */
static void answer_error(api_call *c, mlx_http_resp *resp, int code, const char *message)
{
    const char *word;
    c->status = api_status_of(code, &word);
    if (code == MLX_EBUSY || code == MLX_ECLOSED)
        mlx_http_resp_header(resp, "Retry-After", "1");
    api_error(resp, c->spec->kind, c->status, word, "%s", message);
}

/* Keeps a TEXT event's text and tokens for the whole answer. */
static int gather(api_call *c, const runtime_event *ev)
{
    if (mlx_buf_append(&c->text, ev->text, ev->len) != 0)
        return MLX_ETOOBIG;
    if (!c->api.logprobs || ev->n_tokens == 0)
        return 0;
    if (c->n_tokens + ev->n_tokens > c->cap_tokens) {
        size_t cap = c->cap_tokens * 2 + ev->n_tokens + 16;
        runtime_token *t = mlx_realloc(c->tokens, cap * sizeof *t);
        if (t == NULL)
            return MLX_ENOMEM;
        c->tokens = t;
        c->cap_tokens = cap;
    }
    memcpy(c->tokens + c->n_tokens, ev->tokens, ev->n_tokens * sizeof *ev->tokens);
    c->n_tokens += ev->n_tokens;
    return 0;
}

/* The runtime's tokens as api_tokens in c->scratch, borrowing their
 * pieces. MLX_ENOMEM. */
static int tokens_of(api_call *c, const runtime_token *tokens, size_t n)
{
    if (n > c->cap_scratch) {
        api_token *t = mlx_realloc(c->scratch, n * sizeof *t);
        if (t == NULL)
            return MLX_ENOMEM;
        c->scratch = t;
        c->cap_scratch = n;
    }
    for (size_t i = 0; i < n; i++) {
        const runtime_token *r = &tokens[i];
        api_token *t = &c->scratch[i];
        *t = (api_token){.text = r->text, .len = r->len, .logprob = r->logprob,
                         .n_top = r->n_top};
        size_t off = 0;
        for (size_t k = 0; k < r->n_top; k++) {
            t->top[k] = (api_alt){r->top_text + off, r->top_len[k], r->top[k].logprob};
            off += r->top_len[k];
        }
    }
    return 0;
}

/* A TEXT or DONE event of the runtime as common/api's; tokens in c->scratch. */
static int event_of(api_call *c, const runtime_event *ev, api_event *out)
{
    *out = (api_event){0};
    if (ev->kind == RUNTIME_TEXT) {
        out->kind = API_EVENT_TEXT;
        out->text = ev->text;
        out->len = ev->len;
        if (c->api.logprobs && ev->n_tokens > 0) {
            if (tokens_of(c, ev->tokens, ev->n_tokens) != 0)
                return MLX_ENOMEM;
            out->tokens = c->scratch;
            out->n_tokens = ev->n_tokens;
        }
        return 0;
    }
    out->kind = API_EVENT_DONE;
    out->finish_reason = ev->finish_reason;
    out->prompt_tokens = ev->prompt_tokens;
    out->completion_tokens = ev->completion_tokens;
    out->load_ns = ev->load_ns;
    out->prompt_eval_ns = ev->prompt_ns;
    out->eval_ns = ev->gen_ns;
    out->total_ns = ev->total_ns;
    return 0;
}

static void answer_whole(api_call *c, mlx_http_resp *resp)
{
    runtime_event ev;
    for (;;) {
        if (next_event(c, &ev) != 0) {
            c->status = 499;
            record(c, NULL);
            return;
        }
        if (ev.kind == RUNTIME_TEXT && gather(c, &ev) != 0) {
            runtime_job_cancel(c->job);
            answer_error(c, resp, MLX_ENOMEM, "the answer is too large to hold");
            record(c, NULL);
            return;
        }
        if (ev.kind == RUNTIME_ERROR) {
            answer_error(c, resp, ev.error, ev.message);
            record(c, NULL);
            return;
        }
        if (ev.kind == RUNTIME_DONE)
            break;
    }
    api_event done;
    event_of(c, &ev, &done);
    if (c->n_tokens > 0 && tokens_of(c, c->tokens, c->n_tokens) != 0) {
        answer_error(c, resp, MLX_ENOMEM, "out of memory");
        record(c, NULL);
        return;
    }
    c->status = 200;
    mlx_http_resp_json(resp, 200,
                       api_answer_whole(&c->answer, mlx_buf_str(&c->text), c->text.len,
                                        c->scratch, c->n_tokens, &done));
    record(c, &ev);
}

/* ---- streams ----------------------------------------------------------------- */

/* Turns the next event into bytes in c->out. Returns 0, or -1 to cut the
 * connection (the client went away, or out of memory). */
static int stream_fill(api_call *c)
{
    runtime_event ev;
    if (next_event(c, &ev) != 0)
        return -1;
    int rc = 0;
    api_event out;
    switch (ev.kind) {
    case RUNTIME_STARTED:
        break;
    case RUNTIME_TEXT:
        rc = event_of(c, &ev, &out);
        if (rc == 0)
            rc = api_write_chunk(&c->answer, &out, &c->out);
        break;
    case RUNTIME_DONE:
        c->ended = true;
        c->status = 200;
        event_of(c, &ev, &out);
        rc = api_write_end(&c->answer, &out, &c->out);
        record(c, &ev);
        break;
    case RUNTIME_ERROR:
        c->ended = true;
        api_event_error(&out, ev.error, ev.message);
        c->status = out.status;
        rc = api_write_fail(&c->answer, &out, &c->out);
        record(c, NULL);
        break;
    }
    return rc == 0 ? 0 : -1;
}

static long stream_read(void *arg, char *buf, size_t max)
{
    api_call *c = arg;
    while (c->out_pos == c->out.len) {
        if (c->ended)
            return 0;
        mlx_buf_reset(&c->out);
        c->out_pos = 0;
        if (stream_fill(c) != 0)
            return -1;
    }
    size_t n = c->out.len - c->out_pos;
    if (n > max)
        n = max;
    memcpy(buf, c->out.data + c->out_pos, n);
    c->out_pos += n;
    return (long)n;
}

static void stream_close(void *arg, bool completed)
{
    api_call *c = arg;
    if (!c->ended) { /* the client went away, or the stream broke */
        runtime_job_cancel(c->job);
        c->status = 499;
        record(c, NULL);
    }
    api_call_free(c);
}

void api_call_run(api_call *c, mlx_http_resp *resp)
{
    mlx_err err;
    mlx_err_clear(&err);
    mlx_http_resp_header(resp, "X-Request-Id", "%s", c->id);
    int rc = runtime_submit(c->h->cfg.rt, &c->req, &c->job, &err);
    if (rc != 0) {
        answer_error(c, resp, rc, mlx_err_text(&err, rc));
        record(c, NULL);
        api_call_free(c);
        return;
    }
    runtime_event ev;
    if (next_event(c, &ev) != 0) {
        c->status = 499;
        record(c, NULL);
        api_call_free(c);
        return;
    }
    if (ev.kind == RUNTIME_ERROR) {
        answer_error(c, resp, ev.error, ev.message);
        record(c, NULL);
        api_call_free(c);
        return;
    }
    c->started = true; /* STARTED: the model is there and the prompt fits */
    if (!c->api.stream) {
        answer_whole(c, resp);
        api_call_free(c);
        return;
    }
    resp->status = 200;
    resp->content_type = api_stream_type(c->spec->kind);
    mlx_http_resp_header(resp, "Cache-Control", "no-cache");
    resp->stream = (mlx_http_stream){.read = stream_read, .close = stream_close, .arg = c};
}
