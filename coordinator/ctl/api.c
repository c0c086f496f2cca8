/* api.c — mlxctl's calls to the coordinator's HTTP API, whole or streamed,
 * and the sentences its refusals become. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/limits.h"
#include "coordinator/ctl/ctl.h"

#define CTL_TIMEOUT_MS 10000
/* A whole generation is answered only once the last token is made. */
#define CTL_GENERATE_TIMEOUT_MS (30 * 60 * 1000)
/* A stream's first event waits for the first token, which may wait for a
 * node to load a large model; the coordinator bounds each node's silence
 * itself, so this only catches a coordinator that hung. */
#define CTL_STREAM_IDLE_MS (10 * 60 * 1000)

/* One sentence for a refusal, with what to do about it. 400 is the user's
 * input, so it exits 2 like any bad usage. The coordinator's 403, 404 and
 * 503 sentences already say what to do. */
static int report_refusal(const ctl_opts *o, long status, const json_t *body)
{
    const char *message =
        json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    if (message == NULL)
        message = "no reason given";
    switch (status) {
    case 401:
        fprintf(stderr,
                "mlxctl: the coordinator refused the API key: %s (give one with "
                "--api-key or MLX_API_KEY)\n",
                message);
        return MLX_EPERM;
    case 403:
        fprintf(stderr, "mlxctl: the coordinator refused: %s\n", message);
        return MLX_EPERM;
    case 429:
        fprintf(stderr, "mlxctl: the coordinator is rate-limiting this key: %s\n",
                message);
        return MLX_EBUSY;
    case 400:
        fprintf(stderr, "mlxctl: %s\n", message);
        return MLX_EUSAGE;
    case 404:
        fprintf(stderr, "mlxctl: %s\n", message);
        return MLX_ENOENT;
    case 503:
        fprintf(stderr, "mlxctl: the coordinator cannot serve this now: %s\n", message);
        return MLX_EBUSY;
    default:
        fprintf(stderr, "mlxctl: the coordinator at %s refused: %s (HTTP %ld)\n",
                o->coordinator, message, status);
        return MLX_EHTTP;
    }
}

/* Parses an answer's body as JSON (*out: caller decrefs); on failure says
 * so in one sentence. */
static int parse_answer(const ctl_opts *o, long status, const char *text, size_t len,
                        json_t **out)
{
    mlx_err err;
    mlx_err_clear(&err);
    if (mlx_json_parse(text, len, out, &err) == 0)
        return 0;
    fprintf(stderr,
            "mlxctl: the coordinator at %s answered HTTP %ld with something that is not "
            "JSON (%s)\n",
            o->coordinator, status, err.msg);
    return MLX_EPROTO;
}

/* A non-2xx answer as one sentence. */
static int report_answer(const ctl_opts *o, long status, const char *text, size_t len)
{
    json_t *body = NULL;
    int rc = parse_answer(o, status, text, len, &body);
    if (rc == 0)
        rc = report_refusal(o, status, body);
    json_decref(body);
    return rc;
}

/* A request that got no answer, as one sentence. */
static int report_failure(int rc, const mlx_err *err)
{
    if (rc == MLX_EUNREACH || rc == MLX_ETIMEDOUT)
        fprintf(stderr,
                "mlxctl: %s; is mlx-coordinator running there? Point mlxctl at it with "
                "--coordinator URL or MLX_COORDINATOR\n",
                err->msg);
    else
        fprintf(stderr, "mlxctl: %s\n", mlx_err_text(err, rc));
    return rc;
}

/* o->coordinator joined to path. */
static int make_url(const ctl_opts *o, const char *path, mlx_buf *url)
{
    mlx_buf_init(url, 4096);
    size_t n = strlen(o->coordinator);
    while (n > 0 && o->coordinator[n - 1] == '/')
        n--;
    if (mlx_buf_printf(url, "%.*s%s", (int)n, o->coordinator, path) != 0) {
        fprintf(stderr, "mlxctl: out of memory\n");
        return MLX_ENOMEM;
    }
    return 0;
}

