/* api.c — mlxctl's calls to the coordinator's HTTP API, and the sentences
 * its refusals become. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/http_client.h"
#include "common/json.h"
#include "coordinator/ctl/ctl.h"

#define CTL_TIMEOUT_MS 10000

/* One sentence for a refusal, with what to do about it. 400 is the user's
 * input, so it exits 2 like any bad usage. */
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
        fprintf(stderr,
                "mlxctl: the coordinator refused: %s (this needs a key with the admin "
                "scope)\n",
                message);
        return MLX_EPERM;
    case 429:
        fprintf(stderr, "mlxctl: the coordinator is rate-limiting this key: %s\n",
                message);
        return MLX_EBUSY;
    case 400:
        fprintf(stderr, "mlxctl: %s\n", message);
        return MLX_EUSAGE;
    default:
        fprintf(stderr, "mlxctl: the coordinator at %s refused: %s (HTTP %ld)\n",
                o->coordinator, message, status);
        return MLX_EHTTP;
    }
}

int ctl_request(const ctl_opts *o, const char *method, const char *path,
                const char *body_text, json_t **out, char **raw)
{
    return ctl_request_wait(o, method, path, body_text, CTL_TIMEOUT_MS, out, raw);
}

int ctl_request_wait(const ctl_opts *o, const char *method, const char *path,
                     const char *body_text, int timeout_ms, json_t **out, char **raw)
{
    mlx_buf url;
    mlx_buf_init(&url, 4096);
    size_t n = strlen(o->coordinator);
    while (n > 0 && o->coordinator[n - 1] == '/')
        n--;
    if (mlx_buf_printf(&url, "%.*s%s", (int)n, o->coordinator, path) != 0) {
        fprintf(stderr, "mlxctl: out of memory\n");
        return MLX_ENOMEM;
    }
    mlx_err err;
    mlx_err_clear(&err);
    mlx_http_result res = {0};
    int rc = mlx_http_client_init(&err);
    if (rc == 0)
        rc = mlx_http_request(method, mlx_buf_str(&url), o->api_key, body_text,
                              timeout_ms, &res, &err);
    if (rc == MLX_EUNREACH || rc == MLX_ETIMEDOUT) {
        fprintf(stderr,
                "mlxctl: %s; is mlx-coordinator running there? Point mlxctl at it with "
                "--coordinator URL or MLX_COORDINATOR\n",
                err.msg);
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "mlxctl: %s\n", mlx_err_text(&err, rc));
        goto out;
    }
    json_t *body = NULL;
    if (mlx_json_parse(res.body, res.body_len, &body, &err) != 0) {
        fprintf(stderr,
                "mlxctl: the coordinator at %s answered HTTP %ld with something that "
                "is not JSON (%s)\n",
                o->coordinator, res.status, err.msg);
        rc = MLX_EPROTO;
        goto out;
    }
    if (res.status < 200 || res.status > 299) {
        rc = report_refusal(o, res.status, body);
        json_decref(body);
        goto out;
    }
    *out = body;
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

int ctl_get(const ctl_opts *o, const char *path, json_t **out, char **raw)
{
    return ctl_request(o, "GET", path, NULL, out, raw);
}

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
