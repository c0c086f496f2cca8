/*
 * ollama.c — Ollama's generation API: the bodies of POST /api/generate and
 * POST /api/chat, and their answers.
 *
 * As in Ollama: answers stream as NDJSON unless "stream" is false; sampling
 * settings sit in "options", with Ollama's defaults; the last object
 * carries the durations in nanoseconds; a request with no prompt (or no
 * messages) only loads the model, and one with keep_alive 0 unloads it.
 * Options that size the server (num_ctx, num_thread, num_gpu, …) are read
 * and left to the server's own settings (--ctx, --threads), which every
 * request shares.
 */
#include <string.h>

#include "common/api/internal.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/parse.h"
#include "common/rand.h"

/* keep_alive below zero: loaded until the agent stops. */
#define KEEP_FOREVER_MS (INT64_MAX / 4)

static const char *const generate_fields[] = {
    "model", "prompt", "system", "stream", "raw", "options", "keep_alive", NULL};
static const char *const chat_fields[] = {"model", "messages", "stream", "options",
                                          "keep_alive", NULL};
static const api_unsupported unsupported[] = {
    {"suffix"}, {"template"}, {"context"}, {"format"}, {"images"}, {"tools"}, {"think"},
    {NULL}};

static const char *const option_fields[] = {
    "num_predict", "temperature", "top_k", "top_p", "min_p", "seed", "stop",
    "repeat_penalty", "repeat_last_n", "presence_penalty", "frequency_penalty",
    /* the server's settings, not a request's: read and left alone */
    "num_ctx", "num_thread", "num_gpu", "main_gpu", "num_batch", "num_keep", "use_mmap",
    "use_mlock", "numa", "low_vram", "vocab_only",
    /* mirostat's rates matter only with mirostat on, which is refused;
     * Ollama itself no longer reads penalize_newline */
    "mirostat_tau", "mirostat_eta", "penalize_newline", NULL};
/* Off: Ollama's own values that turn each off. */
static const api_unsupported option_unsupported[] = {
    {"typical_p", 1}, {"mirostat", 0}, {"tfs_z", 1}, {NULL}};

/* ---- reading a request ---------------------------------------------------- */

/* Ollama's defaults (its api/types.go), not llama.cpp's. */
static api_sampling ollama_defaults(void)
{
    return (api_sampling){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.9f,
        .min_p = 0,
        .repeat_penalty = 1.1f,
        .repeat_last_n = 64,
    };
}

static int read_options(api_request *r, const json_t *o, mlx_err *err)
{
    api_sampling *s = &r->sampling;
    int64_t num_predict = -1, top_k = s->top_k, last_n = s->repeat_last_n, seed = -1;
    int rc;
    if (!json_is_object(o))
        return mlx_err_set(err, MLX_EINVAL, "'options' must be an object, got %s",
                           mlx_json_type_name(o));
    if ((rc = api_check_fields(o, option_fields, option_unsupported, err)) != 0 ||
        (rc = mlx_json_get_int(o, "num_predict", MLX_JSON_OPTIONAL, -2, INT32_MAX,
                               &num_predict, err)) != 0 ||
        (rc = api__read_float(o, "temperature", 0, 100, &s->temperature, err)) != 0 ||
        (rc = mlx_json_get_int(o, "top_k", MLX_JSON_OPTIONAL, 0, 100000, &top_k, err)) != 0 ||
        (rc = api__read_float(o, "top_p", 0, 1, &s->top_p, err)) != 0 ||
        (rc = api__read_float(o, "min_p", 0, 1, &s->min_p, err)) != 0 ||
        (rc = mlx_json_get_int(o, "seed", MLX_JSON_OPTIONAL, INT64_MIN, INT64_MAX, &seed,
                               err)) != 0 ||
        (rc = api__read_float(o, "repeat_penalty", 0, 10, &s->repeat_penalty, err)) != 0 ||
        (rc = mlx_json_get_int(o, "repeat_last_n", MLX_JSON_OPTIONAL, -1, 1 << 20, &last_n,
                               err)) != 0 ||
        (rc = api__read_float(o, "presence_penalty", -2, 2, &s->presence_penalty, err)) != 0 ||
        (rc = api__read_float(o, "frequency_penalty", -2, 2, &s->frequency_penalty, err)) != 0 ||
        (rc = api__read_stops(json_object_get(o, "stop"), "stop", API_MAX_STOPS, &r->stops,
                              &r->n_stops, err)) != 0)
        return mlx_err_prefix(err, rc, "'options'");
    r->max_tokens = num_predict < 0 ? -1 : (int32_t)num_predict; /* -2: fill the context */
    s->top_k = (int32_t)top_k;
    /* -1: the whole context, as far as the sampler looks back. */
    s->repeat_last_n = last_n < 0 ? 1 << 20 : (int32_t)last_n;
    if (seed >= 0)
        s->seed = (uint64_t)seed;
    return 0;
}

