/*
 * fuzz_api_request.c — the generation endpoints' reading of a request body
 * (api_call_parse for /v1/chat/completions, /v1/completions, /api/generate
 * and /api/chat), with no runtime and no network.
 *
 * A body that is accepted must give a request the runtime would take as it
 * is: a model named, a prompt or messages (as the body holds them, in
 * order), at most 16 stop strings, every sampling value within the range
 * the API documents and within what the sampler accepts, log probabilities
 * only when asked for. A body that is refused must be refused with a
 * sentence that can travel in the JSON error answer (valid UTF-8), and the
 * answer the server writes for it must be a 400 carrying that sentence.
 * Under an allocation failure the parse must either succeed untouched or
 * fail with MLX_ENOMEM where it would otherwise have succeeded; ASan checks
 * that nothing leaks on any path.
 *
 * Input: one byte choosing the endpoint (its value mod 4: OpenAI chat,
 * OpenAI completions, Ollama generate, Ollama chat); from 0x80 up it also
 * makes allocations fail after (byte - 0x80) / 4 successful ones, in a
 * second parse of the same body. The rest is the body.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/http/internal.h"
#include "common/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const api_call_spec *const specs[4] = {&api_openai_chat, &api_openai_completions,
                                              &api_ollama_generate, &api_ollama_chat};

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_api_request: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

static void within(const char *what, double v, double min, double max)
{
    if (!(v >= min && v <= max))
        fail("%s is %g, outside %g..%g", what, v, min, max);
}

/* The text of a message's content as the body gives it: a string, null
 * (""), or text parts joined. NULL when it is none of these. */
static char *content_of(const json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_null(v))
        return strdup("");
    if (!json_is_array(v))
        return NULL;
    size_t len = 0, i;
    const json_t *part;
    json_array_foreach(v, i, part) len += strlen(json_string_value(json_object_get(part, "text")));
    char *s = calloc(1, len + 1);
    size_t at = 0;
    json_array_foreach(v, i, part)
    {
        const char *t = json_string_value(json_object_get(part, "text"));
        memcpy(s + at, t, strlen(t));
        at += strlen(t);
    }
    return s;
}

/* The messages went to the request one for one, roles mapped
 * (developer → system), contents as given. */
static void check_messages(const api_call *c)
{
    const json_t *messages = json_object_get(c->body, "messages");
    if (messages == NULL || json_is_null(messages)) {
        if (c->req.n_messages != 0)
            fail("%zu messages from a body without any", c->req.n_messages);
        return;
    }
    if (c->req.n_messages != json_array_size(messages))
        fail("%zu messages read of %zu", c->req.n_messages, json_array_size(messages));
    for (size_t i = 0; i < c->req.n_messages; i++) {
        const json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *want = role != NULL && strcmp(role, "developer") == 0 ? "system" : role;
        const engine_msg *got = &c->req.messages[i];
        if (want == NULL || got->role == NULL || strcmp(got->role, want) != 0)
            fail("message %zu has role '%s', the body '%s'", i, got->role ? got->role : "(null)",
                 role ? role : "(none)");
        if (strcmp(want, "system") != 0 && strcmp(want, "user") != 0 &&
            strcmp(want, "assistant") != 0)
            fail("message %zu has role '%s'", i, want);
        char *text = content_of(json_object_get(m, "content"));
        if (text == NULL || got->content == NULL || strcmp(text, got->content) != 0)
            fail("message %zu's content differs from the body's", i);
        free(text);
    }
}

/* The stop strings are the body's, at most 16, none empty. */
static void check_stops(const api_call *c, const json_t *stop)
{
    if (c->req.n_stops > API_MAX_STOPS)
        fail("%zu stop strings", c->req.n_stops);
    size_t want = stop == NULL || json_is_null(stop) ? 0
                  : json_is_string(stop)              ? 1
                                                      : json_array_size(stop);
    if (c->req.n_stops != want)
        fail("%zu stop strings read of %zu", c->req.n_stops, want);
    for (size_t i = 0; i < c->req.n_stops; i++) {
        const json_t *s = json_is_string(stop) ? stop : json_array_get(stop, i);
        if (c->req.stops == NULL || c->req.stops[i] == NULL || c->req.stops[i][0] == '\0' ||
            strcmp(c->req.stops[i], json_string_value(s)) != 0)
            fail("stop string %zu differs from the body's", i);
    }
}

/* What runtime_submit checks before it takes a request (runtime.c's
 * check_request): a body the parser accepts must pass it, or the client
 * gets a refusal the parser should have given, naming the field. */
