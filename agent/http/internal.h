/*
 * internal.h — shared by the files of agent/http; not included elsewhere.
 */
#ifndef MLX_AGENT_HTTP_INTERNAL_H
#define MLX_AGENT_HTTP_INTERNAL_H

#include "agent/http/http.h"
#include "common/buf.h"
#include "common/http_server.h"
#include "common/prom.h"

struct agent_http {
    agent_http_config cfg; /* borrowed strings */
    char *blob_dir;        /* <data>/blobs/sha256, owned */
    mlx_http_server *srv;
};

void http_handle_blob(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);
void http_handle_metrics(void *ctx, const mlx_http_req *req, mlx_http_resp *resp);

/* The node's and its models' series, as Prometheus text, appended to b. */
void http_write_node_metrics(mlx_buf *b, const char *node_name,
                             const metrics_snapshot *s);

#endif
