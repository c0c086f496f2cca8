/*
 * openai.c — OpenAI's API: the bodies of POST /v1/chat/completions and
 * POST /v1/completions, and their answers, as the official clients use
 * them.
 *
 * Sampling defaults are llama.cpp's server's; llama.cpp's extra fields
 * (top_k, min_p, repeat_penalty) are accepted too. A seed makes an answer
 * repeatable; without one each request draws its own. Streams are
 * Server-Sent Events: one "data: {chunk}" per piece of text, the finish
 * reason in the last chunk, the usage in one more when
 * stream_options.include_usage asks, then "data: [DONE]".
 */
#include <stdio.h>
#include <string.h>

#include "common/api/internal.h"
#include "common/json.h"
#include "common/rand.h"

#define MAX_COMPLETION_LOGPROBS 5

static const char *const chat_fields[] = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "seed", "stop", "stream", "stream_options", "logprobs", "top_logprobs",
    "presence_penalty", "frequency_penalty", "user", "prompt_cache_key", "response_format",
    "top_k", "min_p",
    "repeat_penalty", NULL};
static const char *const completion_fields[] = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "stream",
    "stream_options", "logprobs", "presence_penalty", "frequency_penalty", "user",
    "prompt_cache_key", "top_k",
    "min_p", "repeat_penalty", NULL};
/* Understood, but only their neutral value can be served. */
static const api_unsupported unsupported[] = {
    {"n", 1}, {"best_of", 1}, {"echo"}, {"suffix"}, {"logit_bias"}, {"tools"},
    {"tool_choice"}, {"functions"}, {"function_call"}, {"parallel_tool_calls"}, {"audio"},
    {"modalities"}, {"prediction"}, {"store"}, {"metadata"}, {"service_tier"},
    {"reasoning_effort"}, {"web_search_options"}, {NULL}};

/* ---- reading a request ---------------------------------------------------- */

/* llama.cpp's server's defaults (the engine's engine_sampling_defaults). */
static api_sampling openai_defaults(void)
{
    return (api_sampling){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
    };
}

/* The sampling settings and the seed (drawn when none is given). */
static int read_sampling(const json_t *o, api_sampling *s, mlx_err *err)
{
    *s = openai_defaults();
    int64_t top_k = s->top_k, seed;
    int rc;
    if ((rc = api__read_float(o, "temperature", 0, 2, &s->temperature, err)) != 0 ||
        (rc = api__read_float(o, "top_p", 0, 1, &s->top_p, err)) != 0 ||
        (rc = api__read_float(o, "min_p", 0, 1, &s->min_p, err)) != 0 ||
        (rc = api__read_float(o, "presence_penalty", -2, 2, &s->presence_penalty, err)) != 0 ||
        (rc = api__read_float(o, "frequency_penalty", -2, 2, &s->frequency_penalty, err)) != 0 ||
        (rc = api__read_float(o, "repeat_penalty", 0, 10, &s->repeat_penalty, err)) != 0 ||
        (rc = mlx_json_get_int(o, "top_k", MLX_JSON_OPTIONAL, 0, 100000, &top_k, err)) != 0)
        return rc;
    s->top_k = (int32_t)top_k;
    if (json_object_get(o, "seed") != NULL && !json_is_null(json_object_get(o, "seed"))) {
        if ((rc = mlx_json_get_int(o, "seed", MLX_JSON_REQUIRED, INT64_MIN, INT64_MAX, &seed,
                                   err)) != 0)
            return rc;
        s->seed = (uint64_t)seed;
    } else if (mlx_rand_bytes(&s->seed, sizeof s->seed, err) != 0) {
        return MLX_EINTERNAL;
    }
    return 0;
}

/* What both endpoints share: model, limits, sampling, stops, streaming. */
static int read_common(api_request *r, const char *const *known, mlx_err *err)
{
    const json_t *o = r->body;
    int64_t max_tokens = -1;
    int rc;
    if ((rc = api_check_fields(o, known, unsupported, err)) != 0 ||
        (rc = mlx_json_get_string(o, "model", MLX_JSON_REQUIRED, &r->model, err)) != 0 ||
        (rc = mlx_json_get_int(o, "max_tokens", MLX_JSON_OPTIONAL, 1, INT32_MAX, &max_tokens,
                               err)) != 0 ||
        (rc = mlx_json_get_int(o, "max_completion_tokens", MLX_JSON_OPTIONAL, 1, INT32_MAX,
                               &max_tokens, err)) != 0 ||
        (rc = mlx_json_get_bool(o, "stream", MLX_JSON_OPTIONAL, &r->stream, err)) != 0 ||
        (rc = read_sampling(o, &r->sampling, err)) != 0 ||
        (rc = api__read_stops(json_object_get(o, "stop"), "stop", API_MAX_STOPS, &r->stops,
                              &r->n_stops, err)) != 0)
        return rc;
    r->max_tokens = (int32_t)max_tokens;
    const json_t *so = json_object_get(o, "stream_options");
    if (so != NULL && !json_is_null(so)) {
        static const char *const so_fields[] = {"include_usage", NULL};
        if (!json_is_object(so))
            return mlx_err_set(err, MLX_EINVAL, "'stream_options' must be an object, got %s",
                               mlx_json_type_name(so));
        if ((rc = api_check_fields(so, so_fields, NULL, err)) != 0 ||
            (rc = mlx_json_get_bool(so, "include_usage", MLX_JSON_OPTIONAL,
                                    &r->include_usage, err)) != 0)
            return mlx_err_prefix(err, rc, "'stream_options'");
    }
    /* OpenAI's prompt_cache_key names a shared prompt prefix; user names
     * who asks. Either keeps related requests on one node (its KV cache). */
    static const char *const keys[] = {"prompt_cache_key", "user"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(o, keys[i]);
        if (v != NULL && !json_is_string(v) && !json_is_null(v))
            return mlx_err_set(err, MLX_EINVAL, "'%s' must be a string, got %s", keys[i],
                               mlx_json_type_name(v));
        if (r->affinity == NULL)
            r->affinity = json_string_value(v); /* NULL for null or absent */
    }
    return 0;
}