static void check_runtime_takes(const api_call *c, bool generates)
{
    const runtime_request *r = &c->req;
    if (r->model == NULL || r->model[0] == '\0')
        fail("accepted with no model named");
    if (!generates)
        return;
    if ((r->prompt == NULL) == (r->n_messages == 0))
        fail("accepted with %s", r->prompt == NULL ? "neither prompt nor messages"
                                                   : "both prompt and messages");
    if (r->max_tokens < -1)
        fail("max_tokens %d", (int)r->max_tokens);
    engine_sampler *smp = NULL;
    engine_stop *stop = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (engine_sampler_new(&r->sampling, 1, &smp, &err) != 0)
        fail("accepted, then the sampler refuses it: %s", err.msg);
    if (engine_stop_new(r->stops, r->n_stops, &stop, &err) != 0)
        fail("accepted, then the stop matcher refuses it: %s", err.msg);
    engine_sampler_free(smp);
    engine_stop_free(stop);
}

static void check_openai(const api_call *c, const api_call_spec *spec)
{
    const engine_sampling *s = &c->req.sampling;
    const json_t *o = c->body;
    within("temperature", s->temperature, 0, 2);
    within("top_p", s->top_p, 0, 1);
    within("min_p", s->min_p, 0, 1);
    within("presence_penalty", s->presence_penalty, -2, 2);
    within("frequency_penalty", s->frequency_penalty, -2, 2);
    within("repeat_penalty", s->repeat_penalty, 0, 10);
    within("top_k", s->top_k, 0, 100000);
    if (c->req.max_tokens != -1 && c->req.max_tokens < 1)
        fail("max_tokens %d", (int)c->req.max_tokens);
    within("top_logprobs", c->req.top_logprobs, -1, spec->chat ? 20 : 5);
    if (!c->want_logprobs && c->req.top_logprobs != 0)
        fail("top_logprobs %d without logprobs", (int)c->req.top_logprobs);
    if (c->req.keep_alive_ms != -1)
        fail("keep_alive_ms %lld from OpenAI's API", (long long)c->req.keep_alive_ms);
    check_stops(c, json_object_get(o, "stop"));
    if (spec->chat) {
        if (c->req.prompt != NULL || c->req.n_messages == 0)
            fail("a chat with a prompt or no messages");
        check_messages(c);
    } else {
        const json_t *p = json_object_get(o, "prompt");
        if (json_is_array(p))
            p = json_array_get(p, 0);
        if (c->req.prompt == NULL || c->req.n_messages != 0 ||
            strcmp(c->req.prompt, json_string_value(p)) != 0)
            fail("the prompt differs from the body's");
    }
    check_runtime_takes(c, true);
}

static void check_ollama(const api_call *c, const api_call_spec *spec)
{
    const engine_sampling *s = &c->req.sampling;
    const json_t *options = json_object_get(c->body, "options");
    if (c->req.model == NULL || c->req.model[0] == '\0')
        fail("accepted with an empty model");
    within("temperature", s->temperature, 0, 100);
    within("top_p", s->top_p, 0, 1);
    within("min_p", s->min_p, 0, 1);
    within("presence_penalty", s->presence_penalty, -2, 2);
    within("frequency_penalty", s->frequency_penalty, -2, 2);
    within("repeat_penalty", s->repeat_penalty, 0, 10);
    within("repeat_last_n", s->repeat_last_n, 0, 1 << 20);
    within("top_k", s->top_k, 0, 100000);
    if (c->req.max_tokens < -1)
        fail("max_tokens %d", (int)c->req.max_tokens);
    if (c->req.top_logprobs != 0 || c->want_logprobs || c->include_usage)
        fail("OpenAI's settings from Ollama's API");
    /* -1: the runtime's; else at most what "forever" (a negative
     * keep_alive) becomes, so that the runtime's sums of times in ms never
     * overflow. */
    if (c->req.keep_alive_ms < -1 || c->req.keep_alive_ms > INT64_MAX / 4)
        fail("keep_alive_ms %lld", (long long)c->req.keep_alive_ms);
    check_stops(c, json_is_object(options) ? json_object_get(options, "stop") : NULL);
    bool generates;
    if (spec->chat) {
        if (c->req.prompt != NULL)
            fail("a chat with a prompt");
        check_messages(c);
        generates = c->req.n_messages > 0;
    } else {
        if (c->req.n_messages != 0)
            fail("a generate with messages");
        const json_t *p = json_object_get(c->body, "prompt");
        if ((c->req.prompt == NULL) != (p == NULL || json_is_null(p)) ||
            (c->req.prompt != NULL && strcmp(c->req.prompt, json_string_value(p)) != 0))
            fail("the prompt differs from the body's");
        generates = c->req.prompt != NULL && c->req.prompt[0] != '\0';
    }
    check_runtime_takes(c, generates); /* with nothing to generate: a load only */
}

