/*
 * generate.c — one chat completion for `mlxctl run` and `mlxctl chat`: the
 * request from the sampling flags, and the answer streamed to the terminal
 * as it is made, or whole as the API's JSON with --json.
 *
 * A stream's events are OpenAI's chat chunks: the text is in
 * choices[0].delta.content, "[DONE]" ends the stream, and a failure after
 * the first text arrives as one more event, {"error": {...}}, since the
 * status was sent long before. A stream that stops without "[DONE]" was cut
 * short, and says so.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/json.h"
#include "common/parse.h"
#include "coordinator/ctl/ctl.h"

#define CHAT_PATH "/v1/chat/completions"

/* ---- flags ----------------------------------------------------------------- */

/* value must be a decimal number from lo to hi; what names it. */
static int check_range(const char *value, double lo, double hi, const char *what,
                       mlx_err *err)
{
    double v;
    int rc = mlx_parse_double(value, &v, err);
    if (rc != 0)
        return rc;
    if (v < lo || v > hi)
        return mlx_err_set(err, MLX_EINVAL, "%.64s is out of range; use %s from %g to %g",
                           value, what, lo, hi);
    return 0;
}

static int check_temperature(const char *value, mlx_err *err)
{
    return check_range(value, 0, 2, "a temperature", err);
}

static int check_top_p(const char *value, mlx_err *err)
{
    return check_range(value, 0, 1, "a probability", err);
}

static int check_seed(const char *value, mlx_err *err)
{
    int64_t v;
    return mlx_parse_int64(value, &v, err);
}

/* Per run only (cli_only): a sampling setting in the environment or a file
 * would quietly change every answer. */
const mlx_opt ctl_gen_opts_table[] = {
    CTL_COMMON_OPTS(ctl_gen_opts),
    {"system", 0, MLX_OPT_STR, offsetof(ctl_gen_opts, sampling.system), NULL, "TEXT",
     "a system prompt that goes before the conversation", .cli_only = true},
    {"max-tokens", 0, MLX_OPT_INT, offsetof(ctl_gen_opts, sampling.max_tokens), "0", "N",
     "stop after N tokens; 0 lets the model finish", 0, INT32_MAX, .cli_only = true},
    {"temperature", 0, MLX_OPT_STR, offsetof(ctl_gen_opts, sampling.temperature), NULL,
     "T", "0 (always the likeliest token) to 2 (default: the coordinator's, 0.8)",
     .check = check_temperature, .cli_only = true},
    {"top-p", 0, MLX_OPT_STR, offsetof(ctl_gen_opts, sampling.top_p), NULL, "P",
     "sample only from the likeliest tokens that together reach P, 0 to 1 "
     "(default 0.95)",
     .check = check_top_p, .cli_only = true},
    {"seed", 0, MLX_OPT_STR, offsetof(ctl_gen_opts, sampling.seed), NULL, "N",
     "seed of the sampler, for a repeatable answer (default: a new one each time)",
     .check = check_seed, .cli_only = true},
    {NULL},
};

int ctl_message_add(json_t *messages, const char *role, const char *content)
{
    json_t *m = json_pack("{s:s, s:s}", "role", role, "content", content);
    if (m == NULL) {
        /* json_pack refuses text that is not UTF-8; memory is rarely short. */
        fprintf(stderr, "mlxctl: the %s message is not UTF-8 text; send it as UTF-8\n",
                role);
        return MLX_EUSAGE;
    }
    if (json_array_append_new(messages, m) != 0) {
        fprintf(stderr, "mlxctl: out of memory\n");
        return MLX_ENOMEM;
    }
    return 0;
}

/* The request's JSON text (caller frees), or NULL when out of memory. */
static char *request_text(const ctl_gen_opts *o, const ctl_generation *g, bool stream)
{
    const ctl_sampling *s = &o->sampling;
    json_t *req = json_pack("{s:s, s:O, s:b}", "model", g->model, "messages",
                            (json_t *)g->messages, "stream", stream);
    char *text = NULL;
    if (req == NULL)
        return NULL;
    double v;
    int64_t seed;
    int rc = 0;
    /* The flags were checked when they were read. */
    if (s->max_tokens > 0)
        rc |= json_object_set_new(req, "max_tokens", json_integer(s->max_tokens));
    if (s->temperature != NULL && mlx_parse_double(s->temperature, &v, NULL) == 0)
        rc |= json_object_set_new(req, "temperature", json_real(v));
    if (s->top_p != NULL && mlx_parse_double(s->top_p, &v, NULL) == 0)
        rc |= json_object_set_new(req, "top_p", json_real(v));
    if (s->seed != NULL && mlx_parse_int64(s->seed, &seed, NULL) == 0)
        rc |= json_object_set_new(req, "seed", json_integer(seed));
    if (g->session != NULL)
        rc |= json_object_set_new(req, "prompt_cache_key", json_string(g->session));
    if (rc == 0)
        mlx_json_dump(req, &text, NULL);
    json_decref(req);
    return text;
}

