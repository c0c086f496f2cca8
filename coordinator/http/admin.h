/*
 * admin.h — the coordinator's HTTP front (admin part).
 *
 *   GET /healthz         {"status":"ok"} while the coordinator runs
 *   GET /api/v1/nodes    every node the registry knows (registry_nodes_json)
 *
 * Lifecycle: admin_start serves at once; admin_stop waits for requests in
 * progress. The registry is borrowed and must outlive the server.
 */
#ifndef MLX_COORDINATOR_HTTP_ADMIN_H
#define MLX_COORDINATOR_HTTP_ADMIN_H

#include "common/err.h"
#include "common/http_server.h"
#include "coordinator/registry/registry.h"

int admin_start(const char *hostport, registry *reg, mlx_http_server **out, mlx_err *err);
void admin_stop(mlx_http_server *srv);

#endif
