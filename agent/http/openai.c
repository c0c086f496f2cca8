/*
 * openai.c — OpenAI's API: POST /v1/chat/completions, POST /v1/completions
 * and GET /v1/models, as the official clients use it. Reading the bodies
 * and writing the answers is common/api's (openai.c there); here they meet
 * the runtime and the store.
 */
#include "agent/cache/cache.h"
#include "agent/http/internal.h"
#include "common/alloc.h"

/* ---- the endpoints ---------------------------------------------------------- */

void http_openai_chat(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    api_call *c = api_call_read(ctx, req, resp, &api_openai_chat);
    if (c != NULL)
        api_call_run(c, resp);
}

void http_openai_completions(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    api_call *c = api_call_read(ctx, req, resp, &api_openai_completions);
    if (c != NULL)
        api_call_run(c, resp);
}

void http_openai_models(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    agent_http *h = ctx;
    cache_listing *models = NULL;
    size_t n = 0;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = cache_list_runnable(h->cfg.data_dir, &models, &n, &err);
    if (rc != 0) {
        api_error(resp, API_OPENAI, 500, "internal_error", "%s", mlx_err_text(&err, rc));
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            data, json_pack("{s:s, s:s, s:I, s:s}", "id", models[i].name, "object", "model",
                            "created", (json_int_t)(models[i].modified_unix_ms / 1000),
                            "owned_by", "mlx-fleet"));
    mlx_free(models);
    mlx_http_resp_json(resp, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}