static int read_chat(api_request *r, mlx_err *err)
{
    const json_t *o = r->body;
    bool logprobs = false;
    int64_t top = 0;
    int rc;
    if ((rc = read_common(r, chat_fields, err)) != 0 ||
        (rc = mlx_json_get_bool(o, "logprobs", MLX_JSON_OPTIONAL, &logprobs, err)) != 0 ||
        (rc = mlx_json_get_int(o, "top_logprobs", MLX_JSON_OPTIONAL, 0, API_MAX_TOP_LOGPROBS,
                               &top, err)) != 0)
        return rc;
    if (top > 0 && !logprobs)
        return mlx_err_set(err, MLX_EINVAL, "'top_logprobs' needs 'logprobs': true");
    r->logprobs = logprobs;
    r->top_logprobs = !logprobs ? 0 : top > 0 ? (int32_t)top : -1;
    const json_t *rf = json_object_get(o, "response_format");
    const json_t *type = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
    if (rf != NULL && !json_is_null(rf) &&
        !(json_is_string(type) && strcmp(json_string_value(type), "text") == 0))
        return mlx_err_set(err, MLX_EINVAL,
                           "'response_format' may only be {\"type\": \"text\"}: structured "
                           "output is not supported");
    const json_t *messages = json_object_get(o, "messages");
    if (messages == NULL)
        return mlx_err_set(err, MLX_EINVAL, "the request has no 'messages'");
    if ((rc = api__read_messages(messages, r, err)) != 0)
        return rc;
    if (r->n_messages == 0)
        return mlx_err_set(err, MLX_EINVAL, "'messages' is empty; send at least one");
    return 0;
}

static int read_completion(api_request *r, mlx_err *err)
{
    const json_t *o = r->body;
    int64_t logprobs = -1;
    int rc;
    if ((rc = read_common(r, completion_fields, err)) != 0)
        return rc;
    const json_t *lp = json_object_get(o, "logprobs");
    if (lp != NULL && !json_is_null(lp) &&
        (rc = mlx_json_get_int(o, "logprobs", MLX_JSON_REQUIRED, 0, MAX_COMPLETION_LOGPROBS,
                               &logprobs, err)) != 0)
        return rc;
    r->logprobs = logprobs >= 0;
    r->top_logprobs = logprobs < 0 ? 0 : logprobs == 0 ? -1 : (int32_t)logprobs;
    const json_t *prompt = json_object_get(o, "prompt");
    if (json_is_array(prompt) && json_array_size(prompt) == 1)
        prompt = json_array_get(prompt, 0);
    if (prompt == NULL)
        return mlx_err_set(err, MLX_EINVAL, "the request has no 'prompt'");
    if (!json_is_string(prompt))
        return mlx_err_set(err, MLX_EINVAL,
                           "'prompt' must be a string (or an array of one string); arrays "
                           "of several prompts and token ids are not supported, got %s",
                           mlx_json_type_name(prompt));
    r->prompt = json_string_value(prompt);
    return 0;
}

const api_spec api_openai_chat = {API_OPENAI, true, "/v1/chat/completions", read_chat};
const api_spec api_openai_completions = {API_OPENAI, false, "/v1/completions",
                                         read_completion};

/* ---- writing the answer ----------------------------------------------------- */

static json_t *usage_of(const api_event *done)
{
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", (json_int_t)done->prompt_tokens,
                     "completion_tokens", (json_int_t)done->completion_tokens,
                     "total_tokens",
                     (json_int_t)done->prompt_tokens + (json_int_t)done->completion_tokens);
}

static json_t *bytes_of(const char *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++)
        json_array_append_new(a, json_integer((unsigned char)p[i]));
    return a;
}