/* A Go duration ("5m", "1h30m", "1.5h", "250ms", "-1m") in milliseconds. */
static int parse_duration(const char *text, int64_t *out)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *p = text;
    bool negative = *p == '-';
    p += negative;
    if (*p == '\0')
        return MLX_EINVAL;
    double total = 0;
    while (*p != '\0') {
        size_t len = strspn(p, "0123456789.");
        char number[32];
        double n;
        if (len == 0 || len >= sizeof number)
            return MLX_EINVAL;
        memcpy(number, p, len);
        number[len] = '\0';
        if (mlx_parse_double(number, &n, NULL) != 0)
            return MLX_EINVAL;
        p += len;
        size_t u = 0;
        /* "ms" before "m", so that "250ms" is not 250 minutes and an "s". */
        while (u < 4 && strncmp(p, units[u].unit, strlen(units[u].unit)) != 0)
            u++;
        if (u == 4)
            return MLX_EINVAL;
        total += n * units[u].ms;
        p += strlen(units[u].unit);
    }
    *out = negative ? -1 : total >= (double)KEEP_FOREVER_MS ? KEEP_FOREVER_MS : (int64_t)total;
    return 0;
}

/* keep_alive: seconds as a number or a string of digits, or a duration;
 * negative means until the agent stops. */
static int read_keep_alive(const json_t *v, int64_t *ms, mlx_err *err)
{
    if (v == NULL || json_is_null(v))
        return 0;
    const char *text = json_string_value(v);
    double secs;
    if (json_is_number(v) || (text != NULL && mlx_parse_double(text, &secs, NULL) == 0)) {
        if (json_is_number(v))
            secs = json_number_value(v);
        /* Negative, or longer than anyone will wait: until the agent stops. */
        *ms = secs < 0 || secs * 1000 >= (double)KEEP_FOREVER_MS ? KEEP_FOREVER_MS
                                                                 : (int64_t)(secs * 1000);
        return 0;
    }
    if (text == NULL || parse_duration(text, ms) != 0)
        return mlx_err_set(err, MLX_EINVAL,
                           "'keep_alive' must be seconds or a duration such as \"5m\" or "
                           "\"1h30m\" (negative: until the agent stops)");
    if (*ms < 0)
        *ms = KEEP_FOREVER_MS;
    return 0;
}

/* What both endpoints share. */
static int read_common(api_request *r, const char *const *known, mlx_err *err)
{
    const json_t *o = r->body;
    r->stream = true; /* Ollama streams unless told not to */
    r->sampling = ollama_defaults();
    int rc;
    if ((rc = api_check_fields(o, known, unsupported, err)) != 0 ||
        (rc = mlx_json_get_string(o, "model", MLX_JSON_REQUIRED, &r->model, err)) != 0 ||
        (rc = mlx_json_get_bool(o, "stream", MLX_JSON_OPTIONAL, &r->stream, err)) != 0 ||
        (rc = read_keep_alive(json_object_get(o, "keep_alive"), &r->keep_alive_ms,
                              err)) != 0)
        return rc;
    if (r->model[0] == '\0')
        return mlx_err_set(err, MLX_EINVAL, "'model' is empty; name a model");
    if (mlx_rand_bytes(&r->sampling.seed, sizeof r->sampling.seed, err) != 0)
        return MLX_EINTERNAL;
    const json_t *options = json_object_get(o, "options");
    if (options != NULL && !json_is_null(options) && (rc = read_options(r, options, err)) != 0)
        return rc;
    return 0;
}

