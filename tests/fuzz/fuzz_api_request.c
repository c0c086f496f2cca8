/*
 * fuzz_api_request.c — the generation endpoints' reading of a request body
 * for /v1/chat/completions, /v1/completions, /api/generate and /api/chat,
 * with no runtime and no network: common/api's api_request_parse (what the
 * agent and the coordinator share), and the agent's api_call_parse, which
 * turns that into the runtime's request and checks it against the sampler.
 *
 * A body that api_request_parse accepts must hold what the body says: a
 * model named, a prompt or messages (as the body holds them, in order), at
 * most 16 stop strings, every sampling value within the range the API
 * documents, log probabilities only when asked for. Converted for the
 * engine, it is either refused by engine_sampling_check — and then the
 * agent refuses it with that sentence — or the agent accepts it into a
 * request the runtime would take as it is (the sampler and the stop
 * matcher take it). A body that is refused must be refused, by both, with
 * one sentence that can travel in the JSON error answer (valid UTF-8), and
 * the answer the agent writes for it must be a 400 carrying that sentence.
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

static const api_spec *const specs[4] = {&api_openai_chat, &api_openai_completions,
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
static void check_messages(const api_request *r)
{
    const json_t *messages = json_object_get(r->body, "messages");
    if (messages == NULL || json_is_null(messages)) {
        if (r->n_messages != 0)
            fail("%zu messages from a body without any", r->n_messages);
        return;
    }
    if (r->n_messages != json_array_size(messages))
        fail("%zu messages read of %zu", r->n_messages, json_array_size(messages));
    for (size_t i = 0; i < r->n_messages; i++) {
        const json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *want = role != NULL && strcmp(role, "developer") == 0 ? "system" : role;
        const api_message *got = &r->messages[i];
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
static void check_stops(const api_request *r, const json_t *stop)
{
    if (r->n_stops > API_MAX_STOPS)
        fail("%zu stop strings", r->n_stops);
    size_t want = stop == NULL || json_is_null(stop) ? 0
                  : json_is_string(stop)              ? 1
                                                      : json_array_size(stop);
    if (r->n_stops != want)
        fail("%zu stop strings read of %zu", r->n_stops, want);
    for (size_t i = 0; i < r->n_stops; i++) {
        const json_t *s = json_is_string(stop) ? stop : json_array_get(stop, i);
        if (r->stops == NULL || r->stops[i] == NULL || r->stops[i][0] == '\0' ||
            strcmp(r->stops[i], json_string_value(s)) != 0)
            fail("stop string %zu differs from the body's", i);
    }
}

/* What runtime_submit checks before it takes a request (runtime.c's
 * check_request): a body the parser accepts must pass it, or the client
 * gets a refusal the parser should have given, naming the field. */