/* A chat answer's logprobs.content items for tokens. */
static json_t *chat_logprobs(const api_token *tokens, size_t n)
{
    json_t *content = json_array();
    for (size_t i = 0; content != NULL && i < n; i++) {
        const api_token *t = &tokens[i];
        json_t *top = json_array();
        for (size_t k = 0; top != NULL && k < t->n_top; k++) {
            const api_alt *alt = &t->top[k];
            json_array_append_new(
                top, json_pack("{s:o, s:f, s:o}", "token", api__lossy_string(alt->text, alt->len),
                               "logprob", (double)alt->logprob, "bytes",
                               bytes_of(alt->text, alt->len)));
        }
        json_array_append_new(content,
                              json_pack("{s:o, s:f, s:o, s:o}", "token",
                                        api__lossy_string(t->text, t->len), "logprob",
                                        (double)t->logprob, "bytes", bytes_of(t->text, t->len),
                                        "top_logprobs", top));
    }
    return json_pack("{s:o}", "content", content);
}

/* A completion's logprobs: parallel arrays, as the legacy API has them. */
static json_t *completion_logprobs(const api_token *tokens, size_t n, size_t offset)
{
    json_t *toks = json_array(), *lps = json_array(), *tops = json_array(),
           *offs = json_array();
    for (size_t i = 0; i < n; i++) {
        const api_token *t = &tokens[i];
        json_array_append_new(toks, api__lossy_string(t->text, t->len));
        json_array_append_new(lps, json_real(t->logprob));
        json_t *top = t->n_top > 0 ? json_object() : json_null();
        for (size_t k = 0; k < t->n_top; k++) {
            char key[4 * API_MAX_PIECE];
            json_t *s = api__lossy_string(t->top[k].text, t->top[k].len);
            snprintf(key, sizeof key, "%s", s != NULL ? json_string_value(s) : "");
            json_decref(s);
            json_object_set_new(top, key, json_real(t->top[k].logprob));
        }
        json_array_append_new(tops, top);
        json_array_append_new(offs, json_integer((json_int_t)offset));
        offset += t->len;
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", toks, "token_logprobs", lps,
                     "top_logprobs", tops, "text_offset", offs);
}

static json_t *logprobs_of(const api_answer *a, const api_token *tokens, size_t n,
                           size_t offset)
{
    if (!a->logprobs)
        return json_null();
    return a->chat ? chat_logprobs(tokens, n) : completion_logprobs(tokens, n, offset);
}

/* The choice of an answer, or of a chunk (chat: its "delta"). */
static json_t *choice(api_answer *a, const char *text, size_t len, json_t *logprobs,
                      const char *finish, bool chunk)
{
    json_t *finish_v = finish != NULL ? json_string(finish) : json_null();
    if (!a->chat)
        return json_pack("{s:s%, s:i, s:o, s:o}", "text", text, len, "index", 0, "logprobs",
                         logprobs, "finish_reason", finish_v);
    json_t *message = json_pack("{s:s%}", "content", text, len);
    if (message != NULL && (!chunk || !a->said_role)) /* a stream says it once */
        json_object_set_new(message, "role", json_string("assistant"));
    a->said_role |= chunk;
    return json_pack("{s:i, s:o, s:o, s:o}", "index", 0, chunk ? "delta" : "message", message,
                     "logprobs", logprobs, "finish_reason", finish_v);
}

static json_t *envelope(const api_answer *a, bool chunk, json_t *choices)
{
    char id[128];
    snprintf(id, sizeof id, "%s-%s", a->chat ? "chatcmpl" : "cmpl", a->id);
    const char *object = a->chat ? (chunk ? "chat.completion.chunk" : "chat.completion")
                                 : "text_completion";
    return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", id, "object", object, "created",
                     (json_int_t)a->created_s, "model", a->model, "choices", choices);
}

json_t *api__openai_whole(api_answer *a, const char *text, size_t len,
                          const api_token *tokens, size_t n_tokens, const api_event *done)
{
    json_t *lp = logprobs_of(a, tokens, n_tokens, 0);
    json_t *v = envelope(
        a, false, json_pack("[o]", choice(a, text, len, lp, done->finish_reason, false)));
    if (v != NULL)
        json_object_set_new(v, "usage", usage_of(done));
    return v;
}

static json_t *chunk_of(api_answer *a, json_t *choice_v)
{
    json_t *v = envelope(a, true, json_pack("[o]", choice_v));
    if (v != NULL && a->include_usage)
        json_object_set_new(v, "usage", json_null());
    return v;
}

int api__openai_chunk(api_answer *a, const api_event *text, mlx_buf *out)
{
    json_t *lp = logprobs_of(a, text->tokens, text->n_tokens, a->text_offset);
    return api__sse(out, chunk_of(a, choice(a, text->text, text->len, lp, NULL, true)));
}

int api__openai_end(api_answer *a, const api_event *done, mlx_buf *out)
{
    int rc =
        api__sse(out, chunk_of(a, choice(a, "", 0, json_null(), done->finish_reason, true)));
    if (rc == 0 && a->include_usage) {
        json_t *v = envelope(a, true, json_array());
        if (v != NULL)
            json_object_set_new(v, "usage", usage_of(done));
        rc = api__sse(out, v);
    }
    if (rc == 0)
        rc = mlx_buf_append_str(out, "data: [DONE]\n\n");
    return rc;
}