/* Appends answer text to reply (NULL: not kept); 0, or the code after one
 * sentence. */
static int keep(mlx_buf *reply, const char *text, size_t n)
{
    int rc = reply != NULL ? mlx_buf_append(reply, text, n) : 0;
    if (rc == MLX_ETOOBIG)
        fprintf(stderr,
                "mlxctl: the answer is longer than a conversation can carry (%zu bytes); "
                "/clear starts a new one\n",
                reply->max);
    else if (rc != 0)
        fprintf(stderr, "mlxctl: out of memory keeping the answer\n");
    return rc;
}

/* ---- the streamed answer ----------------------------------------------------- */

struct answer {
    const ctl_generation *g;
    bool wrote; /* some text went to stdout */
    bool done;  /* "[DONE]" came */
};

/* Ends the line of text written so far, so a sentence on stderr starts on
 * its own line. */
static void end_line(struct answer *a)
{
    if (a->wrote) {
        putchar('\n');
        fflush(stdout);
        a->wrote = false;
    }
}

static int on_event(void *arg, const char *data, size_t len)
{
    struct answer *a = arg;
    if (a->g->stop != NULL && *a->g->stop)
        return MLX_ECLOSED;
    if (strcmp(data, "[DONE]") == 0) {
        a->done = true;
        return 0;
    }
    json_t *v = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (mlx_json_parse(data, len, &v, &err) != 0) {
        end_line(a);
        fprintf(
            stderr,
            "mlxctl: the coordinator's stream carried an event that is not JSON (%s); "
            "are mlxctl and mlx-coordinator the same release?\n",
            err.msg);
        return MLX_EPROTO;
    }
    int rc = 0;
    const json_t *error = json_object_get(v, "error");
    const json_t *content = json_object_get(
        json_object_get(json_array_get(json_object_get(v, "choices"), 0), "delta"),
        "content");
    if (error != NULL) {
        const char *message = json_string_value(json_object_get(error, "message"));
        end_line(a);
        fprintf(stderr, "mlxctl: the generation failed before its end: %s\n",
                message != NULL ? message : "no reason given");
        rc = MLX_EHTTP;
    } else if (json_string_length(content) > 0) {
        const char *text = json_string_value(content);
        size_t n = json_string_length(content);
        a->wrote = true;
        if (fwrite(text, 1, n, stdout) != n || fflush(stdout) != 0) {
            fprintf(stderr, "mlxctl: cannot write the answer: %s\n", strerror(errno));
            rc = MLX_EIO;
        } else {
            rc = keep(a->g->reply, text, n);
        }
    }
    json_decref(v);
    return rc;
}

static int generate_streamed(const ctl_gen_opts *o, const ctl_generation *g,
                             const char *body)
{
    struct answer a = {.g = g};
    int rc = ctl_stream(&o->common, CHAT_PATH, body, on_event, &a);
    if (rc == 0 && !a.done && g->stop != NULL && *g->stop)
        rc = MLX_ECLOSED; /* the signal came after the last event */
    if (rc == 0 && !a.done) {
        end_line(&a);
        fprintf(stderr,
                "mlxctl: the answer was cut short: the coordinator at %s ended "
                "the stream before its end; see its log\n",
                o->common.coordinator);
        rc = MLX_EPROTO;
    }
    if (rc == 0 || rc == MLX_ECLOSED) {
        a.wrote = true;
        end_line(&a);
    }
    return rc;
}

/* ---- the whole answer ------------------------------------------------------------ */

static int generate_whole(const ctl_gen_opts *o, const ctl_generation *g,
                          const char *body)
{
    json_t *v = NULL;
    char *raw = NULL;
    int rc = ctl_post_generation(&o->common, CHAT_PATH, body, &v, &raw);
    if (rc != 0)
        return rc;
    const json_t *content = json_object_get(
        json_object_get(json_array_get(json_object_get(v, "choices"), 0), "message"),
        "content");
    if (!json_is_string(content)) {
        fprintf(stderr, "mlxctl: the coordinator's answer has no choices[0].message."
                        "content; are mlxctl and mlx-coordinator the same release?\n");
        rc = MLX_EPROTO;
    } else if ((rc = keep(g->reply, json_string_value(content),
                          json_string_length(content))) == 0) {
        printf("%s\n", raw);
        fflush(stdout);
    }
    json_decref(v);
    mlx_free(raw);
    return rc;
}

int ctl_generate(const ctl_gen_opts *o, const ctl_generation *g)
{
    char *body = request_text(o, g, !o->common.json);
    if (body == NULL) {
        fprintf(stderr, "mlxctl: out of memory\n");
        return MLX_ENOMEM;
    }
    int rc = o->common.json ? generate_whole(o, g, body) : generate_streamed(o, g, body);
    mlx_free(body);
    return rc;
}
