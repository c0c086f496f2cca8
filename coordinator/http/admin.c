/* admin.c — the coordinator's HTTP front: routes, the admission gate,
 * health, and the node and model views. The key endpoints are in keys.c,
 * the inference endpoints in infer.c, the fleet's benchmark in bench.c. */
#include "coordinator/http/admin.h"

#include <stdio.h>

#include "common/clock.h"
#include "common/limits.h"
#include "common/log.h"
#include "coordinator/http/internal.h"

#define MOD "http"

/* A refusal of the gate, in the shape the endpoint's clients read: the
 * fleet's (which is OpenAI's) with its type, or Ollama's. */
static void gate_error(mlx_http_resp *resp, api_kind kind, int status, const char *type,
                       const char *code, const char *message)
{
    if (kind == API_OLLAMA)
        api_error(resp, API_OLLAMA, status, code, "%s", message);
    else
        mlx_http_resp_error(resp, status, type, code, "%s", message);
}

static void refuse(const mlx_http_req *req, const auth_result *ar, api_kind kind,
                   mlx_http_resp *resp)
{
    if (ar->status == 401) {
        /* RFC 9110: a 401 names the scheme the client should use. */
        bool none = mlx_http_header(req, "Authorization") == NULL;
        gate_error(resp, kind, 401, "authentication_error",
                   none ? "missing_api_key" : "invalid_api_key", ar->message);
        mlx_http_resp_header(resp, "WWW-Authenticate", "Bearer");
    } else {
        gate_error(resp, kind, 403, "permission_error", "insufficient_scope",
                   ar->message);
    }
}

void admin_gate_run(void *ctx, const mlx_http_req *req, mlx_http_resp *resp,
                    const admin_gate *g)
{
    const admin_ctx *c = ctx;
    int64_t start_ms = mlx_time_mono_ms();
    auth_result ar;
    char text[MLX_MAX_ERR_MSG + 64];
    mlx_err err;
    mlx_err_clear(&err);
    int rc = auth_check(c->auth, mlx_http_header(req, "Authorization"), req->loopback,
                        g->admin_endpoint, g->model, mlx_time_wall_ms(), &ar, &err);
    if (rc != 0) {
        mlx_log_error(MOD, "cannot check an API key", "err=\"%s\"", err.msg);
        snprintf(text, sizeof text, "cannot check the API key: %s", err.msg);
        gate_error(resp, g->errors, 500, "server_error", "internal", text);
        ar.key_name[0] = '\0';
        goto log;
    }
    if (ar.status != 200) {
        refuse(req, &ar, g->errors, resp);
        goto log;
    }
    uint32_t retry_after_s = 0;
    rc = auth_take(c->auth, ar.key_name, start_ms, 0, &retry_after_s, &err);
    if (rc == MLX_EBUSY) {
        gate_error(resp, g->errors, 429, "rate_limit_error", "rate_limited", err.msg);
        mlx_http_resp_header(resp, "Retry-After", "%u", (unsigned)retry_after_s);
    } else if (rc == MLX_ENOENT) {
        /* Revoked between the check and the take. */
        snprintf(text, sizeof text,
                 "the API key '%s' was revoked; ask an admin for another", ar.key_name);
        gate_error(resp, g->errors, 401, "authentication_error", "invalid_api_key", text);
        mlx_http_resp_header(resp, "WWW-Authenticate", "Bearer");
    } else if (rc != 0) {
        snprintf(text, sizeof text, "cannot apply the rate limit: %s", err.msg);
        gate_error(resp, g->errors, 500, "server_error", "internal", text);
    } else {
        g->fn(c, req, &ar, resp, g->arg);
    }
log:;
    int64_t latency = mlx_time_mono_ms() - start_ms;
    auth_log_entry e = {
        .time_unix_ms = mlx_time_wall_ms(),
        .request_id = g->request_id,
        .key_name = ar.key_name,
        .model = g->model,
        .latency_ms = latency > 0 ? (uint32_t)latency : 0,
        .status = resp->status,
    };
    mlx_err_clear(&err);
    bool logged = g->logged_by_generation != NULL && *g->logged_by_generation;
    if (!logged && auth_log_request(c->auth, &e, &err) != 0)
        mlx_log_warn(MOD, "cannot log a request", "err=\"%s\"", err.msg);
    mlx_log_debug(MOD, "request", "method=%s path=%s key=%s status=%d latency_ms=%lld",
                  req->method, req->path, ar.key_name[0] ? ar.key_name : "-",
                  resp->status, (long long)latency);
}

