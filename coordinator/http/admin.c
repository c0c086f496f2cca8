/* admin.c — health and node listing over HTTP. */
#include "coordinator/http/admin.h"

#include "common/limits.h"
#include "common/log.h"

static void get_healthz(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    mlx_http_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void get_nodes(void *ctx, const mlx_http_req *req, mlx_http_resp *resp)
{
    registry *reg = ctx;
    json_t *nodes = NULL;
    mlx_err err;
    mlx_err_clear(&err);
    if (registry_nodes_json(reg, &nodes, &err) != 0) {
        mlx_log_error("http", "cannot list nodes", "err=\"%s\"", err.msg);
        mlx_http_resp_error(resp, 500, "server_error", "internal",
                            "cannot list nodes: %s", err.msg);
        return;
    }
    mlx_http_resp_json(resp, 200, nodes);
}

static const mlx_http_route routes[] = {
    {"GET", "/healthz", get_healthz},
    {"GET", "/api/v1/nodes", get_nodes},
    {NULL},
};

int admin_start(const char *hostport, registry *reg, mlx_http_server **out, mlx_err *err)
{
    int rc = mlx_http_server_start(hostport, routes, reg, MLX_MAX_HTTP_BODY, "--http",
                                   out, err);
    if (rc == 0)
        mlx_log_info("http", "admin API listening", "address=%s", hostport);
    return rc;
}

void admin_stop(mlx_http_server *srv)
{
    mlx_http_server_stop(srv);
}
