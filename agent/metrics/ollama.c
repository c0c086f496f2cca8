/*
 * ollama.c — what a local Ollama server has loaded, so the fleet sees the
 * work of an Ollama running beside the agent.
 *
 * GET /api/ps answers {"models":[{"name","model","size","size_vram",
 * "digest","expires_at",…}]}. Its body is outside data: every field is
 * checked, unknown ones are ignored, and at most `max` models are taken.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "agent/metrics/metrics.h"
#include "common/http_client.h"
#include "common/json.h"
#include "common/parse.h"

/* A sample must not wait on a hung server for long. */
#define OLLAMA_PS_MAX_BODY (1u << 20)

int metrics_ollama_parse_ps(const char *body, size_t len, metrics_model_activity *out,
                            size_t max, size_t *n, mlx_err *err)
{
    *n = 0;
    if (len > OLLAMA_PS_MAX_BODY)
        return mlx_err_set(err, MLX_ETOOBIG, "Ollama's /api/ps answer is over %u bytes",
                           OLLAMA_PS_MAX_BODY);
    json_t *root;
    int rc = mlx_json_parse(body, len, &root, err);
    if (rc != 0)
        return mlx_err_prefix(err, rc, "Ollama's /api/ps answer");
    json_t *models = json_is_object(root) ? json_object_get(root, "models") : NULL;
    if (!json_is_array(models)) {
        json_decref(root);
        return mlx_err_set(
            err, MLX_EPROTO,
            "Ollama's /api/ps answer has no \"models\" array; is it Ollama?");
    }
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m)
    {
        const char *name = NULL;
        int64_t size = 0;
        if (*n == max || !json_is_object(m) ||
            mlx_json_get_string(m, "name", MLX_JSON_REQUIRED, &name, NULL) != 0 ||
            mlx_json_get_int(m, "size", MLX_JSON_OPTIONAL, 0, INT64_MAX, &size, NULL) !=
                0 ||
            strlen(name) > MLX_MAX_MODEL_NAME ||
            !mlx_text_is_clean(name, MLX_MAX_MODEL_NAME))
            continue; /* one odd entry does not hide the others */
        metrics_model_activity *a = &out[(*n)++];
        memset(a, 0, sizeof *a);
        snprintf(a->model, sizeof a->model, "%s", name);
        snprintf(a->engine, sizeof a->engine, "ollama");
        a->memory_bytes = (uint64_t)size;
        a->tokens_per_s = 0; /* /api/ps does not say; see the README */
    }
    json_decref(root);
    return 0;
}

int metrics_ollama_ps(const char *base_url, int timeout_ms, metrics_model_activity *out,
                      size_t max, size_t *n, mlx_err *err)
{
    *n = 0;
    char url[512];
    if ((size_t)snprintf(url, sizeof url, "%s/api/ps", base_url) >= sizeof url)
        return mlx_err_set(err, MLX_EINVAL, "Ollama URL '%s' is too long", base_url);
    mlx_http_result r;
    int rc = mlx_http_request("GET", url, NULL, NULL, timeout_ms, &r, err);
    if (rc != 0)
        return rc;
    if (r.status != 200)
        rc = mlx_err_set(err, MLX_EHTTP, "Ollama at %s answered /api/ps with HTTP %ld",
                         base_url, r.status);
    else
        rc = metrics_ollama_parse_ps(r.body, r.body_len, out, max, n, err);
    mlx_http_result_free(&r);
    return rc;
}