static void check_runtime_takes(const runtime_request *r, bool generates)
{
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

static void check_openai(const api_request *r, const api_spec *spec)
{
    const api_sampling *s = &r->sampling;
    const json_t *o = r->body;
    within("temperature", s->temperature, 0, 2);
    within("top_p", s->top_p, 0, 1);
    within("min_p", s->min_p, 0, 1);
    within("presence_penalty", s->presence_penalty, -2, 2);
    within("frequency_penalty", s->frequency_penalty, -2, 2);
    within("repeat_penalty", s->repeat_penalty, 0, 10);
    within("top_k", s->top_k, 0, 100000);
    if (r->max_tokens != -1 && r->max_tokens < 1)
        fail("max_tokens %d", (int)r->max_tokens);
    within("top_logprobs", r->top_logprobs, -1, spec->chat ? 20 : 5);
    if (!r->logprobs && r->top_logprobs != 0)
        fail("top_logprobs %d without logprobs", (int)r->top_logprobs);
    if (r->keep_alive_ms != -1)
        fail("keep_alive_ms %lld from OpenAI's API", (long long)r->keep_alive_ms);
    const json_t *user = json_object_get(o, "user");
    if ((r->affinity == NULL) != !json_is_string(user) ||
        (r->affinity != NULL && strcmp(r->affinity, json_string_value(user)) != 0))
        fail("the affinity differs from the body's 'user'");
    check_stops(r, json_object_get(o, "stop"));
    if (spec->chat) {
        if (r->prompt != NULL || r->n_messages == 0)
            fail("a chat with a prompt or no messages");
        check_messages(r);
    } else {
        const json_t *p = json_object_get(o, "prompt");
        if (json_is_array(p))
            p = json_array_get(p, 0);
        if (r->prompt == NULL || r->n_messages != 0 ||
            strcmp(r->prompt, json_string_value(p)) != 0)
            fail("the prompt differs from the body's");
    }
}

static bool check_ollama(const api_request *r, const api_spec *spec)
{
    const api_sampling *s = &r->sampling;
    const json_t *options = json_object_get(r->body, "options");
    if (r->model == NULL || r->model[0] == '\0')
        fail("accepted with an empty model");
    within("temperature", s->temperature, 0, 100);
    within("top_p", s->top_p, 0, 1);
    within("min_p", s->min_p, 0, 1);
    within("presence_penalty", s->presence_penalty, -2, 2);
    within("frequency_penalty", s->frequency_penalty, -2, 2);
    within("repeat_penalty", s->repeat_penalty, 0, 10);
    within("repeat_last_n", s->repeat_last_n, 0, 1 << 20);
    within("top_k", s->top_k, 0, 100000);
    if (r->max_tokens < -1)
        fail("max_tokens %d", (int)r->max_tokens);
    if (r->top_logprobs != 0 || r->logprobs || r->include_usage || r->affinity != NULL)
        fail("OpenAI's settings from Ollama's API");
    /* -1: the runtime's; else at most what "forever" (a negative
     * keep_alive) becomes, so that the runtime's sums of times in ms never
     * overflow. */
    if (r->keep_alive_ms < -1 || r->keep_alive_ms > INT64_MAX / 4)
        fail("keep_alive_ms %lld", (long long)r->keep_alive_ms);
    check_stops(r, json_is_object(options) ? json_object_get(options, "stop") : NULL);
    if (spec->chat) {
        if (r->prompt != NULL)
            fail("a chat with a prompt");
        check_messages(r);
        return r->n_messages > 0;
    }
    if (r->n_messages != 0)
        fail("a generate with messages");
    const json_t *p = json_object_get(r->body, "prompt");
    if ((r->prompt == NULL) != (p == NULL || json_is_null(p)) ||
        (r->prompt != NULL && strcmp(r->prompt, json_string_value(p)) != 0))
        fail("the prompt differs from the body's");
    return r->prompt != NULL && r->prompt[0] != '\0';
}

/* The runtime's request the agent made of r: the same strings, the same
 * settings (the seed aside: each parse draws its own when none is given). */
static void check_converted(const runtime_request *q, const api_request *r,
                            const engine_sampling *want)
{
    const engine_sampling *s = &q->sampling;
    if (strcmp(q->model, r->model) != 0 || (q->prompt == NULL) != (r->prompt == NULL) ||
        (q->prompt != NULL && strcmp(q->prompt, r->prompt) != 0) ||
        (q->system == NULL) != (r->system == NULL) ||
        (q->system != NULL && strcmp(q->system, r->system) != 0) || q->as_user != r->as_user)
        fail("the runtime's request differs from the body's");
    if (q->n_messages != r->n_messages || q->n_stops != r->n_stops ||
        q->max_tokens != r->max_tokens || q->top_logprobs != r->top_logprobs ||
        q->keep_alive_ms != r->keep_alive_ms)
        fail("the runtime's counts and limits differ from the body's");
    for (size_t i = 0; i < q->n_messages; i++)
        if (strcmp(q->messages[i].role, r->messages[i].role) != 0 ||
            strcmp(q->messages[i].content, r->messages[i].content) != 0)
            fail("the runtime's message %zu differs", i);
    for (size_t i = 0; i < q->n_stops; i++)
        if (strcmp(q->stops[i], r->stops[i]) != 0)
            fail("the runtime's stop %zu differs", i);
    if (s->temperature != want->temperature || s->top_k != want->top_k ||
        s->top_p != want->top_p || s->min_p != want->min_p ||
        s->repeat_penalty != want->repeat_penalty ||
        s->repeat_last_n != want->repeat_last_n ||
        s->presence_penalty != want->presence_penalty ||
        s->frequency_penalty != want->frequency_penalty)
        fail("the runtime's sampling differs from the body's");
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
static void check_answer(const mlx_http_req *req, const api_spec *spec, const mlx_err *err)
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

/* A refusal: a code the parse may give, and a sentence. */
static void check_refusal(int rc, const mlx_err *err)
{
    if (rc != MLX_EINVAL && rc != MLX_ENOMEM)
        fail("refused with %s: %s", mlx_errname(rc), err->msg);
    check_sentence(err, rc);
}

/* The agent's reading of a body: refused as want_rc says, with want's
 * sentence, or accepted into a request the runtime takes. */
static void check_agent(const mlx_http_req *req, const api_spec *spec, int want_rc,
                        const mlx_err *want, const api_request *r, const engine_sampling *es,
                        bool generates)
{
    static api_call sentinel; /* *out must be reset on failure */
    agent_http h;
    memset(&h, 0, sizeof h);
    api_call *c = &sentinel;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = api_call_parse(&h, req, spec, &c, &err);
    if (rc != want_rc)
        fail("the agent answers %s where common/api and the sampler say %s (%s)",
             mlx_errname(rc), mlx_errname(want_rc), rc != 0 ? err.msg : want->msg);
    if (rc != 0) {
        if (c != NULL)
            fail("refused, yet *out is set");
        check_refusal(rc, &err);
        if (strcmp(err.msg, want->msg) != 0)
            fail("the agent says \"%s\", common/api or the sampler \"%s\"", err.msg,
                 want->msg);
        if (rc == MLX_EINVAL)
            check_answer(req, spec, &err);
        return;
    }
    if (c == NULL || c == &sentinel || c->req.model == NULL || c->api.body == NULL ||
        c->spec != spec || c->api.kind != spec->kind || c->api.chat != spec->chat)
        fail("accepted into an incomplete call");
    check_converted(&c->req, r, es);
    check_runtime_takes(&c->req, generates); /* with nothing to generate: a load only */
    api_call_free(c);
}

/* The whole check of one body; returns the agent's parse's rc. */
static int check_body(const mlx_http_req *req, const api_spec *spec)
{
    api_request r;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = api_request_parse(spec, req->body, req->body_len, &r, &err);
    if (rc != 0) {
        if (r.body != NULL || r.messages != NULL || r.stops != NULL || r.model != NULL)
            fail("refused, yet the request is not empty");
        check_refusal(rc, &err);
        check_agent(req, spec, rc, &err, NULL, NULL, false);
        return rc;
    }
    if (r.model == NULL || r.body == NULL || r.kind != spec->kind || r.chat != spec->chat)
        fail("accepted into an incomplete request");
    bool generates = true;
    if (spec->kind == API_OPENAI)
        check_openai(&r, spec);
    else
        generates = check_ollama(&r, spec);
    /* The engine's own limits, which the agent checks after reading. */
    engine_sampling es = api_call_sampling(&r.sampling);
    rc = engine_sampling_check(&es, &err);
    if (rc != 0)
        check_refusal(rc, &err);
    check_agent(req, spec, rc, &err, &r, &es, generates);
    api_request_fini(&r);
    return rc;
}

/* The same body with allocations failing after `after` successful ones:
 * either untouched, or MLX_ENOMEM, or the refusal it gets anyway. */
static void check_injected(const mlx_http_req *req, const api_spec *spec, int rc,
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
    if (c != NULL)
        fail("refused, yet *out is set");
    check_refusal(injected, &err);
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
    const api_spec *spec = specs[data[0] % 4];
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
