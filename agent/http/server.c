/* server.c — the agent's HTTP API: routes, start and stop. */
#include <string.h>

#include "agent/http/internal.h"
#include "common/alloc.h"
#include "common/json.h"
#include "common/path.h"

static void handle_healthz(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    agent_http *h = ctx;
    mlx_http_resp_json(resp, 200,
                       json_pack("{s:s, s:s}", "status", "ok", "node", h->cfg.node_id));
}

static const mlx_http_route routes[] = {
    {"GET", "/healthz", handle_healthz},
    {"GET", "/metrics", http_handle_metrics},
    {"GET", "/blobs/sha256/*", http_handle_blob},
    {"HEAD", "/blobs/sha256/*", http_handle_blob},
    {"GET", "/v1/models", http_openai_models},
    {"POST", "/v1/chat/completions", http_openai_chat},
    {"POST", "/v1/completions", http_openai_completions},
    {"POST", "/api/generate", http_ollama_generate, .plain_errors = true},
    {"POST", "/api/chat", http_ollama_chat, .plain_errors = true},
    {"GET", "/api/tags", http_ollama_tags, .plain_errors = true},
    {"GET", "/api/ps", http_ollama_ps, .plain_errors = true},
    {"POST", "/api/show", http_ollama_show, .plain_errors = true},
    {"GET", "/api/version", http_ollama_version, .plain_errors = true},
    {NULL},
};

int agent_http_start(const agent_http_config *cfg, agent_http **out, mlx_err *err)
{
    *out = NULL;
    agent_http *h = mlx_calloc(1, sizeof *h);
    char *blobs = mlx_path_join(cfg->data_dir, "blobs");
    if (h == NULL || blobs == NULL ||
        (h->blob_dir = mlx_path_join(blobs, "sha256")) == NULL) {
        mlx_free(blobs);
        mlx_free(h);
        return mlx_err_set(err, MLX_ENOMEM, "out of memory");
    }
    mlx_free(blobs);
    h->cfg = *cfg;
    int rc = mlx_http_server_start(cfg->hostport, routes, h, cfg->max_body, "--http",
                                   &h->srv, err);
    if (rc != 0) {
        mlx_free(h->blob_dir);
        mlx_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void agent_http_stop(agent_http *h)
{
    if (h == NULL)
        return;
    mlx_http_server_stop(h->srv);
    mlx_free(h->blob_dir);
    mlx_free(h);
}