/* admin_inner in a box, so it travels through admin_gate's void *arg. */
struct inner_box {
    admin_inner fn;
};

static void run_inner(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                      mlx_http_resp *resp, void *arg)
{
    const struct inner_box *box = arg;
    box->fn(c, req, ar, resp);
}

void admin_gated(void *ctx, const mlx_http_req *req, mlx_http_resp *resp,
                 bool admin_endpoint, admin_inner fn)
{
    struct inner_box box = {fn};
    admin_gate g = {.admin_endpoint = admin_endpoint,
                    .errors = API_OPENAI,
                    .fn = run_inner,
                    .arg = &box};
    admin_gate_run(ctx, req, resp, &g);
}

static void get_healthz(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    mlx_http_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void nodes_list(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                       mlx_http_resp *resp)
{
    json_t *nodes = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (registry_nodes_json(c->reg, &nodes, &err) != 0) {
        mlx_log_error(MOD, "cannot list nodes", "err=\"%s\"", err.msg);
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "cannot list nodes: %s", err.msg);
        return;
    }
    mlx_http_resp_json(resp, 200, nodes);
}

static void get_nodes(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gated(ctx, req, resp, true, nodes_list);
}

/* A registry view as the answer, or a 500 with its sentence. */
static void answer_view(mlx_http_resp *resp,
                        int (*view)(registry *, json_t **, mlx_err *), registry *reg,
                        const char *what)
{
    json_t *body = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (view(reg, &body, &err) != 0) {
        mlx_log_error(MOD, "cannot list the model inventory", "view=%s err=\"%s\"", what,
                      err.msg);
        mlx_http_resp_error(resp, 500, "server_error", "internal", "cannot list %s: %s",
                            what, err.msg);
        return;
    }
    mlx_http_resp_json(resp, 200, body);
}

static void models_list(const admin_ctx *c, const mlx_http_req *req,
                        const auth_result *ar, mlx_http_resp *resp)
{
    answer_view(resp, registry_models_json, c->reg, "models");
}

static void ps_list(const admin_ctx *c, const mlx_http_req *req, const auth_result *ar,
                    mlx_http_resp *resp)
{
    answer_view(resp, registry_ps_json, c->reg, "loaded models");
}

static void get_models(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gated(ctx, req, resp, true, models_list);
}

static void get_ps(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gated(ctx, req, resp, true, ps_list);
}

static void get_keys(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gated(ctx, req, resp, true, keys_list);
}

static void post_keys(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gated(ctx, req, resp, true, keys_create);
}

static void delete_key(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    admin_gated(ctx, req, resp, true, keys_revoke);
}

static const mlx_http_route routes[] = {
    {"GET", "/healthz", get_healthz},
    {"GET", "/api/v1/nodes", get_nodes},
    {"GET", "/api/v1/models", get_models},
    {"GET", "/api/v1/ps", get_ps},
    {"GET", "/api/v1/requests", requests_get},
    {"GET", "/metrics", metrics_get},
    {"GET", ADMIN_KEYS_PATH, get_keys},
    {"POST", ADMIN_KEYS_PATH, post_keys},
    {"DELETE", ADMIN_KEYS_PATH "/*", delete_key},
    {"POST", "/api/v1/bench", bench_post},
    {"GET", "/v1/models", infer_openai_models},
    {"POST", "/v1/chat/completions", infer_openai_chat},
    {"POST", "/v1/completions", infer_openai_completions},
    {"GET", "/api/tags", infer_ollama_tags, .plain_errors = true},
    {"GET", "/api/ps", info_ollama_ps, .plain_errors = true},
    {"POST", "/api/show", info_ollama_show, .plain_errors = true},
    {"GET", "/api/version", info_ollama_version, .plain_errors = true},
    {"POST", "/api/generate", infer_ollama_generate, .plain_errors = true},
    {"POST", "/api/chat", infer_ollama_chat, .plain_errors = true},
    {NULL},
};

int admin_start(const char *hostport, const admin_ctx *ctx, mlx_http_server **out,
                mlx_err *err)
{
    /* The server's ctx is not const; the handlers only read through it. */
    int rc = mlx_http_server_start(hostport, routes, (void *)ctx, MLX_MAX_HTTP_BODY,
                                   "--http", out, err);
    if (rc == 0)
        mlx_log_info(MOD, "admin API listening", "address=%s", hostport);
    return rc;
}

void admin_stop(mlx_http_server *srv)
{
    mlx_http_server_stop(srv);
}