/* The sentence can go into a JSON string, as every error answer puts it. */
static void check_sentence(const mlx_err *err, int rc)
{
    if (err->msg[0] == '\0')
        fail("refused (%d) without a sentence", rc);
    json_t *s = json_string(err->msg);
    if (s == NULL)
        fail("the sentence is not valid UTF-8: %s", err->msg);
    json_decref(s);
}

/* The answer the server writes for a refused body: 400, with the sentence. */
static void check_answer(const mlx_http_req *req, const api_call_spec *spec, const mlx_err *err)
{
    static int dummy;
    agent_http h;
    memset(&h, 0, sizeof h);
    h.cfg.rt = (runtime *)(void *)&dummy; /* never reached: the body is refused first */
    mlx_http_resp resp;
    memset(&resp, 0, sizeof resp);
    if (api_call_read(&h, req, &resp, spec) != NULL)
        fail("api_call_read took what api_call_parse refused");
    json_t *v = resp.body != NULL ? json_loads(resp.body, 0, NULL) : NULL;
    json_t *e = json_object_get(v, "error");
    const char *message = json_string_value(spec->kind == API_OLLAMA
                                                ? e
                                                : json_object_get(e, "message"));
    if (resp.status != 400 || message == NULL || strcmp(message, err->msg) != 0)
        fail("refused with \"%s\", answered %d %s", err->msg, resp.status,
             resp.body != NULL ? resp.body : "(no body)");
    json_decref(v);
    mlx_free(resp.body);
}

/* A refusal: *out left NULL, a code the parse may give, a sentence. */
static void check_refusal(const api_call *c, int rc, const mlx_err *err)
{
    if (c != NULL)
        fail("refused, yet *out is set");
    if (rc != MLX_EINVAL && rc != MLX_ENOMEM)
        fail("refused with %s: %s", mlx_errname(rc), err->msg);
    check_sentence(err, rc);
}

/* The whole check of one body; returns the parse's rc. */
static int check_body(const mlx_http_req *req, const api_call_spec *spec)
{
    static api_call sentinel; /* *out must be reset on failure */
    agent_http h;
    memset(&h, 0, sizeof h);
    api_call *c = &sentinel;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = api_call_parse(&h, req, spec, &c, &err);
    if (rc != 0) {
        check_refusal(c, rc, &err);
        if (rc == MLX_EINVAL)
            check_answer(req, spec, &err);
        return rc;
    }
    if (c == NULL || c == &sentinel || c->req.model == NULL || c->body == NULL ||
        c->kind != spec->kind || c->chat != spec->chat)
        fail("accepted into an incomplete call");
    if (spec->kind == API_OPENAI)
        check_openai(c, spec);
    else
        check_ollama(c, spec);
    api_call_free(c);
    return 0;
}

/* The same body with allocations failing after `after` successful ones:
 * either untouched, or MLX_ENOMEM, or the refusal it gets anyway. */
static void check_injected(const mlx_http_req *req, const api_call_spec *spec, int rc,
                           long after)
{
    agent_http h;
    memset(&h, 0, sizeof h);
    api_call *c = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    unsigned long before = mlx_alloc_failures();
    mlx_alloc_fail_after(after);
    int injected = api_call_parse(&h, req, spec, &c, &err);
    mlx_alloc_fail_reset();
    bool failed = mlx_alloc_failures() != before;
    if (injected == 0) {
        if (failed)
            fail("accepted although an allocation failed");
        api_call_free(c);
        return;
    }
    check_refusal(c, injected, &err);
    if (injected == MLX_ENOMEM && !failed)
        fail("ENOMEM with no allocation failed: %s", err.msg);
    if (injected != MLX_ENOMEM && injected != rc)
        fail("%s under an allocation failure, %s without: %s", mlx_errname(injected),
             mlx_errname(rc), err.msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        mlx_json_use_mlx_alloc(); /* as the agent runs, and so injection reaches jansson */
        init = true;
    }
    if (size < 1)
        return 0;
    const api_call_spec *spec = specs[data[0] % 4];
    /* The body as the HTTP server hands it: NUL-terminated. */
    char *body = malloc(size);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    mlx_http_req req = {.method = "POST", .path = spec->endpoint, .body = body,
                        .body_len = size - 1, .conn = NULL};
    int rc = check_body(&req, spec);
    if (data[0] >= 0x80)
        check_injected(&req, spec, rc, (data[0] - 0x80) / 4);
    free(body);
    return 0;
}