static int read_generate(api_request *r, mlx_err *err)
{
    bool raw = false;
    int rc;
    if ((rc = read_common(r, generate_fields, err)) != 0 ||
        (rc = mlx_json_get_string(r->body, "prompt", MLX_JSON_OPTIONAL, &r->prompt, err)) !=
            0 ||
        (rc = mlx_json_get_string(r->body, "system", MLX_JSON_OPTIONAL, &r->system, err)) !=
            0 ||
        (rc = mlx_json_get_bool(r->body, "raw", MLX_JSON_OPTIONAL, &raw, err)) != 0)
        return rc;
    r->as_user = !raw;
    return 0;
}

static int read_chat(api_request *r, mlx_err *err)
{
    int rc = read_common(r, chat_fields, err);
    const json_t *messages = json_object_get(r->body, "messages");
    if (rc == 0 && messages != NULL && !json_is_null(messages))
        rc = api__read_messages(messages, r, err);
    return rc;
}

const api_spec api_ollama_generate = {API_OLLAMA, false, "/api/generate", read_generate};
const api_spec api_ollama_chat = {API_OLLAMA, true, "/api/chat", read_chat};

/* ---- writing the answer ----------------------------------------------------- */

/* The fields every object of an answer starts with, and its text. */
static json_t *answer(const api_answer *a, const char *text, size_t len, bool done)
{
    char now[40];
    mlx_time_format_rfc3339(mlx_time_wall_ms(), now, sizeof now);
    json_t *v = json_pack("{s:s, s:s, s:b}", "model", a->model, "created_at", now,
                          "done", done);
    if (v == NULL)
        return NULL;
    if (a->chat)
        json_object_set_new(v, "message",
                            json_pack("{s:s, s:s%}", "role", "assistant", "content", text, len));
    else
        json_object_set_new(v, "response", json_stringn(text, len));
    return v;
}

static json_t *final(const api_answer *a, const char *text, size_t len, const api_event *done)
{
    json_t *v = answer(a, text, len, true);
    if (v == NULL)
        return NULL;
    json_t *more = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "done_reason", done->finish_reason,
        "total_duration", (json_int_t)done->total_ns, "load_duration",
        (json_int_t)done->load_ns, "prompt_eval_count", (json_int_t)done->prompt_tokens,
        "prompt_eval_duration", (json_int_t)done->prompt_eval_ns, "eval_count",
        (json_int_t)done->completion_tokens, "eval_duration", (json_int_t)done->eval_ns);
    json_object_update(v, more);
    json_decref(more);
    return v;
}

json_t *api__ollama_whole(api_answer *a, const char *text, size_t len, const api_event *done)
{
    return final(a, text, len, done);
}

int api__ollama_chunk(api_answer *a, const api_event *text, mlx_buf *out)
{
    return text->len > 0 ? api__line(out, answer(a, text->text, text->len, false)) : 0;
}

int api__ollama_end(api_answer *a, const api_event *done, mlx_buf *out)
{
    return api__line(out, final(a, "", 0, done));
}

json_t *api_answer_load(api_answer *a, const char *done_reason, int64_t load_ns)
{
    json_t *v = answer(a, "", 0, true);
    if (v != NULL) {
        json_object_set_new(v, "done_reason", json_string(done_reason));
        json_object_set_new(v, "load_duration", json_integer((json_int_t)load_ns));
    }
    return v;
}