static int request(const ctl_opts *o, const char *method, const char *path,
                   const char *body_text, int timeout_ms, json_t **out, char **raw)
{
    mlx_buf url;
    int rc = make_url(o, path, &url);
    if (rc != 0)
        return rc;
    mlx_err err;
    mlx_err_clear(&err);
    mlx_http_result res = {0};
    rc = mlx_http_client_init(&err);
    if (rc == 0)
        rc = mlx_http_request(method, mlx_buf_str(&url), o->api_key, body_text,
                              timeout_ms, &res, &err);
    if (rc != 0) {
        report_failure(rc, &err);
        goto out;
    }
    if (res.status < 200 || res.status > 299) {
        rc = report_answer(o, res.status, res.body, res.body_len);
        goto out;
    }
    if ((rc = parse_answer(o, res.status, res.body, res.body_len, out)) != 0)
        goto out;
    if (raw != NULL) {
        *raw = res.body;
        res.body = NULL;
    }
out:
    mlx_http_result_free(&res);
    mlx_buf_fini(&url);
    mlx_http_client_fini();
    return rc;
}

int ctl_request(const ctl_opts *o, const char *method, const char *path,
                const char *body_text, json_t **out, char **raw)
{
    return request(o, method, path, body_text, CTL_TIMEOUT_MS, out, raw);
}

int ctl_request_wait(const ctl_opts *o, const char *method, const char *path,
                     const char *body_text, int timeout_ms, json_t **out, char **raw)
{
    return request(o, method, path, body_text, timeout_ms, out, raw);
}

int ctl_get(const ctl_opts *o, const char *path, json_t **out, char **raw)
{
    return ctl_request(o, "GET", path, NULL, out, raw);
}

int ctl_post_generation(const ctl_opts *o, const char *path, const char *body_text,
                        json_t **out, char **raw)
{
    return request(o, "POST", path, body_text, CTL_GENERATE_TIMEOUT_MS, out, raw);
}

/* ---- streams --------------------------------------------------------------- */

struct stream {
    ctl_sse sse;
    mlx_buf refusal; /* the body of an answer that is not 2xx */
    int stopped;     /* the event callback's code that stopped the stream */
};

static int on_piece(void *arg, long status, const char *p, size_t n)
{
    struct stream *s = arg;
    if (status < 200 || status > 299)
        return mlx_buf_append(&s->refusal, p, n);
    int rc = ctl_sse_feed(&s->sse, p, n);
    if (rc != 0 && !s->sse.too_big)
        s->stopped = rc;
    return rc;
}

int ctl_stream(const ctl_opts *o, const char *path, const char *body_text,
               ctl_sse_fn on_event, void *arg)
{
    mlx_buf url;
    int rc = make_url(o, path, &url);
    if (rc != 0)
        return rc;
    struct stream s = {.stopped = 0};
    ctl_sse_init(&s.sse, MLX_MAX_HTTP_RESPONSE, on_event, arg);
    mlx_buf_init(&s.refusal, MLX_MAX_HTTP_RESPONSE);
    mlx_err err;
    mlx_err_clear(&err);
    long status = 0;
    rc = mlx_http_client_init(&err);
    if (rc == 0)
        rc = mlx_http_request_stream("POST", mlx_buf_str(&url), o->api_key, body_text,
                                     CTL_STREAM_IDLE_MS, on_piece, &s, &status, &err);
    if (rc != 0) {
        report_failure(rc, &err);
    } else if (status < 200 || status > 299) {
        rc = report_answer(o, status, mlx_buf_str(&s.refusal), s.refusal.len);
    } else if (s.sse.too_big) {
        fprintf(stderr,
                "mlxctl: an event of the coordinator's stream is larger than %u bytes; "
                "are mlxctl and mlx-coordinator the same release?\n",
                MLX_MAX_HTTP_RESPONSE);
        rc = MLX_ETOOBIG;
    } else {
        rc = s.stopped;
    }
    ctl_sse_fini(&s.sse);
    mlx_buf_fini(&s.refusal);
    mlx_buf_fini(&url);
    mlx_http_client_fini();
    return rc;
}

/* ---- lists ----------------------------------------------------------------- */

int ctl_list(const ctl_opts *o, const ctl_list_view *v)
{
    json_t *body = NULL;
    char *raw = NULL;
    int rc = ctl_get(o, v->path, &body, &raw);
    if (rc != 0)
        goto out;
    const json_t *list = json_object_get(body, v->list_key);
    if (!json_is_array(list)) {
        fprintf(stderr,
                "mlxctl: the coordinator's answer to %s has no '%s' array; are mlxctl "
                "and mlx-coordinator the same release?\n",
                v->path, v->list_key);
        rc = MLX_EPROTO;
        goto out;
    }
    if (o->json)
        printf("%s\n", raw);
    else if (json_array_size(list) == 0)
        printf("%s\n", v->empty);
    else
        v->print(list);
out:
    json_decref(body);
    mlx_free(raw);
    return rc;
}
