/* admin.c — the coordinator's admin HTTP front: routes, the admission gate,
 * health, and the node and model views. The key endpoints are in keys.c. */
#include "coordinator/http/admin.h"

#include "common/clock.h"
#include "common/limits.h"
#include "common/log.h"
#include "coordinator/http/internal.h"

#define MOD "http"

static void refuse(const mlx_http_req *req, const auth_result *ar, mlx_http_resp *resp)
{
    if (ar->status == 401) {
        /* RFC 9110: a 401 names the scheme the client should use. */
        bool none = mlx_http_header(req, "Authorization") == NULL;
        mlx_http_resp_error(resp, 401, "authentication_error",
                            none ? "missing_api_key" : "invalid_api_key", "%s",
                            ar->message);
        mlx_http_resp_header(resp, "WWW-Authenticate", "Bearer");
    } else {
        mlx_http_resp_error(resp, 403, "permission_error", "insufficient_scope", "%s",
                            ar->message);
    }
}

void admin_gated(void *ctx, const mlx_http_req *req, mlx_http_resp *resp,
                 bool admin_endpoint, admin_inner fn)
{
    const admin_ctx *c = ctx;
    int64_t start_ms = mlx_time_mono_ms();
    auth_result ar;
    mlx_err err;
    mlx_err_clear(&err);
    int rc = auth_check(c->auth, mlx_http_header(req, "Authorization"), req->loopback,
                        admin_endpoint, NULL, mlx_time_wall_ms(), &ar, &err);
    if (rc != 0) {
        mlx_log_error(MOD, "cannot check an API key", "err=\"%s\"", err.msg);
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "cannot check the API key: %s", err.msg);
        ar.key_name[0] = '\0';
        goto log;
    }
    if (ar.status != 200) {
        refuse(req, &ar, resp);
        goto log;
    }
    uint32_t retry_after_s = 0;
    rc = auth_take(c->auth, ar.key_name, start_ms, 0, &retry_after_s, &err);
    if (rc == MLX_EBUSY) {
        mlx_http_resp_error(resp, 429, "rate_limit_error", "rate_limited", "%s", err.msg);
        mlx_http_resp_header(resp, "Retry-After", "%u", (unsigned)retry_after_s);
    } else if (rc == MLX_ENOENT) {
        /* Revoked between the check and the take. */
        mlx_http_resp_error(resp, 401, "authentication_error", "invalid_api_key",
                            "the API key '%s' was revoked; ask an admin for another",
                            ar.key_name);
        mlx_http_resp_header(resp, "WWW-Authenticate", "Bearer");
    } else if (rc != 0) {
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "cannot apply the rate limit: %s", err.msg);
    } else {
        fn(c, req, &ar, resp);
    }
log:;
    int64_t latency = mlx_time_mono_ms() - start_ms;
    auth_log_entry e = {
        .time_unix_ms = mlx_time_wall_ms(),
        .key_name = ar.key_name,
        .latency_ms = latency > 0 ? (uint32_t)latency : 0,
        .status = resp->status,
    };
    mlx_err_clear(&err);
    if (auth_log_request(c->auth, &e, &err) != 0)
        mlx_log_warn(MOD, "cannot log a request", "err=\"%s\"", err.msg);
    mlx_log_debug(MOD, "request", "method=%s path=%s key=%s status=%d latency_ms=%lld",
                  req->method, req->path, ar.key_name[0] ? ar.key_name : "-",
                  resp->status, (long long)latency);
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
static void answer_view(mlx_http_resp *resp, int (*view)(registry *, json_t **, mlx_err *),
                        registry *reg, const char *what)
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
    {"GET", ADMIN_KEYS_PATH, get_keys},
    {"POST", ADMIN_KEYS_PATH, post_keys},
    {"DELETE", ADMIN_KEYS_PATH "/*", delete_key},
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
